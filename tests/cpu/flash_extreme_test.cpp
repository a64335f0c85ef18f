// The float32 fast path at extreme scores (issue 17): scale = 1e9 or 1e20 on
// inputs in [−1, 1], float masks of +1e10, 3e38, −1e30, against the float64
// reference path — forward, returned weights and backward of the fast SDPA,
// and the KV-cache decode step.
//
// The fast kernels compute e^{s − m} as 2^{s·c − m·log2 e} in one fused
// step; m·log2 e is the max rounded twice, off by a few ulp, which at
// |m| ~ 1e9 is hundreds in the exponent: the max's weight came out as inf
// (then inf / inf = NaN) or 0 (then 0 / 0). The reference and PyTorch
// subtract the max first and stay finite.
//
// What the float64 reference can be compared with: these inputs are chosen
// so that float32 represents the softmax as well as float64 does —
//   * a huge scale makes the softmax one-hot (the gap between the two best
//     scores, ~0.01·scale, is far above the scores' float32 rounding);
//   * a huge mask on one key per row makes it one-hot on that key;
//   * a huge mask on every key shifts every score alike, and both precisions
//     round q·k away beside it (ulp(1e30) = 1.4e14 in float64): uniform weights.
// Output, lse, weights and d_value are then equal to float rounding. d_query
// and d_key at scale 1e9 are scale × (the rounding noise of dP − D, ~1e-7):
// they are checked to be finite and that large at most, not equal.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>

#include "attn/kv_cache.hpp"
#include "attn/sdpa.hpp"

namespace {

using attn::SdpaBackend;
using attn::SdpaOptions;
using attn::Shape;
using attn::Tensor;

Tensor<float> uniform(const Shape& shape, uint32_t seed) {
  Tensor<float> t(shape);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (int64_t n = 0; n < t.numel(); ++n) t.flat(n) = dist(gen);
  return t;
}

// max |a − b| / max(1, |b|); infinite if a has a non-finite element b has not.
double rel_diff(const Tensor<float>& a, const Tensor<double>& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double x = a.flat(i), y = b.flat(i);
    if (!std::isfinite(x)) return INFINITY;
    worst = std::max(worst, std::fabs(x - y) / std::max(1.0, std::fabs(y)));
  }
  return worst;
}

double max_abs(const Tensor<float>& a) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::isfinite(a.flat(i)) ? std::max(m, std::fabs(double(a.flat(i)))) : INFINITY;
  return m;
}

struct Case {
  std::string name;
  double scale;      // 0: the default 1/sqrt(D)
  float mask_value;  // 0: no mask
  bool every_key;    // the mask on every key (else one key per row)
};

