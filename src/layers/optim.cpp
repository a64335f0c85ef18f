// optim.cpp — SGD, Adam and AdamW, following torch.optim's single-tensor code
// (torch/optim/sgd.py _single_tensor_sgd, adam.py _single_tensor_adam) one
// tensor operation at a time, so that the results agree with torch to
// rounding. State per parameter (all of the parameter's shape):
//   SGD   momentum_buffer                    (only when momentum ≠ 0)
//   Adam  exp_avg m, exp_avg_sq v, and max_exp_avg_sq v̂ (only with amsgrad)
// Parameters and grads may be strided views: they are walked with flat().
#include "attn/optim.hpp"

#include <cmath>
#include <string>

namespace attn {

namespace {

void check_non_negative(double value, const char* name, const char* who) {
  if (!(value >= 0.0) || !std::isfinite(value))
    throw ValueError(std::string(who) + ": " + name + " = " + std::to_string(value) +
                     ", expected a finite value >= 0");
}

// torch's lerp: self + w·(end − self), or end − (end − self)·(1 − w) for |w| >= 0.5
// (the form that is exact at w = 1).
template <class T>
T lerp(T self, T end, T w) {
  return std::abs(w) < T(0.5) ? self + w * (end - self) : end - (end - self) * (T(1) - w);
}

}  // namespace

// ---- Optimizer ---------------------------------------------------------------

template <class T>
Optimizer<T>::Optimizer(std::vector<Parameter<T>*> params) : params_(std::move(params)) {
  for (size_t i = 0; i < params_.size(); ++i) {
    if (params_[i] == nullptr)
      throw ValueError("Optimizer: parameter " + std::to_string(i) + " is a null pointer");
    for (size_t k = 0; k < i; ++k)
      if (params_[k] == params_[i])
        throw ValueError("Optimizer: parameter " + std::to_string(i) + " is listed twice (also at " +
                         std::to_string(k) + ")");
  }
}

template <class T>
void Optimizer<T>::zero_grad() {
  for (auto* p : params_) p->grad.fill_(T(0));
}

template <class T>
void Optimizer<T>::check_grads(const char* who) const {
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& p = *params_[i];
    if (!p.grad.defined() || p.grad.shape() != p.value.shape())
      throw ShapeError(std::string(who) + ": parameter " + std::to_string(i) + " has grad of shape " +
                       (p.grad.defined() ? shape_str(p.grad.shape()) : std::string("undefined")) +
                       ", expected its value's shape " + shape_str(p.value.shape()));
  }
}

// ---- SGD ---------------------------------------------------------------------

template <class T>
SGD<T>::SGD(std::vector<Parameter<T>*> params, SGDOptions options)
    : Optimizer<T>(std::move(params)), options_(options) {
  check_non_negative(options.lr, "lr", "SGD");
  check_non_negative(options.momentum, "momentum", "SGD");
  check_non_negative(options.weight_decay, "weight_decay", "SGD");
  if (!std::isfinite(options.dampening))
    throw ValueError("SGD: dampening = " + std::to_string(options.dampening) + ", expected a finite value");
  if (options.nesterov && (options.momentum <= 0 || options.dampening != 0))
    throw ValueError("SGD: nesterov momentum requires momentum > 0 and dampening = 0, got momentum = " +
                     std::to_string(options.momentum) + ", dampening = " + std::to_string(options.dampening));
  momentum_buffer_.resize(this->params_.size());
}

template <class T>
void SGD<T>::step() {
  this->check_grads("SGD::step");
  const auto& o = options_;
  const T lr = static_cast<T>(o.lr), wd = static_cast<T>(o.weight_decay), mu = static_cast<T>(o.momentum);
  const T one_minus_dampening = static_cast<T>(1 - o.dampening);
  for (size_t k = 0; k < this->params_.size(); ++k) {
    Parameter<T>& p = *this->params_[k];
    const int64_t n = p.value.numel();
    Tensor<T>& buf = momentum_buffer_[k];
    const bool first = !buf.defined();
    if (o.momentum != 0 && first) buf = Tensor<T>(p.value.shape());
    for (int64_t i = 0; i < n; ++i) {
      T& w = p.value.flat(i);
      T g = o.maximize ? -p.grad.flat(i) : p.grad.flat(i);
      if (o.weight_decay != 0) g = g + wd * w;  // grad.add(param, alpha=weight_decay)
      if (o.momentum != 0) {
        T& b = buf.flat(i);
        b = first ? g : b * mu + one_minus_dampening * g;  // clone on the first step, then mul_/add_
        g = o.nesterov ? g + mu * b : b;
      }
      w = w + (-lr) * g;  // param.add_(grad, alpha=-lr)
    }
  }
  ++this->steps_;
}

