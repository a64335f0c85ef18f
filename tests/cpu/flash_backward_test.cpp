// The fast CPU backward (src/cpu/flash_attention.*) against its
// specification, the reference backward (src/reference/sdpa.cpp,
// attn::scaled_dot_product_attention_backward): every option, awkward sizes,
// every SIMD target this CPU runs, 1 vs 2 threads bit for bit.
//
// Both backwards get the same output and lse (the reference forward's), so
// only the backward's own rounding differs. Tolerance: gradients are sums of
// Lq or Lk terms ds·k, w·dO, each with the forward's score error (≈ √Dk·ε·|s|,
// see flash_forward_test.cpp) and ds = p·(dp − D) cancelling where dp ≈ D;
// with inputs in [−1, 1] and these sizes (Lq, Lk ≤ 300, Dk ≤ 256) the largest
// difference measured is printed at the end (about 1e-6); kTol = 2e-5 is a
// 10× margin over it, far below what a wrong mask, scale, block boundary or
// a missed term (≥ 1e-3) would give.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "attn/sdpa.hpp"
#include "reference/sdpa.hpp"  // src/reference: the specification the fast path is held to
#include "attn/threading.hpp"
#include "cpu/flash_attention.hpp"

namespace {

using attn::CausalAlignment;
using attn::SdpaOptions;
using attn::Shape;
using attn::Tensor;

constexpr double kTol = 2e-5;
constexpr float kInf = std::numeric_limits<float>::infinity();

double g_worst_error = 0;
struct ReportWorstError : testing::Environment {
  void TearDown() override {
    std::printf("[ flash bwd] largest |fast - reference| / max(1, |reference|) seen: %.3g\n", g_worst_error);
  }
};
const auto* const g_report = testing::AddGlobalTestEnvironment(new ReportWorstError);

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

struct Problem {
  Tensor<float> q, k, v, dout;
};

Problem random_problem(int64_t B, int64_t Hq, int64_t Hkv, int64_t Lq, int64_t Lk, int64_t Dk, int64_t Dv,
                       uint32_t seed = 1) {
  return {random_tensor({B, Hq, Lq, Dk}, seed), random_tensor({B, Hkv, Lk, Dk}, seed + 1),
          random_tensor({B, Hkv, Lk, Dv}, seed + 2), random_tensor({B, Hq, Lq, Dv}, seed + 3)};
}

void expect_close(const Tensor<float>& got, const Tensor<float>& want, const std::string& what) {
  ASSERT_EQ(got.defined(), want.defined()) << what;
  if (!want.defined()) return;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  int failures = 0;
  for (int64_t n = 0; n < got.numel() && failures < 5; ++n) {
    const double g = got.flat(n), w = want.flat(n);
    const bool ok = std::isfinite(w) ? std::abs(g - w) <= kTol * std::max(1.0, std::abs(w))
                                     : ((std::isnan(w) && std::isnan(g)) || g == w);
    if (!ok) {
      ADD_FAILURE() << what << ": element " << n << " is " << g << ", reference " << w;
      ++failures;
    }
    if (std::isfinite(w) && std::isfinite(g))
      g_worst_error = std::max(g_worst_error, std::abs(g - w) / std::max(1.0, std::abs(w)));
  }
}

// Fast backward vs reference backward, from the reference forward's output
// and lse, on every SIMD target this CPU supports.
void check_against_reference(const Problem& pr, const SdpaOptions<float>& o, const std::string& what,
                             bool mask_grad = false) {
  ASSERT_TRUE(attn::cpu::flash_supports_backward(pr.q, pr.k, pr.v, o, mask_grad)) << what;
  const auto fwd = attn::reference::scaled_dot_product_attention(pr.q, pr.k, pr.v, o);
  const auto ref = attn::reference::scaled_dot_product_attention_backward(pr.dout, pr.q, pr.k, pr.v, fwd.output, fwd.lse, o,
                                                               mask_grad);
  for (const std::string& target : attn::cpu::available_simd_targets()) {
    ASSERT_TRUE(attn::cpu::force_simd_target(target));
    const auto got =
        attn::cpu::flash_attention_backward(pr.dout, pr.q, pr.k, pr.v, fwd.output, fwd.lse, o, mask_grad);
    const std::string tag = what + " [" + target + "] ";
    expect_close(got.d_query, ref.d_query, tag + "d_query");
    expect_close(got.d_key, ref.d_key, tag + "d_key");
    expect_close(got.d_value, ref.d_value, tag + "d_value");
    expect_close(got.d_float_mask, ref.d_float_mask, tag + "d_float_mask");
    expect_close(got.d_sinks, ref.d_sinks, tag + "d_sinks");
  }
  attn::cpu::force_simd_target("");
}

TEST(FlashBackward, HeadDims) {
  for (int64_t d : {1, 3, 8, 64, 80, 128, 256}) {
    const Problem pr = random_problem(1, 2, 2, 37, 70, d, d, static_cast<uint32_t>(d));
    check_against_reference(pr, {}, "d=" + std::to_string(d));
  }
}

TEST(FlashBackward, AwkwardLengths) {
  for (auto [Lq, Lk] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {1, 150}, {150, 1}, {65, 63}, {130, 129}}) {
    const Problem pr = random_problem(1, 2, 2, Lq, Lk, 16, 16, static_cast<uint32_t>(Lq * 1000 + Lk));
    const std::string name = "Lq=" + std::to_string(Lq) + " Lk=" + std::to_string(Lk);
    check_against_reference(pr, {}, name);
    SdpaOptions<float> causal;
    causal.is_causal = true;
    check_against_reference(pr, causal, name + " causal");
  }
}

