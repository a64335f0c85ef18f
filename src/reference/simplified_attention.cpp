// Simplified self-attention without trainable weights (notes 004): the
// "Your journey starts with one step" example, written as plain loops.
//
// Buffers (seq tokens, d features per token):
//   inputs  X [seq, d]     any strides
//   scores  S [seq, seq]   S = X·Xᵀ
//   weights A [seq, seq]   A = normalize_rows(S)
//   context Z [seq, d]     Z = A·X
// Backward keeps nothing of its own: it reads X, A and S from the forward
// result and returns dX [seq, d].
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "attn/simplified_attention.hpp"

namespace attn {
namespace {

void require_rank2(const char* fn, const char* arg, const Shape& shape, const char* expected) {
  if (shape.size() != 2)
    throw ShapeError(std::string(fn) + ": " + arg + " has shape " + shape_str(shape) + ", expected rank 2 " +
                     expected);
}

// One row of the three normalisations, in place on `s[0..n)`.
template <class T>
void divide_by_sum(T* s, int64_t n) {
  T sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += s[j];
  for (int64_t j = 0; j < n; ++j) s[j] /= sum;  // no guard: the notes show why this breaks
}

template <class T>
void naive_softmax(T* s, int64_t n) {
  T sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += std::exp(s[j]);  // overflows to inf for s > ~88 (float)
  for (int64_t j = 0; j < n; ++j) s[j] = std::exp(s[j]) / sum;
}

template <class T>
void softmax(T* s, int64_t n) {
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t j = 0; j < n; ++j) m = std::max(m, s[j]);
  if (m == -std::numeric_limits<T>::infinity()) {  // nothing to attend to: weights 0, not NaN
    for (int64_t j = 0; j < n; ++j) s[j] = 0;
    return;
  }
  // Subtracting the max changes nothing mathematically (it cancels in the
  // ratio) but keeps every exponent <= 0, so exp cannot overflow.
  T sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    s[j] = std::exp(s[j] - m);
    sum += s[j];
  }
  for (int64_t j = 0; j < n; ++j) s[j] /= sum;
}

}  // namespace

// ---- forward ------------------------------------------------------------------

template <class T>
Tensor<T> simplified_attention_scores(const Tensor<T>& inputs) {
  require_rank2("simplified_attention_scores", "inputs", inputs.shape(), "[seq, d]");
  const int64_t n = inputs.size(0), d = inputs.size(1);
  Tensor<T> scores({n, n});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      T dot = 0;  // how aligned token i is with token j
      for (int64_t c = 0; c < d; ++c) dot += inputs(i, c) * inputs(j, c);
      scores(i, j) = dot;
    }
  return scores;
}

template <class T>
Tensor<T> normalize_rows(const Tensor<T>& scores, Normalization how) {
  if (scores.dim() < 1)
    throw ShapeError("normalize_rows: scores has shape " + shape_str(scores.shape()) +
                     ", expected rank >= 1 (rows along the last dim)");
  Tensor<T> weights = scores.clone();  // contiguous, so rows are consecutive
  const int64_t n = scores.size(-1);
  const int64_t rows = n > 0 ? weights.numel() / n : 0;
  for (int64_t r = 0; r < rows; ++r) {
    T* row = weights.data() + r * n;
    switch (how) {
      case Normalization::DivideBySum: divide_by_sum(row, n); break;
      case Normalization::NaiveSoftmax: naive_softmax(row, n); break;
      case Normalization::Softmax: softmax(row, n); break;
    }
  }
  return weights;
}

template <class T>
Tensor<T> context_vectors(const Tensor<T>& weights, const Tensor<T>& inputs) {
  require_rank2("context_vectors", "weights", weights.shape(), "[seq, seq]");
  require_rank2("context_vectors", "inputs", inputs.shape(), "[seq, d]");
  if (weights.size(1) != inputs.size(0))
    throw ShapeError("context_vectors: weights has shape " + shape_str(weights.shape()) + " and inputs " +
                     shape_str(inputs.shape()) + "; expected weights.size(1) == inputs.size(0)");
  const int64_t m = weights.size(0), n = weights.size(1), d = inputs.size(1);
  Tensor<T> context({m, d});
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < d; ++c) {
      T z = 0;  // z⁽ⁱ⁾ = Σ_j α_ij x⁽ʲ⁾
      for (int64_t j = 0; j < n; ++j) z += weights(i, j) * inputs(j, c);
      context(i, c) = z;
    }
  return context;
}

