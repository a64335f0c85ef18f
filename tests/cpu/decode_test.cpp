// The split-KV decode kernel (src/cpu/decode*) and the public merge
// (merge_attention_partials, src/inference/merge.cpp).
//
// What is guaranteed bit for bit, and tested so:
//   1. attention_decode's output and lse are exactly merge_attention_partials
//      applied to its chunks' partial results (the kernel merges with the
//      same compiled function, chunks in order);
//   2. merging a single part returns it unchanged;
//   3. parts that saw no key (lse −∞) change nothing, exactly;
//   4. the result does not depend on the thread count (1 vs 2 threads), as
//      the chunks depend on the shape only.
// What is not bit for bit: a split result against the unsplit one. Both are
// the same sum taken in a different order (floating-point addition does not
// associate), so they agree to rounding: tested in double against the
// reference path to 1e-12, and in float (split decode vs the reference) to
// kTol below.
//
// Tolerance: |got − want| <= kTol·max(1, |want|), kTol = 2e-5. float32 with
// inputs in [−1, 1] and Dk = 64 gives |s| <= 8, a score's rounding error is
// about √Dk·ε·|s| ≈ 4e-6; the weights inherit it relatively, the output (a
// convex combination of values in [−1, 1]) as much, plus ε per merged part.
// An lse is rounded relative to its size (ALiBi with slope 1 over 1000 keys
// makes it ~1000), hence the max(1, |want|). The largest difference is
// printed; a wrong chunk boundary or merge weight
// moves outputs by 1e-2 or more.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "attn/kv_cache.hpp"
#include "attn/sdpa.hpp"
#include "attn/threading.hpp"
#include "cpu/decode.hpp"
#include "cpu/flash_attention.hpp"

