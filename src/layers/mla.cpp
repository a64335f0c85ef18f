// mla.cpp — multi-head latent attention (DeepSeek-V2): the trainable layer
// (forward beside backward) and the cached decoder in its absorbed and naive
// forms. The math is in include/attn/mla.hpp.
//
// Buffers of the trainable layer (B = batch, L = seq, H = heads, d_h, d_R,
// d_c = kv latent, d_c' = q latent):
//   x         [B, L, d_model]        saved by W_DQ, W_DKV, W_KR
//   c_Q       [B, L, d_c']           saved by W_UQ, W_QR
//   c_KV      [B, L, d_c]            saved by W_UK, W_UV
//   q_C       [B, H, L, d_h]         W_UQ·c_Q, split into heads
//   q_R       [B, H, L, d_R]         RoPE(W_QR·c_Q)
//   k_C, v    [B, H, L, d_h]         W_UK·c_KV, W_UV·c_KV
//   k_R       [B, 1, L, d_R]         RoPE(W_KR·x), one per token, broadcast over heads
//   q, k      [B, H, L, d_h + d_R]   [q_C ; q_R], [k_C ; k_R]; saved with v
//   attn      [B, H, L, d_h]         causal SDPA output; saved with lse [B, H, L]
//   merged    [B, L, H·d_h]          heads side by side; saved by W_O
//   u         [B, L, d_model]        W_O·merged
#include "attn/mla.hpp"

#include <cmath>
#include <string>

#include "attn/sdpa.hpp"
#include "layers/layer_util.hpp"

namespace attn {

namespace {

// [B, L, H·d] (contiguous, from a Linear) → view [B, H, L, d].
template <class T>
Tensor<T> split_heads(const Tensor<T>& y, int64_t H) {
  const int64_t B = y.size(0), L = y.size(1), d = H ? y.size(2) / H : 0;
  return y.reshape({B, L, H, d}).transpose(1, 2);
}

// [B, H, L, d] (any strides) → [B, L, H·d] contiguous (a copy).
template <class T>
Tensor<T> merge_heads(const Tensor<T>& t) {
  const int64_t B = t.size(0), H = t.size(1), L = t.size(2), d = t.size(3);
  return t.transpose(1, 2).contiguous().reshape({B, L, H * d});
}

// [a ; b] along the last dim: a [B, H, L, da], b [B, H, L, db] → [B, H, L, da + db].
template <class T>
Tensor<T> cat_last(const Tensor<T>& a, const Tensor<T>& b) {
  const int64_t da = a.size(3), db = b.size(3);
  Tensor<T> out({a.size(0), a.size(1), a.size(2), da + db});
  out.slice(3, 0, da).copy_(a);
  out.slice(3, da, da + db).copy_(b);
  return out;
}

template <class T>
SdpaOptions<T> mla_sdpa_options(const MLAConfig& c) {
  SdpaOptions<T> o;
  o.is_causal = true;
  o.scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim + c.rope_dim));
  return o;
}

RopeOptions rope_options(const MLAConfig& c) {
  RopeOptions r;
  r.theta = c.rope_theta;
  r.layout = c.rope_layout;
  return r;
}

const MLAConfig& checked(const MLAConfig& c) {
  const std::string who = "MultiHeadLatentAttention";
  detail::positive(c.d_model, who, "d_model");
  detail::positive(c.num_heads, who, "num_heads");
  detail::positive(c.head_dim, who, "head_dim");
  detail::positive(c.kv_latent_dim, who, "kv_latent_dim");
  detail::positive(c.q_latent_dim, who, "q_latent_dim");
  if (c.rope_dim < 0 || c.rope_dim % 2 != 0)
    throw ValueError(who + ": rope_dim = " + std::to_string(c.rope_dim) + ", expected an even number >= 0");
  // The widths the layer derives (projections, cached rows), checked before
  // any of them sizes a weight or the latent cache.
  detail::size_mul(c.num_heads, detail::size_add(c.head_dim, c.rope_dim, who, "head_dim + rope_dim"), who,
                   "num_heads x (head_dim + rope_dim)");
  detail::size_add(c.kv_latent_dim, c.rope_dim, who, "kv_latent_dim + rope_dim");
  return c;
}

}  // namespace

