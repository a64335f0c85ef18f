// python/src/notes_layers.cpp — the lecture notes' trainable layers for
// Python: attn::SelfAttention (Raschka's SelfAttention_v2), CausalAttention,
// MultiHeadAttentionWrapper and MultiHeadAttention, in float32 and float64
// (classes SelfAttention32/64, ...; python/attn/nn.py picks one by dtype,
// builds SelfAttention_v1 on top of SelfAttention and gives them the notes'
// interface).
//
// All four layers have one input and one output, so one template binds them:
//   forward(x [.., seq, d_in]) -> [.., seq, d_out']   saves what backward needs
//   backward(dL/dy)            -> dL/dx               accumulates parameter grads
// Inputs are copied (the layer keeps them for backward after the call
// returns); outputs are handed over without a copy (convert.hpp).
#include <cstdint>
#include <optional>
#include <type_traits>

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <attn/causal_attention.hpp>
#include <attn/generator.hpp>
#include <attn/multihead_attention.hpp>
#include <attn/self_attention.hpp>

#include "convert.hpp"
#include "layer_common.hpp"

// MultiHeadAttentionWrapper holds its heads by unique_ptr, so it cannot be
// copied, but std::is_copy_constructible says it can (vector's copy
// constructor is not constrained); tell nanobind the truth.
template <class T>
struct nanobind::detail::is_copy_constructible<attn::MultiHeadAttentionWrapper<T>> : std::false_type {};