namespace {

using attn::CausalAlignment;
using attn::SdpaOptions;
using attn::Shape;
using attn::Tensor;

constexpr double kTol = 2e-5;

template <class T>
Tensor<T> random_tensor(const Shape& shape, uint32_t seed) {
  Tensor<T> t(shape);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  for (int64_t n = 0; n < t.numel(); ++n) t.flat(n) = static_cast<T>(dist(gen));
  return t;
}

// max |a − b| / max(1, |b|), both infinite and equal counting as equal.
template <class T>
double max_diff(const Tensor<T>& a, const Tensor<T>& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double worst = 0;
  for (int64_t n = 0; n < a.numel(); ++n) {
    const T x = a.flat(n), y = b.flat(n);
    if (std::isinf(x) && x == y) continue;
    const double d = std::abs(static_cast<double>(x) - static_cast<double>(y)) / std::max(1.0, std::abs(static_cast<double>(y)));
    worst = std::max(worst, std::isnan(d) ? 1e30 : d);
  }
  return worst;
}

template <class T>
bool bitwise_equal(const Tensor<T>& a, const Tensor<T>& b) {
  if (a.shape() != b.shape()) return false;
  for (int64_t n = 0; n < a.numel(); ++n) {
    const T x = a.flat(n), y = b.flat(n);
    if (std::memcmp(&x, &y, sizeof(T)) != 0) return false;
  }
  return true;
}

// A layer of cache filled from [B, Hkv, L, D] keys and values.
attn::KVCache filled_cache(const Tensor<float>& k, const Tensor<float>& v) {
  attn::KVCache cache({.batch = k.size(0), .num_kv_heads = k.size(1), .capacity = k.size(2), .head_dim = k.size(3),
                       .value_dim = v.size(3)});
  cache.append(0, k, v);
  return cache;
}

// Attention over key slices [cuts[s], cuts[s+1]) by the reference path, stacked
// as [S, B, H, L, Dv] and [S, B, H, L]: the partial results of a split.
template <class T>
std::pair<Tensor<T>, Tensor<T>> reference_partials(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v,
                                                   const std::vector<int64_t>& cuts) {
  const int64_t S = static_cast<int64_t>(cuts.size()) - 1;
  const int64_t B = q.size(0), H = q.size(1), L = q.size(2), Dv = v.size(3);
  Tensor<T> po({S, B, H, L, Dv}), pl({S, B, H, L});
  for (int64_t s = 0; s < S; ++s) {
    const auto r = attn::scaled_dot_product_attention(q, k.slice(2, cuts[s], cuts[s + 1]),
                                                      v.slice(2, cuts[s], cuts[s + 1]), SdpaOptions<T>{});
    for (int64_t n = 0; n < r.output.numel(); ++n) po.select(0, s).flat(n) = r.output.flat(n);
    for (int64_t n = 0; n < r.lse.numel(); ++n) pl.select(0, s).flat(n) = r.lse.flat(n);
  }
  return {po, pl};
}

TEST(MergeAttentionPartials, EqualsUnsplitInDouble) {
  const auto q = random_tensor<double>({2, 3, 2, 16}, 1), k = random_tensor<double>({2, 3, 50, 16}, 2),
             v = random_tensor<double>({2, 3, 50, 8}, 3);
  const auto whole = attn::scaled_dot_product_attention(q, k, v, SdpaOptions<double>{});
  // An empty part (20, 20) in the middle, as a chunk past a short sequence's end.
  const auto [po, pl] = reference_partials(q, k, v, {0, 7, 20, 20, 33, 50});
  const auto merged = attn::merge_attention_partials(po, pl);
  EXPECT_LE(max_diff(merged.output, whole.output), 1e-12);
  EXPECT_LE(max_diff(merged.lse, whole.lse), 1e-12);
}

TEST(MergeAttentionPartials, OnePartIsIdentityAndEmptyPartsChangeNothing) {
  const auto q = random_tensor<float>({1, 2, 3, 8}, 4), k = random_tensor<float>({1, 2, 30, 8}, 5),
             v = random_tensor<float>({1, 2, 30, 8}, 6);
  const auto [po, pl] = reference_partials(q, k, v, {0, 30});
  const auto one = attn::merge_attention_partials(po, pl);
  EXPECT_TRUE(bitwise_equal(one.output, po.select(0, 0)));
  EXPECT_TRUE(bitwise_equal(one.lse, pl.select(0, 0)));
  // The same part with two empty parts (lse −∞, output 0) around it.
  const auto [po3, pl3] = reference_partials(q, k, v, {0, 0, 30, 30});
  const auto three = attn::merge_attention_partials(po3, pl3);
  EXPECT_TRUE(bitwise_equal(three.output, one.output));
  EXPECT_TRUE(bitwise_equal(three.lse, one.lse));
  // All parts empty: output 0, lse −∞, never NaN.
  const auto [pe, le] = reference_partials(q, k, v, {0, 0, 0});
  const auto none = attn::merge_attention_partials(pe, le);
  for (int64_t n = 0; n < none.output.numel(); ++n) EXPECT_EQ(none.output.flat(n), 0.0f);
  for (int64_t n = 0; n < none.lse.numel(); ++n) EXPECT_EQ(none.lse.flat(n), -std::numeric_limits<float>::infinity());
}

TEST(MergeAttentionPartials, ShapeErrors) {
  EXPECT_THROW(attn::merge_attention_partials(Tensor<float>({2, 1, 1, 1}), Tensor<float>({2, 1, 1, 1})),
               attn::ShapeError);
  EXPECT_THROW(attn::merge_attention_partials(Tensor<float>({2, 1, 1, 1, 4}), Tensor<float>({3, 1, 1, 1})),
               attn::ShapeError);
  EXPECT_THROW(attn::merge_attention_partials(Tensor<float>({2, 1, 1, 1, 4}), Tensor<float>()), attn::ShapeError);
}

// The kernel's merge is the public merge, bit for bit.
TEST(SplitKVDecode, OutputIsTheMergeOfItsPartialsBitForBit) {
  const auto q = random_tensor<float>({2, 8, 1, 64}, 7), k = random_tensor<float>({2, 2, 700, 64}, 8),
             v = random_tensor<float>({2, 2, 700, 64}, 9);
  SdpaOptions<float> o;
  o.enable_gqa = true;
  o.is_causal = true;
  o.causal_alignment = CausalAlignment::BottomRight;
  for (int64_t split : {int64_t{64}, int64_t{100}, int64_t{0}}) {
    const auto r = attn::cpu::split_kv_decode(q, k, v, {700, 433}, o, split, /*keep_partials=*/true);
    const int64_t chunk = split ? split : attn::cpu::auto_split_keys(2, 2, 700);
    EXPECT_EQ(r.partial_output.size(0), (700 + chunk - 1) / chunk);
    const auto merged = attn::merge_attention_partials(r.partial_output, r.partial_lse);
    EXPECT_TRUE(bitwise_equal(merged.output, r.output)) << "split " << split;
    EXPECT_TRUE(bitwise_equal(merged.lse, r.lse)) << "split " << split;
  }
}

// Split decode against the reference path, several chunk sizes (including a
// single chunk and chunks that do not divide the 64-key blocks), GQA, several
// query rows, every SIMD target this CPU runs.
TEST(SplitKVDecode, EqualsReferenceForAnySplit) {
  const int64_t B = 1, Hq = 8, Hkv = 2, L = 1000, D = 64;
  const auto k = random_tensor<float>({B, Hkv, L, D}, 10), v = random_tensor<float>({B, Hkv, L, D}, 11);
  const auto cache = filled_cache(k, v);
  double worst = 0;
  for (const std::string& target : attn::cpu::available_simd_targets()) {
    ASSERT_TRUE(attn::cpu::force_simd_target(target));
    for (int64_t Lq : {1, 3})
      for (bool alibi : {false, true}) {
        const auto q = random_tensor<float>({B, Hq, Lq, D}, 12 + static_cast<uint32_t>(Lq));
        SdpaOptions<float> o;
        o.enable_gqa = true;
        o.is_causal = true;
        o.causal_alignment = CausalAlignment::BottomRight;
        o.window_left = Lq == 3 ? 500 : -1;
        // ALiBi's own slopes, 2^(−8(h+1)/H): positive, so far keys fade. (Random
        // slopes of either sign make scores of ~1000 over 1000 keys, whose
        // rounding, ε·|s| ≈ 6e-5, is beyond kTol on any two paths.)
        if (alibi) {
          o.alibi_slopes = Tensor<float>({Hq});
          for (int64_t h = 0; h < Hq; ++h) o.alibi_slopes(h) = std::exp2(-8.0f * static_cast<float>(h + 1) / Hq);
        }
        const auto want = attn::scaled_dot_product_attention(q, k, v, o);
        for (int64_t split : {0, 1000, 333, 64, 50}) {
          const auto got = attn::attention_decode(q, cache, 0, o, split);
          worst = std::max({worst, max_diff(got.output, want.output), max_diff(got.lse, want.lse)});
        }
      }
  }
  attn::cpu::force_simd_target("");
  EXPECT_LE(worst, kTol);
  std::printf("[ split-KV decode vs reference: largest difference %.2e ]\n", worst);
}

// Head dims that are not whole vectors (the kernels' scalar tails), an odd
// number of rows per KV head (3: a row pair and a single row), Dk != Dv.
TEST(SplitKVDecode, OddSizes) {
  const int64_t B = 2, Hq = 6, Hkv = 2, L = 150, Dk = 13, Dv = 7;
  const auto k = random_tensor<float>({B, Hkv, L, Dk}, 20), v = random_tensor<float>({B, Hkv, L, Dv}, 21);
  const auto cache = filled_cache(k, v);
  for (int64_t Lq : {1, 2}) {
    const auto q = random_tensor<float>({B, Hq, Lq, Dk}, 22);
    SdpaOptions<float> o;
    o.enable_gqa = true;
    o.is_causal = true;
    o.causal_alignment = CausalAlignment::BottomRight;
    const auto want = attn::scaled_dot_product_attention(q, k, v, o);
    for (int64_t split : {0, 7, 64, 65}) {
      const auto got = attn::attention_decode(q, cache, 0, o, split);
      EXPECT_LE(max_diff(got.output, want.output), kTol) << "Lq " << Lq << " split " << split;
      EXPECT_LE(max_diff(got.lse, want.lse), kTol) << "Lq " << Lq << " split " << split;
    }
  }
}

TEST(SplitKVDecode, OneAndTwoThreadsAreBitIdentical) {
  // 4 MiB of cache: above the size where the kernel uses more than one thread.
  const auto q = random_tensor<float>({1, 16, 1, 128}, 14), k = random_tensor<float>({1, 4, 1024, 128}, 15),
             v = random_tensor<float>({1, 4, 1024, 128}, 16);
  const auto cache = filled_cache(k, v);
  SdpaOptions<float> o;
  o.enable_gqa = true;
  o.softcap = 5.0;
  attn::set_num_threads(1);
  const auto one = attn::attention_decode(q, cache, 0, o);
  attn::set_num_threads(2);
  const auto two = attn::attention_decode(q, cache, 0, o);
  attn::set_num_threads(0);
  EXPECT_TRUE(bitwise_equal(one.output, two.output));
  EXPECT_TRUE(bitwise_equal(one.lse, two.lse));
  EXPECT_LE(max_diff(one.output, attn::scaled_dot_product_attention(q, k, v, o).output), kTol);
}

}  // namespace

