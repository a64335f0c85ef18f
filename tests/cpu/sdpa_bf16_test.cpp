// bfloat16 scaled dot-product attention (attn/sdpa.hpp, attn/bfloat16.hpp):
// the format's conversions by exact math, and SDPA on bf16 tensors against
// PyTorch's CPU bf16 SDPA (tests/golden/make_sdpa_bf16_golden.py) and against
// the float32 paths on the widened inputs.
//
// Tolerance. A bf16 result is a float32 result rounded once to 8 significant
// bits. Two float32 computations of the same attention (attn's and torch's,
// or attn's fast and reference paths) differ by ~1e-6 relative, so after
// rounding they agree exactly or, when the float value lies near a rounding
// boundary, by 1 bf16 ulp. But torch's bf16 kernels also round
// intermediates to bf16 before their matrix products (the weights P before
// P·V; P and dS in the backward), each a 2^-8 relative perturbation of every
// term of a sum: an element that is a sum of terms cancelling to near zero
// carries the terms' rounding. Hence an absolute allowance of 2^-8 times the
// largest element of the tensor, and beyond it 2 ulps for outputs, 4 for
// gradients (measured: 1 and 3). Any real mistake (a wrong scale, mask or
// rounding mode) moves many elements by far more.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "attn/bfloat16.hpp"
#include "attn/sdpa.hpp"
#include "attn/threading.hpp"
#include "cpu/flash_attention.hpp"

namespace {

using attn::bfloat16;
using attn::SdpaBackend;
using attn::SdpaOptions;
using attn::Shape;
using attn::Tensor;
using nlohmann::json;

float bits_to_float(uint32_t b) {
  float x;
  std::memcpy(&x, &b, 4);
  return x;
}

TEST(BFloat16, ConvertsByRoundingToNearestEven) {
  EXPECT_EQ(bfloat16(1.0f).bits, 0x3F80);
  EXPECT_EQ(bfloat16(-2.0f).bits, 0xC000);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even 1.
  EXPECT_EQ(static_cast<float>(bfloat16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  // 1 + 3·2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
  EXPECT_EQ(static_cast<float>(bfloat16(1.0f + 3 * std::ldexp(1.0f, -8))), 1.0f + std::ldexp(1.0f, -6));
  // Just above a tie rounds up.
  EXPECT_EQ(static_cast<float>(bfloat16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20))), 1.0f + std::ldexp(1.0f, -7));
  EXPECT_EQ(static_cast<float>(bfloat16(3.14159265f)), 3.140625f);
  EXPECT_EQ(static_cast<float>(bfloat16(std::numeric_limits<float>::infinity())), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(static_cast<float>(bfloat16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isnan(static_cast<float>(bfloat16(bits_to_float(0x7F800001)))));  // a NaN whose top bits look like Inf
  // The largest float rounds to infinity (past bf16's largest finite, 0x7F7F).
  EXPECT_EQ(bfloat16(std::numeric_limits<float>::max()).bits, 0x7F80);
  // Widening is exact: every bf16 pattern survives a round trip.
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const bfloat16 h = bfloat16::from_bits(static_cast<uint16_t>(b));
    const float x = static_cast<float>(h);
    if (std::isnan(x)) continue;
    ASSERT_EQ(bfloat16(x).bits, b);
  }
}

// ---- the golden configs ------------------------------------------------------------------

std::vector<uint16_t> decode_base64(const std::string& s) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
  };
  std::vector<uint8_t> bytes;
  uint32_t acc = 0;
  int nbits = 0;
  for (char c : s) {
    const int v = value(c);
    if (v < 0) continue;  // '=' padding
    acc = (acc << 6) | static_cast<uint32_t>(v);
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      bytes.push_back(static_cast<uint8_t>(acc >> nbits));
    }
  }
  std::vector<uint16_t> out(bytes.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint16_t>(bytes[2 * i] | (bytes[2 * i + 1] << 8));
  return out;
}

Tensor<bfloat16> bf16_tensor(const std::string& b64, const Shape& shape) {
  const std::vector<uint16_t> bits = decode_base64(b64);
  Tensor<bfloat16> t(shape);
  EXPECT_EQ(static_cast<int64_t>(bits.size()), t.numel());
  for (int64_t i = 0; i < t.numel() && i < static_cast<int64_t>(bits.size()); ++i) t.data()[i] = bfloat16::from_bits(bits[i]);
  return t;
}

// The distance from got to want in bf16 ulps of want's binade, beyond an
// absolute allowance.
struct UlpCheck {
  double worst_ulps = 0;
  int64_t beyond = 0;
  void add(float got, float want, double allowance) {
    const double diff = std::abs(static_cast<double>(got) - want);
    if (diff <= allowance) return;
    const double scale = std::max(std::abs(static_cast<double>(want)), 1e-30);
    const double ulp = std::ldexp(1.0, std::ilogb(scale) - 7);
    worst_ulps = std::max(worst_ulps, diff / ulp);
  }
};

