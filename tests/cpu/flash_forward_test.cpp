// The fast CPU forward (src/cpu/flash_attention.*) against its specification,
// the reference path (src/reference/sdpa.cpp, the public
// attn::scaled_dot_product_attention): every option, awkward sizes, every SIMD
// target this CPU runs (the portable EMU128 fallback included), thread counts.
//
// Tolerance. Both paths compute in float32 (ε = 2⁻²⁴ ≈ 6e-8) but round in
// different orders: the reference sums q·k and Σ w·v left to right, the fast
// path in SIMD lanes and register tiles, with the running-max rescaling of
// the online softmax and exp from a polynomial (relative error ≤ 2e-7). With
// inputs in [−1, 1], a score's rounding error is about √Dk·ε·|s| (≈ 1e-6 at
// Dk = 256), a weight inherits it as a relative error, and the output — a
// convex combination of values in [−1, 1] — is off by about as much plus a
// few ε per summed term. So the check is |fast − ref| <= kTol·max(1, |ref|)
// with kTol = 5e-6: the largest error measured over this file is 5e-7 (it is
// printed at the end of the run), and any real mistake — a wrong scale, mask
// or block boundary — moves outputs by 1e-3 or more.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "attn/sdpa.hpp"
#include "reference/sdpa.hpp"  // src/reference: the specification the fast path is held to
#include "attn/threading.hpp"
#include "cpu/dropout_hash.hpp"
#include "cpu/flash_attention.hpp"

namespace {

using attn::CausalAlignment;
using attn::SdpaOptions;
using attn::Shape;
using attn::Tensor;

constexpr double kTol = 5e-6;
constexpr float kInf = std::numeric_limits<float>::infinity();

// Uniform values in [lo, hi) from a fixed seed: independent of the code under test.
Tensor<float> random_tensor(const Shape& shape, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  Tensor<float> t(shape);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t n = 0; n < t.numel(); ++n) t.flat(n) = dist(gen);
  return t;
}

Tensor<bool> random_mask(const Shape& shape, uint32_t seed, double p_true) {
  Tensor<bool> t(shape);
  std::mt19937 gen(seed);
  std::bernoulli_distribution dist(p_true);
  for (int64_t n = 0; n < t.numel(); ++n) t.flat(n) = dist(gen);
  return t;
}

struct Inputs {
  Tensor<float> q, k, v;
};

Inputs random_inputs(int64_t B, int64_t Hq, int64_t Hkv, int64_t Lq, int64_t Lk, int64_t Dk, int64_t Dv,
                     uint32_t seed = 1) {
  return {random_tensor({B, Hq, Lq, Dk}, seed), random_tensor({B, Hkv, Lk, Dk}, seed + 1),
          random_tensor({B, Hkv, Lk, Dv}, seed + 2)};
}

// The largest difference seen in any comparison, printed at the end so the
// tolerance above can be checked against what is measured.
double g_worst_error = 0;
struct ReportWorstError : testing::Environment {
  void TearDown() override { std::printf("[ flash    ] largest |fast - reference| / max(1, |reference|) seen: %.3g\n", g_worst_error); }
};
const auto* const g_report = testing::AddGlobalTestEnvironment(new ReportWorstError);

// Compares two tensors of the same shape; a NaN must meet a NaN, ±∞ the same ±∞.
// `record`: count this comparison in the worst error printed at the end
// (weights, whose bound scales with |lse|, are not).
void expect_close(const Tensor<float>& got, const Tensor<float>& want, double tol, const std::string& what,
                  bool record = true) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  int failures = 0;
  double worst = 0;
  for (int64_t n = 0; n < got.numel() && failures < 5; ++n) {
    const double g = got.flat(n), w = want.flat(n);
    bool ok;
    if (std::isnan(w) || std::isinf(w))
      ok = (std::isnan(w) && std::isnan(g)) || g == w;
    else
      ok = std::abs(g - w) <= tol * std::max(1.0, std::abs(w));
    if (!ok) {
      ADD_FAILURE() << what << ": element " << n << " is " << g << ", reference " << w;
      ++failures;
    }
    if (std::isfinite(w) && std::isfinite(g)) worst = std::max(worst, std::abs(g - w) / std::max(1.0, std::abs(w)));
  }
  if (record) g_worst_error = std::max(g_worst_error, worst);
}

