// attn/layer_norm.hpp — torch.nn.LayerNorm and the GELU activation (erf form),
// the two pieces a transformer block needs around attention.
//
// LayerNorm over the last dim (D = normalized_shape):
//   x       [..., D]   any strides
//   weight  [D] (γ, initialised 1), bias [D] (β, initialised 0), state_dict
//           names "weight", "bias"
//   y       [..., D]   y = (x − mean) / √(var + eps) · γ + β, mean and the
//                      biased variance over the last dim (as torch)
// Sums run in double, so a row of large, nearly equal values loses nothing.
// forward() saves x̂ and 1/σ per row: backward needs both (dx, dγ).
//
// GELU, erf form (torch's nn.GELU(approximate="none"), BERT's "gelu"):
//   y = x · Φ(x) = 0.5 · x · (1 + erf(x / √2)),   any shape
//   dy/dx = Φ(x) + x · φ(x),   φ(x) = exp(−x²/2) / √(2π)
// forward() saves x (a handle): backward needs it.
#pragma once

#include <cstdint>
#include <vector>

#include "attn/module.hpp"
#include "attn/tensor.hpp"

namespace attn {

template <class T>
class LayerNorm : public Module<T> {
 public:
  /// Throws ValueError unless normalized_shape > 0 and eps >= 0 (finite).
  explicit LayerNorm(int64_t normalized_shape, double eps = 1e-5);

  /// x: [..., D]. Throws ShapeError naming x's shape if its last dim is not D.
  Tensor<T> forward(const Tensor<T>& x);
  /// dγ += Σ dy·x̂, dβ += Σ dy; returns dx [..., D]. grad_output must have the
  /// forward output's shape (ShapeError otherwise); ValueError before forward.
  Tensor<T> backward(const Tensor<T>& grad_output);
  /// The forward without saving anything (inference).
  Tensor<T> apply(const Tensor<T>& x) const;

  std::vector<NamedParameter<T>> named_parameters() override { return {{"weight", &weight}, {"bias", &bias}}; }

  int64_t normalized_shape() const { return d_; }
  double eps() const { return eps_; }

  Parameter<T> weight;  ///< γ [D], ones
  Parameter<T> bias;    ///< β [D], zeros

 private:
  int64_t d_;
  double eps_;
  Tensor<T> saved_xhat_;       // [R, D] contiguous
  std::vector<double> saved_rstd_;  // [R], 1/√(var + eps)
  Shape saved_shape_;
};

/// y = 0.5·x·(1 + erf(x/√2)) element-wise; returns a new contiguous tensor of x's shape.
template <class T>
Tensor<T> gelu(const Tensor<T>& x);
/// dL/dx = dy · (Φ(x) + x·φ(x)); x and grad_output of the same shape (ShapeError otherwise).
template <class T>
Tensor<T> gelu_backward(const Tensor<T>& x, const Tensor<T>& grad_output);

/// GELU as a layer (no parameters): forward saves x for backward.
template <class T>
class GELU {
 public:
  Tensor<T> forward(const Tensor<T>& x) {
    saved_input_ = x;
    return gelu(x);
  }
  /// Throws ValueError before forward, ShapeError on a wrong grad_output shape.
  Tensor<T> backward(const Tensor<T>& grad_output);

 private:
  Tensor<T> saved_input_;
};

}  // namespace attn