double max_abs(const Tensor<bfloat16>& t) {
  double m = 0;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::abs(static_cast<double>(static_cast<float>(t.flat(i)))));
  return m;
}

void compare(const Tensor<bfloat16>& got, const Tensor<bfloat16>& want, double max_ulps, double abs_fraction,
             const std::string& what, double* worst) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  UlpCheck c;
  const double allowance = abs_fraction * max_abs(want);
  for (int64_t i = 0; i < got.numel(); ++i) c.add(static_cast<float>(got.flat(i)), static_cast<float>(want.flat(i)), allowance);
  EXPECT_LE(c.worst_ulps, max_ulps) << what;
  *worst = std::max(*worst, c.worst_ulps);
}

TEST(SdpaBF16, MatchesPyTorchBF16Sdpa) {
  std::ifstream f(std::string(ATTN_GOLDEN_DIR) + "/sdpa_bf16_golden.json");
  ASSERT_TRUE(f) << "tests/golden/sdpa_bf16_golden.json missing";
  const json g = json::parse(f);
  ASSERT_GE(g.at("configs").size(), 12u);
  double worst_out = 0, worst_grad = 0;
  for (const json& c : g.at("configs")) {
    const std::string name = c.at("name");
    const json& s = c.at("shape");
    const int64_t B = s.at("B"), Hq = s.at("Hq"), Hkv = s.at("Hkv"), Lq = s.at("Lq"), Lk = s.at("Lk"),
                  Dk = s.at("Dk"), Dv = s.at("Dv");
    const auto q = bf16_tensor(c.at("q"), {B, Hq, Lq, Dk}), k = bf16_tensor(c.at("k"), {B, Hkv, Lk, Dk}),
               v = bf16_tensor(c.at("v"), {B, Hkv, Lk, Dv}), dout = bf16_tensor(c.at("dout"), {B, Hq, Lq, Dv});
    SdpaOptions<float> o;
    o.is_causal = c.at("is_causal");
    o.enable_gqa = Hq != Hkv;
    if (!c.at("scale").is_null()) o.scale = c.at("scale").get<double>();
    if (c.contains("bool_mask")) {
      const json& m = c.at("bool_mask");
      Tensor<bool> mask(m.at("shape").get<Shape>());
      for (int64_t i = 0; i < mask.numel(); ++i) mask.data()[i] = m.at("data")[static_cast<size_t>(i)].get<int>() != 0;
      o.bool_mask = mask;
    }
    if (c.contains("float_mask_bits")) {
      const json& m = c.at("float_mask_bits");
      o.float_mask = attn::to_float(bf16_tensor(m.at("data"), m.at("shape").get<Shape>()));
    }
    for (SdpaBackend backend : {SdpaBackend::Fast, SdpaBackend::Reference}) {
      o.backend = backend;
      const std::string what = name + " [" + attn::to_string(backend) + "]";
      const auto r = attn::scaled_dot_product_attention(q, k, v, o);
      compare(r.output, bf16_tensor(c.at("out"), {B, Hq, Lq, Dv}), 2.0, 0x1p-8, what + " output", &worst_out);
      const auto gr = attn::scaled_dot_product_attention_backward(dout, q, k, v, r.output, r.lse, o);
      compare(gr.d_query, bf16_tensor(c.at("dq"), {B, Hq, Lq, Dk}), 4.0, 0x1p-8, what + " d_query", &worst_grad);
      compare(gr.d_key, bf16_tensor(c.at("dk"), {B, Hkv, Lk, Dk}), 4.0, 0x1p-8, what + " d_key", &worst_grad);
      compare(gr.d_value, bf16_tensor(c.at("dv"), {B, Hkv, Lk, Dv}), 4.0, 0x1p-8, what + " d_value", &worst_grad);
    }
  }
  std::printf("[ bf16 vs torch: output within %.2g ulp, gradients within %.2g ulp (beyond 2^-8 of the largest) ]\n",
              worst_out, worst_grad);
}

