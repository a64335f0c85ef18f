// loss.cpp — cross-entropy over class ids, forward beside backward.
//   logits [N, C] → probs [N, C] (saved) → loss (scalar)
//   backward: d logits [N, C] = (probs − onehot(target)) / M   (0 in ignored rows)
#include "attn/loss.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace attn {

template <class T>
T CrossEntropyLoss<T>::forward(const Tensor<T>& logits, const Tensor<int64_t>& target) {
  const std::string where = "CrossEntropyLoss.forward";
  if (!logits.defined() || logits.dim() != 2)
    throw ShapeError(where + ": input has shape " + (logits.defined() ? shape_str(logits.shape()) : "undefined") +
                     ", expected [N, C] (one row of class scores per target)");
  const int64_t N = logits.size(0), C = logits.size(1);
  if (!target.defined() || target.shape() != Shape{N})
    throw ShapeError(where + ": target has shape " + (target.defined() ? shape_str(target.shape()) : "undefined") +
                     ", expected [" + std::to_string(N) + "] to match input " + shape_str(logits.shape()));
  for (int64_t n = 0; n < N; ++n) {
    const int64_t t = target(n);
    if (t != ignore_index_ && (t < 0 || t >= C))
      throw ValueError(where + ": target contains " + std::to_string(t) + ", expected a class in [0, " +
                       std::to_string(C) + ") or ignore_index (" + std::to_string(ignore_index_) + ")");
  }
  probs_ = Tensor<T>({N, C});
  target_ = target.clone();
  counted_ = 0;
  double total = 0;  // summed in double: the mean of many small losses
  for (int64_t n = 0; n < N; ++n) {
    T mx = logits(n, 0);
    for (int64_t c = 1; c < C; ++c) mx = std::max(mx, logits(n, c));
    T sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += probs_(n, c) = std::exp(logits(n, c) - mx);
    for (int64_t c = 0; c < C; ++c) probs_(n, c) /= sum;
    if (target(n) == ignore_index_) continue;
    // −log softmax(x)[t] = −(x_t − max − log Σ exp(x − max))
    total += -(static_cast<double>(logits(n, target(n)) - mx) - std::log(static_cast<double>(sum)));
    ++counted_;
  }
  return counted_ ? static_cast<T>(total / static_cast<double>(counted_)) : T(0);
}

template <class T>
Tensor<T> CrossEntropyLoss<T>::backward(T grad_loss) const {
  if (!probs_.defined()) throw ValueError("CrossEntropyLoss.backward: backward called before forward (nothing saved)");
  const int64_t N = probs_.size(0), C = probs_.size(1);
  Tensor<T> d({N, C});
  if (counted_ == 0) return d;
  const T scale = grad_loss / static_cast<T>(counted_);
  for (int64_t n = 0; n < N; ++n) {
    if (target_(n) == ignore_index_) continue;
    for (int64_t c = 0; c < C; ++c) d(n, c) = (probs_(n, c) - (c == target_(n) ? T(1) : T(0))) * scale;
  }
  return d;
}

template class CrossEntropyLoss<float>;
template class CrossEntropyLoss<double>;

}  // namespace attn
