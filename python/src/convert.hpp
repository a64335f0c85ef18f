// python/src/convert.hpp — arrays between Python and attn::Tensor, without copies.
//
// In:  an nb::ndarray (anything with DLPack or the buffer protocol: numpy
//      arrays, torch tensors, ...) becomes a Tensor<T>::from_blob view of the
//      caller's memory, with its strides, so [batch, seq, heads, dim] views and
//      broadcast (stride 0) views need no copy. The Python object must outlive
//      the view: every function here uses its views before returning.
// Out: a Tensor<T> the library allocated is handed to numpy or torch as is;
//      a capsule owns a copy of the Tensor handle (its shared_ptr), so the
//      storage lives as long as the Python array does.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <attn/errors.hpp>
#include <attn/tensor.hpp>

namespace attn::python {

namespace nb = nanobind;

/// Any CPU array, any dtype, any strides, read-only is fine.
using Array = nb::ndarray<nb::ro, nb::device::cpu>;

/// Which Python type outputs are made of. Capsule: a bare DLPack capsule,
/// which the Python side turns into a torch tensor with
/// torch._C._from_dlpack (cheaper than nanobind's torch export, which goes
/// through torch.utils.dlpack.from_dlpack and __dlpack__ negotiation).
enum class Framework { NumPy = 0, Torch = 1, Capsule = 2 };

/// "float32", "int64", "bool", ... for messages.
std::string dtype_name(nb::dlpack::dtype dt);

template <class T>
bool has_dtype(const Array& a) {
  return a.dtype() == nb::dtype<T>();
}

/// Throws nb::type_error naming `what` unless `a` holds T.
template <class T>
void require_dtype(const Array& a, const char* what, const char* fn) {
  if (!has_dtype<T>(a))
    throw nb::type_error((std::string(fn) + ": " + what + " has dtype " + dtype_name(a.dtype()) + ", expected " +
                          dtype_name(nb::dtype<T>()) + " (the dtype of query)")
                             .c_str());
}

/// A view of `a`'s memory (no copy) with its shape and strides. Empty arrays
/// get a fresh zero-size tensor (their data pointer may be null, which a
/// Tensor would read as "not given"); negative strides (x[::-1]) are copied,
/// since the kernels walk memory forwards.
template <class T>
Tensor<T> as_tensor(const Array& a) {
  const size_t nd = a.ndim();
  Shape shape(nd), strides(nd);
  bool negative = false;
  for (size_t i = 0; i < nd; ++i) {
    shape[i] = static_cast<int64_t>(a.shape(i));
    strides[i] = a.stride(i);
    negative = negative || strides[i] < 0;
  }
  if (a.size() == 0) return Tensor<T>(shape);
  Tensor<T> t = Tensor<T>::from_blob(const_cast<T*>(static_cast<const T*>(a.data())), shape, strides);
  return negative ? t.clone() : t;
}

/// A deep copy owned by the library: for layers that keep their inputs for
/// backward beyond the call (the caller's array could be freed meanwhile).
template <class T>
Tensor<T> copy_of(const Array& a) {
  return as_tensor<T>(a).clone();
}

/// Hands `t` to numpy (or torch) without copying its elements.
template <class T>
nb::object to_python(const Tensor<T>& t, Framework fw) {
  if (!t.defined()) return nb::none();
  const size_t nd = static_cast<size_t>(t.dim());
  std::vector<size_t> shape(nd);
  std::vector<int64_t> strides(nd);
  for (size_t i = 0; i < nd; ++i) {
    shape[i] = static_cast<size_t>(t.shape()[i]);
    strides[i] = t.strides()[i];
  }
  auto* keep = new Tensor<T>(t);  // the capsule below owns this handle
  nb::capsule owner(keep, [](void* p) noexcept { delete static_cast<Tensor<T>*>(p); });
  if (fw == Framework::Torch)
    return nb::ndarray<nb::pytorch, T>(keep->data(), nd, shape.data(), owner, strides.data()).cast();
  if (fw == Framework::Capsule)
    return nb::ndarray<T>(keep->data(), nd, shape.data(), owner, strides.data()).cast();
  return nb::ndarray<nb::numpy, T>(keep->data(), nd, shape.data(), owner, strides.data()).cast();
}

}  // namespace attn::python
