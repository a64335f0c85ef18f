// Cross-attention: queries from x, keys and values from context.
//
// Buffers (B = batch, Lq, Lk the two lengths; unbatched inputs run with B = 1):
//   x        [B, Lq, d_q]          saved by W_query
//   context  [B, Lk, d_kv]         saved by W_key and W_value
//   Q        [B, 1, Lq, d_out_kq]  saved    (a heads dim of 1 for SDPA's layout)
//   K, V     [B, 1, Lk, d_out_kq], [B, 1, Lk, d_out_v]   saved
//   output   [B, 1, Lq, d_out_v]   saved with lse [B, 1, Lq]
//   attend   [B, 1, 1, Lk]         !key_padding_mask, the SDPA bool mask; saved
#include "attn/cross_attention.hpp"

#include "attn/sdpa.hpp"
#include "layers/layer_util.hpp"

namespace attn {

template <class T>
CrossAttention<T>::CrossAttention(int64_t d_q, int64_t d_kv, int64_t d_out_kq, int64_t d_out_v, bool qkv_bias,
                                  Generator& gen)
    : W_query(detail::positive(d_q, "CrossAttention", "d_q"), detail::positive(d_out_kq, "CrossAttention", "d_out_kq"),
              qkv_bias, gen),
      W_key(detail::positive(d_kv, "CrossAttention", "d_kv"), d_out_kq, qkv_bias, gen),
      W_value(d_kv, detail::positive(d_out_v, "CrossAttention", "d_out_v"), qkv_bias, gen),
      d_q_(d_q),
      d_kv_(d_kv),
      d_out_kq_(d_out_kq),
      d_out_v_(d_out_v) {}

template <class T>
Tensor<T> CrossAttention<T>::forward(const Tensor<T>& x, const Tensor<T>& context,
                                     const Tensor<bool>& key_padding_mask) {
  const std::string where = "CrossAttention.forward";
  detail::check_sequence_input(x, d_q_, where, "x", "[batch, Lq, d_q]");
  detail::check_sequence_input(context, d_kv_, where, "context", "[batch, Lk, d_kv]");
  if (context.dim() != x.dim() || (x.dim() == 3 && context.size(0) != x.size(0)))
    throw ShapeError(where + ": x has shape " + shape_str(x.shape()) + " but context has shape " +
                     shape_str(context.shape()) + "; expected both batched with the same batch, or both unbatched");
  const Tensor<T> xb = detail::as_batched(x), cb = detail::as_batched(context);
  const int64_t B = xb.size(0), Lq = xb.size(1), Lk = cb.size(1);

  SdpaOptions<T> opts;
  attend_ = Tensor<bool>();
  if (key_padding_mask.defined()) {
    const Shape want = x.dim() == 3 ? Shape{B, Lk} : Shape{Lk};
    if (key_padding_mask.shape() != want)
      throw ShapeError(where + ": key_padding_mask has shape " + shape_str(key_padding_mask.shape()) +
                       ", expected " + shape_str(want) + (x.dim() == 3 ? " [batch, Lk]" : " [Lk]"));
    // Layer polarity (True = padding) → SDPA polarity (True = attend).
    attend_ = Tensor<bool>({B, 1, 1, Lk});
    const Tensor<bool> kpm = key_padding_mask.reshape({B, Lk});
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < Lk; ++j) attend_(b, 0, 0, j) = !kpm(b, j);
    opts.bool_mask = attend_;
  }
  input_rank_ = x.dim();

  queries_ = W_query.forward(xb).reshape({B, 1, Lq, d_out_kq_});
  keys_ = W_key.forward(cb).reshape({B, 1, Lk, d_out_kq_});
  values_ = W_value.forward(cb).reshape({B, 1, Lk, d_out_v_});

  // weights = softmax(Q·Kᵀ/√d_out_kq) over the context positions, output = weights·V
  SdpaResult<T> r = scaled_dot_product_attention(queries_, keys_, values_, opts);
  output_ = r.output;
  lse_ = r.lse;
  Tensor<T> y = input_rank_ == 2 ? output_.reshape({Lq, d_out_v_}) : output_.reshape({B, Lq, d_out_v_});
  output_shape_ = y.shape();
  return y;
}

template <class T>
CrossAttentionGradients<T> CrossAttention<T>::backward(const Tensor<T>& grad_output) {
  detail::check_forward_ran(output_.defined(), "CrossAttention.backward");
  detail::check_grad_shape(grad_output, output_shape_, "CrossAttention.backward");
  const int64_t B = queries_.size(0), Lq = queries_.size(2), Lk = keys_.size(2);
  SdpaOptions<T> opts;
  opts.bool_mask = attend_;

  // in the forward pass this was: output = SDPA(Q, K, V; mask)
  SdpaGradients<T> g = scaled_dot_product_attention_backward(grad_output.reshape({B, 1, Lq, d_out_v_}), queries_,
                                                             keys_, values_, output_, lse_, opts);
  // Q came from x; K and V both came from context, so its gradient is their sum.
  CrossAttentionGradients<T> out;
  out.d_x = W_query.backward(g.d_query.reshape({B, Lq, d_out_kq_}));
  out.d_context = W_key.backward(g.d_key.reshape({B, Lk, d_out_kq_}));
  detail::add_(out.d_context, W_value.backward(g.d_value.reshape({B, Lk, d_out_v_})));
  if (input_rank_ == 2) {
    out.d_x = out.d_x.reshape({Lq, d_q_});
    out.d_context = out.d_context.reshape({Lk, d_kv_});
  }
  return out;
}

template <class T>
std::vector<NamedParameter<T>> CrossAttention<T>::named_parameters() {
  std::vector<NamedParameter<T>> out;
  append_prefixed(out, "W_query.", W_query);
  append_prefixed(out, "W_key.", W_key);
  append_prefixed(out, "W_value.", W_value);
  return out;
}

template class CrossAttention<float>;
template class CrossAttention<double>;

}  // namespace attn
