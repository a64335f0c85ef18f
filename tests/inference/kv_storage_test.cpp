// KV-cache storage in bfloat16 and int8 (KVCacheConfig::storage).
//
// Two separate claims, tested separately:
//   1. Storage: what keys()/values() return (the dequantised rows) is within
//      the stated bound of what was appended — bf16: |deq − x| <= 2^-8·|x|
//      (round to nearest even keeps 8 significant bits); int8: |deq − x| <=
//      s_d / 2 with s_d = max |x| over the token's group of quant_group
//      tokens in channel d, divided by 127 (computed here independently).
//   2. Decoding: attention_decode on a bf16/int8 cache equals the reference
//      (SDPA over the same dequantised rows) to float rounding, kTol as in
//      kv_cache_test.cpp: the kernel widens the very same values, so the only
//      differences are the float32 summation orders.
// And how far the quantised cache moves the attention output from a float32
// cache (derived bounds below, for inputs in [−1, 1], Dk = Dv = 64).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "attn/kv_cache.hpp"
#include "attn/sdpa.hpp"
#include "attn/threading.hpp"
#include "cpu/flash_attention.hpp"

namespace {

using attn::CausalAlignment;
using attn::KVCache;
using attn::KVCacheConfig;
using attn::KVStorage;
using attn::SdpaOptions;
using attn::Shape;
using attn::Tensor;

constexpr double kTol = 2e-5;

Tensor<float> random_tensor(const Shape& shape, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  Tensor<float> t(shape);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t n = 0; n < t.numel(); ++n) t.flat(n) = dist(gen);
  return t;
}

// Channels whose ranges differ by up to 10^4 (as real keys' channels do):
// channel x of [.., D] is multiplied by 10^(x % 5 − 2).
Tensor<float> outlier_channels(const Shape& shape, uint32_t seed) {
  Tensor<float> t = random_tensor(shape, seed);
  const int64_t D = shape.back();
  for (int64_t n = 0; n < t.numel(); ++n) t.flat(n) *= std::pow(10.0f, static_cast<float>(n % D % 5) - 2.0f);
  return t;
}

double max_diff(const Tensor<float>& a, const Tensor<float>& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double worst = 0;
  for (int64_t n = 0; n < a.numel(); ++n) {
    const double d = std::abs(static_cast<double>(a.flat(n)) - b.flat(n)) / std::max(1.0, std::abs(static_cast<double>(b.flat(n))));
    worst = std::max(worst, std::isnan(d) ? 1e30 : d);
  }
  return worst;
}

bool bitwise_equal(const Tensor<float>& a, const Tensor<float>& b) {
  if (a.shape() != b.shape()) return false;
  for (int64_t n = 0; n < a.numel(); ++n) {
    const float x = a.flat(n), y = b.flat(n);
    if (std::memcmp(&x, &y, 4) != 0) return false;
  }
  return true;
}

KVCacheConfig config(KVStorage storage, int64_t Hkv, int64_t capacity, int64_t D, int64_t page_size = 0,
                     int64_t window = 0, int64_t batch = 1) {
  KVCacheConfig c;
  c.batch = batch, c.num_kv_heads = Hkv, c.capacity = capacity, c.head_dim = D;
  c.page_size = page_size, c.window_tokens = window, c.storage = storage;
  return c;
}

float bf16_round(float x) {  // exact math: x with its mantissa cut to 7 bits, nearest even
  int e;
  const double m = std::frexp(static_cast<double>(x), &e);  // x = m·2^e, 0.5 <= |m| < 1
  return static_cast<float>(std::ldexp(std::nearbyint(std::ldexp(m, 8)), e - 8));
}