namespace {

// A NaN that takes part in the softmax makes the whole row NaN, output and
// lse, as in PyTorch: a NaN score of a visible key (NaN stored in that key),
// a NaN query (every score NaN), a NaN value of a visible key (output only).
// NaN behind the causal mask must still not leak (DecodeEdges covers the
// window). Every SIMD target, split into several chunks and unsplit, against
// the reference path and the prefill kernel.
TEST(SplitKVDecode, NaNInAVisibleKeyOrQueryMakesTheRowNaN) {
  const int64_t B = 1, Hq = 4, Hkv = 2, L = 300, D = 16;
  auto k = random_tensor<float>({B, Hkv, L, D}, 40), v = random_tensor<float>({B, Hkv, L, D}, 41);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  k(0, 0, 137, 5) = nan;  // KV head 0: visible to every row, in the middle of a chunk
  v(0, 1, 250, 3) = nan;  // KV head 1: a NaN value, visible
  auto q = random_tensor<float>({B, Hq, 2, D}, 42);
  q(0, 3, 1, 0) = nan;  // query head 3 (KV head 1), row 1: every score NaN
  const auto cache = filled_cache(k, v);
  SdpaOptions<float> o;
  o.enable_gqa = true;
  o.is_causal = true;
  o.causal_alignment = CausalAlignment::BottomRight;
  o.return_lse = true;
  // Which rows must be NaN: heads 0, 1 (KV head 0, key 137 visible to both
  // rows); heads 2, 3 (KV head 1, value 250 visible): output NaN, lse finite
  // except head 3 row 1 (NaN query).
  auto check = [&](const attn::SdpaResult<float>& r, const std::string& what) {
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t i = 0; i < 2; ++i) {
        const bool lse_nan = h < 2 || (h == 3 && i == 1);
        EXPECT_TRUE(std::isnan(r.lse(0, h, i)) == lse_nan) << what << " lse h " << h << " i " << i << " = " << r.lse(0, h, i);
        for (int64_t x = 0; x < D; ++x) {
          const bool out_nan = lse_nan || (h >= 2 && x == 3);
          EXPECT_TRUE(std::isnan(r.output(0, h, i, x)) == out_nan)
              << what << " out h " << h << " i " << i << " x " << x << " = " << r.output(0, h, i, x);
        }
      }
  };
  SdpaOptions<float> ref = o;
  ref.backend = attn::SdpaBackend::Reference;
  check(attn::scaled_dot_product_attention(q, k, v, ref), "reference");
  SdpaOptions<float> fast = o;
  fast.backend = attn::SdpaBackend::Fast;
  check(attn::scaled_dot_product_attention(q, k, v, fast), "prefill kernel");
  for (const std::string& target : attn::cpu::available_simd_targets()) {
    ASSERT_TRUE(attn::cpu::force_simd_target(target));
    for (int64_t split : {0, 64, 100, 300}) check(attn::attention_decode(q, cache, 0, o, split), target + " split " + std::to_string(split));
  }
  attn::cpu::force_simd_target("");
}