namespace attn::python {
namespace {

/// forward/backward of a one-input layer L<T>; `fn` names it in messages.
template <class T, class L>
void bind_forward_backward(nb::class_<L>& c, const char* forward_name, const char* backward_name) {
  c.def(
       "forward",
       [forward_name](L& self, const Array& x, int framework) {
         require_dtype<T>(x, "x", forward_name);
         const Tensor<T> tx = copy_of<T>(x);  // kept by the layer for backward
         Tensor<T> y;
         {
           nb::gil_scoped_release no_gil;
           y = self.forward(tx);
         }
         return to_python(y, static_cast<Framework>(framework));
       },
       nb::arg("x"), nb::arg("framework"))
      .def(
          "backward",
          [backward_name](L& self, const Array& grad_output, int framework) {
            require_dtype<T>(grad_output, "grad_output", backward_name);
            const Tensor<T> g = as_tensor<T>(grad_output);  // read during the call only
            Tensor<T> dx;
            {
              nb::gil_scoped_release no_gil;
              dx = self.backward(g);
            }
            return to_python(dx, static_cast<Framework>(framework));
          },
          nb::arg("grad_output"), nb::arg("framework"));
}

/// train()/eval() and the dropout seed of the layers with dropout.
template <class L>
void bind_training(nb::class_<L>& c) {
  c.def_prop_ro("training", &L::is_training).def("train", &L::train, nb::arg("mode") = true);
}

// The constructors take `fresh_generator`: true draws the initial weights
// from a private generator instead of attn's default one, leaving the
// default generator untouched (SelfAttention_v1 then draws its own weights
// with torch.rand's order from the default generator).
template <class T>
void bind_self_attention(nb::module_& m, const char* name) {
  using L = SelfAttention<T>;
  nb::class_<L> c(m, name);
  c.def(
       "__init__",
       [](L* self, int64_t d_in, int64_t d_out, bool qkv_bias, bool fresh_generator) {
         if (fresh_generator) {
           Generator private_gen;
           new (self) L(d_in, d_out, qkv_bias, private_gen);
         } else {
           new (self) L(d_in, d_out, qkv_bias);
         }
       },
       nb::arg("d_in"), nb::arg("d_out"), nb::arg("qkv_bias") = false, nb::arg("fresh_generator") = false)
      .def_prop_ro("d_in", &L::d_in)
      .def_prop_ro("d_out", &L::d_out);
  bind_forward_backward<T>(c, "SelfAttention.forward", "SelfAttention.backward");
  bind_module_common<T>(c);
}

template <class T>
void bind_causal_attention(nb::module_& m, const char* name) {
  using L = CausalAttention<T>;
  nb::class_<L> c(m, name);
  c.def(
       "__init__",
       [](L* self, int64_t d_in, int64_t d_out, int64_t context_length, double dropout, bool qkv_bias) {
         new (self) L(d_in, d_out, context_length, dropout, qkv_bias);
       },
       nb::arg("d_in"), nb::arg("d_out"), nb::arg("context_length"), nb::arg("dropout"),
       nb::arg("qkv_bias") = false)
      .def_prop_ro("d_in", &L::d_in)
      .def_prop_ro("d_out", &L::d_out)
      .def_prop_ro("context_length", &L::context_length)
      .def_prop_ro("dropout", &L::dropout)
      .def_prop_rw("dropout_seed", &L::dropout_seed, &L::set_dropout_seed);
  bind_training(c);
  bind_forward_backward<T>(c, "CausalAttention.forward", "CausalAttention.backward");
  bind_module_common<T>(c);
}

template <class T>
void bind_multihead_wrapper(nb::module_& m, const char* name) {
  using L = MultiHeadAttentionWrapper<T>;
  nb::class_<L> c(m, name);
  c.def(
       "__init__",
       [](L* self, int64_t d_in, int64_t d_out, int64_t context_length, double dropout, int64_t num_heads,
          bool qkv_bias) { new (self) L(d_in, d_out, context_length, dropout, num_heads, qkv_bias); },
       nb::arg("d_in"), nb::arg("d_out"), nb::arg("context_length"), nb::arg("dropout"), nb::arg("num_heads"),
       nb::arg("qkv_bias") = false)
      .def_prop_ro("num_heads", &L::num_heads)
      .def("set_dropout_seed", &L::set_dropout_seed, nb::arg("seed"));
  bind_training(c);
  bind_forward_backward<T>(c, "MultiHeadAttentionWrapper.forward", "MultiHeadAttentionWrapper.backward");
  bind_module_common<T>(c);
}

template <class T>
void bind_multihead(nb::module_& m, const char* name) {
  using L = MultiHeadAttention<T>;
  nb::class_<L> c(m, name);
  c.def(
       "__init__",
       [](L* self, int64_t d_in, int64_t d_out, int64_t context_length, double dropout, int64_t num_heads,
          bool qkv_bias) { new (self) L(d_in, d_out, context_length, dropout, num_heads, qkv_bias); },
       nb::arg("d_in"), nb::arg("d_out"), nb::arg("context_length"), nb::arg("dropout"), nb::arg("num_heads"),
       nb::arg("qkv_bias") = false)
      .def_prop_ro("d_in", &L::d_in)
      .def_prop_ro("d_out", &L::d_out)
      .def_prop_ro("num_heads", &L::num_heads)
      .def_prop_ro("head_dim", &L::head_dim)
      .def_prop_ro("context_length", &L::context_length)
      .def_prop_rw("dropout_seed", &L::dropout_seed, &L::set_dropout_seed);
  bind_training(c);
  bind_forward_backward<T>(c, "MultiHeadAttention.forward", "MultiHeadAttention.backward");
  bind_module_common<T>(c);
}

}  // namespace

void bind_notes_layers(nb::module_& m) {
  bind_self_attention<float>(m, "SelfAttention32");
  bind_self_attention<double>(m, "SelfAttention64");
  bind_causal_attention<float>(m, "CausalAttention32");
  bind_causal_attention<double>(m, "CausalAttention64");
  bind_multihead_wrapper<float>(m, "MultiHeadAttentionWrapper32");
  bind_multihead_wrapper<double>(m, "MultiHeadAttentionWrapper64");
  bind_multihead<float>(m, "MultiHeadAttention32");
  bind_multihead<double>(m, "MultiHeadAttention64");
}

}  // namespace attn::python
