// Multi-head attention: the stack of heads (MultiHeadAttentionWrapper) and
// the efficient split form (MultiHeadAttention), after Raschka.
//
// MultiHeadAttention buffers (B = batch, L = seq, H = heads, hd = head_dim,
// d_out = H·hd):
//   x              [B, L, d_in]        saved by W_query/W_key/W_value
//   Q, K, V        [B, L, d_out] viewed as [B, L, H, hd] → [B, H, L, hd]; saved
//   context        [B, H, L, hd]       SDPA output, saved with lse [B, H, L]
//   merged         [B, L, d_out]       heads side by side again; saved by out_proj
//   y              [B, L, d_out]       = out_proj(merged)
#include "attn/multihead_attention.hpp"

#include <string>

#include "attn/sdpa.hpp"
#include "layers/layer_util.hpp"

namespace attn {

// ---- MultiHeadAttentionWrapper ----------------------------------------------

template <class T>
MultiHeadAttentionWrapper<T>::MultiHeadAttentionWrapper(int64_t d_in, int64_t d_out, int64_t context_length,
                                                        double dropout, int64_t num_heads, bool qkv_bias,
                                                        Generator& gen) {
  detail::positive(num_heads, "MultiHeadAttentionWrapper", "num_heads");
  for (int64_t h = 0; h < num_heads; ++h)
    heads_.push_back(std::make_unique<CausalAttention<T>>(d_in, d_out, context_length, dropout, qkv_bias, gen));
  set_dropout_seed(0);
}

template <class T>
void MultiHeadAttentionWrapper<T>::train(bool mode) {
  for (auto& h : heads_) h->train(mode);
}

template <class T>
void MultiHeadAttentionWrapper<T>::set_dropout_seed(uint64_t seed) {
  // Head h starts at seed + (h + 1)·φ (φ = 2^64/golden ratio, odd): each head
  // then advances by 1 per call, so the heads' seed streams never meet in practice.
  for (size_t h = 0; h < heads_.size(); ++h) heads_[h]->set_dropout_seed(seed + 0x9e3779b97f4a7c15ULL * (h + 1));
}

template <class T>
Tensor<T> MultiHeadAttentionWrapper<T>::forward(const Tensor<T>& x) {
  // torch.cat([head(x) for head in self.heads], dim=-1)
  std::vector<Tensor<T>> outs;
  for (auto& h : heads_) outs.push_back(h->forward(x));
  const int64_t d = outs.front().size(-1);
  Shape shape = outs.front().shape();
  shape.back() = d * num_heads();
  Tensor<T> y(shape);
  for (int64_t h = 0; h < num_heads(); ++h) y.slice(-1, h * d, (h + 1) * d).copy_(outs[static_cast<size_t>(h)]);
  output_shape_ = shape;
  return y;
}

template <class T>
Tensor<T> MultiHeadAttentionWrapper<T>::backward(const Tensor<T>& grad_output) {
  detail::check_forward_ran(!output_shape_.empty(), "MultiHeadAttentionWrapper.backward");
  detail::check_grad_shape(grad_output, output_shape_, "MultiHeadAttentionWrapper.backward");
  // in the forward pass this was: y = cat(head_0(x), head_1(x), ...), so head h
  // gets its slice of the gradient, and x, read by every head, sums them.
  const int64_t d = output_shape_.back() / num_heads();
  Tensor<T> dx;
  for (int64_t h = 0; h < num_heads(); ++h) {
    Tensor<T> dxh = head(h).backward(grad_output.slice(-1, h * d, (h + 1) * d).contiguous());
    if (h == 0) dx = dxh;
    else detail::add_(dx, dxh);
  }
  return dx;
}

template <class T>
std::vector<NamedParameter<T>> MultiHeadAttentionWrapper<T>::named_parameters() {
  std::vector<NamedParameter<T>> out;
  for (size_t h = 0; h < heads_.size(); ++h) append_prefixed(out, "heads." + std::to_string(h) + ".", *heads_[h]);
  return out;
}

// ---- MultiHeadAttention (efficient form) ------------------------------------

namespace {
// Returns d_out after checking that it splits evenly into num_heads heads.
int64_t checked_d_out(int64_t d_out, int64_t num_heads) {
  detail::positive(d_out, "MultiHeadAttention", "d_out");
  detail::positive(num_heads, "MultiHeadAttention", "num_heads");
  if (d_out % num_heads != 0)
    throw ValueError("MultiHeadAttention: d_out = " + std::to_string(d_out) + " is not divisible by num_heads = " +
                     std::to_string(num_heads) + " (each head gets d_out / num_heads dims)");
  return d_out;
}

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
MultiHeadAttention<T>::MultiHeadAttention(int64_t d_in, int64_t d_out, int64_t context_length, double dropout,
                                          int64_t num_heads, bool qkv_bias, Generator& gen)
    : W_query(detail::positive(d_in, "MultiHeadAttention", "d_in"), checked_d_out(d_out, num_heads), qkv_bias, gen),
      W_key(d_in, d_out, qkv_bias, gen),
      W_value(d_in, d_out, qkv_bias, gen),
      out_proj(d_out, d_out, true, gen),
      d_in_(d_in),
      d_out_(d_out),
      context_length_(detail::positive(context_length, "MultiHeadAttention", "context_length")),
      num_heads_(num_heads),
      head_dim_(d_out / num_heads),
      dropout_(dropout) {
  detail::check_dropout(dropout, "MultiHeadAttention");
}

template <class T>
Tensor<T> MultiHeadAttention<T>::forward(const Tensor<T>& x) {
  detail::check_sequence_input(x, d_in_, "MultiHeadAttention.forward", "x", "[batch, seq, d_in]");
  const Tensor<T> xb = detail::as_batched(x);
  const int64_t B = xb.size(0), L = xb.size(1), H = num_heads_, hd = head_dim_;
  if (L > context_length_)
    throw ShapeError("MultiHeadAttention.forward: x has shape " + shape_str(x.shape()) + ", a sequence of " +
                     std::to_string(L) + " tokens, longer than context_length = " + std::to_string(context_length_));
  input_rank_ = x.dim();

  // Split the last dim into heads: [B, L, d_out] → [B, L, H, hd] → [B, H, L, hd] (a view, no copy).
  auto split_heads = [&](const Tensor<T>& t) { return t.reshape({B, L, H, hd}).transpose(1, 2); };
  queries_ = split_heads(W_query.forward(xb));
  keys_ = split_heads(W_key.forward(xb));
  values_ = split_heads(W_value.forward(xb));

  used_dropout_p_ = training_ ? dropout_ : 0.0;
  used_seed_ = dropout_seed_;
  if (used_dropout_p_ > 0.0) ++dropout_seed_;

  // Every head at once: causal, scale 1/√head_dim, dropout on the weights.
  SdpaResult<T> r =
      scaled_dot_product_attention(queries_, keys_, values_, causal_options<T>(used_dropout_p_, used_seed_));
  context_ = r.output;
  lse_ = r.lse;

  // Merge heads: [B, H, L, hd] → [B, L, H, hd] → [B, L, d_out], then mix them.
  Tensor<T> merged = context_.transpose(1, 2).reshape({B, L, d_out_});
  Tensor<T> y = out_proj.forward(merged);
  if (input_rank_ == 2) y = y.reshape({L, d_out_});
  output_shape_ = y.shape();
  return y;
}

template <class T>
Tensor<T> MultiHeadAttention<T>::backward(const Tensor<T>& grad_output) {
  detail::check_forward_ran(context_.defined(), "MultiHeadAttention.backward");
  detail::check_grad_shape(grad_output, output_shape_, "MultiHeadAttention.backward");
  const int64_t B = queries_.size(0), L = queries_.size(2), H = num_heads_, hd = head_dim_;

  // in the forward pass this was: y = out_proj(merged)
  Tensor<T> d_merged = out_proj.backward(grad_output.reshape({B, L, d_out_}));
  // merged = heads side by side: un-merge the gradient the same way
  Tensor<T> d_context = d_merged.reshape({B, L, H, hd}).transpose(1, 2);
  // context = SDPA(Q, K, V) with the forward's options (same dropout mask)
  SdpaGradients<T> g = scaled_dot_product_attention_backward(d_context, queries_, keys_, values_, context_, lse_,
                                                             causal_options<T>(used_dropout_p_, used_seed_));
  // Q, K, V were split from [B, L, d_out]: merge their gradients back, then through the projections.
  auto merge_heads = [&](const Tensor<T>& t) { return t.transpose(1, 2).reshape({B, L, d_out_}); };
  Tensor<T> dx = W_query.backward(merge_heads(g.d_query));
  detail::add_(dx, W_key.backward(merge_heads(g.d_key)));
  detail::add_(dx, W_value.backward(merge_heads(g.d_value)));
  return input_rank_ == 2 ? dx.reshape({L, d_in_}) : dx;
}

template <class T>
std::vector<NamedParameter<T>> MultiHeadAttention<T>::named_parameters() {
  std::vector<NamedParameter<T>> out;
  append_prefixed(out, "W_query.", W_query);
  append_prefixed(out, "W_key.", W_key);
  append_prefixed(out, "W_value.", W_value);
  append_prefixed(out, "out_proj.", out_proj);
  return out;
}

template class MultiHeadAttentionWrapper<float>;
template class MultiHeadAttentionWrapper<double>;
template class MultiHeadAttention<float>;
template class MultiHeadAttention<double>;

}  // namespace attn