// The fast forward on the current target (and its weights pass when asked).
attn::SdpaResult<float> fast(const Inputs& in, const SdpaOptions<float>& o) {
  attn::SdpaResult<float> r;
  attn::cpu::flash_attention_forward(in.q, in.k, in.v, o, r.output, r.lse, o.return_weights ? &r.weights : nullptr);
  return r;
}

// Fast vs reference on every SIMD target this CPU supports: output and lse,
// then the same call returning the attention weights (the second pass).
// A weight is recomputed as p = exp(s − lse) (times the dropout factor): an
// absolute error in s − lse is a relative error in p. The float32 lse is
// rounded to half an ulp of |lse|, and the score, summed over Dk products in a
// different order than the reference's, is off by ~√Dk·ε·|s| with |s| <= |lse|
// for the keys that carry weight (the reference divides by its own sum and
// has neither term). Hence kTol + (1 + √Dk)·max|lse|·2⁻²⁴ for weights (p <= 1
// times the dropout scale): ~1e-3 when scores reach 3e3
// (HugeScoresDoNotOverflow), ~kTol when |lse| is a few units.
void check_against_reference(const Inputs& in, const SdpaOptions<float>& options, const std::string& what) {
  ASSERT_TRUE(attn::cpu::flash_supports(in.q, in.k, in.v, options)) << what;
  SdpaOptions<float> with_weights = options;
  with_weights.return_weights = true;
  const auto ref = attn::reference::scaled_dot_product_attention(in.q, in.k, in.v, with_weights);
  for (const std::string& target : attn::cpu::available_simd_targets()) {
    ASSERT_TRUE(attn::cpu::force_simd_target(target));
    for (const SdpaOptions<float>& o : {options, with_weights}) {
      const auto got = fast(in, o);
      const std::string tag = what + " [" + target + (o.return_weights ? ", weights pass]" : "]");
      expect_close(got.output, ref.output, kTol, tag + " output");
      expect_close(got.lse, ref.lse, kTol, tag + " lse");
      if (o.return_weights) {
        double max_lse = 0;
        for (int64_t n = 0; n < ref.lse.numel(); ++n)
          if (std::isfinite(ref.lse.flat(n))) max_lse = std::max(max_lse, std::abs(static_cast<double>(ref.lse.flat(n))));
        const double dropout_scale = 1.0 / (1.0 - o.dropout_p);
        const double score_terms = 1.0 + std::sqrt(static_cast<double>(in.q.size(3)));
        expect_close(got.weights, ref.weights, (kTol + score_terms * max_lse * 0x1p-24) * dropout_scale,
                     tag + " weights", /*record=*/false);
      }
    }
  }
  attn::cpu::force_simd_target("");
}

// ---- the SIMD targets ------------------------------------------------------------

TEST(FlashForward, PortableTargetIsAvailableAndCanBeForced) {
  const auto targets = attn::cpu::available_simd_targets();
  ASSERT_FALSE(targets.empty());
  // The portable fallback (plain C++, no intrinsics): EMU128, or SCALAR where
  // Highway marks EMU128 broken for the compiler (GCC 12 here).
  const std::string portable = targets.back();
  EXPECT_TRUE(portable == "SCALAR" || portable == "EMU128") << portable;
  ASSERT_TRUE(attn::cpu::force_simd_target(portable));
  EXPECT_EQ(attn::cpu::current_simd_target(), portable);
  EXPECT_FALSE(attn::cpu::force_simd_target("NO_SUCH_TARGET"));
  ASSERT_TRUE(attn::cpu::force_simd_target(""));
  EXPECT_EQ(attn::cpu::current_simd_target(), targets.front());
}

// ---- the dropout hash replica ------------------------------------------------------

TEST(FlashForward, DropoutHashIsDropoutKeep) {
  std::mt19937_64 gen(7);
  for (double p : {0.0, 1e-9, 0.1, 0.5, 0.9, 0.999999}) {
    const uint64_t threshold = attn::cpu::dropout_threshold(p);
    for (int n = 0; n < 2000; ++n) {
      const uint64_t seed = gen();
      const int64_t b = gen() % 8, h = gen() % 64, i = gen() % 100000, j = gen() % 100000;
      const bool want = attn::dropout_keep(seed, b, h, i, j, p);
      const bool got = p <= 0.0 || attn::cpu::dropout_keep_j(attn::cpu::dropout_row_state(seed, b, h, i), j, threshold);
      ASSERT_EQ(got, want) << "p=" << p << " seed=" << seed << " (" << b << ", " << h << ", " << i << ", " << j << ")";
    }
  }
}

