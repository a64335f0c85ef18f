// Randomised differential test of the fast CPU path: random shapes, layouts
// and combinations of options, each run forward and backward on the fast path
// (SdpaBackend::Fast) and on the reference path (SdpaBackend::Reference, the
// specification), compared element by element. The other test files pick
// their cases by hand, option by option; this one finds the combinations
// nobody thought of (a window with a key-padding mask and sinks and dropout
// on a transposed layout, say).
//
// The suite runs kDefaultCases cases (a few seconds). A soak run sets
//   ATTN_FUZZ_CASES=5000 ctest --preset release -R FlashFuzz --output-on-failure
// and ATTN_FUZZ_SEED=<n> reruns case n alone (a failure prints its seed and
// its whole configuration).
//
// Tolerance. The float32 reference is not exact either, and how far both
// float32 paths may stray grows with the scores (a random scale up to 2 at
// Dk = 128 gives scores ~40x larger than the default 1/√Dk does). So both are
// measured against the reference path run in float64 on the same inputs:
// every output, lse and gradient element of the fast path must be within
//   (kAccuracyFactor · the float32 reference's largest error on that tensor
//    + recompute) · max(1, |value|)
// of the float64 value. The first term says the fast path is at most a few
// times less accurate than the plain loops (its blocked sums are usually more
// accurate). The second is the one error the fast path has by design and the
// reference has not: it recomputes each weight as p = exp(s − lse) from the
// float32 lse (FlashAttention's trick, no [Lq, Lk] matrix), where the
// reference divides by its own sum, so p carries the rounding of s and lse,
// ≈ (1 + √Dk)·|lse|·2⁻²⁴ (see flash_forward_test.cpp), and in the backward
// that error multiplies dP = dO·v, whose size grows as √Dv: recompute =
// kRecomputeFactor·(1 + √Dk)·max(1, max|lse|)·2⁻²⁴, times (1 + √Dv) for the
// gradients. (Example: a row that sees one key has p = 1 and so exactly zero
// dQ and dK in the reference; the fast path's p is 1 ± 2⁻²⁴ and its dQ, dK
// are ~1e-6.)
// The largest ratio (fast error) / (reference error) is printed at the end.
// A wrong mask, scale, block edge or missed term moves values by 1e-3 or
// more, outside the bound even at the largest scores drawn here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <sstream>
#include <string>

#include "attn/errors.hpp"
#include "attn/sdpa.hpp"

namespace {

using attn::CausalAlignment;
using attn::SdpaBackend;
using attn::SdpaOptions;
using attn::Shape;
using attn::Tensor;

constexpr int kDefaultCases = 100;
constexpr double kAccuracyFactor = 4.0, kRecomputeFactor = 4.0;

// Over all tensors and cases: the largest (fast path error) / (its bound),
// how close any case came to failing, and the largest (fast path error) /
// (float32 reference error), each error measured against float64 (tensors
// whose reference error is below 1e-6 are left out of the second: the ratio
// of two tiny roundings means nothing).
double g_worst_of_bound = 0, g_worst_ratio = 0;
struct ReportWorst : testing::Environment {
  void TearDown() override {
    std::printf("[ fuzz     ] largest fast-path error / its bound: %.3g; largest fast-path error / float32 "
                "reference error: %.3g\n", g_worst_of_bound, g_worst_ratio);
  }
};
const auto* const g_report = testing::AddGlobalTestEnvironment(new ReportWorst);

int64_t env_int(const char* name, int64_t fallback) {
  const char* s = std::getenv(name);
  return s && *s ? std::atoll(s) : fallback;
}

// One random case: the tensors and the options, and a description to print.
struct Case {
  Tensor<float> q, k, v, dout;
  SdpaOptions<float> options;
  bool need_mask_grad = false;
  std::string description;
};

Tensor<float> uniform(const Shape& shape, std::mt19937& gen, float lo = -1.0f, float hi = 1.0f) {
  Tensor<float> t(shape);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t n = 0; n < t.numel(); ++n) t.flat(n) = dist(gen);
  return t;
}

