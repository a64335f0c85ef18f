// Small helpers shared by the reference SDPA tests.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "attn/sdpa.hpp"

namespace attn_test {

using attn::Shape;
using attn::Tensor;

/// x.flat[n] = sin(seed + 0.7·n), computed in double: the same formula as
/// pattern() in tests/golden/sdpa_spot_values.py, so tests rebuild its inputs.
template <class T>
Tensor<T> pattern(const Shape& shape, double seed) {
  Tensor<T> t(shape);
  for (int64_t n = 0; n < t.numel(); ++n) t.flat(n) = static_cast<T>(std::sin(seed + 0.7 * static_cast<double>(n)));
  return t;
}

/// Every element of `got` within `tol` of `want` (same shape, any strides).
template <class T, class U>
void expect_all_near(const Tensor<T>& got, const Tensor<U>& want, double tol, const std::string& what = "") {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  for (int64_t n = 0; n < got.numel(); ++n)
    EXPECT_NEAR(static_cast<double>(got.flat(n)), static_cast<double>(want.flat(n)), tol)
        << what << " element " << n;
}

template <class T>
void expect_all_near(const Tensor<T>& got, const std::vector<double>& want, double tol,
                     const std::string& what = "") {
  ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size())) << what;
  for (int64_t n = 0; n < got.numel(); ++n)
    EXPECT_NEAR(static_cast<double>(got.flat(n)), want[static_cast<size_t>(n)], tol) << what << " element " << n;
}

/// Runs `f`, expects it to throw E whose message contains every string in `needles`.
template <class E, class F>
void expect_error(F&& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "expected an exception mentioning " << (needles.empty() ? "" : needles[0]);
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

}  // namespace attn_test
