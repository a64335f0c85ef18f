// attn/loss.hpp — cross-entropy, PyTorch's F.cross_entropy for class indices
// with reduction="mean", forward beside backward.
//
//   logits  [N, C]   one row of unnormalised scores per example
//   targets [N]      the right class of each row, in [0, C)
//   loss = (1/N) Σ_n −log softmax(logits[n])[targets[n]]
//        = (1/N) Σ_n (logsumexp(logits[n]) − logits[n, targets[n]])
//   dL/dlogits[n, c] = (softmax(logits[n])[c] − [c == targets[n]]) / N
//
// logsumexp subtracts the row maximum first, as the stable softmax does, so
// large logits do not overflow. N = 0 gives loss 0 (torch gives nan).
#pragma once

#include <cstdint>

#include "attn/tensor.hpp"

namespace attn {

/// The mean cross-entropy. Throws ShapeError unless logits is [N, C] with
/// C >= 1 and targets is [N]; ValueError naming the first target outside [0, C).
template <class T>
T cross_entropy(const Tensor<T>& logits, const Tensor<int64_t>& targets);

/// dL/dlogits [N, C] of cross_entropy(logits, targets), scaled by grad_loss
/// (dL/dloss from further up; 1 when the loss is the final objective).
template <class T>
Tensor<T> cross_entropy_backward(const Tensor<T>& logits, const Tensor<int64_t>& targets, T grad_loss = T(1));

}  // namespace attn