template <class T>
MultiHeadLatentAttention<T>::MultiHeadLatentAttention(const MLAConfig& config, Generator& gen)
    : W_DQ(checked(config).d_model, config.q_latent_dim, false, gen),
      W_UQ(config.q_latent_dim, config.num_heads * config.head_dim, false, gen),
      W_QR(config.q_latent_dim, config.num_heads * config.rope_dim, false, gen),
      W_DKV(config.d_model, config.kv_latent_dim, false, gen),
      W_UK(config.kv_latent_dim, config.num_heads * config.head_dim, false, gen),
      W_UV(config.kv_latent_dim, config.num_heads * config.head_dim, false, gen),
      W_KR(config.d_model, config.rope_dim, false, gen),
      W_O(config.num_heads * config.head_dim, config.d_model, false, gen),
      config_(config) {}

template <class T>
std::vector<NamedParameter<T>> MultiHeadLatentAttention<T>::named_parameters() {
  std::vector<NamedParameter<T>> out;
  append_prefixed(out, "W_DQ.", W_DQ);
  append_prefixed(out, "W_UQ.", W_UQ);
  append_prefixed(out, "W_QR.", W_QR);
  append_prefixed(out, "W_DKV.", W_DKV);
  append_prefixed(out, "W_UK.", W_UK);
  append_prefixed(out, "W_UV.", W_UV);
  append_prefixed(out, "W_KR.", W_KR);
  append_prefixed(out, "W_O.", W_O);
  return out;
}

// ---- forward ------------------------------------------------------------------

template <class T>
Tensor<T> MultiHeadLatentAttention<T>::forward(const Tensor<T>& x, int64_t start_pos) {
  const MLAConfig& c = config_;
  detail::check_sequence_input(x, c.d_model, "MultiHeadLatentAttention.forward", "x", "[batch, seq, d_model]");
  if (start_pos < 0)
    throw ValueError("MultiHeadLatentAttention.forward: start_pos = " + std::to_string(start_pos) + ", expected >= 0");
  const Tensor<T> x3 = detail::as_batched(x);
  const int64_t B = x3.size(0), L = x3.size(1), H = c.num_heads;
  const RopeOptions ro = rope_options(c);

  // Queries: compress, then up-project to the content part and the RoPE part.
  const Tensor<T> c_Q = W_DQ.forward(x3);                                  // [B, L, d_c']
  const Tensor<T> q_C = split_heads(W_UQ.forward(c_Q), H);                  // [B, H, L, d_h]
  const Tensor<T> q_R = apply_rope(split_heads(W_QR.forward(c_Q), H), start_pos, ro);  // [B, H, L, d_R]
  // Keys and values: one latent per token, up-projected per head.
  const Tensor<T> c_KV = W_DKV.forward(x3);                                 // [B, L, d_c]
  const Tensor<T> k_C = split_heads(W_UK.forward(c_KV), H);                 // [B, H, L, d_h]
  v_ = split_heads(W_UV.forward(c_KV), H).contiguous();                     // [B, H, L, d_h]
  const Tensor<T> k_R = apply_rope(split_heads(W_KR.forward(x3), 1), start_pos, ro);  // [B, 1, L, d_R]

  q_ = cat_last(q_C, q_R);                                  // [B, H, L, d_h + d_R]
  k_ = cat_last(k_C, k_R.expand({B, H, L, c.rope_dim}));    // the RoPE key is shared by every head
  SdpaResult<T> r = scaled_dot_product_attention(q_, k_, v_, mla_sdpa_options<T>(c));
  attn_ = r.output;  // [B, H, L, d_h]
  lse_ = r.lse;      // [B, H, L]
  Tensor<T> u = W_O.forward(merge_heads(attn_));  // [B, L, d_model]

  input_rank_ = x.dim();
  start_pos_ = start_pos;
  output_shape_ = x.shape();
  return x.dim() == 2 ? u.reshape({L, c.d_model}) : u;
}

