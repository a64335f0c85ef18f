// tests/fuzz_check.hpp — the accuracy check of the randomised tests, without
// GoogleTest, so that the libFuzzer harnesses (fuzz/) apply the very same
// bounds as tests/cpu/flash_fuzz_test.cpp and tests/inference/decode_fuzz_test.cpp
// (tests/fuzz.hpp wraps check_accurate into a gtest failure).
//
// A float32 result is checked against the same computation run by the
// reference path in float64 on the same (float32-valued) inputs. The bound
// for each element is
//   (kAccuracyFactor · the float32 reference's largest error on that tensor
//    + floor) · max(1, |float64 value|)
// — at most a few times less accurate than the plain float32 loops, plus a
// floor the caller derives for what the reference happens to get exactly
// right (see each test's comment, and sdpa_floors below).
#pragma once

#include <algorithm>
#include <cmath>
#include <sstream>
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
// NaN must meet NaN and ±∞ the same ±∞. Returns "" when it holds, else what
// failed (at most three elements named).
inline std::string check_accurate(const attn::Tensor<float>& tested, const attn::Tensor<float>& reference,
                                  const attn::Tensor<double>& exact, double floor, const std::string& what,
                                  AccuracyStats& stats) {
  std::ostringstream failure;
  if (tested.defined() != exact.defined())
    return what + (tested.defined() ? ": defined, the float64 reference's is not" : ": undefined, the float64 "
                                                                                     "reference's is defined");
  if (!exact.defined()) return "";
  if (tested.shape() != exact.shape() || reference.shape() != exact.shape())
    return what + ": shape " + attn::shape_str(tested.shape()) + " (float32 reference " +
           attn::shape_str(reference.shape()) + "), float64 reference " + attn::shape_str(exact.shape());
  const double reference_error = max_error(reference, exact);
  const double bound = kAccuracyFactor * reference_error + floor;
  int failures = 0;
  for (int64_t n = 0; n < tested.numel(); ++n) {
    const double g = tested.flat(n), w = exact.flat(n);
    const bool ok = std::isfinite(w) ? std::abs(g - w) <= bound * std::max(1.0, std::abs(w))
                                     : ((std::isnan(w) && std::isnan(g)) || g == w);
    if (!ok && failures++ < 3)
      failure << what << ": element " << n << " is " << g << ", float64 reference " << w << ", float32 reference "
              << reference.flat(n) << " (bound " << bound << ")\n";
  }
  const double error = max_error(tested, exact);
  stats.worst_of_bound = std::max(stats.worst_of_bound, error / bound);
  stats.largest_bound = std::max(stats.largest_bound, bound);
  if (reference_error > 1e-6) stats.worst_ratio = std::max(stats.worst_ratio, error / reference_error);
  return failure.str();
}

// ---- the floors of the SDPA comparison ---------------------------------------------
// Why each term exists is told in tests/cpu/flash_fuzz_test.cpp's opening
// comment: `base` is the hand-written tests' tolerance; `recompute` the error
// of recomputing p = exp(s − lse) from the float32 lse; `cancel` the
// cancellation of dp − D summed over the rows (keys) a dK (dQ) element sums.
struct SdpaFloors {
  double forward = 0;  // output, lse, weights
  double grad = 0;     // d_value, d_float_mask, d_sinks
  double dq = 0, dk = 0;
};

constexpr double kRecomputeFactor = 4.0;
constexpr double kForwardFloor = 5e-6, kGradientFloor = 2e-5;

// query [B, Hq, Lq, Dk], key [B, Hkv, Lk, Dk], value [B, Hkv, Lk, Dv];
// exact_lse the float64 reference's lse.
inline SdpaFloors sdpa_floors(const attn::Tensor<float>& query, const attn::Tensor<float>& key,
                              const attn::Tensor<float>& value, const attn::SdpaOptions<float>& options,
                              const attn::Tensor<double>& exact_lse) {
  double max_lse = 1;
  for (int64_t n = 0; n < exact_lse.numel(); ++n)
    if (std::isfinite(exact_lse.flat(n))) max_lse = std::max(max_lse, std::abs(exact_lse.flat(n)));
  const double recompute = kRecomputeFactor * (1 + std::sqrt(static_cast<double>(query.size(3)))) * max_lse * 0x1p-24;
  const double Dv = static_cast<double>(value.size(3));
  const double scale = options.scale       ? *options.scale
                      : query.size(3) == 0 ? 1.0  // Dk = 0: the default scale is 1 (attn/sdpa.hpp)
                                           : 1.0 / std::sqrt(static_cast<double>(query.size(3)));
  auto cancel = [&](int64_t rows_summed) {
    return kRecomputeFactor * std::max(1.0, scale) * (1 + std::sqrt(Dv)) *
           std::sqrt(static_cast<double>(rows_summed)) * 0x1p-24;
  };
  SdpaFloors f;
  f.forward = std::max(kForwardFloor, recompute);
  f.grad = std::max(kGradientFloor, recompute);
  f.dq = std::max(f.grad, cancel(key.size(2)));                                   // Σ over keys
  f.dk = std::max(f.grad, cancel(query.size(2) * query.size(1) / std::max<int64_t>(key.size(1), 1)));  // over query rows
  return f;
}

}  // namespace attn_test
