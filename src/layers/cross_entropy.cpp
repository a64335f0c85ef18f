// The function form of cross-entropy (attn/loss.hpp), for callers that do
// not keep a loss object: both are CrossEntropyLoss (src/layers/loss.cpp),
// so there is one implementation.
#include "attn/loss.hpp"

namespace attn {

template <class T>
T cross_entropy(const Tensor<T>& logits, const Tensor<int64_t>& targets) {
  CrossEntropyLoss<T> loss;
  return loss.forward(logits, targets);
}

template <class T>
Tensor<T> cross_entropy_backward(const Tensor<T>& logits, const Tensor<int64_t>& targets, T grad_loss) {
  CrossEntropyLoss<T> loss;
  loss.forward(logits, targets);
  return loss.backward(grad_loss);
}

template float cross_entropy<float>(const Tensor<float>&, const Tensor<int64_t>&);
template double cross_entropy<double>(const Tensor<double>&, const Tensor<int64_t>&);
template Tensor<float> cross_entropy_backward<float>(const Tensor<float>&, const Tensor<int64_t>&, float);
template Tensor<double> cross_entropy_backward<double>(const Tensor<double>&, const Tensor<int64_t>&, double);

}  // namespace attn