// ---- backward -----------------------------------------------------------------

template <class T>
Tensor<T> MultiHeadLatentAttention<T>::backward(const Tensor<T>& grad_output) {
  const MLAConfig& c = config_;
  detail::check_forward_ran(input_rank_ != 0, "MultiHeadLatentAttention.backward");
  detail::check_grad_shape(grad_output, output_shape_, "MultiHeadLatentAttention.backward");
  const Tensor<T> g3 = detail::as_batched(grad_output);
  const int64_t B = g3.size(0), L = g3.size(1), H = c.num_heads, dh = c.head_dim, dR = c.rope_dim;
  const RopeOptions ro = rope_options(c);

  // u = W_O·merged
  const Tensor<T> d_attn = split_heads(W_O.backward(g3), H);  // [B, H, L, d_h]
  // attn = SDPA(q, k, v), causal
  const SdpaGradients<T> g =
      scaled_dot_product_attention_backward(d_attn, q_, k_, v_, attn_, lse_, mla_sdpa_options<T>(c));

  // q = [q_C ; q_R]: split the gradient, undo the rotation on the RoPE part.
  const Tensor<T> dq_C = g.d_query.slice(3, 0, dh);
  const Tensor<T> dq_R = apply_rope_backward(g.d_query.slice(3, dh, dh + dR), start_pos_, ro);  // [B, H, L, d_R]
  // k = [k_C ; k_R broadcast over heads]: the shared key's gradient is the sum over heads.
  const Tensor<T> dk_C = g.d_key.slice(3, 0, dh);
  Tensor<T> dk_R({B, 1, L, dR});  // Σ_h d_key[b, h, l, d_h + r]
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t l = 0; l < L; ++l)
        for (int64_t r = 0; r < dR; ++r) dk_R(b, 0, l, r) += g.d_key(b, h, l, dh + r);
  dk_R = apply_rope_backward(dk_R, start_pos_, ro);

  // c_Q feeds W_UQ and W_QR; c_KV feeds W_UK and W_UV; x feeds W_DQ, W_DKV, W_KR.
  Tensor<T> dc_Q = W_UQ.backward(merge_heads(dq_C));  // [B, L, d_c']
  detail::add_(dc_Q, W_QR.backward(merge_heads(dq_R)));
  Tensor<T> dc_KV = W_UK.backward(merge_heads(dk_C));  // [B, L, d_c]
  detail::add_(dc_KV, W_UV.backward(merge_heads(g.d_value)));
  Tensor<T> dx = W_DQ.backward(dc_Q);  // [B, L, d_model]
  detail::add_(dx, W_DKV.backward(dc_KV));
  detail::add_(dx, W_KR.backward(merge_heads(dk_R)));
  return input_rank_ == 2 ? dx.reshape({L, c.d_model}) : dx;
}

// ---- the cached decoder ---------------------------------------------------------
//
// Buffers of one step (n new tokens, T = length() + n cached after the append):
//   h        [B, n, d_model]
//   q_C      [B, n, H·d_h]          W_UQ·W_DQ·h
//   q_R      [B, H, n, d_R]         RoPE at positions length() ..
//   Absorbed:
//     latent   [B, 1, max_len, d_c + d_R]   row t = [c_KV,t ; k_R,t]   (the whole cache)
//     q_lat    [B, H, n, d_c]        q_lat[h] = W_UK,hᵀ·q_C,h   (W_UK absorbed into the query)
//     query    [B, H, n, d_c + d_R]  [q_lat ; q_R]
//     o_lat    [B, H, n, d_c]        SDPA(query, latent[:T], latent[:T, :d_c]) — MQA, one KV head
//     o        [B, n, H·d_h]         o[h] = W_UV,h·o_lat[h]     (W_UV absorbed into the output side)
//   Naive:
//     k, v     [B, H, max_len, d_h + d_R], [B, H, max_len, d_h]  every head's keys and values
//     o        [B, H, n, d_h]        SDPA(q, k[:T], v[:T])
//   u        [B, n, d_model]        W_O·o

