// fuzz/fuzz_util.hpp — what the libFuzzer harnesses share: drawing tensors
// from the input bytes, and reporting a finding.
//
// A finding is reported by fuzz_fail(), which prints what was wrong and
// aborts: libFuzzer then writes the input as crash-<sha1> (the reproducer) and
// stops. A typed attn::Error is not a finding (bad arguments are rejected
// with one on purpose); any other exception escapes the harness and is one too
// (libFuzzer reports the std::terminate as a crash).
#pragma once

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "attn/errors.hpp"
#include "attn/tensor.hpp"

namespace attn_fuzz {

// What the current input did so far, one line per step, printed with a
// finding (the harness clears it at the start of each input).
inline std::string& trace() {
  static std::string t;
  return t;
}

[[noreturn]] inline void fuzz_fail(const std::string& what) {
  if (!trace().empty()) std::fprintf(stderr, "\n==== attn fuzz: the input's steps ====\n%s", trace().c_str());
  std::fprintf(stderr, "\n==== attn fuzz finding ====\n%s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

// Element values: a generator seeded from the input fills a tensor (so a
// few input bytes decide a whole tensor, and the fuzzer spends its bytes on
// structure: shapes, options, layouts), then up to 3 elements the input
// picks are overwritten with special values (0, −0, subnormal, ±∞, NaN, and
// ±1e30 for large magnitudes) — the edge cases DESIGN.md asks to define and test.
//
// Magnitudes are chosen once per input (large_values(), set by the harness):
//   unit   amplitude 1 or 0.01, as the randomised gtests draw: the regime
//          tests/fuzz_check.hpp's error model is derived for, so the
//          harnesses compare results with the float64 reference there;
//   large  amplitude 4, 30, 300, 1e5 or 1e15 and specials ±1e30: every other check
//          (no crash or sanitizer report, the same errors on both paths,
//          results independent of the thread count) but no comparison with
//          float64 — with terms of thousands, rounding that cancels (q·k,
//          dO·v − D) exceeds that model's floors by orders of magnitude
//          without either path being wrong.
inline bool& large_values() {
  static bool large = false;
  return large;
}

struct ValueDraw {
  uint32_t seed = 0;
  float amplitude = 1;
  int specials = 0;
  struct Special {
    uint32_t index;
    uint8_t kind;
  } special[3] = {};
  bool allow_non_finite = true;
  bool no_infinity = false;  // non-finite specials are NaN only

  static ValueDraw from(FuzzedDataProvider& in, bool allow_non_finite = true) {
    ValueDraw v;
    v.seed = in.ConsumeIntegral<uint32_t>();
    // 1e5 and 1e15 give scores of ~1e9 to ~1e30 (and their products
    // overflow to ±inf): results must stay finite where float64's are.
    static constexpr float kUnit[] = {1.0f, 0.01f};
    static constexpr float kLarge[] = {4.0f, 30.0f, 300.0f, 1e5f, 1e15f};
    v.amplitude = large_values() ? kLarge[in.ConsumeIntegralInRange<int>(0, 4)]
                                 : kUnit[in.ConsumeIntegralInRange<int>(0, 1)];
    v.specials = in.ConsumeIntegralInRange<int>(0, 3);
    for (int i = 0; i < v.specials; ++i) v.special[i] = {in.ConsumeIntegral<uint32_t>(), in.ConsumeIntegral<uint8_t>()};
    v.allow_non_finite = allow_non_finite;
    return v;
  }

  float special_value(uint8_t kind) const {
    // kinds 0-2 always; 3-4 (large) with large magnitudes; 5-7 (non-finite) when allowed
    static constexpr int kFinite[] = {0, 1, 2}, kLargeFinite[] = {0, 1, 2, 3, 4};
    static constexpr int kAll[] = {0, 1, 2, 5, 6, 7}, kLargeAll[] = {0, 1, 2, 3, 4, 5, 6, 7};
    const int* kinds = allow_non_finite ? (large_values() ? kLargeAll : kAll) : (large_values() ? kLargeFinite : kFinite);
    const int count = allow_non_finite ? (large_values() ? 8 : 6) : (large_values() ? 5 : 3);
    int k = kinds[kind % count];
    if (no_infinity && (k == 5 || k == 6)) k = 7;
    switch (k) {
      case 0: return 0.0f;
      case 1: return -0.0f;
      case 2: return 1e-40f;  // subnormal
      case 3: return 1e30f;
      case 4: return -1e30f;
      case 5: return std::numeric_limits<float>::infinity();
      case 6: return -std::numeric_limits<float>::infinity();
      default: return std::numeric_limits<float>::quiet_NaN();
    }
  }

  std::string describe() const {
    std::string d = "values ±" + std::to_string(amplitude) + " seed " + std::to_string(seed);
    for (int i = 0; i < specials; ++i)
      d += ", [" + std::to_string(special[i].index) + " mod n] = " + std::to_string(special_value(special[i].kind));
    return d;
  }

  // Fills every element of `t` (any strides) in row-major order.
  void fill(const attn::Tensor<float>& t) const {
    std::mt19937 gen(seed);
    std::uniform_real_distribution<float> dist(-amplitude, amplitude);
    const int64_t n = t.numel();
    for (int64_t i = 0; i < n; ++i) t.flat(i) = dist(gen);
    if (n > 0)
      for (int i = 0; i < specials; ++i) t.flat(static_cast<int64_t>(special[i].index % n)) = special_value(special[i].kind);
  }
};

// A tensor of `shape` with drawn values; `name`, when given, goes to trace().
// no_infinity: NaN may be drawn, ±∞ not.
inline attn::Tensor<float> draw_tensor(FuzzedDataProvider& in, const attn::Shape& shape, bool allow_non_finite = true,
                                       const char* name = nullptr, bool no_infinity = false) {
  attn::Tensor<float> t(shape);
  ValueDraw v = ValueDraw::from(in, allow_non_finite);
  v.no_infinity = no_infinity;
  v.fill(t);
  if (name != nullptr) trace() += std::string("  ") + name + " " + attn::shape_str(shape) + ": " + v.describe() + "\n";
  return t;
}

// Whether any element is NaN or ±∞ (an undefined tensor has none).
inline bool has_non_finite(const attn::Tensor<float>& t) {
  if (!t.defined()) return false;
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(t.flat(i))) return true;
  return false;
}

// The largest |x| over the finite elements (0 when there are none).
inline double max_abs_finite(const attn::Tensor<float>& t) {
  double m = 0;
  if (t.defined())
    for (int64_t i = 0; i < t.numel(); ++i)
      if (std::isfinite(t.flat(i))) m = std::max(m, static_cast<double>(std::abs(t.flat(i))));
  return m;
}

// Whether results can be compared with the float64 reference when the inputs
// hold NaN or ±∞. They can when no weight can underflow: every finite score
// within ±`score_bound` of 0 and 2·score_bound <= 80 (e^-80 is a normal
// float). Otherwise a weight may be exactly 0 in one float32 path and tiny in
// another — a path that meets the row's largest score late (online softmax,
// split-KV chunks) gives a value its weight before the max is known — and a
// NaN/∞ in that key's value reaches one output and not the other; which one
// is a matter of rounding, not a fault. (Keys hidden by a mask, causality, a
// window or a −∞ score never reach any output: that is checked whenever this
// returns true.)
inline bool comparable_with_non_finite(double score_bound) { return 2 * score_bound <= 80; }

// Bitwise equality of two float tensors of the same shape (NaN == NaN when
// their bits agree): the check for results that must not depend on the
// thread count, or that are one rounding of a result computed elsewhere.
inline bool same_bits(const attn::Tensor<float>& a, const attn::Tensor<float>& b) {
  if (a.defined() != b.defined()) return false;
  if (!a.defined()) return true;
  if (a.shape() != b.shape()) return false;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const float x = a.flat(i), y = b.flat(i);
    if (std::memcmp(&x, &y, sizeof x) != 0) return false;
  }
  return true;
}

}  // namespace attn_fuzz
