// attn/loss.hpp — torch.nn.CrossEntropyLoss (class indices, reduction "mean").
//
//   logits  [N, C]   unnormalised scores, one row per prediction
//   target  [N]      int64 class ids in [0, C), or ignore_index (skipped)
//   loss             −(1/M) Σ_{n not ignored} log softmax(logits[n])[target[n]],
//                    M = the number of targets that are not ignored
// backward: d logits[n] = (softmax(logits[n]) − onehot(target[n])) / M, and 0
// in ignored rows. log-softmax is computed as x − max − log Σ exp(x − max), so
// huge logits neither overflow nor lose the answer.
// Where every target is ignored torch returns NaN (0/0); here the loss is 0
// and every gradient 0 (nothing to learn from, and no NaN nobody asked for).
#pragma once

#include <cstdint>

#include "attn/tensor.hpp"

namespace attn {

template <class T>
class CrossEntropyLoss {
 public:
  explicit CrossEntropyLoss(int64_t ignore_index = -100) : ignore_index_(ignore_index) {}

  /// Returns the mean loss; saves softmax(logits) and the targets. Throws
  /// ShapeError unless logits is [N, C] and target [N]; ValueError for a
  /// target outside [0, C) that is not ignore_index.
  T forward(const Tensor<T>& logits, const Tensor<int64_t>& target);
  /// d loss / d logits [N, C], times grad_loss (1 for the loss itself).
  Tensor<T> backward(T grad_loss = T(1)) const;

  /// How many targets the last forward counted (the M above).
  int64_t counted() const { return counted_; }

 private:
  int64_t ignore_index_;
  int64_t counted_ = 0;
  Tensor<T> probs_;          // [N, C] softmax(logits), saved
  Tensor<int64_t> target_;   // [N]
};

/// F.cross_entropy(logits, targets) as a function: CrossEntropyLoss<T>{}.forward.
template <class T>
T cross_entropy(const Tensor<T>& logits, const Tensor<int64_t>& targets);

/// dL/dlogits [N, C] of cross_entropy(logits, targets), scaled by grad_loss
/// (dL/dloss from further up; 1 when the loss is the final objective).
template <class T>
Tensor<T> cross_entropy_backward(const Tensor<T>& logits, const Tensor<int64_t>& targets, T grad_loss = T(1));

}  // namespace attn
