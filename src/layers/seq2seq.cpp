// seq2seq.cpp — the GRU encoder–decoder, forward beside backward.
//
// Buffers (B batch, Ls source steps, Lt target steps, E, H, V as in the header):
//   es      [B, Ls, E]     source embeddings          (saved by src_embed: the ids)
//   enc     [B, Ls, H]     encoder states, 0 at padding (saved by the encoder GRU)
//   h_n     [1, B, H]      the encoder's last state at each source's own length
//   et      [B, Lt, E]     target-input embeddings
//   dec     [B, Lt, H]     decoder states, starting from h_n
//   context [B, Lt, H]     attention's Σ_j α_ij h_j (attention model only)
//   feat    [B, Lt, H|2H]  dec, or [dec; context]   (saved by out)
//   logits  [B, Lt, V]
#include "attn/seq2seq.hpp"

#include <string>

#include "layers/layer_util.hpp"

namespace attn {

template <class T>
Seq2Seq<T>::Seq2Seq(const Seq2SeqConfig& c, Generator& gen)
    : src_embed(c.src_vocab, c.embed_dim, gen),
      tgt_embed(c.tgt_vocab, c.embed_dim, gen),
      encoder(c.embed_dim, c.hidden_dim, true, true, gen),
      decoder(c.embed_dim, c.hidden_dim, true, true, gen),
      attention(c.attention ? std::make_unique<AdditiveAttention<T>>(c.hidden_dim, c.hidden_dim,
                                                                     detail::positive(c.attention_dim, "Seq2Seq", "attention_dim"), gen)
                            : nullptr),
      out(c.attention ? 2 * c.hidden_dim : c.hidden_dim, c.tgt_vocab, true, gen),
      config_(c),
      H_(c.hidden_dim) {}

template <class T>
std::vector<NamedParameter<T>> Seq2Seq<T>::named_parameters() {
  std::vector<NamedParameter<T>> p;
  append_prefixed(p, "src_embed.", src_embed);
  append_prefixed(p, "tgt_embed.", tgt_embed);
  append_prefixed(p, "encoder.", encoder);
  append_prefixed(p, "decoder.", decoder);
  if (attention) append_prefixed(p, "attention.", *attention);
  append_prefixed(p, "out.", out);
  return p;
}

template <class T>
Tensor<bool> Seq2Seq<T>::padding_mask(int64_t B, int64_t Ls, const std::vector<int64_t>& src_lengths) const {
  Tensor<bool> mask({B, Ls});  // True = padding (AdditiveAttention's polarity)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = src_lengths[static_cast<size_t>(b)]; j < Ls; ++j) mask(b, j) = true;
  return mask;
}

template <class T>
GRUOutput<T> Seq2Seq<T>::encode(const Tensor<int64_t>& src, const std::vector<int64_t>& src_lengths, const char* where) {
  if (!src.defined() || src.dim() != 2)
    throw ShapeError(std::string(where) + ": src has shape " + (src.defined() ? shape_str(src.shape()) : "undefined") +
                     ", expected [batch, Ls] token ids");
  if (static_cast<int64_t>(src_lengths.size()) != src.size(0))
    throw ShapeError(std::string(where) + ": src_lengths has " + std::to_string(src_lengths.size()) +
                     " entries, expected one per sequence of src " + shape_str(src.shape()));
  for (int64_t len : src_lengths)
    if (len < 0 || len > src.size(1))
      throw ValueError(std::string(where) + ": src_lengths contains " + std::to_string(len) +
                       ", expected 0 <= length <= Ls (" + std::to_string(src.size(1)) + ")");
  // padding ids may be anything: look up id 0 there (its gradient is zeroed by the GRU)
  Tensor<int64_t> ids = src.clone();
  for (int64_t b = 0; b < src.size(0); ++b)
    for (int64_t j = 0; j < src.size(1); ++j)
      if (j >= src_lengths[static_cast<size_t>(b)]) ids(b, j) = 0;
  return encoder.forward(src_embed.forward(ids), {}, src_lengths);  // GRU checks 0 <= length <= Ls
}

// ---- forward -----------------------------------------------------------------------

template <class T>
Tensor<T> Seq2Seq<T>::forward(const Tensor<int64_t>& src, const std::vector<int64_t>& src_lengths,
                              const Tensor<int64_t>& tgt_in) {
  const char* where = "Seq2Seq.forward";
  if (!tgt_in.defined() || tgt_in.dim() != 2 || !src.defined() || src.dim() != 2 || tgt_in.size(0) != src.size(0))
    throw ShapeError(std::string(where) + ": tgt_in has shape " + (tgt_in.defined() ? shape_str(tgt_in.shape()) : "undefined") +
                     " and src " + (src.defined() ? shape_str(src.shape()) : "undefined") +
                     ", expected [batch, Lt] and [batch, Ls] with the same batch");
  const GRUOutput<T> enc = encode(src, src_lengths, where);                   // [B, Ls, H], [1, B, H]
  const Tensor<T> dec = decoder.forward(tgt_embed.forward(tgt_in), enc.h_n).output;  // [B, Lt, H]
  const int64_t B = dec.size(0), Lt = dec.size(1), H = H_;
  Tensor<T> feat = dec;
  if (attention) {
    const Tensor<T> context = attention->forward(dec, enc.output, padding_mask(B, src.size(1), src_lengths));
    feat = Tensor<T>({B, Lt, 2 * H});  // [s_i; c_i]
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < Lt; ++i)
        for (int64_t k = 0; k < H; ++k) {
          feat(b, i, k) = dec(b, i, k);
          feat(b, i, H + k) = context(b, i, k);
        }
  }
  Tensor<T> logits = out.forward(feat);
  logits_shape_ = logits.shape();
  return logits;
}

