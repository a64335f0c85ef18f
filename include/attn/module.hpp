// attn/module.hpp — what every trainable layer shares: named parameters with
// their gradients, and PyTorch-style state_dict()/load_state_dict().
//
// Layers are written llm.c-style: forward(x) saves what backward needs
// (stated in a comment at the top of each layer), backward(d_out) returns the
// gradient of the input and *accumulates* into each Parameter::grad, as
// PyTorch's .backward() does; zero_grad() clears them.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "attn/errors.hpp"
#include "attn/tensor.hpp"

namespace attn {

/// Tag for constructors that leave the weights zero instead of drawing them
/// (like torch.nn.utils.skip_init): for weights that are loaded right after,
/// where drawing ~10^7 random numbers would only cost time.
struct SkipInit {};
inline constexpr SkipInit skip_init{};

template <class T>
struct Parameter {
  Tensor<T> value;  ///< the weight itself
  Tensor<T> grad;   ///< same shape, accumulated by backward()
  explicit Parameter(Shape shape = {}) : value(shape), grad(shape) {}
};

/// A (name, parameter) pair; names follow PyTorch's state_dict ("out_proj.weight").
template <class T>
struct NamedParameter {
  std::string name;
  Parameter<T>* param;
};

template <class T>
class Module {
 public:
  virtual ~Module() = default;

  /// Every trainable parameter with its state_dict name, in PyTorch's order.
  virtual std::vector<NamedParameter<T>> named_parameters() = 0;

  std::vector<Parameter<T>*> parameters() {
    std::vector<Parameter<T>*> out;
    for (auto& np : named_parameters()) out.push_back(np.param);
    return out;
  }

  void zero_grad() {
    for (auto& np : named_parameters()) np.param->grad.fill_(T(0));
  }

  int64_t num_parameters() {
    int64_t n = 0;
    for (auto& np : named_parameters()) n += np.param->value.numel();
    return n;
  }

  /// Copies of the weights by name (safe to modify).
  std::map<std::string, Tensor<T>> state_dict() {
    std::map<std::string, Tensor<T>> out;
    for (auto& np : named_parameters()) out[np.name] = np.param->value.clone();
    return out;
  }

  /// Loads weights by name. strict: every parameter must be present, no extra
  /// names allowed. Shapes must match exactly. Throws ValueError / ShapeError.
  void load_state_dict(const std::map<std::string, Tensor<T>>& dict, bool strict = true) {
    auto params = named_parameters();
    for (auto& np : params) {
      auto it = dict.find(np.name);
      if (it == dict.end()) {
        if (strict) throw ValueError("load_state_dict: missing key '" + np.name + "'");
        continue;
      }
      if (it->second.shape() != np.param->value.shape())
        throw ShapeError("load_state_dict: '" + np.name + "' has shape " + shape_str(it->second.shape()) +
                         ", expected " + shape_str(np.param->value.shape()));
      np.param->value.copy_(it->second);
    }
    if (strict) {
      for (auto& [name, t] : dict) {
        bool known = false;
        for (auto& np : params) known = known || np.name == name;
        if (!known) throw ValueError("load_state_dict: unexpected key '" + name + "'");
      }
    }
  }
};

/// Prefixes child parameter names: add_prefixed(out, "out_proj.", child).
template <class T>
void append_prefixed(std::vector<NamedParameter<T>>& out, const std::string& prefix, Module<T>& child) {
  for (auto& np : child.named_parameters()) out.push_back({prefix + np.name, np.param});
}

}  // namespace attn