template <class T>
MLADecoder<T>::MLADecoder(const MultiHeadLatentAttention<T>& layer, int64_t batch, int64_t max_len,
                          MLACacheForm form)
    : layer_(layer),
      batch_(detail::positive(batch, "MLADecoder", "batch")),
      max_len_(detail::positive(max_len, "MLADecoder", "max_len")),
      form_(form) {
  const MLAConfig& c = layer.config();
  if (form == MLACacheForm::Absorbed)
    latent_ = Tensor<T>({batch, 1, max_len, c.kv_latent_dim + c.rope_dim});
  else {
    k_ = Tensor<T>({batch, c.num_heads, max_len, c.head_dim + c.rope_dim});
    v_ = Tensor<T>({batch, c.num_heads, max_len, c.head_dim});
  }
}

template <class T>
int64_t MLADecoder<T>::cache_bytes_per_token() const {
  const MLAConfig& c = layer_.config();
  const int64_t n = form_ == MLACacheForm::Absorbed ? c.kv_latent_dim + c.rope_dim
                                                    : c.num_heads * (2 * c.head_dim + c.rope_dim);
  return n * static_cast<int64_t>(sizeof(T));
}

template <class T>
Tensor<T> MLADecoder<T>::step(const Tensor<T>& h) {
  const MultiHeadLatentAttention<T>& m = layer_;
  const MLAConfig& c = m.config();
  if (!h.defined() || h.dim() != 3 || h.size(0) != batch_ || h.size(2) != c.d_model)
    throw ShapeError("MLADecoder.step: h has shape " + (h.defined() ? shape_str(h.shape()) : "undefined") +
                     ", expected [" + std::to_string(batch_) + ", n, " + std::to_string(c.d_model) + "]");
  const int64_t B = batch_, n = h.size(1), H = c.num_heads, dh = c.head_dim, dR = c.rope_dim,
                dc = c.kv_latent_dim;
  const int64_t pos0 = length_, T_len = length_ + n;
  if (T_len > max_len_)
    throw ValueError("MLADecoder.step: " + std::to_string(n) + " new tokens after " + std::to_string(length_) +
                     " cached exceed max_len = " + std::to_string(max_len_));
  const RopeOptions ro = rope_options(c);

  const Tensor<T> c_Q = m.W_DQ.apply(h);                                            // [B, n, d_c']
  const Tensor<T> q_C = m.W_UQ.apply(c_Q);                                          // [B, n, H·d_h]
  const Tensor<T> q_R = apply_rope(split_heads(m.W_QR.apply(c_Q), H), pos0, ro);    // [B, H, n, d_R]
  const Tensor<T> c_KV = m.W_DKV.apply(h);                                          // [B, n, d_c]
  const Tensor<T> k_R = apply_rope(split_heads(m.W_KR.apply(h), 1), pos0, ro);      // [B, 1, n, d_R]

  SdpaOptions<T> opts = mla_sdpa_options<T>(c);
  opts.causal_alignment = CausalAlignment::BottomRight;  // new token i sees cache rows <= pos0 + i
  opts.return_lse = false;

  Tensor<T> o;  // [B, n, H·d_h]
  if (form_ == MLACacheForm::Absorbed) {
    // Append [c_KV ; k_R] to the latent cache.
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t e = 0; e < dc; ++e) latent_(b, 0, pos0 + i, e) = c_KV(b, i, e);
        for (int64_t r = 0; r < dR; ++r) latent_(b, 0, pos0 + i, dc + r) = k_R(b, 0, i, r);
      }
    // q_lat[b, h, i, :] = Σ_e q_C[b, i, h·d_h + e] · W_UK[h·d_h + e, :]   (rows of W_UK are contiguous)
    const Tensor<T> Wuk = m.W_UK.weight.value.contiguous(), Wuv = m.W_UV.weight.value.contiguous();
    Tensor<T> query({B, H, n, dc + dR});  // [q_lat ; q_R]
    for (int64_t b = 0; b < B; ++b)
      for (int64_t hh = 0; hh < H; ++hh)
        for (int64_t i = 0; i < n; ++i) {
          T* ql = &query(b, hh, i, 0);
          for (int64_t e = 0; e < dh; ++e) {
            const T qe = q_C(b, i, hh * dh + e);
            const T* w = Wuk.data() + (hh * dh + e) * dc;
            for (int64_t k = 0; k < dc; ++k) ql[k] += qe * w[k];
          }
          for (int64_t r = 0; r < dR; ++r) ql[dc + r] = q_R(b, hh, i, r);
        }
    // MQA over the latent cache: key = whole row, value = its first d_c dims (same memory).
    opts.enable_gqa = true;
    const Tensor<T> key = latent_.slice(2, 0, T_len);  // [B, 1, T, d_c + d_R]
    const Tensor<T> value = key.slice(3, 0, dc);       // [B, 1, T, d_c]
    Tensor<T> o_lat;  // [B, H, n, d_c]
    if (n == 1) {
      // One new token sees every cached row, so no mask is needed and the H
      // heads are just H query rows against the one shared latent "head":
      // [B, H, 1, ·] viewed as [B, 1, H, ·]. That is one matrix-shaped
      // problem whose K/V tiles are read once for all heads (FlashMLA's
      // layout), instead of H single-row problems that each re-read the cache.
      SdpaOptions<T> rows = opts;
      rows.is_causal = false;
      rows.enable_gqa = false;
      o_lat = scaled_dot_product_attention(query.reshape({B, 1, H, dc + dR}), key, value, rows)
                  .output.reshape({B, H, 1, dc});
    } else {
      o_lat = scaled_dot_product_attention(query, key, value, opts).output;
    }
    // o[b, i, h·d_h + e] = W_UV[h·d_h + e, :] · o_lat[b, h, i, :]
    o = Tensor<T>({B, n, H * dh});
    for (int64_t b = 0; b < B; ++b)
      for (int64_t hh = 0; hh < H; ++hh)
        for (int64_t i = 0; i < n; ++i) {
          const T* ol = &o_lat(b, hh, i, 0);  // contiguous SDPA output
          for (int64_t e = 0; e < dh; ++e) {
            const T* w = Wuv.data() + (hh * dh + e) * dc;
            T acc = 0;
            for (int64_t k = 0; k < dc; ++k) acc += w[k] * ol[k];
            o(b, i, hh * dh + e) = acc;
          }
        }
  } else {
    // Up-project the new tokens' latents to every head's k_C and v and cache them.
    const Tensor<T> k_C = split_heads(m.W_UK.apply(c_KV), H);  // [B, H, n, d_h]
    const Tensor<T> v = split_heads(m.W_UV.apply(c_KV), H);    // [B, H, n, d_h]
    k_.slice(2, pos0, T_len).slice(3, 0, dh).copy_(k_C);
    k_.slice(2, pos0, T_len).slice(3, dh, dh + dR).copy_(k_R.expand({B, H, n, dR}));
    v_.slice(2, pos0, T_len).copy_(v);
    const Tensor<T> q = cat_last(split_heads(q_C, H), q_R);  // [B, H, n, d_h + d_R]
    o = merge_heads(scaled_dot_product_attention(q, k_.slice(2, 0, T_len), v_.slice(2, 0, T_len), opts).output);
  }
  length_ = T_len;
  return m.W_O.apply(o);
}

template class MultiHeadLatentAttention<float>;
template class MultiHeadLatentAttention<double>;
template class MLADecoder<float>;
template class MLADecoder<double>;

}  // namespace attn
