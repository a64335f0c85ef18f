// Causal self-attention with dropout (Raschka's CausalAttention).
//
// Buffers (B = batch, L = seq <= context_length; [L, d_in] runs with B = 1):
//   x        [B, L, d_in]     saved by each Linear
//   Q, K, V  [B, 1, L, d_out] saved for SDPA's backward
//   context  [B, 1, L, d_out] saved with lse [B, 1, L]
//   the dropout seed and p of that forward, so backward rebuilds the same
//   SdpaOptions and SDPA regenerates the same keep/drop mask.
#include "attn/causal_attention.hpp"

#include "attn/sdpa.hpp"
#include "layers/layer_util.hpp"

namespace attn {

namespace {
// The attention options this layer hands to SDPA: causal (top-left, PyTorch's
// is_causal: query i sees keys 0..i) and, while training, dropout.
template <class T>
SdpaOptions<T> causal_options(double dropout_p, uint64_t seed) {
  SdpaOptions<T> o;
  o.is_causal = true;
  o.dropout_p = dropout_p;
  o.dropout_seed = seed;
  return o;
}
}  // namespace

template <class T>
CausalAttention<T>::CausalAttention(int64_t d_in, int64_t d_out, int64_t context_length, double dropout,
                                    bool qkv_bias, Generator& gen)
    : W_query(detail::positive(d_in, "CausalAttention", "d_in"), detail::positive(d_out, "CausalAttention", "d_out"),
              qkv_bias, gen),
      W_key(d_in, d_out, qkv_bias, gen),
      W_value(d_in, d_out, qkv_bias, gen),
      d_in_(d_in),
      d_out_(d_out),
      context_length_(detail::positive(context_length, "CausalAttention", "context_length")),
      dropout_(dropout) {
  detail::check_dropout(dropout, "CausalAttention");
}

template <class T>
Tensor<T> CausalAttention<T>::forward(const Tensor<T>& x) {
  detail::check_sequence_input(x, d_in_, "CausalAttention.forward", "x", "[batch, seq, d_in]");
  const Tensor<T> xb = detail::as_batched(x);
  const int64_t B = xb.size(0), L = xb.size(1);
  if (L > context_length_)
    throw ShapeError("CausalAttention.forward: x has shape " + shape_str(x.shape()) + ", a sequence of " +
                     std::to_string(L) + " tokens, longer than context_length = " + std::to_string(context_length_));
  input_rank_ = x.dim();

  queries_ = W_query.forward(xb).reshape({B, 1, L, d_out_});
  keys_ = W_key.forward(xb).reshape({B, 1, L, d_out_});
  values_ = W_value.forward(xb).reshape({B, 1, L, d_out_});

  // Dropout only while training; each training call takes a fresh seed.
  used_dropout_p_ = training_ ? dropout_ : 0.0;
  used_seed_ = dropout_seed_;
  if (used_dropout_p_ > 0.0) ++dropout_seed_;

  // scores = Q·Kᵀ/√d_out, −∞ above the diagonal, weights = dropout(softmax), context = weights·V
  SdpaResult<T> r =
      scaled_dot_product_attention(queries_, keys_, values_, causal_options<T>(used_dropout_p_, used_seed_));
  context_ = r.output;
  lse_ = r.lse;

  Tensor<T> z = input_rank_ == 2 ? context_.reshape({L, d_out_}) : context_.reshape({B, L, d_out_});
  output_shape_ = z.shape();
  return z;
}

template <class T>
Tensor<T> CausalAttention<T>::backward(const Tensor<T>& grad_output) {
  detail::check_forward_ran(context_.defined(), "CausalAttention.backward");
  detail::check_grad_shape(grad_output, output_shape_, "CausalAttention.backward");
  const int64_t B = queries_.size(0), L = queries_.size(2);

  // in the forward pass this was: context = SDPA(Q, K, V; causal, dropout) — same options, same mask
  SdpaGradients<T> g =
      scaled_dot_product_attention_backward(grad_output.reshape({B, 1, L, d_out_}), queries_, keys_, values_,
                                            context_, lse_, causal_options<T>(used_dropout_p_, used_seed_));
  // Q, K, V = x·Wᵀ (+ b): the three paths back to x add up.
  Tensor<T> dx = W_query.backward(g.d_query.reshape({B, L, d_out_}));
  detail::add_(dx, W_key.backward(g.d_key.reshape({B, L, d_out_})));
  detail::add_(dx, W_value.backward(g.d_value.reshape({B, L, d_out_})));
  return input_rank_ == 2 ? dx.reshape({L, d_in_}) : dx;
}

template <class T>
std::vector<NamedParameter<T>> CausalAttention<T>::named_parameters() {
  std::vector<NamedParameter<T>> out;
  append_prefixed(out, "W_query.", W_query);
  append_prefixed(out, "W_key.", W_key);
  append_prefixed(out, "W_value.", W_value);
  return out;
}

template class CausalAttention<float>;
template class CausalAttention<double>;

}  // namespace attn