// Runs one case through the fast forward (with lse and weights) and
// backward, and the float64 reference, and compares them.
void check_sdpa(const Case& c, int64_t Lq, int64_t Lk) {
  SCOPED_TRACE(c.name + ", Lq " + std::to_string(Lq) + ", Lk " + std::to_string(Lk));
  const int64_t B = 1, H = 2, D = 16;
  const Tensor<float> q = uniform({B, H, Lq, D}, 1), k = uniform({B, H, Lk, D}, 2), v = uniform({B, H, Lk, D}, 3);
  const Tensor<float> dout = uniform({B, H, Lq, D}, 4);
  SdpaOptions<float> o;
  SdpaOptions<double> od;
  if (c.scale > 0) o.scale = od.scale = c.scale;
  if (c.mask_value != 0) {
    Tensor<float> m({Lq, Lk});
    for (int64_t i = 0; i < Lq; ++i)
      for (int64_t j = 0; j < Lk; ++j) m(i, j) = (c.every_key || j == (7 * i + 3) % Lk) ? c.mask_value : 0.0f;
    o.float_mask = m;
    od.float_mask = m.to<double>();
  }
  o.backend = SdpaBackend::Fast;
  o.return_lse = od.return_lse = true;
  o.return_weights = od.return_weights = true;
  const auto fast = attn::scaled_dot_product_attention(q, k, v, o);
  const auto ref = attn::scaled_dot_product_attention(q.to<double>(), k.to<double>(), v.to<double>(), od);
  EXPECT_LE(rel_diff(fast.output, ref.output), 1e-5);
  EXPECT_LE(rel_diff(fast.weights, ref.weights), 1e-5);
  // lse ~ the max score: equal to float32's relative precision.
  for (int64_t i = 0; i < fast.lse.numel(); ++i) {
    ASSERT_TRUE(std::isfinite(fast.lse.flat(i))) << "lse " << i;
    EXPECT_NEAR(fast.lse.flat(i), ref.lse.flat(i), 1e-5 * std::max(1.0, std::fabs(ref.lse.flat(i))));
  }
  // The same with the weights not asked for (the forward's other kernels).
  o.return_weights = false;
  const auto plain = attn::scaled_dot_product_attention(q, k, v, o);
  EXPECT_LE(rel_diff(plain.output, ref.output), 1e-5);

  const auto g = attn::scaled_dot_product_attention_backward(dout, q, k, v, plain.output, plain.lse, o);
  od.return_weights = false;
  const auto gd = attn::scaled_dot_product_attention_backward(dout.to<double>(), q.to<double>(), k.to<double>(),
                                                              v.to<double>(), ref.output, ref.lse, od);
  EXPECT_LE(rel_diff(g.d_value, gd.d_value), 1e-5);
  const double scale = c.scale > 0 ? c.scale : 0.25;
  if (scale < 1e3) {  // ordinary scale: dQ, dK compare too
    EXPECT_LE(rel_diff(g.d_query, gd.d_query), 1e-4);
    EXPECT_LE(rel_diff(g.d_key, gd.d_key), 1e-4);
  } else {  // finite, and no larger than scale × float32's rounding of dP − D
    EXPECT_LE(max_abs(g.d_query), scale * 1e-4);
    EXPECT_LE(max_abs(g.d_key), scale * 1e-4);
  }
}

const Case kCases[] = {
    {"scale 1e9", 1e9, 0, false},
    {"scale 1e20", 1e20, 0, false},
    {"mask +1e10 on one key", 0, 1e10f, false},
    {"mask +3e38 on one key", 0, 3e38f, false},
    {"mask -1e30 on every key", 0, -1e30f, true},
    {"mask +1e20 on every key", 0, 1e20f, true},
};

TEST(FlashExtremeScores, ForwardAndBackwardStayFiniteAndMatchFloat64) {
  // Lq 1: the short-query kernel; 3 and 70: the main one (70 rows: two
  // query blocks); Lk 600: two key blocks, the first full (plain), the
  // second partial.
  for (const Case& c : kCases)
    for (int64_t Lq : {1, 3, 70}) check_sdpa(c, Lq, 600);
}

TEST(FlashExtremeScores, DecodeStepStaysFiniteAndMatchesFloat64) {
  const int64_t H = 2, D = 16, L = 600;
  const Tensor<float> k = uniform({1, H, L, D}, 2), v = uniform({1, H, L, D}, 3);
  attn::KVCache cache({.num_layers = 1, .batch = 1, .num_kv_heads = H, .capacity = L, .head_dim = D});
  cache.append(0, k, v);
  for (double scale : {1e9, 1e20, 1e30})
    for (int64_t Lq : {1, 3}) {
      SCOPED_TRACE("scale " + std::to_string(scale) + ", Lq " + std::to_string(Lq));
      const Tensor<float> q = uniform({1, H, Lq, D}, 1);
      SdpaOptions<float> o;
      o.scale = scale;
      o.is_causal = true;
      o.causal_alignment = attn::CausalAlignment::BottomRight;
      const auto got = attn::attention_decode(q, cache, 0, o, /*split_keys=*/256);  // three chunks, merged
      SdpaOptions<double> od;
      od.scale = scale;
      od.is_causal = true;
      od.causal_alignment = attn::CausalAlignment::BottomRight;
      od.return_lse = true;
      const auto ref = attn::scaled_dot_product_attention(q.to<double>(), k.to<double>(), v.to<double>(), od);
      EXPECT_LE(rel_diff(got.output, ref.output), 1e-5);
      for (int64_t i = 0; i < got.lse.numel(); ++i)
        EXPECT_NEAR(got.lse.flat(i), ref.lse.flat(i), 1e-5 * std::fabs(ref.lse.flat(i)));
    }
}

}  // namespace