// A key whose weight is exactly 0 although no mask hides it — its score is
// −∞ (a −∞ in the key), or 200 below the row's largest so e^{s − m}
// underflows in float — has its value skipped, not multiplied by 0, as the
// reference and the prefill kernel do: a NaN or ±∞ stored in that value must
// not reach the output. Found by fuzz/kv_cache_fuzzer.cpp: the decode kernel
// multiplied every weight of a block that every row sees (0·∞ = NaN). Every
// storage, every SIMD target, unsplit and split.
TEST(SplitKVDecode, AValueBehindAZeroWeightNeverReachesTheOutput) {
  const int64_t L = 70, D = 8;  // two blocks of keys: the zero weights sit in a whole, unmasked block
  auto k = random_tensor<float>({1, 1, L, D}, 50), v = random_tensor<float>({1, 1, L, D}, 51);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  auto q = random_tensor<float>({1, 1, 1, D}, 52);
  for (int64_t x = 0; x < D; ++x) q(0, 0, 0, x) = 1.0f;
  k(0, 0, 3, 0) = -inf;  // score −∞: weight 0
  v(0, 0, 3, 1) = inf;
  for (int64_t x = 0; x < D; ++x) k(0, 0, 10, x) = -100.0f;  // score 800·scale below the others: underflows
  v(0, 0, 10, 2) = nan;
  v(0, 0, 10, 4) = -inf;
  SdpaOptions<float> ref;
  ref.backend = attn::SdpaBackend::Reference;
  const auto want = attn::scaled_dot_product_attention(q, k, v, ref);
  for (int64_t x = 0; x < D; ++x) ASSERT_TRUE(std::isfinite(want.output(0, 0, 0, x))) << x;
  for (const attn::KVStorage storage : {attn::KVStorage::Float32, attn::KVStorage::BFloat16}) {
    attn::KVCache cache({.num_kv_heads = 1, .capacity = L, .head_dim = D, .storage = storage});
    cache.append(0, k, v);
    for (const std::string& target : attn::cpu::available_simd_targets()) {
      ASSERT_TRUE(attn::cpu::force_simd_target(target));
      for (int64_t split : {0, 8, 64}) {
        const auto got = attn::attention_decode(q, cache, 0, SdpaOptions<float>{}, split);
        const auto twin = attn::attention_decode_reference(q, cache, 0, SdpaOptions<float>{});
        for (int64_t x = 0; x < D; ++x) {
          EXPECT_TRUE(std::isfinite(got.output(0, 0, 0, x)))
              << attn::to_string(storage) << " " << target << " split " << split << " x " << x << " = "
              << got.output(0, 0, 0, x);
          EXPECT_NEAR(got.output(0, 0, 0, x), twin.output(0, 0, 0, x), kTol);
        }
      }
    }
    attn::cpu::force_simd_target("");
  }
}

