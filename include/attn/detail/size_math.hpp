// attn/detail/size_math.hpp — checked arithmetic on sizes (internal).
//
// Sizes come from callers and from files: a shape [2^32, 2^32], a KV cache of
// 2^20 heads, a safetensors header. Their products (element counts, strides,
// byte counts, workspace sizes) must never wrap: a wrapped count allocates a
// small buffer that the code then indexes as if it were huge. Every place
// that multiplies sizes it did not choose goes through these helpers, so the
// rule lives in one place:
//
//   * checked_mul / checked_add: false on overflow (the caller throws its own
//     typed error, naming its arguments);
//   * size_product: the product of a shape's sizes, or a ShapeError naming
//     the shape;
//   * saturating_mul / saturating_add: INT64_MAX on overflow, for layouts
//     computed in many steps (a kernel's workspace), checked once at the end
//     against what can be allocated.
//
// Sizes here are int64_t >= 0 (attn::Shape's element type); callers check
// the sign first.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <span>
#include <string>

#include "attn/errors.hpp"

namespace attn::detail {

inline constexpr int64_t kMaxSize = std::numeric_limits<int64_t>::max();

/// out = a·b; false (out unspecified) when it does not fit in int64_t.
inline bool checked_mul(int64_t a, int64_t b, int64_t& out) { return !__builtin_mul_overflow(a, b, &out); }

/// out = a + b; false (out unspecified) when it does not fit in int64_t.
inline bool checked_add(int64_t a, int64_t b, int64_t& out) { return !__builtin_add_overflow(a, b, &out); }

/// a·b, or kMaxSize when it does not fit (a, b >= 0).
inline int64_t saturating_mul(int64_t a, int64_t b) {
  int64_t out;
  return checked_mul(a, b, out) ? out : kMaxSize;
}

/// a + b, or kMaxSize when it does not fit (a, b >= 0).
inline int64_t saturating_add(int64_t a, int64_t b) {
  int64_t out;
  return checked_add(a, b, out) ? out : kMaxSize;
}

/// The product of `sizes` (1 for none); false when it does not fit. A zero
/// size makes the product 0 whatever the others are.
inline bool checked_product(std::span<const int64_t> sizes, int64_t& out) {
  int64_t p = 1;
  bool fits = true;
  for (int64_t s : sizes) {
    if (s == 0) {
      out = 0;
      return true;
    }
    fits = fits && checked_mul(p, s, p);
  }
  out = p;
  return fits;
}

/// The product of `sizes`; throws ShapeError "<what> <shape> has more than
/// 2^63 - 1 elements" when it does not fit.
inline int64_t size_product(std::span<const int64_t> sizes, const std::string& what) {
  int64_t n;
  if (!checked_product(sizes, n))
    throw ShapeError(what + " " + shape_str({sizes.begin(), sizes.end()}) + " has more than 2^63 - 1 elements");
  return n;
}
inline int64_t size_product(std::initializer_list<int64_t> sizes, const std::string& what) {
  return size_product(std::span<const int64_t>(sizes.begin(), sizes.size()), what);
}

/// count · element_size as bytes; false when it does not fit in int64_t
/// (the most a single allocation can be asked for on any platform attn runs on).
inline bool checked_bytes(int64_t count, int64_t element_size, int64_t& out) {
  return count >= 0 && checked_mul(count, element_size, out);
}

}  // namespace attn::detail