TEST(KVStorage, BFloat16RoundsToNearestEvenWithinTwoToTheMinusNine) {
  const int64_t H = 2, L = 50, D = 24;
  Tensor<float> k = outlier_channels({1, H, L, D}, 1), v = random_tensor({1, H, L, D}, 2, -1e6f, 1e6f);
  // Ties: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7 and goes to the even 1;
  // 1 + 3·2^-8 halfway between 1 + 2^-7 and 1 + 2^-6, goes to 1 + 2^-6.
  k(0, 0, 0, 0) = 1.0f + std::ldexp(1.0f, -8);
  k(0, 0, 0, 1) = 1.0f + 3 * std::ldexp(1.0f, -8);
  k(0, 0, 0, 2) = -0.0f;
  k(0, 0, 0, 3) = std::numeric_limits<float>::infinity();
  KVCache cache(config(KVStorage::BFloat16, H, L, D));
  cache.append(0, k, v);
  const Tensor<float> kd = cache.keys(0, 0), vd = cache.values(0, 0);
  EXPECT_EQ(kd(0, 0, 0, 0), 1.0f);
  EXPECT_EQ(kd(0, 0, 0, 1), 1.0f + std::ldexp(1.0f, -6));
  EXPECT_TRUE(std::signbit(kd(0, 0, 0, 2)));
  EXPECT_EQ(kd(0, 0, 0, 3), std::numeric_limits<float>::infinity());
  for (int64_t n = 4; n < k.numel(); ++n) {
    ASSERT_EQ(kd.flat(n), bf16_round(k.flat(n))) << n;
    ASSERT_LE(std::abs(kd.flat(n) - k.flat(n)), std::ldexp(std::abs(k.flat(n)), -8)) << n;
  }
  for (int64_t n = 0; n < v.numel(); ++n) ASSERT_LE(std::abs(vd.flat(n) - v.flat(n)), std::ldexp(std::abs(v.flat(n)), -8));
  EXPECT_EQ(cache.bytes_per_token(), H * 2 * D * 2);
}

// The scale of every (group, head, channel), recomputed from the input.
TEST(KVStorage, Int8PerChannelErrorIsAtMostHalfTheGroupScale) {
  const int64_t H = 2, L = 70, D = 20, G = 32;  // groups of 32, 32 and a partial 6
  const Tensor<float> k = outlier_channels({1, H, L, D}, 3), v = outlier_channels({1, H, L, D}, 4);
  for (int64_t page_size : {0, 64}) {
    KVCacheConfig c = config(KVStorage::Int8, H, 128, D, page_size);
    KVCache cache(c);
    cache.append(0, k, v);
    for (const auto& [in, out] : {std::pair{k, cache.keys(0, 0)}, std::pair{v, cache.values(0, 0)}})
      for (int64_t h = 0; h < H; ++h)
        for (int64_t x = 0; x < D; ++x)
          for (int64_t g0 = 0; g0 < L; g0 += G) {
            float amax = 0;
            for (int64_t t = g0; t < std::min(L, g0 + G); ++t) amax = std::max(amax, std::abs(in(0, h, t, x)));
            const double half_scale = amax / 127.0 / 2.0;
            for (int64_t t = g0; t < std::min(L, g0 + G); ++t)
              ASSERT_LE(std::abs(static_cast<double>(out(0, h, t, x)) - in(0, h, t, x)), half_scale * (1 + 1e-5) + 1e-30)
                  << "page_size " << page_size << " h " << h << " t " << t << " channel " << x;
          }
  }
  // 1 byte per element plus a 4-byte scale per channel per 32 tokens.
  EXPECT_EQ(KVCache(config(KVStorage::Int8, H, 64, D)).bytes_per_token(), H * 2 * D + (H * 2 * D * 4 + G - 1) / G);
}

// The newest group is re-encoded from its float rows at every append, so the
// stored bytes depend only on the tokens, not on how they were appended.
TEST(KVStorage, AppendingTokenByTokenStoresTheSameAsAllAtOnce) {
  const int64_t H = 3, L = 77, D = 16;
  const Tensor<float> k = outlier_channels({1, H, L, D}, 5), v = random_tensor({1, H, L, D}, 6);
  for (KVStorage storage : {KVStorage::BFloat16, KVStorage::Int8})
    for (int64_t page_size : {0, 32}) {
      KVCache once(config(storage, H, L, D, page_size)), steps(config(storage, H, L, D, page_size));
      once.append(0, k, v);
      for (int64_t t = 0; t < L;) {
        const int64_t n = std::min<int64_t>(L - t, 1 + t % 5);  // chunks of 1..5 tokens
        steps.append(0, k.slice(2, t, t + n), v.slice(2, t, t + n));
        t += n;
      }
      EXPECT_TRUE(bitwise_equal(once.keys(0, 0), steps.keys(0, 0))) << attn::to_string(storage) << " " << page_size;
      EXPECT_TRUE(bitwise_equal(once.values(0, 0), steps.values(0, 0))) << attn::to_string(storage) << " " << page_size;
    }
}