TEST(FlashBackward, CausalAndWindow) {
  for (auto [Lq, Lk] : std::vector<std::pair<int64_t, int64_t>>{{100, 100}, {50, 150}, {150, 50}})
    for (auto align : {CausalAlignment::TopLeft, CausalAlignment::BottomRight}) {
      const Problem pr = random_problem(1, 2, 2, Lq, Lk, 24, 16, 11);
      const std::string name = "Lq=" + std::to_string(Lq) + " Lk=" + std::to_string(Lk) +
                               (align == CausalAlignment::TopLeft ? " top-left" : " bottom-right");
      SdpaOptions<float> o;
      o.is_causal = true;
      o.causal_alignment = align;
      check_against_reference(pr, o, "causal " + name);
      o.is_causal = false;
      o.window_left = 20;
      o.window_right = 3;
      check_against_reference(pr, o, "window (20, 3) " + name);
    }
}

TEST(FlashBackward, AlibiSoftcapScale) {
  const Problem pr = random_problem(2, 3, 3, 40, 90, 16, 16, 13);
  SdpaOptions<float> o;
  o.alibi_slopes = random_tensor({2, 3}, 5, 0.0f, 0.5f);
  o.is_causal = true;
  o.causal_alignment = CausalAlignment::BottomRight;
  check_against_reference(pr, o, "alibi [B, Hq]");
  SdpaOptions<float> cap;
  cap.softcap = 0.7;
  cap.scale = 3.0;
  check_against_reference(pr, cap, "softcap 0.7, scale 3");
}

TEST(FlashBackward, SinksAndMasks) {
  const int64_t B = 2, H = 2, Lq = 45, Lk = 77;
  const Problem pr = random_problem(B, H, H, Lq, Lk, 16, 12, 14);
  SdpaOptions<float> sinks;
  sinks.sinks = Tensor<float>({H}, {0.5f, -1.0f});
  sinks.is_causal = true;
  sinks.causal_alignment = CausalAlignment::BottomRight;
  check_against_reference(pr, sinks, "sinks");

  SdpaOptions<float> bmask;
  bmask.bool_mask = random_mask({B, 1, Lq, Lk}, 7, 0.6);
  for (int64_t j = 0; j < Lk; ++j) bmask.bool_mask(0, 0, 3, j) = false;  // a row that sees nothing
  check_against_reference(pr, bmask, "bool mask");

  SdpaOptions<float> fmask;
  fmask.float_mask = random_tensor({B, H, Lq, Lk}, 8, -2.0f, 2.0f);
  for (int64_t j = 0; j < Lk; j += 4) fmask.float_mask(1, 0, 9, j) = -kInf;
  check_against_reference(pr, fmask, "float mask, with its gradient", true);
  fmask.float_mask = random_tensor({B, H, Lq, 1}, 9, -2.0f, 2.0f);  // broadcast along keys only
  check_against_reference(pr, fmask, "float mask [B, H, Lq, 1], with its gradient", true);
  fmask.float_mask = random_tensor({Lq, Lk}, 10, -2.0f, 2.0f);  // broadcast over B, H
  check_against_reference(pr, fmask, "float mask [Lq, Lk], no gradient", false);
  // Gradients of masks broadcast over batch, heads and/or query rows: summed
  // after the kernel in (b, h, i) order.
  const std::vector<std::pair<Shape, const char*>> broadcast = {{{Lq, Lk}, "[Lq, Lk]"},
                                                                {{B, 1, Lq, Lk}, "[B, 1, Lq, Lk]"},
                                                                {{H, 1, Lk}, "[H, 1, Lk]"},
                                                                {{1, Lk}, "[1, Lk]"},
                                                                {{1, 1, 1, 1}, "[1, 1, 1, 1]"},
                                                                {{H, Lq, 1}, "[H, Lq, 1]"}};
  uint32_t seed = 30;
  for (const auto& [shape, name] : broadcast) {
    fmask.float_mask = random_tensor(shape, seed++, -2.0f, 2.0f);
    check_against_reference(pr, fmask, std::string("float mask ") + name + ", with its gradient", true);
  }
}