// A [B, H, L, D] tensor, either contiguous or a transposed view of a
// [B, L, H, D] one (the layout of a model's projections).
Tensor<float> activation(int64_t B, int64_t H, int64_t L, int64_t D, bool transposed, std::mt19937& gen) {
  if (!transposed) return uniform({B, H, L, D}, gen);
  return uniform({B, L, H, D}, gen).transpose(1, 2);
}

Case make_case(uint64_t seed) {
  std::mt19937 gen(static_cast<uint32_t>(seed * 2654435761u + 12345u));
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(gen); };
  auto chance = [&](double p) { return std::bernoulli_distribution(p)(gen); };
  // Lengths: mostly around a block (64 keys, ~64 query rows), sometimes tiny.
  auto length = [&] { return chance(0.2) ? pick(1, 4) : pick(1, 140); };
  const int64_t head_dims[] = {1, 3, 8, 16, 33, 64, 80, 128};

  Case c;
  std::ostringstream d;
  const int64_t B = pick(1, 2), Hkv = pick(1, 3), group = pick(1, 3), Hq = Hkv * group;
  const int64_t Lq = length(), Lk = length();
  const int64_t Dk = head_dims[pick(0, 7)], Dv = chance(0.5) ? Dk : head_dims[pick(0, 7)];
  const bool transposed = chance(0.3);
  c.q = activation(B, Hq, Lq, Dk, transposed, gen);
  c.k = activation(B, Hkv, Lk, Dk, transposed, gen);
  c.v = activation(B, Hkv, Lk, Dv, transposed, gen);
  c.dout = uniform({B, Hq, Lq, Dv}, gen);
  d << "B=" << B << " Hq=" << Hq << " Hkv=" << Hkv << " Lq=" << Lq << " Lk=" << Lk << " Dk=" << Dk << " Dv=" << Dv
    << (transposed ? " [B,L,H,D] views" : "");

  SdpaOptions<float>& o = c.options;
  o.enable_gqa = Hq != Hkv;
  // At most one of: causal, a bool mask, a float mask (PyTorch's rule).
  const Shape mask_shapes[] = {{Lq, Lk}, {B, 1, Lq, Lk}, {1, Hq, Lq, Lk}, {B, 1, 1, Lk}, {B, Hq, Lq, Lk}};
  switch (pick(0, 3)) {
    case 0:
      break;
    case 1:
      o.is_causal = true;
      o.causal_alignment = chance(0.5) ? CausalAlignment::TopLeft : CausalAlignment::BottomRight;
      d << " causal " << (o.causal_alignment == CausalAlignment::TopLeft ? "top-left" : "bottom-right");
      break;
    case 2: {
      const Shape& s = mask_shapes[pick(0, 4)];
      o.bool_mask = Tensor<bool>(s);
      const double p_true = chance(0.5) ? 0.9 : 0.5;
      for (int64_t n = 0; n < o.bool_mask.numel(); ++n) o.bool_mask.flat(n) = chance(p_true);
      d << " bool mask " << attn::shape_str(s) << " p(True)=" << p_true;
      break;
    }
    default: {
      const Shape& s = mask_shapes[pick(0, 4)];
      o.float_mask = uniform(s, gen);
      for (int64_t n = 0; n < o.float_mask.numel(); ++n)
        if (chance(0.1)) o.float_mask.flat(n) = -std::numeric_limits<float>::infinity();
      c.need_mask_grad = chance(0.5);
      d << " float mask " << attn::shape_str(s) << " (10% -inf)" << (c.need_mask_grad ? " with its gradient" : "");
      break;
    }
  }
  if (chance(0.3)) {
    o.window_left = chance(0.7) ? pick(0, 80) : -1;
    o.window_right = chance(0.5) ? pick(0, 20) : -1;
    if (!o.is_causal && chance(0.5))
      o.causal_alignment = CausalAlignment::BottomRight;  // the window's diagonal
    d << " window (" << o.window_left << ", " << o.window_right << ")";
  }
  if (chance(0.25)) {
    o.alibi_slopes = chance(0.5) ? uniform({Hq}, gen, 0.0f, 0.3f) : uniform({B, Hq}, gen, 0.0f, 0.3f);
    d << " ALiBi " << attn::shape_str(o.alibi_slopes.shape());
  }
  if (chance(0.25)) {
    o.softcap = std::uniform_real_distribution<double>(0.5, 5.0)(gen);
    d << " softcap " << o.softcap;
  }
  if (chance(0.25)) {
    o.sinks = uniform({Hq}, gen);
    d << " sinks";
  }
  if (chance(0.3)) {
    o.scale = std::uniform_real_distribution<double>(0.05, 2.0)(gen);
    d << " scale " << *o.scale;
  }
  if (chance(0.25)) {
    o.dropout_p = chance(0.5) ? 0.1 : 0.5;
    o.dropout_seed = gen();
    d << " dropout " << o.dropout_p << " seed " << o.dropout_seed;
  }
  o.return_weights = chance(0.2);
  if (o.return_weights) d << " returning weights";
  c.description = d.str();
  return c;
}