// Decoding a bf16/int8 cache equals SDPA over its dequantised rows, for
// contiguous, paged and sliding-window caches, GQA, one and three new rows,
// every SIMD target.
TEST(KVStorage, DecodeEqualsReferenceOnTheDequantisedCache) {
  const int64_t Hq = 4, Hkv = 2, L = 300, D = 40;
  const Tensor<float> k = outlier_channels({1, Hkv, L, D}, 7), v = random_tensor({1, Hkv, L, D}, 8);
  double worst = 0;
  for (KVStorage storage : {KVStorage::Float32, KVStorage::BFloat16, KVStorage::Int8})
    for (int layout = 0; layout < 3; ++layout) {
      // contiguous; paged (64-token pages); sliding window of 128 tokens
      KVCache cache(config(storage, Hkv, L, D, layout == 0 ? 0 : 64, layout == 2 ? 128 : 0));
      cache.append(0, k, v);
      for (int64_t Lq : {1, 3}) {
        const Tensor<float> q = random_tensor({1, Hq, Lq, D}, 9 + static_cast<uint32_t>(Lq));
        SdpaOptions<float> o;
        o.enable_gqa = true;
        o.is_causal = true;
        o.causal_alignment = CausalAlignment::BottomRight;
        if (layout == 2) o.window_left = 100;
        const auto want = attn::attention_decode_reference(q, cache, 0, o);
        for (const std::string& target : attn::cpu::available_simd_targets()) {
          ASSERT_TRUE(attn::cpu::force_simd_target(target));
          for (int64_t split : {0, 100}) {
            const auto got = attn::attention_decode(q, cache, 0, o, split);
            const double d = std::max(max_diff(got.output, want.output), max_diff(got.lse, want.lse));
            EXPECT_LE(d, kTol) << attn::to_string(storage) << " layout " << layout << " Lq " << Lq << " " << target;
            worst = std::max(worst, d);
          }
        }
        attn::cpu::force_simd_target("");
      }
    }
  std::printf("[ bf16/int8 decode vs reference on the dequantised cache: largest difference %.2e ]\n", worst);
}

// How far a quantised cache moves the output from a float32 cache. With
// |q|, |k|, |v| <= 1, D = 64 and scale 1/8: a key error |δk| <= e per
// element moves a score by at most 8·e (Σ_d |q_d||δk_d|/8 <= 64e/8), the
// softmax weights by a factor within e^{±2·8e}, so the output (a convex
// combination of values in [−1, 1]) by at most (e^{16e} − 1) + max|δv|.
// bf16: e = 2^-8 (relative, |k| <= 1) → 0.065 + 0.004; int8: e = 1/254
// (half the largest possible scale, 1/127) → 0.065 + 0.004. The observed
// errors are far smaller (random errors cancel); printed.
TEST(KVStorage, OutputStaysWithinTheDerivedBoundOfAFloat32Cache) {
  const int64_t H = 4, L = 512, D = 64;
  const Tensor<float> k = random_tensor({1, H, L, D}, 11), v = random_tensor({1, H, L, D}, 12),
                      q = random_tensor({1, H, 1, D}, 13);
  SdpaOptions<float> o;
  o.is_causal = true;
  o.causal_alignment = CausalAlignment::BottomRight;
  KVCache exact(config(KVStorage::Float32, H, L, D));
  exact.append(0, k, v);
  const auto want = attn::attention_decode(q, exact, 0, o);
  const std::pair<KVStorage, double> cases[] = {{KVStorage::BFloat16, std::expm1(16.0 / 256) + 1.0 / 256},
                                                {KVStorage::Int8, std::expm1(16.0 / 254) + 1.0 / 254}};
  for (const auto& [storage, bound] : cases) {
    KVCache cache(config(storage, H, L, D));
    cache.append(0, k, v);
    const double d = max_diff(attn::attention_decode(q, cache, 0, o).output, want.output);
    EXPECT_LE(d, bound) << attn::to_string(storage);
    EXPECT_GT(d, 0.0) << attn::to_string(storage) << ": a quantised cache that changes nothing is not quantising";
    std::printf("[ %s cache: output vs float32 cache %.2e (bound %.2e) ]\n", attn::to_string(storage), d, bound);
  }
}

