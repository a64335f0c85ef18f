// inference/rope_row.hpp — RoPE one row at a time (internal): the single
// implementation behind apply_rope (rope.cpp), KVCache::append with RoPE
// (keys rotated as they are written) and attention_decode with RoPE (query
// rows rotated as the step copies them), so all three give the same bits.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "attn/errors.hpp"
#include "attn/rope.hpp"

namespace attn::detail {

/// The frequencies of one RoPE configuration for rows of head_dim D.
struct RopeTable {
  int64_t R = 0, D = 0;  // rotary dims (even, <= D) and head dim
  RopeLayout layout = RopeLayout::Half;
  std::vector<double> inv_freq;  // [R/2]  ω_i = theta^(−2i/R), in double

  /// Validates the options against D (ValueError naming `who` and the values otherwise).
  RopeTable(const RopeOptions& o, int64_t head_dim, const std::string& who) : D(head_dim), layout(o.layout) {
    R = o.rotary_dim == -1 ? D : o.rotary_dim;
    if (R < 0 || R > D || R % 2 != 0)
      throw ValueError(who + ": rotary_dim = " + std::to_string(o.rotary_dim) +
                       ", expected an even number in [0, head_dim = " + std::to_string(D) + "] or -1");
    if (!(std::isfinite(o.theta) && o.theta > 0))
      throw ValueError(who + ": theta = " + std::to_string(o.theta) + ", expected a finite number > 0");
    for (int64_t i = 0; i < R / 2; ++i)
      inv_freq.push_back(std::pow(o.theta, -2.0 * static_cast<double>(i) / static_cast<double>(R)));
  }

  /// cos(p·ω_i) and sign·sin(p·ω_i) for i < R/2: angles in double, rounded to T once.
  template <class T>
  void angles(int64_t position, double sign, T* c, T* s) const {
    const double p = static_cast<double>(position);
    for (int64_t i = 0; i < R / 2; ++i) {
      const double angle = p * inv_freq[static_cast<size_t>(i)];
      c[i] = static_cast<T>(std::cos(angle));
      s[i] = static_cast<T>(sign * std::sin(angle));
    }
  }

  /// y = the row x (element stride sx) rotated pair by pair; dims R.. copied.
  /// y must not alias x.
  template <class T>
  void rotate(const T* x, int64_t sx, const T* c, const T* s, T* y) const {
    const int64_t half = R / 2;
    for (int64_t i = 0; i < half; ++i) {
      const int64_t ia = layout == RopeLayout::Half ? i : 2 * i;
      const int64_t ib = layout == RopeLayout::Half ? i + half : 2 * i + 1;
      const T xa = x[ia * sx], xb = x[ib * sx];
      // Two products rounded, then one difference: the same expression on
      // every path (this header is compiled without FMA contraction targets).
      const T pa = xa * c[i], pb = xb * s[i], qa = xb * c[i], qb = xa * s[i];
      y[ia] = pa - pb;
      y[ib] = qa + qb;
    }
    for (int64_t d = R; d < D; ++d) y[d] = x[d * sx];
  }
};

}  // namespace attn::detail
