// attn/errors.hpp — the library's typed exceptions.
//
// Every error thrown at the API boundary is one of these. The message always
// names the argument, what was seen and what was expected, e.g.
//   attn::ShapeError: scaled_dot_product_attention: key has shape [2, 4, 5, 8],
//   expected [2, 4, Lk, 8] to match query [2, 4, 3, 8] in dims 0 and 3
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace attn {

/// Base of every exception the library throws on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A tensor argument has the wrong rank or sizes, or shapes do not match.
class ShapeError : public Error {
 public:
  using Error::Error;
};

/// An argument has a value outside its domain (dropout_p = 1.5, scale <= 0, ...)
/// or a combination of arguments is not allowed (is_causal with attn_mask).
class ValueError : public Error {
 public:
  using Error::Error;
};

/// A file could not be read or written, or its contents are malformed
/// (a truncated safetensors file, a header that is not JSON, ...).
class IOError : public Error {
 public:
  using Error::Error;
};

/// The machine refused what a call needed: memory for a tensor or a kernel's
/// workspace, or a thread. The message names what was asked for (the shape
/// and bytes, the thread count). Nothing was half-done: the library stays
/// usable, and a smaller request can succeed.
class ResourceError : public Error {
 public:
  using Error::Error;
};

/// "[2, 4, 5, 8]" — shapes are printed the way PyTorch prints torch.Size.
inline std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace attn