// ---- agreement with the reference, option by option ----------------------------------

TEST(FlashForward, HeadDims) {
  // Lq, Lk not multiples of the key block (64) or of the register tile (6/12 rows).
  for (int64_t d : {1, 3, 8, 64, 80, 128, 256}) {
    const Inputs in = random_inputs(1, 2, 2, 37, 70, d, d, static_cast<uint32_t>(d));
    check_against_reference(in, {}, "d=" + std::to_string(d));
  }
}

TEST(FlashForward, AwkwardLengths) {
  const std::vector<std::pair<int64_t, int64_t>> lengths = {{1, 1}, {1, 200}, {200, 1}, {64, 64},
                                                            {65, 63}, {130, 129}, {7, 300}};
  for (auto [Lq, Lk] : lengths) {
    const Inputs in = random_inputs(2, 3, 3, Lq, Lk, 16, 16, static_cast<uint32_t>(Lq * 1000 + Lk));
    const std::string name = "Lq=" + std::to_string(Lq) + " Lk=" + std::to_string(Lk);
    check_against_reference(in, {}, name);
    SdpaOptions<float> causal;
    causal.is_causal = true;
    check_against_reference(in, causal, name + " causal");
  }
}

TEST(FlashForward, CausalBothAlignments) {
  for (auto [Lq, Lk] : std::vector<std::pair<int64_t, int64_t>>{{100, 100}, {50, 150}, {150, 50}}) {
    const Inputs in = random_inputs(1, 2, 2, Lq, Lk, 32, 24, 11);
    for (auto align : {CausalAlignment::TopLeft, CausalAlignment::BottomRight}) {
      SdpaOptions<float> o;
      o.is_causal = true;
      o.causal_alignment = align;
      check_against_reference(in, o, "causal Lq=" + std::to_string(Lq) + " Lk=" + std::to_string(Lk) +
                                         (align == CausalAlignment::TopLeft ? " top-left" : " bottom-right"));
    }
  }
}

TEST(FlashForward, SlidingWindow) {
  const Inputs in = random_inputs(1, 2, 2, 150, 170, 16, 16, 12);
  const std::vector<std::pair<int64_t, int64_t>> windows = {{0, 0}, {5, -1}, {-1, 3}, {70, 10}, {100, 0}, {3, 200}};
  for (auto [left, right] : windows)
    for (bool causal : {false, true})
      for (auto align : {CausalAlignment::TopLeft, CausalAlignment::BottomRight}) {
        SdpaOptions<float> o;
        o.window_left = left;
        o.window_right = right;
        o.is_causal = causal;
        o.causal_alignment = align;
        check_against_reference(in, o, "window (" + std::to_string(left) + ", " + std::to_string(right) + ")" +
                                           (causal ? " causal" : "") +
                                           (align == CausalAlignment::TopLeft ? "" : " bottom-right"));
      }
}

TEST(FlashForward, AlibiSoftcapScale) {
  const Inputs in = random_inputs(2, 4, 4, 40, 90, 16, 16, 13);
  SdpaOptions<float> alibi_h;
  alibi_h.alibi_slopes = Tensor<float>({4}, {0.5f, 0.25f, 0.125f, 0.0625f});
  check_against_reference(in, alibi_h, "alibi [Hq]");
  SdpaOptions<float> alibi_bh;
  alibi_bh.alibi_slopes = random_tensor({2, 4}, 5, 0.0f, 0.5f);
  alibi_bh.is_causal = true;
  alibi_bh.causal_alignment = CausalAlignment::BottomRight;
  check_against_reference(in, alibi_bh, "alibi [B, Hq] bottom-right causal");
  SdpaOptions<float> cap;
  cap.softcap = 0.7;  // small enough to bend the scores (|s| reaches ~2 with scale 3)
  cap.scale = 3.0;
  check_against_reference(in, cap, "softcap 0.7, scale 3");
  SdpaOptions<float> scale;
  scale.scale = 0.01;
  check_against_reference(in, scale, "scale 0.01");
}

