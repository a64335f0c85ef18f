// attn/optim.hpp — optimizers with torch.optim's semantics: SGD, Adam, AdamW.
//
//   attn::Linear<float> layer(3, 1);
//   attn::Adam<float> opt(layer.parameters(), {.lr = 1e-2});
//   for (...) {
//     opt.zero_grad();
//     auto y = layer.forward(x);
//     layer.backward(dloss_dy);   // accumulates into each Parameter::grad
//     opt.step();                 // updates each Parameter::value in place
//   }
//
// An optimizer holds pointers to the parameters (Module::parameters()), so the
// module must outlive it. Every parameter takes part in every step (there is
// no "grad is None" here: a zero gradient still applies weight decay and
// momentum, as torch does for a zero grad tensor). Each update follows the
// single-tensor (for-loop) implementation of torch.optim, operation by
// operation, in the parameter's own type T; hyper-parameters that torch keeps
// as Python floats (bias corrections, step sizes) are computed in double.
#pragma once

#include <cstdint>
#include <vector>

#include "attn/module.hpp"

namespace attn {

/// What every optimizer shares: the parameters, zero_grad() and step().
template <class T>
class Optimizer {
 public:
  /// Throws ValueError for a null pointer or a parameter listed twice.
  explicit Optimizer(std::vector<Parameter<T>*> params);
  virtual ~Optimizer() = default;

  /// One update of every parameter from its current grad. Throws ShapeError if
  /// a grad's shape differs from its value's.
  virtual void step() = 0;
  /// Sets every grad to zero (torch's zero_grad(set_to_none=False)).
  void zero_grad();

  const std::vector<Parameter<T>*>& params() const { return params_; }
  /// How many times step() has run.
  int64_t step_count() const { return steps_; }

 protected:
  void check_grads(const char* who) const;
  std::vector<Parameter<T>*> params_;
  int64_t steps_ = 0;
};

/// torch.optim.SGD's hyper-parameters and defaults.
struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;  ///< L2 penalty: grad += weight_decay · param
  bool nesterov = false;      ///< needs momentum > 0 and dampening = 0
  bool maximize = false;
};

/// Stochastic gradient descent, optionally with momentum (torch.optim.SGD):
///   g = grad + weight_decay·p
///   buf = g (first step), else buf = momentum·buf + (1 − dampening)·g
///   g = nesterov ? g + momentum·buf : buf          (when momentum ≠ 0)
///   p = p − lr·g
template <class T>
class SGD : public Optimizer<T> {
 public:
  /// Throws ValueError for lr, momentum or weight_decay < 0, or nesterov
  /// without momentum / with dampening.
  SGD(std::vector<Parameter<T>*> params, SGDOptions options = {});
  void step() override;
  const SGDOptions& options() const { return options_; }

 private:
  SGDOptions options_;
  std::vector<Tensor<T>> momentum_buffer_;  // one per parameter, created on the first step
};

/// torch.optim.Adam's hyper-parameters and defaults.
struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool amsgrad = false;
  bool maximize = false;
};

/// Adam (torch.optim.Adam): with t the step number,
///   g = grad + weight_decay·p                   (Adam: L2 penalty in the gradient)
///   p = p·(1 − lr·weight_decay)                 (AdamW: decoupled decay, instead)
///   m = m + (1 − β1)·(g − m)                    (lerp)
///   v = β2·v + (1 − β2)·g²
///   v̂ = amsgrad ? max(v̂, v) : v
///   p = p − lr/(1 − β1ᵗ) · m / (√v̂ / √(1 − β2ᵗ) + eps)
template <class T>
class Adam : public Optimizer<T> {
 public:
  /// Throws ValueError for lr, eps or weight_decay < 0, or betas outside [0, 1).
  Adam(std::vector<Parameter<T>*> params, AdamOptions options = {});
  void step() override;
  const AdamOptions& options() const { return options_; }
  /// Changes the learning rate for the next steps, as an LR scheduler does
  /// with torch's param_groups[0]["lr"]; the moments are kept. ValueError if lr < 0.
  void set_lr(double lr);

 protected:
  Adam(std::vector<Parameter<T>*> params, AdamOptions options, bool decoupled_weight_decay, const char* name);

 private:
  AdamOptions options_;
  bool decoupled_weight_decay_;
  const char* name_;
  std::vector<Tensor<T>> exp_avg_, exp_avg_sq_, max_exp_avg_sq_;  // m, v, v̂ per parameter
};

/// torch.optim.AdamW's hyper-parameters: Adam's, but weight_decay defaults to 1e-2.
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;  ///< decoupled: p *= 1 − lr·weight_decay before the Adam step
  bool amsgrad = false;
  bool maximize = false;
};

/// AdamW (torch.optim.AdamW): Adam with decoupled weight decay.
template <class T>
class AdamW : public Adam<T> {
 public:
  AdamW(std::vector<Parameter<T>*> params, AdamWOptions options = {});
};

}  // namespace attn