// The sum over broadcast dims runs in a fixed order: 1 and 2 threads agree bit for bit.
TEST(FlashBackward, BroadcastMaskGradientIsThreadCountIndependent) {
  const Problem pr = random_problem(2, 4, 4, 96, 130, 32, 32, 77);
  SdpaOptions<float> o;
  o.float_mask = random_tensor({96, 130}, 78, -1.0f, 1.0f);
  const auto fwd = attn::reference::scaled_dot_product_attention(pr.q, pr.k, pr.v, o);
  attn::set_num_threads(1);
  const auto one = attn::cpu::flash_attention_backward(pr.dout, pr.q, pr.k, pr.v, fwd.output, fwd.lse, o, true);
  attn::set_num_threads(2);
  const auto two = attn::cpu::flash_attention_backward(pr.dout, pr.q, pr.k, pr.v, fwd.output, fwd.lse, o, true);
  attn::set_num_threads(0);
  ASSERT_EQ(one.d_float_mask.shape(), (Shape{96, 130}));
  EXPECT_EQ(std::memcmp(one.d_float_mask.data(), two.d_float_mask.data(), sizeof(float) * 96 * 130), 0);
}

TEST(FlashBackward, GroupedQueryAttentionAndWidths) {
  for (auto [Hq, Hkv] : std::vector<std::pair<int64_t, int64_t>>{{4, 2}, {6, 1}}) {
    const Problem pr = random_problem(2, Hq, Hkv, 50, 70, 24, 40, 19);
    SdpaOptions<float> o;
    o.enable_gqa = true;
    o.is_causal = true;
    check_against_reference(pr, o, "GQA " + std::to_string(Hq) + "/" + std::to_string(Hkv));
  }
  for (auto [Dk, Dv] : std::vector<std::pair<int64_t, int64_t>>{{64, 8}, {5, 129}}) {
    const Problem pr = random_problem(1, 2, 2, 30, 90, Dk, Dv, 20);
    check_against_reference(pr, {}, "Dk=" + std::to_string(Dk) + " Dv=" + std::to_string(Dv));
  }
}

TEST(FlashBackward, Dropout) {
  const Problem pr = random_problem(2, 2, 1, 70, 90, 16, 16, 21);
  SdpaOptions<float> o;
  o.enable_gqa = true;
  o.dropout_p = 0.3;
  o.dropout_seed = 1234;
  o.is_causal = true;
  check_against_reference(pr, o, "dropout 0.3");
}

TEST(FlashBackward, EverythingAtOnce) {
  const int64_t B = 2, Hq = 4, Hkv = 2, Lq = 70, Lk = 100;
  const Problem pr = random_problem(B, Hq, Hkv, Lq, Lk, 20, 12, 22);
  SdpaOptions<float> o;
  o.enable_gqa = true;
  o.float_mask = random_tensor({B, Hq, Lq, Lk}, 23, -1.0f, 1.0f);
  o.alibi_slopes = random_tensor({Hq}, 24, 0.0f, 0.3f);
  o.softcap = 2.0;
  o.sinks = random_tensor({Hq}, 25);
  o.window_left = 30;
  o.window_right = 5;
  o.causal_alignment = CausalAlignment::BottomRight;
  o.dropout_p = 0.2;
  o.dropout_seed = 99;
  o.scale = 0.4;
  check_against_reference(pr, o, "all options", true);
}

TEST(FlashBackward, StridedLayouts) {
  const int64_t B = 2, H = 3, Lq = 40, Lk = 75, D = 16;
  Problem pr;
  pr.q = random_tensor({B, Lq, H, D}, 30).transpose(1, 2);
  pr.k = random_tensor({B, Lk, H, D}, 31).transpose(1, 2);
  pr.v = random_tensor({B, H, D, Lk}, 32).transpose(2, 3);
  pr.dout = random_tensor({B, Lq, H, D}, 33).transpose(1, 2);
  SdpaOptions<float> o;
  o.is_causal = true;
  check_against_reference(pr, o, "strided");
}