// The merge keeps a NaN part: NaN output and lse, even when every part is NaN.
TEST(MergeAttentionPartials, ANaNPartMakesTheRowNaN) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor<float> po({2, 1, 1, 1, 2}), pl({2, 1, 1, 1});
  po(0, 0, 0, 0, 0) = 1, po(0, 0, 0, 0, 1) = 2, pl(0, 0, 0, 0) = 0.5f;
  po(1, 0, 0, 0, 0) = nan, po(1, 0, 0, 0, 1) = nan, pl(1, 0, 0, 0) = nan;
  auto r = attn::merge_attention_partials(po, pl);
  EXPECT_TRUE(std::isnan(r.lse(0, 0, 0)));
  EXPECT_TRUE(std::isnan(r.output(0, 0, 0, 0)) && std::isnan(r.output(0, 0, 0, 1)));
  pl(0, 0, 0, 0) = nan;  // every part NaN (was: output 0, lse −∞)
  po(0, 0, 0, 0, 0) = po(0, 0, 0, 0, 1) = nan;
  r = attn::merge_attention_partials(po, pl);
  EXPECT_TRUE(std::isnan(r.lse(0, 0, 0)));
  EXPECT_TRUE(std::isnan(r.output(0, 0, 0, 0)));
}

}  // namespace
