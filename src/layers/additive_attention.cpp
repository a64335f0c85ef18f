// Bahdanau (additive) attention: score = vᵀ tanh(W_s·s + W_h·h_j).
//
// Buffers (B = batch, Lq queries, Lk encoder steps, A = hidden_dim, Dk = key_dim):
//   query s    [B, Lq, Dq]      saved by W_s
//   keys h     [B, Lk, Dk]      saved by W_h, and here (they are the values too)
//   sq = W_s·s [B, Lq, A]
//   hk = W_h·h [B, Lk, A]
//   features   [B, Lq, Lk, A]   tanh(sq_i + hk_j); saved (tanh' = 1 − tanh²), and by v
//   scores     [B, Lq, Lk]      v·features
//   weights α  [B, Lq, Lk]      masked softmax over j; saved (padding → exactly 0)
//   context    [B, Lq, Dk]      Σ_j α_ij h_j
#include "attn/additive_attention.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "layers/layer_util.hpp"

namespace attn {

template <class T>
AdditiveAttention<T>::AdditiveAttention(int64_t query_dim, int64_t key_dim, int64_t hidden_dim, Generator& gen)
    : W_s(detail::positive(query_dim, "AdditiveAttention", "query_dim"),
          detail::positive(hidden_dim, "AdditiveAttention", "hidden_dim"), false, gen),
      W_h(detail::positive(key_dim, "AdditiveAttention", "key_dim"), hidden_dim, false, gen),
      v(hidden_dim, 1, false, gen),
      query_dim_(query_dim),
      key_dim_(key_dim),
      hidden_dim_(hidden_dim) {}

template <class T>
Tensor<T> AdditiveAttention<T>::forward(const Tensor<T>& query, const Tensor<T>& keys,
                                        const Tensor<bool>& key_padding_mask) {
  const std::string where = "AdditiveAttention.forward";
  detail::check_sequence_input(query, query_dim_, where, "query", "[batch, Lq, query_dim]");
  detail::check_sequence_input(keys, key_dim_, where, "keys", "[batch, Lk, key_dim]");
  if (keys.dim() != query.dim() || (query.dim() == 3 && keys.size(0) != query.size(0)))
    throw ShapeError(where + ": query has shape " + shape_str(query.shape()) + " but keys has shape " +
                     shape_str(keys.shape()) + "; expected both batched with the same batch, or both unbatched");
  const Tensor<T> qb = detail::as_batched(query), kb = detail::as_batched(keys);
  const int64_t B = qb.size(0), Lq = qb.size(1), Lk = kb.size(1), A = hidden_dim_, Dk = key_dim_;
  Tensor<bool> padded;
  if (key_padding_mask.defined()) {
    const Shape want = query.dim() == 3 ? Shape{B, Lk} : Shape{Lk};
    if (key_padding_mask.shape() != want)
      throw ShapeError(where + ": key_padding_mask has shape " + shape_str(key_padding_mask.shape()) +
                       ", expected " + shape_str(want) + (query.dim() == 3 ? " [batch, Lk]" : " [Lk]"));
    padded = key_padding_mask.reshape({B, Lk});
  }
  input_rank_ = query.dim();
  keys_ = kb;

  // features[b, i, j] = tanh(W_s·s_i + W_h·h_j): the two projections are computed
  // once each and added for every (i, j) pair.
  const Tensor<T> sq = W_s.forward(qb);  // [B, Lq, A]
  const Tensor<T> hk = W_h.forward(kb);  // [B, Lk, A]
  features_ = Tensor<T>({B, Lq, Lk, A});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < Lq; ++i)
      for (int64_t j = 0; j < Lk; ++j)
        for (int64_t a = 0; a < A; ++a) features_(b, i, j, a) = std::tanh(sq(b, i, a) + hk(b, j, a));

  // scores = v·features
  const Tensor<T> scores = v.forward(features_).reshape({B, Lq, Lk});