template <class T>
SimplifiedAttentionResult<T> simplified_self_attention(const Tensor<T>& inputs, Normalization how) {
  SimplifiedAttentionResult<T> r;
  r.scores = simplified_attention_scores(inputs);
  r.weights = normalize_rows(r.scores, how);
  r.context = context_vectors(r.weights, inputs);
  r.how = how;
  return r;
}

// ---- backward -----------------------------------------------------------------

template <class T>
Tensor<T> simplified_self_attention_backward(const Tensor<T>& grad_context, const Tensor<T>& inputs,
                                             const SimplifiedAttentionResult<T>& forward) {
  const char* fn = "simplified_self_attention_backward";
  require_rank2(fn, "inputs", inputs.shape(), "[seq, d]");
  const int64_t n = inputs.size(0), d = inputs.size(1);
  if (grad_context.shape() != inputs.shape())
    throw ShapeError(std::string(fn) + ": grad_context has shape " + shape_str(grad_context.shape()) +
                     ", expected the shape of inputs " + shape_str(inputs.shape()));
  const Shape nn{n, n};
  if (forward.weights.shape() != nn || forward.scores.shape() != nn)
    throw ShapeError(std::string(fn) + ": forward.weights has shape " + shape_str(forward.weights.shape()) +
                     " and forward.scores " + shape_str(forward.scores.shape()) + ", expected " + shape_str(nn) +
                     " for inputs " + shape_str(inputs.shape()));
  const Tensor<T>& X = inputs;
  const Tensor<T>& A = forward.weights;
  const Tensor<T>& dZ = grad_context;
  Tensor<T> dX({n, d});

  // In the forward pass this was Z = A·X, so X as the values gets dX += Aᵀ·dZ
  // and the weights get dA = dZ·Xᵀ.
  for (int64_t j = 0; j < n; ++j)
    for (int64_t c = 0; c < d; ++c) {
      T acc = 0;
      for (int64_t i = 0; i < n; ++i) acc += A(i, j) * dZ(i, c);
      dX(j, c) += acc;
    }
  Tensor<T> dA({n, n});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      T acc = 0;
      for (int64_t c = 0; c < d; ++c) acc += dZ(i, c) * X(j, c);
      dA(i, j) = acc;
    }

  // In the forward pass this was A = normalize(S) row by row. Both softmax
  // forms: dS_ij = A_ij (dA_ij − Σ_k A_ik dA_ik). Divide-by-sum (A = S/σ):
  // dS_ij = (dA_ij − Σ_k A_ik dA_ik) / σ_i.
  Tensor<T> dS({n, n});
  for (int64_t i = 0; i < n; ++i) {
    T dot = 0;
    for (int64_t k = 0; k < n; ++k) dot += A(i, k) * dA(i, k);
    if (forward.how == Normalization::DivideBySum) {
      T sigma = 0;
      for (int64_t k = 0; k < n; ++k) sigma += forward.scores(i, k);
      for (int64_t j = 0; j < n; ++j) dS(i, j) = (dA(i, j) - dot) / sigma;
    } else {
      for (int64_t j = 0; j < n; ++j) dS(i, j) = A(i, j) * (dA(i, j) - dot);
    }
  }

  // In the forward pass this was S = X·Xᵀ: X is both factors, so
  // dX += dS·X (X as the left factor) + dSᵀ·X (X as the right factor).
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < d; ++c) {
      T acc = 0;
      for (int64_t j = 0; j < n; ++j) acc += (dS(i, j) + dS(j, i)) * X(j, c);
      dX(i, c) += acc;
    }
  return dX;
}

#define ATTN_INSTANTIATE(T)                                                                              \
  template Tensor<T> simplified_attention_scores<T>(const Tensor<T>&);                                  \
  template Tensor<T> normalize_rows<T>(const Tensor<T>&, Normalization);                                \
  template Tensor<T> context_vectors<T>(const Tensor<T>&, const Tensor<T>&);                            \
  template SimplifiedAttentionResult<T> simplified_self_attention<T>(const Tensor<T>&, Normalization);   \
  template Tensor<T> simplified_self_attention_backward<T>(const Tensor<T>&, const Tensor<T>&,          \
                                                           const SimplifiedAttentionResult<T>&);
ATTN_INSTANTIATE(float)
ATTN_INSTANTIATE(double)
#undef ATTN_INSTANTIATE

}  // namespace attn
