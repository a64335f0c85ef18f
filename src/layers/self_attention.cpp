// Self-attention with trainable Wq, Wk, Wv (Raschka's SelfAttention_v2).
//
// Buffers (B = batch, L = seq; an unbatched [L, d_in] input runs with B = 1):
//   x        [B, L, d_in]     saved by each Linear
//   Q, K, V  [B, 1, L, d_out] saved: SDPA's backward needs all three
//   context  [B, 1, L, d_out] saved with lse [B, 1, L] (SDPA recomputes the
//                              weights from lse instead of storing L×L)
#include "attn/self_attention.hpp"

#include "attn/sdpa.hpp"
#include "layers/layer_util.hpp"

namespace attn {

template <class T>
SelfAttention<T>::SelfAttention(int64_t d_in, int64_t d_out, bool qkv_bias, Generator& gen)
    // Member order = torch's construction order = the order the weights are drawn.
    : W_query(detail::positive(d_in, "SelfAttention", "d_in"), detail::positive(d_out, "SelfAttention", "d_out"),
              qkv_bias, gen),
      W_key(d_in, d_out, qkv_bias, gen),
      W_value(d_in, d_out, qkv_bias, gen),
      d_in_(d_in),
      d_out_(d_out) {}

template <class T>
Tensor<T> SelfAttention<T>::forward(const Tensor<T>& x) {
  detail::check_sequence_input(x, d_in_, "SelfAttention.forward", "x", "[batch, seq, d_in]");
  input_rank_ = x.dim();
  const Tensor<T> xb = detail::as_batched(x);
  const int64_t B = xb.size(0), L = xb.size(1);

  // One head: a heads dim of 1 puts Q, K, V in SDPA's [batch, heads, seq, dim] layout.
  queries_ = W_query.forward(xb).reshape({B, 1, L, d_out_});
  keys_ = W_key.forward(xb).reshape({B, 1, L, d_out_});
  values_ = W_value.forward(xb).reshape({B, 1, L, d_out_});

  // scores = Q·Kᵀ/√d_out, weights = softmax(scores), context = weights·V
  SdpaResult<T> r = scaled_dot_product_attention(queries_, keys_, values_, SdpaOptions<T>{});
  context_ = r.output;
  lse_ = r.lse;

  Tensor<T> z = input_rank_ == 2 ? context_.reshape({L, d_out_}) : context_.reshape({B, L, d_out_});
  output_shape_ = z.shape();
  return z;
}

template <class T>
Tensor<T> SelfAttention<T>::backward(const Tensor<T>& grad_output) {
  detail::check_forward_ran(context_.defined(), "SelfAttention.backward");
  detail::check_grad_shape(grad_output, output_shape_, "SelfAttention.backward");
  const int64_t B = queries_.size(0), L = queries_.size(2);

  // in the forward pass this was: context = SDPA(Q, K, V)
  SdpaGradients<T> g = scaled_dot_product_attention_backward(grad_output.reshape({B, 1, L, d_out_}), queries_, keys_,
                                                             values_, context_, lse_, SdpaOptions<T>{});
  // and before that Q, K, V = x·Wᵀ (+ b): x fed all three, so its gradient is the sum.
  Tensor<T> dx = W_query.backward(g.d_query.reshape({B, L, d_out_}));
  detail::add_(dx, W_key.backward(g.d_key.reshape({B, L, d_out_})));
  detail::add_(dx, W_value.backward(g.d_value.reshape({B, L, d_out_})));
  return input_rank_ == 2 ? dx.reshape({L, d_in_}) : dx;
}

template <class T>
std::vector<NamedParameter<T>> SelfAttention<T>::named_parameters() {
  std::vector<NamedParameter<T>> out;
  append_prefixed(out, "W_query.", W_query);
  append_prefixed(out, "W_key.", W_key);
  append_prefixed(out, "W_value.", W_value);
  return out;
}

template class SelfAttention<float>;
template class SelfAttention<double>;

}  // namespace attn
