// tests/fuzz.hpp — what the randomised tests (tests/cpu/flash_fuzz_test.cpp,
// tests/inference/decode_fuzz_test.cpp) share: the float64 accuracy check and
// the loop over cases with its environment variables.
//
// A float32 result is checked against the same computation run by the
// reference path in float64 on the same (float32-valued) inputs. The bound
// for each element is
//   (kAccuracyFactor · the float32 reference's largest error on that tensor
//    + floor) · max(1, |float64 value|)
// — at most a few times less accurate than the plain float32 loops, plus a
// floor the caller derives for what the reference happens to get exactly
// right (see each test's comment).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "attn/sdpa.hpp"

namespace attn_test {

constexpr double kAccuracyFactor = 4.0;

inline attn::Tensor<double> to_double(const attn::Tensor<float>& t) {
  if (!t.defined()) return {};
  attn::Tensor<double> d(t.shape());
  for (int64_t n = 0; n < t.numel(); ++n) d.flat(n) = t.flat(n);
  return d;
}

// The same options for the float64 reference path.
inline attn::SdpaOptions<double> to_double(const attn::SdpaOptions<float>& o) {
  attn::SdpaOptions<double> d;
  d.bool_mask = o.bool_mask;
  d.float_mask = to_double(o.float_mask);
  d.is_causal = o.is_causal;
  d.causal_alignment = o.causal_alignment;
  d.window_left = o.window_left;
  d.window_right = o.window_right;
  d.scale = o.scale;
  d.dropout_p = o.dropout_p;
  d.dropout_seed = o.dropout_seed;
  d.enable_gqa = o.enable_gqa;
  d.alibi_slopes = to_double(o.alibi_slopes);
  d.softcap = o.softcap;
  d.sinks = to_double(o.sinks);
  d.return_weights = o.return_weights;
  d.backend = attn::SdpaBackend::Reference;
  return d;
}

// The largest |x − exact| / max(1, |exact|) over elements finite in both.
inline double max_error(const attn::Tensor<float>& x, const attn::Tensor<double>& exact) {
  double worst = 0;
  for (int64_t n = 0; n < x.numel(); ++n)
    if (std::isfinite(exact.flat(n)) && std::isfinite(x.flat(n)))
      worst = std::max(worst, std::abs(x.flat(n) - exact.flat(n)) / std::max(1.0, std::abs(exact.flat(n))));
  return worst;
}

// What a run saw, printed at its end: how close any tensor came to its bound,
// the largest (tested error) / (float32 reference error) among tensors whose
// reference error is above 1e-6 (below it the ratio of two tiny roundings
// means nothing), and the largest bound used.
struct AccuracyStats {
  double worst_of_bound = 0, worst_ratio = 0, largest_bound = 0;
};

// Checks `tested` element by element against `exact`, with the bound above;
// NaN must meet NaN and ±∞ the same ±∞.
inline void expect_accurate(const attn::Tensor<float>& tested, const attn::Tensor<float>& reference,
                            const attn::Tensor<double>& exact, double floor, const std::string& what,
                            AccuracyStats& stats) {
  ASSERT_EQ(tested.defined(), exact.defined()) << what;
  if (!exact.defined()) return;
  ASSERT_EQ(tested.shape(), exact.shape()) << what;
  ASSERT_EQ(reference.shape(), exact.shape()) << what;
  const double reference_error = max_error(reference, exact);
  const double bound = kAccuracyFactor * reference_error + floor;
  int failures = 0;
  for (int64_t n = 0; n < tested.numel(); ++n) {
    const double g = tested.flat(n), w = exact.flat(n);
    const bool ok = std::isfinite(w) ? std::abs(g - w) <= bound * std::max(1.0, std::abs(w))
                                     : ((std::isnan(w) && std::isnan(g)) || g == w);
    if (!ok && failures++ < 3)
      ADD_FAILURE() << what << ": element " << n << " is " << g << ", float64 reference " << w
                    << ", float32 reference " << reference.flat(n) << " (bound " << bound << ")";
  }
  const double error = max_error(tested, exact);
  stats.worst_of_bound = std::max(stats.worst_of_bound, error / bound);
  stats.largest_bound = std::max(stats.largest_bound, bound);
  if (reference_error > 1e-6) stats.worst_ratio = std::max(stats.worst_ratio, error / reference_error);
}

// ---- drawing a case ----------------------------------------------------------------
// A case's random choices, all from one generator seeded by the case's seed.
struct Draw {
  std::mt19937 gen;
  explicit Draw(uint32_t seed) : gen(seed) {}
  int64_t pick(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(gen); }
  bool chance(double p) { return std::bernoulli_distribution(p)(gen); }
  double real(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(gen); }
  attn::Tensor<float> uniform(const attn::Shape& shape, float lo = -1.0f, float hi = 1.0f) {
    attn::Tensor<float> t(shape);
    std::uniform_real_distribution<float> dist(lo, hi);
    for (int64_t n = 0; n < t.numel(); ++n) t.flat(n) = dist(gen);
    return t;
  }
};

// ---- the loop over cases -----------------------------------------------------------
//   ATTN_FUZZ_CASES=n   run cases 0 .. n−1 (n >= 1; default: the test's own count)
//   ATTN_FUZZ_SEED=s    run case s alone (a failure names its seed)

// Reads an integer environment variable: false (and the test fails) when it
// is set but not a whole number >= min, so a typo cannot turn a soak run
// into a run of nothing.
inline bool read_env(const char* name, int64_t min, int64_t* value) {
  const char* s = std::getenv(name);
  if (s == nullptr || *s == '\0') return true;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < min) {
    ADD_FAILURE() << name << "=" << s << ": expected a whole number >= " << min;
    return false;
  }
  *value = v;
  return true;
}

// Runs run_case(seed) over the cases the environment asks for, then prints
// how close the checks came to their bounds.
template <class RunCase>
void run_cases(const char* label, int64_t default_cases, const AccuracyStats& stats, RunCase run_case) {
  int64_t only = -1, cases = default_cases;
  if (!read_env("ATTN_FUZZ_SEED", 0, &only) || !read_env("ATTN_FUZZ_CASES", 1, &cases)) return;
  if (only >= 0) {
    run_case(static_cast<uint64_t>(only));
    cases = 1;
  } else {
    for (int64_t seed = 0; seed < cases && !testing::Test::HasFatalFailure(); ++seed) {
      run_case(static_cast<uint64_t>(seed));
      if (cases > 200 && (seed + 1) % 500 == 0)
        std::printf("[ fuzz     ] %s: %lld / %lld cases\n", label, static_cast<long long>(seed + 1),
                    static_cast<long long>(cases));
    }
  }
  std::printf("[ fuzz     ] %s: %lld case(s); largest error / its bound %.3g; largest error / float32 "
              "reference error %.3g; largest bound %.3g\n",
              label, static_cast<long long>(cases), stats.worst_of_bound, stats.worst_ratio, stats.largest_bound);
}

}  // namespace attn_test
