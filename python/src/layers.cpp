// python/src/layers.cpp — attn::Linear and attn::TorchMultiheadAttention (torch's
// nn.Linear and nn.MultiheadAttention) for Python, in float32 and float64
// (classes Linear32/Linear64, TorchMultiheadAttention32/64; python/attn/nn.py
// picks one by dtype and gives them torch's interface).
//
// Parameters are shown to Python as numpy views of the layer's own storage
// (no copy; writing to them changes the layer), kept alive by the layer's
// Python object. Layer inputs ARE copied: a layer keeps its inputs for
// backward after the call returns, and the caller's array could be gone by then.
#include <map>
#include <optional>
#include <string>

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <attn/linear.hpp>
#include <attn/nn_multihead_attention.hpp>

#include "convert.hpp"
#include "layer_common.hpp"

namespace attn::python {
namespace {

using OptArray = std::optional<Array>;

template <class T>
void bind_linear(nb::module_& m, const char* name) {
  using L = Linear<T>;
  nb::class_<L> c(m, name);
  c.def(
       "__init__",
       [](L* self, int64_t in_features, int64_t out_features, bool bias) {
         new (self) L(in_features, out_features, bias);
       },
       nb::arg("in_features"), nb::arg("out_features"), nb::arg("bias") = true)
      .def_prop_ro("in_features", &L::in_features)
      .def_prop_ro("out_features", &L::out_features)
      .def_prop_ro("has_bias", &L::has_bias)
      .def(
          "forward",
          [](L& self, const Array& x, int framework) {
            require_dtype<T>(x, "input", "Linear.forward");
            const Tensor<T> tx = copy_of<T>(x);
            Tensor<T> y;
            {
              nb::gil_scoped_release no_gil;
              y = self.forward(tx);
            }
            return to_python(y, static_cast<Framework>(framework));
          },
          nb::arg("input"), nb::arg("framework"))
      .def(
          "backward",
          [](L& self, const Array& grad_output, int framework) {
            require_dtype<T>(grad_output, "grad_output", "Linear.backward");
            const Tensor<T> g = as_tensor<T>(grad_output);
            Tensor<T> dx;
            {
              nb::gil_scoped_release no_gil;
              dx = self.backward(g);
            }
            return to_python(dx, static_cast<Framework>(framework));
          },
          nb::arg("grad_output"), nb::arg("framework"));
  bind_module_common<T>(c);
}

template <class T>
void bind_multihead_attention(nb::module_& m, const char* name) {
  using M = TorchMultiheadAttention<T>;
  nb::class_<M> c(m, name);
  c.def(
       "__init__",
       [](M* self, int64_t embed_dim, int64_t num_heads, double dropout, bool bias, bool add_bias_kv,
          bool add_zero_attn, std::optional<int64_t> kdim, std::optional<int64_t> vdim, bool batch_first) {
         TorchMultiheadAttentionOptions o;
         o.dropout = dropout;
         o.bias = bias;
         o.add_bias_kv = add_bias_kv;
         o.add_zero_attn = add_zero_attn;
         o.kdim = kdim;
         o.vdim = vdim;
         o.batch_first = batch_first;
         new (self) M(embed_dim, num_heads, o);
       },
       nb::arg("embed_dim"), nb::arg("num_heads"), nb::arg("dropout"), nb::arg("bias"), nb::arg("add_bias_kv"),
       nb::arg("add_zero_attn"), nb::arg("kdim").none(), nb::arg("vdim").none(), nb::arg("batch_first"))
      .def_prop_ro("embed_dim", &M::embed_dim)
      .def_prop_ro("num_heads", &M::num_heads)
      .def_prop_ro("head_dim", &M::head_dim)
      .def_prop_ro("kdim", &M::kdim)
      .def_prop_ro("vdim", &M::vdim)
      .def_prop_ro("batch_first", [](M& self) { return self.options().batch_first; })
      .def_prop_ro("dropout", [](M& self) { return self.options().dropout; })
      .def_prop_ro("training", &M::is_training)
      .def("train", &M::train, nb::arg("mode") = true)
      .def_prop_rw("dropout_seed", &M::dropout_seed, &M::set_dropout_seed)
      .def(
          "forward",
          [](M& self, const Array& query, const Array& key, const Array& value, OptArray key_padding_mask,
             bool need_weights, OptArray attn_mask, bool average_attn_weights, bool is_causal, int framework) {
            const char* fn = "TorchMultiheadAttention.forward";
            require_dtype<T>(query, "query", fn);
            require_dtype<T>(key, "key", fn);
            require_dtype<T>(value, "value", fn);
            TorchMultiheadAttentionForwardOptions<T> o;
            auto mask = [&](const OptArray& a, const char* what, Tensor<bool>& as_bool, Tensor<T>& as_float) {
              if (!a) return;
              if (has_dtype<bool>(*a))
                as_bool = copy_of<bool>(*a);
              else if (has_dtype<T>(*a))
                as_float = copy_of<T>(*a);
              else
                throw nb::type_error((std::string(fn) + ": " + what + " has dtype " + dtype_name(a->dtype()) +
                                      ", expected bool or " + dtype_name(nb::dtype<T>()))
                                         .c_str());
            };
            mask(key_padding_mask, "key_padding_mask", o.key_padding_mask, o.float_key_padding_mask);
            mask(attn_mask, "attn_mask", o.attn_mask, o.float_attn_mask);
            o.need_weights = need_weights;
            o.average_attn_weights = average_attn_weights;
            o.is_causal = is_causal;
            const Tensor<T> q = copy_of<T>(query), k = copy_of<T>(key), v = copy_of<T>(value);
            TorchMultiheadAttentionOutput<T> r;
            {
              nb::gil_scoped_release no_gil;
              r = self.forward(q, k, v, o);
            }
            const auto fw = static_cast<Framework>(framework);
            return nb::make_tuple(to_python(r.attn_output, fw), to_python(r.attn_weights, fw));
          },
          nb::arg("query"), nb::arg("key"), nb::arg("value"), nb::arg("key_padding_mask").none(),
          nb::arg("need_weights"), nb::arg("attn_mask").none(), nb::arg("average_attn_weights"),
          nb::arg("is_causal"), nb::arg("framework"))
      .def(
          "backward",
          [](M& self, const Array& grad_output, int framework) {
            require_dtype<T>(grad_output, "grad_output", "TorchMultiheadAttention.backward");
            const Tensor<T> g = as_tensor<T>(grad_output);
            TorchMultiheadAttentionGradients<T> r;
            {
              nb::gil_scoped_release no_gil;
              r = self.backward(g);
            }
            const auto fw = static_cast<Framework>(framework);
            return nb::make_tuple(to_python(r.d_query, fw), to_python(r.d_key, fw), to_python(r.d_value, fw));
          },
          nb::arg("grad_output"), nb::arg("framework"));
  bind_module_common<T>(c);
}

}  // namespace

void bind_layers(nb::module_& m) {
  bind_linear<float>(m, "Linear32");
  bind_linear<double>(m, "Linear64");
  bind_multihead_attention<float>(m, "TorchMultiheadAttention32");
  bind_multihead_attention<double>(m, "TorchMultiheadAttention64");
}

}  // namespace attn::python
