// python/src/layer_common.hpp — what every bound layer (attn::Module) shares:
// parameters as numpy views of the layer's storage, gradients, state_dict
// copies and load_state_dict, by the layer's torch-style names. Used by
// layers.cpp (Linear, TorchMultiheadAttention) and notes_layers.cpp (the notes' layers).
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/string.h>

#include <attn/module.hpp>

#include "convert.hpp"

namespace attn::python {

/// A writable numpy view of `t`, owned by the Python object `owner`.
template <class T>
inline nb::object view_of(const Tensor<T>& t, nb::handle owner) {
  if (!t.defined()) return nb::none();
  const size_t nd = static_cast<size_t>(t.dim());
  std::vector<size_t> shape(nd);
  std::vector<int64_t> strides(nd);
  for (size_t i = 0; i < nd; ++i) {
    shape[i] = static_cast<size_t>(t.shape()[i]);
    strides[i] = t.strides()[i];
  }
  return nb::ndarray<nb::numpy, T>(t.data(), nd, shape.data(), owner, strides.data()).cast();
}

// What every layer shares (attn::Module): parameters by torch's state_dict
// names, as views or as copies, and load_state_dict.
template <class T, class M>
void bind_module_common(nb::class_<M>& c) {
  c.def("named_parameters",
        [](M& self) {
          nb::dict out;
          const nb::handle py = nb::find(&self);
          for (auto& np : self.named_parameters()) out[np.name.c_str()] = view_of(np.param->value, py);
          return out;
        })
      .def("named_gradients",
           [](M& self) {
             nb::dict out;
             const nb::handle py = nb::find(&self);
             for (auto& np : self.named_parameters()) out[np.name.c_str()] = view_of(np.param->grad, py);
             return out;
           })
      .def("state_dict",
           [](M& self) {
             nb::dict out;
             // torch's order (named_parameters), not Module::state_dict()'s sorted map
             for (auto& np : self.named_parameters())
               out[np.name.c_str()] = to_python(np.param->value.clone(), Framework::NumPy);
             return out;
           })
      .def(
          "load_state_dict",
          [](M& self, const std::map<std::string, Array>& dict, bool strict) {
            std::map<std::string, Tensor<T>> tensors;
            for (const auto& [name, a] : dict) {
              if (!has_dtype<T>(a))
                throw nb::type_error(("load_state_dict: '" + name + "' has dtype " + dtype_name(a.dtype()) +
                                      ", expected " + dtype_name(nb::dtype<T>()))
                                         .c_str());
              tensors[name] = as_tensor<T>(a);  // copied into the parameters by load_state_dict
            }
            self.load_state_dict(tensors, strict);
          },
          nb::arg("state_dict"), nb::arg("strict") = true)
      .def("zero_grad", [](M& self) { self.zero_grad(); })
      .def("num_parameters", [](M& self) { return self.num_parameters(); });
}

}  // namespace attn::python