// ---- backward ----------------------------------------------------------------------

template <class T>
void Seq2Seq<T>::backward(const Tensor<T>& grad_logits) {
  detail::check_forward_ran(!logits_shape_.empty(), "Seq2Seq.backward");
  detail::check_grad_shape(grad_logits, logits_shape_, "Seq2Seq.backward");
  const int64_t B = logits_shape_[0], Lt = logits_shape_[1], H = H_;
  // in the forward pass this was logits = out(feat), feat = dec or [dec; context]
  const Tensor<T> d_feat = out.backward(grad_logits);
  Tensor<T> d_dec({B, Lt, H});
  Tensor<T> d_enc;  // [B, Ls, H]: only the attention reads the encoder states directly
  if (attention) {
    Tensor<T> d_context({B, Lt, H});
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < Lt; ++i)
        for (int64_t k = 0; k < H; ++k) {
          d_dec(b, i, k) = d_feat(b, i, k);
          d_context(b, i, k) = d_feat(b, i, H + k);
        }
    // context = attention(query = dec, keys = enc): both receive gradient
    const auto g = attention->backward(d_context);
    detail::add_(d_dec, g.d_query);
    d_enc = g.d_keys;
  } else {
    d_dec.copy_(d_feat);
  }
  // dec = decoder(et, h0 = encoder's h_n)
  const auto gd = decoder.backward(d_dec);
  tgt_embed.backward(gd.d_input);
  // enc, h_n = encoder(es): h_n's gradient is the decoder's d_h0
  const auto ge = encoder.backward(d_enc, gd.d_h0);
  src_embed.backward(ge.d_input);
}

// ---- greedy decoding ------------------------------------------------------------------

template <class T>
Tensor<int64_t> Seq2Seq<T>::greedy_decode(const Tensor<int64_t>& src, const std::vector<int64_t>& src_lengths,
                                          int64_t bos, int64_t steps, Tensor<T>* weights) {
  const char* where = "Seq2Seq.greedy_decode";
  if (bos < 0 || bos >= config_.tgt_vocab || steps < 0)
    throw ValueError(std::string(where) + ": bos = " + std::to_string(bos) + " and steps = " + std::to_string(steps) +
                     ", expected 0 <= bos < tgt_vocab (" + std::to_string(config_.tgt_vocab) + ") and steps >= 0");
  const GRUOutput<T> enc = encode(src, src_lengths, where);
  const int64_t B = src.size(0), Ls = src.size(1), H = H_, V = config_.tgt_vocab;
  const Tensor<bool> mask = padding_mask(B, Ls, src_lengths);
  Tensor<int64_t> result({B, steps});
  if (weights) *weights = Tensor<T>({B, steps, Ls});
  Tensor<int64_t> y = Tensor<int64_t>::full({B, 1}, bos);  // the previous token
  Tensor<T> h = enc.h_n;                                     // [1, B, H]
  for (int64_t i = 0; i < steps; ++i) {
    const GRUOutput<T> d = decoder.forward(tgt_embed.forward(y), h);  // one step: s_i [B, 1, H]
    h = d.h_n;
    Tensor<T> feat = d.output;
    if (attention) {
      const Tensor<T> context = attention->forward(d.output, enc.output, mask);  // [B, 1, H]
      feat = Tensor<T>({B, 1, 2 * H});
      for (int64_t b = 0; b < B; ++b)
        for (int64_t k = 0; k < H; ++k) {
          feat(b, 0, k) = d.output(b, 0, k);
          feat(b, 0, H + k) = context(b, 0, k);
        }
      if (weights) {
        const Tensor<T> a = attention->attention_weights();  // [B, 1, Ls]
        for (int64_t b = 0; b < B; ++b)
          for (int64_t j = 0; j < Ls; ++j) (*weights)(b, i, j) = a(b, 0, j);
      }
    }
    const Tensor<T> logits = out.forward(feat);  // [B, 1, V]
    for (int64_t b = 0; b < B; ++b) {
      int64_t best = 0;
      for (int64_t v = 1; v < V; ++v)
        if (logits(b, 0, v) > logits(b, 0, best)) best = v;  // first of equal maxima, as torch.argmax
      result(b, i) = y(b, 0) = best;
    }
  }
  return result;
}

template class Seq2Seq<float>;
template class Seq2Seq<double>;

}  // namespace attn