// bf16 SDPA is the float32 SDPA of the widened inputs, rounded once: on every
// SIMD target, with every option the float path has, and 1 vs 2 threads alike.
TEST(SdpaBF16, IsTheFloat32ResultRoundedOnce) {
  Tensor<float> qf({2, 4, 50, 24}), kf({2, 2, 70, 24}), vf({2, 2, 70, 16});
  uint32_t state = 12345;
  auto next = [&] {
    state = state * 1664525u + 1013904223u;
    return static_cast<float>(state >> 8) / 16777216.0f * 2.0f - 1.0f;
  };
  for (auto* t : {&qf, &kf, &vf})
    for (int64_t i = 0; i < t->numel(); ++i) t->data()[i] = next();
  const auto q = attn::to_bfloat16(qf), k = attn::to_bfloat16(kf), v = attn::to_bfloat16(vf);
  SdpaOptions<float> o;
  o.enable_gqa = true;
  o.is_causal = true;
  o.causal_alignment = attn::CausalAlignment::BottomRight;
  o.window_left = 30;
  o.softcap = 3.0;
  o.alibi_slopes = Tensor<float>({4}, {0.5f, 0.25f, 0.125f, 0.0625f});
  o.sinks = Tensor<float>({4}, {0.1f, -0.2f, 0.3f, 0.0f});
  o.dropout_p = 0.1;
  o.dropout_seed = 9;
  o.return_weights = true;
  o.backend = SdpaBackend::Fast;
  const auto want = attn::scaled_dot_product_attention(attn::to_float(q), attn::to_float(k), attn::to_float(v), o);
  for (const std::string& target : attn::cpu::available_simd_targets()) {
    ASSERT_TRUE(attn::cpu::force_simd_target(target));
    const auto got = attn::scaled_dot_product_attention(q, k, v, o);
    const auto want_t = attn::scaled_dot_product_attention(attn::to_float(q), attn::to_float(k), attn::to_float(v), o);
    for (int64_t i = 0; i < got.output.numel(); ++i)
      ASSERT_EQ(got.output.data()[i].bits, bfloat16(want_t.output.data()[i]).bits) << target << " output " << i;
    for (int64_t i = 0; i < got.weights.numel(); ++i)
      ASSERT_EQ(got.weights.data()[i].bits, bfloat16(want_t.weights.data()[i]).bits) << target << " weights " << i;
  }
  attn::cpu::force_simd_target("");
  attn::set_num_threads(1);
  const auto one = attn::scaled_dot_product_attention(q, k, v, o);
  attn::set_num_threads(2);
  const auto two = attn::scaled_dot_product_attention(q, k, v, o);
  attn::set_num_threads(0);
  for (int64_t i = 0; i < one.output.numel(); ++i) ASSERT_EQ(one.output.data()[i].bits, two.output.data()[i].bits);
  (void)want;
}

// Empty sequences and head dims behave as in float32 (DESIGN.md: empty Lq or
// Lk gives empty/zero outputs). Each call runs on a fresh thread: the widened
// inputs live in per-thread buffers, and the bug this guards against (found by
// fuzz/sdpa_fuzzer.cpp) only showed while those were still empty — a null
// data() viewed with from_blob read as an undefined query.
TEST(SdpaBF16, EmptySequencesAndDimsAsInFloat32) {
  const Shape shapes[][3] = {{{1, 2, 0, 8}, {1, 2, 5, 8}, {1, 2, 5, 4}},
                             {{1, 2, 3, 8}, {1, 2, 0, 8}, {1, 2, 0, 4}},
                             {{1, 2, 3, 0}, {1, 2, 5, 0}, {1, 2, 5, 4}},
                             {{1, 2, 3, 8}, {1, 2, 5, 8}, {1, 2, 5, 0}}};
  for (const auto& s : shapes) {
    std::thread([&] {
      const Tensor<float> qf(s[0]), kf(s[1]), vf(s[2]);
      SdpaOptions<float> o;
      o.backend = SdpaBackend::Fast;
      const auto want = attn::scaled_dot_product_attention(qf, kf, vf, o);
      const auto got = attn::scaled_dot_product_attention(attn::to_bfloat16(qf), attn::to_bfloat16(kf),
                                                          attn::to_bfloat16(vf), o);
      ASSERT_EQ(got.output.shape(), want.output.shape()) << attn::shape_str(s[0]);
      for (int64_t i = 0; i < got.output.numel(); ++i) EXPECT_EQ(static_cast<float>(got.output.flat(i)), 0.0f);
      const Tensor<float> dout(want.output.shape());
      const auto grad = attn::scaled_dot_product_attention_backward(
          attn::to_bfloat16(dout), attn::to_bfloat16(qf), attn::to_bfloat16(kf), attn::to_bfloat16(vf), got.output,
          got.lse, o);
      EXPECT_EQ(grad.d_query.shape(), s[0]);
      EXPECT_EQ(grad.d_key.shape(), s[1]);
      EXPECT_EQ(grad.d_value.shape(), s[2]);
    }).join();
  }
}

TEST(SdpaBF16, BadInputIsATypedError) {
  const Tensor<bfloat16> q({1, 1, 4, 8}), k({1, 1, 4, 6});
  EXPECT_THROW(attn::scaled_dot_product_attention(q, k, k), attn::ShapeError);  // Dk mismatch
  EXPECT_THROW(attn::scaled_dot_product_attention(Tensor<bfloat16>(), q, q), attn::ShapeError);
  SdpaOptions<float> o;
  o.dropout_p = 1.5;
  EXPECT_THROW(attn::scaled_dot_product_attention(q, q, q, o), attn::ValueError);
}

}  // namespace