TEST(FlashForward, Sinks) {
  const Inputs in = random_inputs(1, 3, 3, 80, 40, 16, 16, 14);
  SdpaOptions<float> o;
  o.sinks = Tensor<float>({3}, {0.5f, -2.0f, 3.0f});
  check_against_reference(in, o, "sinks");
  // Bottom-right causal with Lq > Lk: the first 40 rows see no key, so their
  // output is 0 and their lse is the sink logit.
  o.is_causal = true;
  o.causal_alignment = CausalAlignment::BottomRight;
  check_against_reference(in, o, "sinks, rows that see no key");
  o.sinks = Tensor<float>({3}, {-kInf, 0.0f, 1.0f});
  check_against_reference(in, o, "a −inf sink");
}

TEST(FlashForward, BoolMaskBroadcasts) {
  const int64_t B = 2, H = 3, Lq = 45, Lk = 77;
  const Inputs in = random_inputs(B, H, H, Lq, Lk, 16, 16, 15);
  const std::vector<Shape> shapes = {{Lq, Lk}, {B, 1, Lq, Lk}, {1, H, 1, Lk}, {B, H, Lq, Lk}, {Lk}};
  uint32_t seed = 100;
  for (const Shape& shape : shapes) {
    SdpaOptions<float> o;
    o.bool_mask = random_mask(shape, seed++, 0.6);
    check_against_reference(in, o, "bool mask " + attn::shape_str(shape));
  }
  // Rows with every key hidden give 0 and lse −∞.
  SdpaOptions<float> o;
  o.bool_mask = random_mask({Lq, Lk}, 9, 0.5);
  for (int64_t j = 0; j < Lk; ++j) o.bool_mask(3, j) = o.bool_mask(40, j) = false;
  check_against_reference(in, o, "bool mask with empty rows");
  // A strided (transposed) mask.
  o.bool_mask = random_mask({Lk, Lq}, 10, 0.7).transpose(0, 1);
  check_against_reference(in, o, "transposed bool mask");
}

TEST(FlashForward, FloatMaskBroadcasts) {
  const int64_t B = 2, H = 2, Lq = 33, Lk = 66;
  const Inputs in = random_inputs(B, H, H, Lq, Lk, 16, 16, 16);
  SdpaOptions<float> o;
  o.float_mask = random_tensor({1, H, Lq, Lk}, 17, -2.0f, 2.0f);
  for (int64_t j = 0; j < Lk; j += 3) o.float_mask(0, 1, 5, j) = -kInf;
  for (int64_t j = 0; j < Lk; ++j) o.float_mask(0, 0, 7, j) = -kInf;  // an empty row
  check_against_reference(in, o, "float mask [1, H, Lq, Lk]");
  o.float_mask = random_tensor({B, 1, 1, Lk}, 18, -1.0f, 0.0f);
  check_against_reference(in, o, "float mask [B, 1, 1, Lk]");
}

TEST(FlashForward, GroupedQueryAttention) {
  for (auto [Hq, Hkv] : std::vector<std::pair<int64_t, int64_t>>{{4, 2}, {6, 1}, {8, 8}}) {
    const Inputs in = random_inputs(2, Hq, Hkv, 50, 70, 24, 40, 19);
    SdpaOptions<float> o;
    o.enable_gqa = true;
    check_against_reference(in, o, "GQA " + std::to_string(Hq) + "/" + std::to_string(Hkv));
    o.is_causal = true;
    check_against_reference(in, o, "GQA causal " + std::to_string(Hq) + "/" + std::to_string(Hkv));
  }
}

TEST(FlashForward, DifferentKeyAndValueWidths) {
  for (auto [Dk, Dv] : std::vector<std::pair<int64_t, int64_t>>{{64, 8}, {8, 64}, {5, 129}, {128, 1}}) {
    const Inputs in = random_inputs(1, 2, 2, 30, 90, Dk, Dv, 20);
    check_against_reference(in, {}, "Dk=" + std::to_string(Dk) + " Dv=" + std::to_string(Dv));
  }
}

TEST(FlashForward, Dropout) {
  const Inputs in = random_inputs(2, 2, 1, 70, 90, 16, 16, 21);
  SdpaOptions<float> o;
  o.enable_gqa = true;
  o.dropout_p = 0.3;
  o.dropout_seed = 1234;
  check_against_reference(in, o, "dropout 0.3");
  o.is_causal = true;
  o.dropout_p = 0.9;
  check_against_reference(in, o, "dropout 0.9 causal");
}