Tensor<double> to_double(const Tensor<float>& t) {
  if (!t.defined()) return {};
  Tensor<double> d(t.shape());
  for (int64_t n = 0; n < t.numel(); ++n) d.flat(n) = t.flat(n);
  return d;
}

SdpaOptions<double> to_double(const SdpaOptions<float>& o) {
  SdpaOptions<double> d;
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
  d.backend = SdpaBackend::Reference;
  return d;
}

// The largest |x − exact| / max(1, |exact|) over finite elements.
double max_error(const Tensor<float>& x, const Tensor<double>& exact) {
  double worst = 0;
  for (int64_t n = 0; n < x.numel(); ++n)
    if (std::isfinite(exact.flat(n)) && std::isfinite(x.flat(n)))
      worst = std::max(worst, std::abs(x.flat(n) - exact.flat(n)) / std::max(1.0, std::abs(exact.flat(n))));
  return worst;
}

// Checks the fast path's tensor element by element against float64, with
// the bound above; NaN must meet NaN and ±∞ the same ±∞.
void expect_accurate(const Tensor<float>& fast, const Tensor<float>& reference, const Tensor<double>& exact,
                     double recompute, const std::string& what) {
  ASSERT_EQ(fast.defined(), exact.defined()) << what;
  if (!exact.defined()) return;
  ASSERT_EQ(fast.shape(), exact.shape()) << what;
  const double reference_error = max_error(reference, exact);
  const double bound = kAccuracyFactor * reference_error + recompute;
  int failures = 0;
  for (int64_t n = 0; n < fast.numel(); ++n) {
    const double g = fast.flat(n), w = exact.flat(n);
    const bool ok = std::isfinite(w) ? std::abs(g - w) <= bound * std::max(1.0, std::abs(w))
                                     : ((std::isnan(w) && std::isnan(g)) || g == w);
    if (!ok && failures++ < 3)
      ADD_FAILURE() << what << ": element " << n << " is " << g << ", float64 reference " << w
                    << ", float32 reference " << reference.flat(n) << " (bound " << bound << ")";
  }
  g_worst_of_bound = std::max(g_worst_of_bound, max_error(fast, exact) / bound);
  if (reference_error > 1e-6) g_worst_ratio = std::max(g_worst_ratio, max_error(fast, exact) / reference_error);
}