// ---- Adam / AdamW ------------------------------------------------------------------

template <class T>
Adam<T>::Adam(std::vector<Parameter<T>*> params, AdamOptions options)
    : Adam(std::move(params), options, false, "Adam") {}

template <class T>
Adam<T>::Adam(std::vector<Parameter<T>*> params, AdamOptions options, bool decoupled_weight_decay, const char* name)
    : Optimizer<T>(std::move(params)), options_(options), decoupled_weight_decay_(decoupled_weight_decay), name_(name) {
  const std::string who = name;
  check_non_negative(options.lr, "lr", name);
  check_non_negative(options.eps, "eps", name);
  check_non_negative(options.weight_decay, "weight_decay", name);
  for (double beta : {options.beta1, options.beta2})
    if (!(beta >= 0.0 && beta < 1.0))
      throw ValueError(who + ": betas = (" + std::to_string(options.beta1) + ", " + std::to_string(options.beta2) +
                       "), expected each in [0, 1)");
  for (auto* p : this->params_) {
    exp_avg_.emplace_back(p->value.shape());
    exp_avg_sq_.emplace_back(p->value.shape());
    max_exp_avg_sq_.push_back(options.amsgrad ? Tensor<T>(p->value.shape()) : Tensor<T>());
  }
}

template <class T>
void Adam<T>::set_lr(double lr) {
  check_non_negative(lr, "lr", name_);
  options_.lr = lr;
}

template <class T>
void Adam<T>::step() {
  this->check_grads(name_);
  const auto& o = options_;
  ++this->steps_;
  // Python floats in torch: computed in double, then used as T scalars.
  const double t = static_cast<double>(this->steps_);
  const double bias_correction1 = 1 - std::pow(o.beta1, t);
  const double bias_correction2 = 1 - std::pow(o.beta2, t);
  const double step_size = o.lr / bias_correction1;
  const double bias_correction2_sqrt = std::pow(bias_correction2, 0.5);
  const T wd = static_cast<T>(o.weight_decay), decay = static_cast<T>(1 - o.lr * o.weight_decay);
  const T one_minus_beta1 = static_cast<T>(1 - o.beta1), beta2 = static_cast<T>(o.beta2),
          one_minus_beta2 = static_cast<T>(1 - o.beta2);
  const T bc2_sqrt = static_cast<T>(bias_correction2_sqrt), eps = static_cast<T>(o.eps),
          neg_step_size = static_cast<T>(-step_size);

  for (size_t k = 0; k < this->params_.size(); ++k) {
    Parameter<T>& p = *this->params_[k];
    const int64_t n = p.value.numel();
    for (int64_t i = 0; i < n; ++i) {
      T& w = p.value.flat(i);
      T g = o.maximize ? -p.grad.flat(i) : p.grad.flat(i);
      if (o.weight_decay != 0) {
        if (decoupled_weight_decay_) w = w * decay;  // AdamW: param.mul_(1 - lr * weight_decay)
        else g = g + wd * w;                         // Adam: grad.add(param, alpha=weight_decay)
      }
      T& m = exp_avg_[k].flat(i);
      T& v = exp_avg_sq_[k].flat(i);
      m = lerp(m, g, one_minus_beta1);           // exp_avg.lerp_(grad, 1 - beta1)
      v = v * beta2 + one_minus_beta2 * (g * g);  // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
      T second = v;
      if (o.amsgrad) {
        T& vmax = max_exp_avg_sq_[k].flat(i);
        vmax = std::max(vmax, v);
        second = vmax;
      }
      const T denom = std::sqrt(second) / bc2_sqrt + eps;
      w = w + neg_step_size * (m / denom);  // param.addcdiv_(exp_avg, denom, value=-step_size)
    }
  }
}

template <class T>
AdamW<T>::AdamW(std::vector<Parameter<T>*> params, AdamWOptions o)
    : Adam<T>(std::move(params),
              AdamOptions{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, o.amsgrad, o.maximize}, true, "AdamW") {}

template class Optimizer<float>;
template class Optimizer<double>;
template class SGD<float>;
template class SGD<double>;
template class Adam<float>;
template class Adam<double>;
template class AdamW<float>;
template class AdamW<double>;

}  // namespace attn