TEST(KVStorage, OneAndTwoThreadsAreBitIdentical) {
  const int64_t Hq = 16, Hkv = 4, L = 1024, D = 128;  // 1 MiB of int8: above the one-thread cut-off
  const Tensor<float> k = random_tensor({1, Hkv, L, D}, 14), v = random_tensor({1, Hkv, L, D}, 15),
                      q = random_tensor({1, Hq, 1, D}, 16);
  SdpaOptions<float> o;
  o.enable_gqa = true;
  for (KVStorage storage : {KVStorage::BFloat16, KVStorage::Int8}) {
    KVCache cache(config(storage, Hkv, L, D));
    cache.append(0, k, v);
    attn::set_num_threads(1);
    const auto one = attn::attention_decode(q, cache, 0, o);
    attn::set_num_threads(2);
    const auto two = attn::attention_decode(q, cache, 0, o);
    attn::set_num_threads(0);
    EXPECT_TRUE(bitwise_equal(one.output, two.output)) << attn::to_string(storage);
    EXPECT_TRUE(bitwise_equal(one.lse, two.lse)) << attn::to_string(storage);
  }
}

TEST(KVStorage, TypedErrors) {
  // A NaN or Inf cannot be given an int8 scale: refused, nothing written.
  KVCache cache(config(KVStorage::Int8, 1, 8, 4));
  Tensor<float> k = random_tensor({1, 1, 2, 4}, 17), v = random_tensor({1, 1, 2, 4}, 18);
  cache.append(0, k.slice(2, 0, 1), v.slice(2, 0, 1));
  const Tensor<float> before = cache.keys(0, 0);
  v(0, 0, 1, 2) = std::numeric_limits<float>::quiet_NaN();
  try {
    cache.append(0, k, v);
    FAIL() << "no error";
  } catch (const attn::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("value"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("int8"), std::string::npos) << e.what();
  }
  EXPECT_EQ(cache.length(0, 0), 1);
  EXPECT_TRUE(bitwise_equal(cache.keys(0, 0), before));
  EXPECT_THROW(cache.append(0, 0, k.select(0, 0), v.select(0, 0)), attn::ValueError);
  // A group must not cross a page.
  KVCacheConfig c = config(KVStorage::Int8, 1, 64, 4, /*page_size=*/48);
  EXPECT_THROW(KVCache{c}, attn::ValueError);
  c.quant_group = 16;
  EXPECT_NO_THROW(KVCache{c});
  c.quant_group = 0;
  EXPECT_THROW(KVCache{c}, attn::ValueError);
  // The raw float32 storage accessors say what to use instead.
  KVCache bf(config(KVStorage::BFloat16, 1, 8, 4));
  try {
    (void)bf.key_storage(0);
    FAIL() << "no error";
  } catch (const attn::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("keys()"), std::string::npos) << e.what();
  }
  // bf16 keeps NaN (it is a float format): the decode row becomes NaN, as with float32.
  KVCache keep(config(KVStorage::BFloat16, 1, 8, 4));
  EXPECT_NO_THROW(keep.append(0, k, v));
  EXPECT_TRUE(std::isnan(keep.values(0, 0)(0, 0, 1, 2)));
}

}  // namespace