void run_case(uint64_t seed) {
  const Case c = make_case(seed);
  SCOPED_TRACE("case " + std::to_string(seed) + ": " + c.description + "  (rerun: ATTN_FUZZ_SEED=" +
               std::to_string(seed) + ")");
  SdpaOptions<float> ref_options = c.options, fast_options = c.options;
  ref_options.backend = SdpaBackend::Reference;
  fast_options.backend = SdpaBackend::Fast;
  const SdpaOptions<double> exact_options = to_double(c.options);
  const Tensor<double> q64 = to_double(c.q), k64 = to_double(c.k), v64 = to_double(c.v), dout64 = to_double(c.dout);

  // The fast path must take every such call (no silent fallback).
  ASSERT_EQ(attn::sdpa_selected_backend(c.q, c.k, c.v, fast_options), SdpaBackend::Fast);
  ASSERT_EQ(attn::sdpa_selected_backend(c.q, c.k, c.v, fast_options, true, c.need_mask_grad), SdpaBackend::Fast);

  const auto exact = attn::scaled_dot_product_attention(q64, k64, v64, exact_options);
  const auto ref = attn::scaled_dot_product_attention(c.q, c.k, c.v, ref_options);
  const auto fast = attn::scaled_dot_product_attention(c.q, c.k, c.v, fast_options);
  double max_lse = 1;
  for (int64_t n = 0; n < exact.lse.numel(); ++n)
    if (std::isfinite(exact.lse.flat(n))) max_lse = std::max(max_lse, std::abs(exact.lse.flat(n)));
  const double recompute = kRecomputeFactor * (1 + std::sqrt(static_cast<double>(c.q.size(3)))) * max_lse * 0x1p-24;
  expect_accurate(fast.output, ref.output, exact.output, recompute, "output");
  expect_accurate(fast.lse, ref.lse, exact.lse, recompute, "lse");
  if (c.options.return_weights) expect_accurate(fast.weights, ref.weights, exact.weights, recompute, "weights");

  // Each backward from its own precision's reference forward.
  const auto exact_grad = attn::scaled_dot_product_attention_backward(dout64, q64, k64, v64, exact.output, exact.lse,
                                                                      exact_options, c.need_mask_grad);
  const auto ref_grad = attn::scaled_dot_product_attention_backward(c.dout, c.q, c.k, c.v, ref.output, ref.lse,
                                                                    ref_options, c.need_mask_grad);
  const auto fast_grad = attn::scaled_dot_product_attention_backward(c.dout, c.q, c.k, c.v, ref.output, ref.lse,
                                                                     fast_options, c.need_mask_grad);
  const double grad_recompute = recompute * (1 + std::sqrt(static_cast<double>(c.v.size(3))));
  expect_accurate(fast_grad.d_query, ref_grad.d_query, exact_grad.d_query, grad_recompute, "d_query");
  expect_accurate(fast_grad.d_key, ref_grad.d_key, exact_grad.d_key, grad_recompute, "d_key");
  expect_accurate(fast_grad.d_value, ref_grad.d_value, exact_grad.d_value, grad_recompute, "d_value");
  expect_accurate(fast_grad.d_float_mask, ref_grad.d_float_mask, exact_grad.d_float_mask, grad_recompute, "d_float_mask");
  expect_accurate(fast_grad.d_sinks, ref_grad.d_sinks, exact_grad.d_sinks, grad_recompute, "d_sinks");
}

TEST(FlashFuzz, RandomCombinationsMatchTheReference) {
  const int64_t only = env_int("ATTN_FUZZ_SEED", -1);
  if (only >= 0) {
    run_case(static_cast<uint64_t>(only));
    return;
  }
  const int64_t cases = env_int("ATTN_FUZZ_CASES", kDefaultCases);
  for (int64_t seed = 0; seed < cases && !HasFatalFailure(); ++seed) {
    run_case(static_cast<uint64_t>(seed));
    if (cases > 200 && (seed + 1) % 500 == 0) std::printf("[ fuzz     ] %lld / %lld cases\n", (long long)seed + 1, (long long)cases);
  }
  std::printf("[ fuzz     ] %lld random cases, forward and backward, fast path vs reference\n", (long long)cases);
}

}  // namespace
