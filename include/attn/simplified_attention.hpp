// attn/simplified_attention.hpp — self-attention without trainable weights
// (notes 004 and 001, "Your journey starts with one step").
//
//   inputs  X                      [seq, d]      one embedding vector per token
//   scores  S = X·Xᵀ               [seq, seq]    S[i][j] = x⁽ⁱ⁾·x⁽ʲ⁾, how aligned two tokens are
//   weights A = normalize(S)       [seq, seq]    each row sums to 1
//   context Z = A·X                [seq, d]      z⁽ⁱ⁾ = Σ_j α_ij x⁽ʲ⁾, the "enriched embedding"
//
// The notes compare three normalisations of a row of scores; all are here:
//   divide-by-sum   α_j = s_j / Σ s            not always in [0, 1]; breaks on signs
//   naive softmax   α_j = e^{s_j} / Σ e^{s}    overflows to inf/NaN for large scores
//   softmax         α_j = e^{s_j − max} / Σ e^{s − max}   what torch.softmax does
// The first two are kept naive on purpose (the notes show how they break);
// the softmax gives a row of all −∞ weights 0 (torch.softmax gives NaN), the
// library-wide rule for a row that sees nothing.
//
// Errors: inputs/weights must be rank 2 and agree in size (ShapeError naming
// the argument and its shape).
#pragma once

#include "attn/tensor.hpp"

namespace attn {

enum class Normalization { DivideBySum, NaiveSoftmax, Softmax };

/// S = X·Xᵀ for X [seq, d] → [seq, seq].
template <class T>
Tensor<T> simplified_attention_scores(const Tensor<T>& inputs);

/// Normalises each row of `scores` (any rank; along the last dim).
template <class T>
Tensor<T> normalize_rows(const Tensor<T>& scores, Normalization how = Normalization::Softmax);

/// Z = A·X for weights A [seq, seq] and inputs X [seq, d] → [seq, d].
template <class T>
Tensor<T> context_vectors(const Tensor<T>& weights, const Tensor<T>& inputs);

template <class T>
struct SimplifiedAttentionResult {
  Tensor<T> scores;   ///< [seq, seq]
  Tensor<T> weights;  ///< [seq, seq]
  Tensor<T> context;  ///< [seq, d]
  /// How `weights` were made; the backward differentiates that normalisation.
  Normalization how = Normalization::Softmax;
};

/// All three steps at once.
template <class T>
SimplifiedAttentionResult<T> simplified_self_attention(const Tensor<T>& inputs,
                                                       Normalization how = Normalization::Softmax);

/// Backward: given dL/dZ [seq, d], returns dL/dX [seq, d].
/// X enters twice (in the scores, on both sides, and as the values), so
/// dX = dA-path through S = X·Xᵀ (both factors) + Aᵀ·dZ.
/// Differentiates `forward.how`: both softmax forms share one derivative
/// (dS = A∘(dA − rowsum(dA∘A))); divide-by-sum has dS = (dA − rowsum(dA∘A)) / Σ s.
template <class T>
Tensor<T> simplified_self_attention_backward(const Tensor<T>& grad_context, const Tensor<T>& inputs,
                                             const SimplifiedAttentionResult<T>& forward);

}  // namespace attn