TEST(FlashForward, EverythingAtOnce) {
  const int64_t B = 2, Hq = 4, Hkv = 2, Lq = 70, Lk = 100;
  const Inputs in = random_inputs(B, Hq, Hkv, Lq, Lk, 20, 12, 22);
  SdpaOptions<float> o;
  o.enable_gqa = true;
  o.float_mask = random_tensor({Lq, Lk}, 23, -1.0f, 1.0f);
  o.alibi_slopes = random_tensor({Hq}, 24, 0.0f, 0.3f);
  o.softcap = 2.0;
  o.sinks = random_tensor({Hq}, 25);
  o.window_left = 30;
  o.window_right = 5;
  o.causal_alignment = CausalAlignment::BottomRight;
  o.dropout_p = 0.2;
  o.dropout_seed = 99;
  o.scale = 0.4;
  check_against_reference(in, o, "all options");
}

TEST(FlashForward, StridedLayouts) {
  // [B, L, H, D] tensors viewed as [B, H, L, D] (PyTorch's usual layout), and
  // a key/value whose last dim is not contiguous.
  const int64_t B = 2, H = 3, Lq = 40, Lk = 75, D = 16;
  Inputs in;
  in.q = random_tensor({B, Lq, H, D}, 30).transpose(1, 2);
  in.k = random_tensor({B, Lk, H, D}, 31).transpose(1, 2);
  in.v = random_tensor({B, H, D, Lk}, 32).transpose(2, 3);
  SdpaOptions<float> o;
  o.is_causal = true;
  o.causal_alignment = CausalAlignment::BottomRight;
  check_against_reference(in, o, "strided");
  // Output written through strides too.
  const auto ref = attn::reference::scaled_dot_product_attention(in.q, in.k, in.v, o);
  Tensor<float> out = Tensor<float>({B, Lq, H, D}).transpose(1, 2), lse;
  attn::cpu::flash_attention_forward(in.q, in.k, in.v, o, out, lse);
  expect_close(out, ref.output, kTol, "strided output");
}

TEST(FlashForward, EmptySequences) {
  for (auto [Lq, Lk] : std::vector<std::pair<int64_t, int64_t>>{{0, 5}, {5, 0}, {0, 0}}) {
    const Inputs in = random_inputs(1, 2, 2, Lq, Lk, 8, 8, 40);
    check_against_reference(in, {}, "Lq=" + std::to_string(Lq) + " Lk=" + std::to_string(Lk));
    SdpaOptions<float> o;
    o.sinks = Tensor<float>({2}, {1.0f, 2.0f});
    check_against_reference(in, o, "sinks Lq=" + std::to_string(Lq) + " Lk=" + std::to_string(Lk));
  }
}

TEST(FlashForward, DecodingRows) {
  // Lq·(Hq/Hkv) <= 8 takes the decoding path (keys and values read in place,
  // no packing): KV-cache decoding, plain and with every option.
  for (auto [Lq, Hq, Hkv] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 2, 2}, {1, 8, 2}, {2, 4, 1}, {8, 1, 1}}) {
    const Inputs in = random_inputs(2, Hq, Hkv, Lq, 150, 24, 20, static_cast<uint32_t>(Lq * 100 + Hq));
    const std::string name = "decode Lq=" + std::to_string(Lq) + " GQA " + std::to_string(Hq) + "/" + std::to_string(Hkv);
    SdpaOptions<float> o;
    o.enable_gqa = true;
    check_against_reference(in, o, name);
    o.is_causal = true;
    o.causal_alignment = CausalAlignment::BottomRight;
    check_against_reference(in, o, name + " causal bottom-right");
    o.window_left = 40;
    o.alibi_slopes = random_tensor({Hq}, 3, 0.0f, 0.2f);
    o.sinks = random_tensor({Hq}, 4);
    o.softcap = 3.0;
    o.dropout_p = 0.25;
    check_against_reference(in, o, name + " window, ALiBi, sinks, softcap, dropout");
    SdpaOptions<float> masked;
    masked.enable_gqa = true;
    masked.bool_mask = random_mask({2, 1, Lq, 150}, 5, 0.7);
    check_against_reference(in, masked, name + " bool mask");
    masked.bool_mask = Tensor<bool>();
    masked.float_mask = random_tensor({Lq, 150}, 6, -1.0f, 1.0f);
    check_against_reference(in, masked, name + " float mask");
  }
  // Hidden NaN/Inf values are never read on this path either.
  Inputs in = random_inputs(1, 4, 2, 1, 100, 16, 16, 7);
  in.v = in.v.clone();
  for (int64_t x = 0; x < 16; ++x) in.v(0, 1, 99, x) = std::numeric_limits<float>::quiet_NaN();
  SdpaOptions<float> o;
  o.enable_gqa = true;
  o.bool_mask = Tensor<bool>::full({100}, true);
  o.bool_mask(99) = false;
  check_against_reference(in, o, "decode, hidden NaN value");
}

