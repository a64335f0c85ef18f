// RoPE fused into the decode loop: KVCache::append(..., rope) rotates keys at
// their cache positions as it writes them, attention_decode(..., rope) rotates
// the query rows at theirs. Both use the one row rotation behind apply_rope
// (src/inference/rope_row.hpp), so fused must equal "apply_rope, then plain
// append/decode" bit for bit — any other answer means a wrong position, pair
// or layout — and token-by-token decoding must equal full-sequence attention
// over the rotated sequence (to float rounding, kTol as in kv_cache_test.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>

#include "attn/kv_cache.hpp"
#include "attn/rope.hpp"
#include "attn/sdpa.hpp"

namespace {

using attn::CausalAlignment;
using attn::KVCache;
using attn::KVCacheConfig;
using attn::KVStorage;
using attn::RopeLayout;
using attn::RopeOptions;
using attn::SdpaOptions;
using attn::Shape;
using attn::Tensor;

constexpr double kTol = 2e-5;

Tensor<float> random_tensor(const Shape& shape, uint32_t seed) {
  Tensor<float> t(shape);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (int64_t n = 0; n < t.numel(); ++n) t.flat(n) = dist(gen);
  return t;
}

bool bitwise_equal(const Tensor<float>& a, const Tensor<float>& b) {
  if (a.shape() != b.shape()) return false;
  for (int64_t n = 0; n < a.numel(); ++n) {
    const float x = a.flat(n), y = b.flat(n);
    if (std::memcmp(&x, &y, 4) != 0) return false;
  }
  return true;
}

double max_diff(const Tensor<float>& a, const Tensor<float>& b) {
  double worst = 0;
  for (int64_t n = 0; n < a.numel(); ++n)
    worst = std::max(worst, std::abs(static_cast<double>(a.flat(n)) - b.flat(n)) / std::max(1.0, std::abs(static_cast<double>(b.flat(n)))));
  return worst;
}

struct RopeCase {
  RopeLayout layout;
  int64_t rotary_dim;
  int64_t page_size;
  KVStorage storage;
};

// Two sequences of different lengths (varlen), GQA, chunks of 1..3 tokens:
// fused append + fused decode vs apply_rope at the same positions + plain calls.
TEST(FusedRopeDecode, EqualsApplyRopeThenPlainCallsBitForBit) {
  const int64_t Hq = 4, Hkv = 2, D = 16, cap = 64;
  const RopeCase cases[] = {{RopeLayout::Half, -1, 0, KVStorage::Float32},
                            {RopeLayout::Interleaved, -1, 0, KVStorage::Float32},
                            {RopeLayout::Half, 8, 16, KVStorage::Float32},
                            {RopeLayout::Interleaved, 10, 16, KVStorage::Int8},
                            {RopeLayout::Half, -1, 0, KVStorage::BFloat16}};
  for (const RopeCase& rc : cases) {
    const std::string what = std::string(rc.layout == RopeLayout::Half ? "half" : "interleaved") + " R " +
                             std::to_string(rc.rotary_dim) + " page " + std::to_string(rc.page_size) + " " +
                             attn::to_string(rc.storage);
    RopeOptions rope;
    rope.layout = rc.layout;
    rope.rotary_dim = rc.rotary_dim;
    rope.theta = 500.0;
    KVCacheConfig c{.batch = 2, .num_kv_heads = Hkv, .capacity = cap, .head_dim = D, .page_size = rc.page_size,
                    .storage = rc.storage, .quant_group = 8};
    KVCache fused(c), separate(c);
    SdpaOptions<float> o;
    o.enable_gqa = true;
    o.is_causal = true;
    o.causal_alignment = CausalAlignment::BottomRight;
    uint32_t seed = 100;
    for (int step = 0; step < 12; ++step)
      for (int64_t b = 0; b < 2; ++b) {
        const int64_t n = 1 + (step + b) % 3;  // sequence 1 grows faster
        const Tensor<float> k = random_tensor({Hkv, n, D}, seed++), v = random_tensor({Hkv, n, D}, seed++);
        const int64_t start = separate.length(0, b);
        fused.append(0, b, k, v, rope);
        separate.append(0, b, attn::apply_rope(k.reshape({1, Hkv, n, D}), start, rope).select(0, 0), v);
      }
    // A decode step of 2 rows per sequence, against both caches.
    const Tensor<float> q = random_tensor({2, Hq, 2, D}, seed++);
    Tensor<int64_t> pos({2, 2});
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t i = 0; i < 2; ++i) pos(b, i) = separate.length(0, b) - 2 + i;
    EXPECT_TRUE(bitwise_equal(fused.keys(0, 0), separate.keys(0, 0))) << what;
    EXPECT_TRUE(bitwise_equal(fused.keys(0, 1), separate.keys(0, 1))) << what;
    const auto got = attn::attention_decode(q, fused, 0, o, rope);
    const auto want = attn::attention_decode(attn::apply_rope(q, pos, rope), separate, 0, o);
    EXPECT_TRUE(bitwise_equal(got.output, want.output)) << what;
    EXPECT_TRUE(bitwise_equal(got.lse, want.lse)) << what;
  }
}