TEST(FlashBackward, HiddenNanNeverLeaksAndEmptyRowsGetZero) {
  const int64_t Lq = 70, Lk = 70;
  Problem pr = random_problem(1, 2, 2, Lq, Lk, 16, 16, 50);
  pr.k = pr.k.clone();
  pr.v = pr.v.clone();
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t x = 0; x < 16; ++x) {
      pr.k(0, h, 69, x) = std::numeric_limits<float>::quiet_NaN();
      pr.v(0, h, 68, x) = kInf;
    }
  SdpaOptions<float> o;
  o.bool_mask = Tensor<bool>::full({Lq, Lk}, true);
  for (int64_t i = 0; i < Lq; ++i) o.bool_mask(i, 68) = o.bool_mask(i, 69) = false;
  for (int64_t j = 0; j < Lk; ++j) o.bool_mask(5, j) = false;  // row 5 sees nothing
  check_against_reference(pr, o, "hidden NaN/Inf keys and values");
  const auto fwd = attn::reference::scaled_dot_product_attention(pr.q, pr.k, pr.v, o);
  const auto got = attn::cpu::flash_attention_backward(pr.dout, pr.q, pr.k, pr.v, fwd.output, fwd.lse, o);
  for (int64_t x = 0; x < 16; ++x) EXPECT_EQ(got.d_query(0, 0, 5, x), 0.0f);
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t x = 0; x < 16; ++x) {
      EXPECT_EQ(got.d_key(0, h, 69, x), 0.0f);
      EXPECT_EQ(got.d_value(0, h, 68, x), 0.0f);
    }
}

// A row that a NaN query made NaN, with dropout: the keys dropout dropped get
// no d_value from it (the reference skips them; p·0 was NaN in the fast
// path), the kept ones get NaN on both paths. Found by fuzz/sdpa_fuzzer.cpp.
TEST(FlashBackward, NanRowWithDropoutLeavesDroppedValuesAlone) {
  Problem pr = random_problem(1, 1, 1, 3, 80, 8, 4, 60);
  pr.q = pr.q.clone();
  pr.q(0, 0, 1, 2) = std::numeric_limits<float>::quiet_NaN();
  SdpaOptions<float> o;
  o.dropout_p = 0.9;
  o.dropout_seed = 5;
  check_against_reference(pr, o, "NaN row, dropout 0.9");
}

TEST(FlashBackward, OneAndTwoThreadsAreBitIdentical) {
  const Problem pr = random_problem(2, 4, 2, 200, 230, 64, 48, 60);
  SdpaOptions<float> o;
  o.enable_gqa = true;
  o.is_causal = true;
  o.dropout_p = 0.1;
  o.sinks = random_tensor({4}, 61);
  const auto fwd = attn::reference::scaled_dot_product_attention(pr.q, pr.k, pr.v, o);
  auto run = [&](int threads) {
    attn::set_num_threads(threads);
    return attn::cpu::flash_attention_backward(pr.dout, pr.q, pr.k, pr.v, fwd.output, fwd.lse, o);
  };
  const auto one = run(1), two = run(2), three = run(3);
  attn::set_num_threads(0);
  auto same = [](const Tensor<float>& a, const Tensor<float>& b) {
    return a.numel() == b.numel() && std::memcmp(a.data(), b.data(), sizeof(float) * a.numel()) == 0;
  };
  for (const auto* r : {&two, &three}) {
    EXPECT_TRUE(same(r->d_query, one.d_query));
    EXPECT_TRUE(same(r->d_key, one.d_key));
    EXPECT_TRUE(same(r->d_value, one.d_value));
    EXPECT_TRUE(same(r->d_sinks, one.d_sinks));
  }
}

TEST(FlashBackward, FromTheFastForward) {
  // The pair as a user runs it: fast forward, then fast backward from its
  // output and lse, against the reference pair.
  const Problem pr = random_problem(1, 4, 2, 90, 110, 32, 32, 70);
  SdpaOptions<float> o;
  o.enable_gqa = true;
  o.is_causal = true;
  attn::SdpaResult<float> fast;
  attn::cpu::flash_attention_forward(pr.q, pr.k, pr.v, o, fast.output, fast.lse);
  const auto got = attn::cpu::flash_attention_backward(pr.dout, pr.q, pr.k, pr.v, fast.output, fast.lse, o);
  const auto fwd = attn::reference::scaled_dot_product_attention(pr.q, pr.k, pr.v, o);
  const auto ref =
      attn::reference::scaled_dot_product_attention_backward(pr.dout, pr.q, pr.k, pr.v, fwd.output, fwd.lse, o);
  expect_close(got.d_query, ref.d_query, "d_query");
  expect_close(got.d_key, ref.d_key, "d_key");
  expect_close(got.d_value, ref.d_value, "d_value");
}

TEST(FlashBackward, EmptySequences) {
  for (auto [Lq, Lk] : std::vector<std::pair<int64_t, int64_t>>{{0, 5}, {5, 0}}) {
    const Problem pr = random_problem(1, 2, 2, Lq, Lk, 8, 8, 40);
    SdpaOptions<float> o;
    o.sinks = Tensor<float>({2}, {1.0f, 2.0f});
    check_against_reference(pr, o, "Lq=" + std::to_string(Lq) + " Lk=" + std::to_string(Lk));
  }
}

}  // namespace