// ---- edge cases the design fixes -------------------------------------------------------

TEST(FlashForward, HiddenNanAndInfNeverLeak) {
  const Inputs clean = random_inputs(1, 2, 2, 70, 70, 16, 16, 50);
  Inputs in{clean.q, clean.k.clone(), clean.v.clone()};
  // Poison keys and values in the causal future of most rows and behind a mask.
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t x = 0; x < 16; ++x) {
      in.k(0, h, 69, x) = std::numeric_limits<float>::quiet_NaN();
      in.v(0, h, 69, x) = std::numeric_limits<float>::quiet_NaN();
      in.k(0, h, 68, x) = kInf;
      in.v(0, h, 68, x) = -kInf;
    }
  SdpaOptions<float> causal;
  causal.is_causal = true;
  const auto ref = attn::reference::scaled_dot_product_attention(in.q, in.k, in.v, causal);
  for (const std::string& target : attn::cpu::available_simd_targets()) {
    ASSERT_TRUE(attn::cpu::force_simd_target(target));
    const auto got = fast(in, causal);
    // Rows 0..67 never see keys 68, 69: finite and equal to the reference.
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t i = 0; i < 68; ++i)
        for (int64_t x = 0; x < 16; ++x) {
          ASSERT_TRUE(std::isfinite(got.output(0, h, i, x))) << target << " row " << i;
          ASSERT_NEAR(got.output(0, h, i, x), ref.output(0, h, i, x), kTol) << target;
        }
  }
  // The same keys hidden by a bool mask and by a −∞ float mask, for every row.
  SdpaOptions<float> bmask, fmask;
  bmask.bool_mask = Tensor<bool>::full({70}, true);
  bmask.bool_mask(68) = bmask.bool_mask(69) = false;
  fmask.float_mask = Tensor<float>({70});
  fmask.float_mask(68) = fmask.float_mask(69) = -kInf;
  for (const auto* o : {&bmask, &fmask}) {
    const auto want = attn::reference::scaled_dot_product_attention(clean.q, clean.k.slice(2, 0, 68), clean.v.slice(2, 0, 68));
    for (const std::string& target : attn::cpu::available_simd_targets()) {
      ASSERT_TRUE(attn::cpu::force_simd_target(target));
      const auto got = fast(in, *o);
      expect_close(got.output, want.output, kTol, target + " masked poison");
    }
  }
  attn::cpu::force_simd_target("");
}

TEST(FlashForward, RowsThatSeeNoKey) {
  // Bottom-right causal with Lq > Lk: rows 0..Lq−Lk−1 see nothing.
  const Inputs in = random_inputs(1, 1, 1, 90, 20, 8, 8, 51);
  SdpaOptions<float> o;
  o.is_causal = true;
  o.causal_alignment = CausalAlignment::BottomRight;
  const auto got = fast(in, o);
  for (int64_t i = 0; i < 70; ++i) {
    EXPECT_EQ(got.lse(0, 0, i), -kInf) << i;
    for (int64_t x = 0; x < 8; ++x) EXPECT_EQ(got.output(0, 0, i, x), 0.0f) << i;
  }
  EXPECT_TRUE(std::isfinite(got.lse(0, 0, 70)));
}

TEST(FlashForward, HugeScoresDoNotOverflow) {
  // Scores around ±3e4: exp would overflow without the running max.
  const Inputs base = random_inputs(1, 2, 2, 50, 80, 32, 32, 52);
  Inputs in{base.q.clone(), base.k, base.v};
  for (int64_t n = 0; n < in.q.numel(); ++n) in.q.flat(n) *= 5000.0f;
  check_against_reference(in, {}, "huge scores");
}