// Generation with the fused calls, token by token, equals attention over the
// whole rotated sequence (queries and keys rotated at 0..L−1).
TEST(FusedRopeDecode, TokenByTokenEqualsFullSequenceAttention) {
  const int64_t H = 2, L = 40, D = 8;
  const Tensor<float> q = random_tensor({1, H, L, D}, 1), k = random_tensor({1, H, L, D}, 2),
                      v = random_tensor({1, H, L, D}, 3);
  RopeOptions rope;
  SdpaOptions<float> o;
  o.is_causal = true;
  o.causal_alignment = CausalAlignment::BottomRight;
  SdpaOptions<float> full = o;
  full.causal_alignment = CausalAlignment::TopLeft;
  const auto want = attn::scaled_dot_product_attention(attn::apply_rope(q, 0, rope), attn::apply_rope(k, 0, rope), v, full);
  KVCache cache({.num_kv_heads = H, .capacity = L, .head_dim = D});
  double worst = 0;
  for (int64_t t = 0; t < L; ++t) {
    cache.append(0, k.slice(2, t, t + 1), v.slice(2, t, t + 1), rope);
    const auto r = attn::attention_decode(q.slice(2, t, t + 1), cache, 0, o, rope);
    worst = std::max(worst, max_diff(r.output, want.output.slice(2, t, t + 1)));
  }
  EXPECT_LE(worst, kTol);
}

TEST(FusedRopeDecode, BadOptionsAreRefusedBeforeAnyWrite) {
  KVCache cache({.num_kv_heads = 1, .capacity = 8, .head_dim = 4});
  const Tensor<float> k = random_tensor({1, 1, 2, 4}, 4), v = random_tensor({1, 1, 2, 4}, 5);
  RopeOptions odd;
  odd.rotary_dim = 3;
  EXPECT_THROW(cache.append(0, k, v, odd), attn::ValueError);
  EXPECT_EQ(cache.length(0, 0), 0);
  RopeOptions bad_theta;
  bad_theta.theta = -1;
  EXPECT_THROW(cache.append(0, 0, k.select(0, 0), v.select(0, 0), bad_theta), attn::ValueError);
  EXPECT_EQ(cache.length(0, 0), 0);
  cache.append(0, k, v, RopeOptions{});
  // Three query rows against two cached tokens: no position for row 0.
  EXPECT_THROW(attn::attention_decode(random_tensor({1, 1, 3, 4}, 6), cache, 0, SdpaOptions<float>{}, RopeOptions{}),
               attn::ValueError);
  EXPECT_THROW(attn::attention_decode(random_tensor({1, 1, 1, 4}, 6), cache, 0, SdpaOptions<float>{}, odd),
               attn::ValueError);
}

}  // namespace
