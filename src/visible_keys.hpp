// visible_keys.hpp — which keys a query row sees by position (internal):
// the one rule of causality and the sliding window, shared by the reference
// loops (src/reference/sdpa.cpp), the flash kernels (cpu/flash_attention-inl.h)
// and the decode kernel (cpu/decode-inl.h). Plain C++, no library types, so
// the SIMD code compiled per target can include it.
#pragma once

#include <algorithm>
#include <cstdint>

namespace attn {

/// A half-open range of key indices [lo, hi).
struct KeyRange {
  int64_t lo, hi;
};

/// The keys query row i may see by position: key j with
///   −window_left <= j − (i + diag) <= window_right   (−1: unbounded on that side)
///   j − (i + diag) <= 0                               if causal
/// and 0 <= j < Lk; diag is 0 for top-left alignment, Lk − Lq for bottom-right.
/// Both ends grow with i, so a block of rows sees [lo(first row), hi(last row)).
/// An empty range has hi == lo (lo may then exceed Lk). Masks are per
/// element and come on top of this.
inline KeyRange visible_keys(bool causal, int64_t window_left, int64_t window_right, int64_t diag, int64_t Lk,
                             int64_t i) {
  int64_t first = 0, end = Lk;
  if (causal) end = std::min(end, i + diag + 1);
  if (window_right >= 0) end = std::min(end, i + diag + window_right + 1);
  if (window_left >= 0) first = std::max(first, i + diag - window_left);
  return {first, std::max(end, first)};
}

}  // namespace attn