TEST(FlashForward, VisibleNanBehavesLikeTheReference) {
  // The reference's max skips NaN scores: a row whose scores are all NaN has
  // max −∞ and counts as seeing no key (0, lse −∞); a row with some NaN
  // scores has a NaN sum, so NaN output and lse.
  const Inputs base = random_inputs(1, 1, 1, 20, 130, 8, 8, 53);
  Inputs in{base.q.clone(), base.k.clone(), base.v};
  in.q(0, 0, 4, 2) = std::numeric_limits<float>::quiet_NaN();    // row 4: every score NaN
  in.k(0, 0, 100, 1) = std::numeric_limits<float>::quiet_NaN();  // key 100: one NaN score per row
  SdpaOptions<float> o;
  o.bool_mask = Tensor<bool>::full({20, 130}, true);
  for (int64_t j = 90; j < 130; ++j) o.bool_mask(7, j) = false;  // row 7 does not see key 100
  check_against_reference(in, o, "NaN scores");
  // With dropout the returned weights of a NaN row stay NaN where dropout
  // dropped them (p·0 = NaN, as the reference and torch give); the weights
  // pass wrote 0 there. Found by fuzz/sdpa_fuzzer.cpp.
  o.dropout_p = 0.5;
  o.dropout_seed = 3;
  check_against_reference(in, o, "NaN scores, dropout");
}

// ---- threads and workspaces ------------------------------------------------------------

TEST(FlashForward, OneAndTwoThreadsAreBitIdentical) {
  const Inputs in = random_inputs(2, 4, 2, 200, 230, 64, 48, 60);
  SdpaOptions<float> o;
  o.enable_gqa = true;
  o.is_causal = true;
  o.dropout_p = 0.1;
  const int before = attn::get_num_threads();
  attn::set_num_threads(1);
  EXPECT_EQ(attn::get_num_threads(), 1);
  const auto one = fast(in, o);
  attn::set_num_threads(2);
  const auto two = fast(in, o);
  attn::set_num_threads(3);  // more threads than cores: still the same bits
  const auto three = fast(in, o);
  attn::set_num_threads(0);
  EXPECT_EQ(attn::get_num_threads(), before);
  for (const auto* r : {&two, &three}) {
    ASSERT_EQ(r->output.numel(), one.output.numel());
    EXPECT_EQ(std::memcmp(r->output.data(), one.output.data(), sizeof(float) * one.output.numel()), 0);
    EXPECT_EQ(std::memcmp(r->lse.data(), one.lse.data(), sizeof(float) * one.lse.numel()), 0);
  }
}

TEST(FlashForward, WorkspaceReuseAcrossShapes) {
  // A big call, a small one, the big one again: the reused workspace must not
  // leak the previous call's data into the next.
  const Inputs big = random_inputs(1, 2, 2, 130, 140, 32, 32, 61);
  const Inputs small = random_inputs(1, 1, 1, 5, 7, 3, 5, 62);
  const auto first = fast(big, {});
  const auto s = fast(small, {});
  const auto again = fast(big, {});
  EXPECT_EQ(std::memcmp(first.output.data(), again.output.data(), sizeof(float) * first.output.numel()), 0);
  expect_close(s.output, attn::reference::scaled_dot_product_attention(small.q, small.k, small.v).output, kTol, "small");
}

TEST(FlashForward, SupportsAndRejects) {
  const Inputs in = random_inputs(1, 1, 1, 4, 4, 4, 4, 63);
  SdpaOptions<float> o;
  EXPECT_TRUE(attn::cpu::flash_supports(in.q, in.k, in.v, o));
  o.return_weights = true;  // the weights pass
  EXPECT_TRUE(attn::cpu::flash_supports(in.q, in.k, in.v, o));
  Tensor<float> o1, l1;
  EXPECT_THROW(attn::cpu::flash_attention_forward(in.q, in.k, in.v, o, o1, l1), attn::ValueError);  // no weights tensor
  EXPECT_FALSE(attn::cpu::flash_supports(in.q.select(0, 0), in.k, in.v, {}));
  Tensor<float> out({1, 1, 4, 5}), lse;  // wrong Dv
  EXPECT_THROW(attn::cpu::flash_attention_forward(in.q, in.k, in.v, {}, out, lse), attn::ShapeError);
}

}  // namespace