  // α = softmax over the unpadded steps (max subtracted, as torch.softmax does);
  // padded steps get exactly 0, a row with no unpadded step gets all 0.
  weights_ = Tensor<T>({B, Lq, Lk});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < Lq; ++i) {
      auto visible = [&](int64_t j) { return !padded.defined() || !padded(b, j); };
      T mx = -std::numeric_limits<T>::infinity();
      for (int64_t j = 0; j < Lk; ++j)
        if (visible(j)) mx = std::max(mx, scores(b, i, j));
      if (mx == -std::numeric_limits<T>::infinity()) continue;  // nothing to attend to
      T sum = 0;
      for (int64_t j = 0; j < Lk; ++j)
        if (visible(j)) sum += weights_(b, i, j) = std::exp(scores(b, i, j) - mx);
      for (int64_t j = 0; j < Lk; ++j) weights_(b, i, j) /= sum;
    }

  // context_i = Σ_j α_ij h_j
  Tensor<T> context({B, Lq, Dk});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < Lq; ++i)
      for (int64_t j = 0; j < Lk; ++j) {
        const T w = weights_(b, i, j);
        if (w == T(0)) continue;
        for (int64_t d = 0; d < Dk; ++d) context(b, i, d) += w * kb(b, j, d);
      }
  if (input_rank_ == 2) context = context.reshape({Lq, Dk});
  output_shape_ = context.shape();
  return context;
}

template <class T>
AdditiveAttentionGradients<T> AdditiveAttention<T>::backward(const Tensor<T>& grad_output) {
  detail::check_forward_ran(weights_.defined(), "AdditiveAttention.backward");
  detail::check_grad_shape(grad_output, output_shape_, "AdditiveAttention.backward");
  const int64_t B = weights_.size(0), Lq = weights_.size(1), Lk = weights_.size(2), A = hidden_dim_, Dk = key_dim_;
  const Tensor<T> dctx = grad_output.reshape({B, Lq, Dk});

  // in the forward pass this was: context_i = Σ_j α_ij h_j, so
  //   dα_ij = dcontext_i · h_j     and     dh_j += Σ_i α_ij dcontext_i   (h as the value)
  Tensor<T> d_keys({B, Lk, Dk});
  Tensor<T> d_weights({B, Lq, Lk});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < Lq; ++i)
      for (int64_t j = 0; j < Lk; ++j) {
        T dot = 0;
        for (int64_t d = 0; d < Dk; ++d) {
          dot += dctx(b, i, d) * keys_(b, j, d);
          d_keys(b, j, d) += weights_(b, i, j) * dctx(b, i, d);
        }
        d_weights(b, i, j) = dot;
      }
  // α = softmax(scores): dscore_ij = α_ij (dα_ij − Σ_k α_ik dα_ik). Padded steps
  // have α = 0, so they get no gradient, and neither does a fully padded row.
  Tensor<T> d_scores({B, Lq, Lk, 1});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < Lq; ++i) {
      T dot = 0;
      for (int64_t j = 0; j < Lk; ++j) dot += weights_(b, i, j) * d_weights(b, i, j);
      for (int64_t j = 0; j < Lk; ++j) d_scores(b, i, j, 0) = weights_(b, i, j) * (d_weights(b, i, j) - dot);
    }
  // scores = v·features
  const Tensor<T> d_features = v.backward(d_scores);  // [B, Lq, Lk, A]
  // features = tanh(sq_i + hk_j): tanh' = 1 − tanh²; sq_i fed every j, hk_j every i.
  Tensor<T> d_sq({B, Lq, A}), d_hk({B, Lk, A});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < Lq; ++i)
      for (int64_t j = 0; j < Lk; ++j)
        for (int64_t a = 0; a < A; ++a) {
          const T f = features_(b, i, j, a);
          const T d_pre = d_features(b, i, j, a) * (T(1) - f * f);
          d_sq(b, i, a) += d_pre;
          d_hk(b, j, a) += d_pre;
        }
  // sq = W_s·s, hk = W_h·h
  AdditiveAttentionGradients<T> out;
  out.d_query = W_s.backward(d_sq);
  detail::add_(d_keys, W_h.backward(d_hk));
  out.d_keys = d_keys;
  if (input_rank_ == 2) {
    out.d_query = out.d_query.reshape({Lq, query_dim_});
    out.d_keys = out.d_keys.reshape({Lk, Dk});
  }
  return out;
}

template <class T>
Tensor<T> AdditiveAttention<T>::attention_weights() const {
  if (!weights_.defined()) return weights_;
  return input_rank_ == 2 ? weights_.reshape({weights_.size(1), weights_.size(2)}) : weights_;
}

template <class T>
std::vector<NamedParameter<T>> AdditiveAttention<T>::named_parameters() {
  std::vector<NamedParameter<T>> out;
  append_prefixed(out, "W_s.", W_s);
  append_prefixed(out, "W_h.", W_h);
  append_prefixed(out, "v.", v);
  return out;
}

template class AdditiveAttention<float>;
template class AdditiveAttention<double>;

}  // namespace attn
