// attn/linear.hpp — y = x·Wᵀ + b, PyTorch's nn.Linear.
//
//   x [..., in_features] → y [..., out_features]
//   weight [out_features, in_features], bias [out_features] (state_dict names
//   "weight", "bias"), initialised as nn.Linear does: U(−1/√in, 1/√in) for
//   both (kaiming_uniform_ with a = √5), drawn from the given Generator in
//   PyTorch's order, so manual_seed(s) + Linear(...) equals torch's weights.
#pragma once

#include "attn/generator.hpp"
#include "attn/module.hpp"

namespace attn {

template <class T>
class Linear : public Module<T> {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Generator& gen = default_generator());
  /// Zero weights, nothing drawn: for weights loaded afterwards (see SkipInit).
  Linear(int64_t in_features, int64_t out_features, bool bias, SkipInit);

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  bool has_bias() const { return has_bias_; }

  /// x: [..., in_features], any rank >= 1 and any strides; a rank-1 x gives a
  /// rank-1 y, as in torch. Throws ShapeError naming the input's shape.
  /// Saves x (the handle, not a copy) for backward: dW = dyᵀ·x needs it.
  Tensor<T> forward(const Tensor<T>& x);
  /// dW += dyᵀ·x, db += Σ dy, returns dx = dy·W.
  Tensor<T> backward(const Tensor<T>& grad_output);

  /// Stateless forms (no saved input), for layers that manage their own caches.
  Tensor<T> apply(const Tensor<T>& x) const;
  Tensor<T> backward_from(const Tensor<T>& x, const Tensor<T>& grad_output);

  std::vector<NamedParameter<T>> named_parameters() override;

  Parameter<T> weight;  ///< [out_features, in_features]
  Parameter<T> bias;    ///< [out_features], undefined-size 0 when bias = false

 private:
  int64_t in_features_, out_features_;
  bool has_bias_;
  Tensor<T> saved_input_;
};

}  // namespace attn
