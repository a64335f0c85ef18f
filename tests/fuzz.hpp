// tests/fuzz.hpp — what the randomised tests (tests/cpu/flash_fuzz_test.cpp,
// tests/inference/decode_fuzz_test.cpp) share: the float64 accuracy check
// (fuzz_check.hpp, shared with the libFuzzer harnesses in fuzz/) as gtest
// failures, and the loop over cases with its environment variables.
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
#include "fuzz_check.hpp"

namespace attn_test {

// Checks `tested` element by element against `exact` (check_accurate in
// fuzz_check.hpp); each failing element (at most three) is one gtest failure.
inline void expect_accurate(const attn::Tensor<float>& tested, const attn::Tensor<float>& reference,
                            const attn::Tensor<double>& exact, double floor, const std::string& what,
                            AccuracyStats& stats) {
  const std::string failures = check_accurate(tested, reference, exact, floor, what, stats);
  if (!failures.empty()) ADD_FAILURE() << failures;
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
