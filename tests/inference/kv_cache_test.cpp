// The KV cache (src/inference/kv_cache.cpp) and the decode step (attention_decode.cpp) against the
// specification: full-sequence scaled_dot_product_attention (the reference
// path) computed on the whole sequence at once, without any cache.
//
// Every test decodes token by token (or chunk by chunk), appending each
// token's key and value, and checks that the new rows equal the rows of the
// full-sequence attention, for the fast split-KV kernel (attention_decode,
// with several chunk sizes) and for its readable twin.
//
// Tolerance: both sides compute in float32 but round in different orders
// (SIMD lanes and 2×4 register tiles, online-softmax rescaling per 64-key
// block, Highway's exp (≤ 1 ulp) vs std::exp, O/l at the end vs p = e/Σ
// first, chunks merged by their lse). Inputs are in [−1, 1] and Dk <= 64, so
// |s| <= 8 after the 1/√Dk scale; a score's rounding error is about
// √Dk·ε·|s| ≈ 5e-6 relative at worst, the output (a convex combination of
// values in [−1, 1]) inherits about that. The check is
// |got − want| <= kTol·max(1, |want|) with kTol = 2e-5 (an lse is rounded
// relative to its size); a wrong mask, offset or merge moves outputs
// by 1e-2 or more. The largest error seen is printed by the split test in
// tests/cpu/decode_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "attn/kv_cache.hpp"
#include "attn/sdpa.hpp"
#include "resource_limits.hpp"

namespace {

using attn::CausalAlignment;
using attn::KVCache;
using attn::KVCacheConfig;
using attn::SdpaOptions;
using attn::Shape;
using attn::Tensor;

constexpr double kTol = 2e-5;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

Tensor<float> random_tensor(const Shape& shape, uint32_t seed) {
  Tensor<float> t(shape);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (int64_t n = 0; n < t.numel(); ++n) t.flat(n) = dist(gen);
  return t;
}

// max |a − b| / max(1, |b|) over every element (both −∞ counts as equal).
double max_diff(const Tensor<float>& a, const Tensor<float>& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double worst = 0;
  for (int64_t n = 0; n < a.numel(); ++n) {
    const float x = a.flat(n), y = b.flat(n);
    if (x == kNegInf && y == kNegInf) continue;
    const double d = std::abs(static_cast<double>(x) - y) / std::max(1.0, std::abs(static_cast<double>(y)));
    worst = std::max(worst, std::isnan(d) ? 1e30 : d);
  }
  return worst;
}

struct Case {
  const char* name;
  int64_t Hq, Hkv;
  bool causal;
  int64_t window_left;
  bool alibi;
  double softcap;
  bool sinks;
};

class DecodeTokenByToken : public ::testing::TestWithParam<Case> {};

// The heart of the KV cache: decoding token t with the cache gives row t of
// attention over the whole sequence, for every t.
TEST_P(DecodeTokenByToken, EqualsFullSequenceAttention) {
  const Case c = GetParam();
  const int64_t B = 2, L = 70, D = 16;
  const Tensor<float> q = random_tensor({B, c.Hq, L, D}, 1), k = random_tensor({B, c.Hkv, L, D}, 2),
                      v = random_tensor({B, c.Hkv, L, D}, 3);
  SdpaOptions<float> o;
  o.is_causal = c.causal;
  o.causal_alignment = CausalAlignment::BottomRight;
  o.window_left = c.window_left;
  o.enable_gqa = c.Hq != c.Hkv;
  o.softcap = c.softcap;
  if (c.alibi) {
    o.alibi_slopes = Tensor<float>({c.Hq});
    for (int64_t h = 0; h < c.Hq; ++h) o.alibi_slopes(h) = std::pow(2.0f, -8.0f * (h + 1) / c.Hq);
  }
  if (c.sinks) o.sinks = random_tensor({c.Hq}, 4);
  // The whole sequence at once (Lq = Lk: both alignments coincide).
  const auto full = attn::scaled_dot_product_attention(q, k, v, o);

  KVCache cache({.num_layers = 2, .batch = B, .num_kv_heads = c.Hkv, .capacity = L, .head_dim = D});
  double worst = 0;
  for (int64_t t = 0; t < L; ++t) {
    // Layer 1 is the one under test; layer 0 stays empty (layers are independent).
    cache.append(1, k.slice(2, t, t + 1), v.slice(2, t, t + 1));
    const Tensor<float> qt = q.slice(2, t, t + 1);
    Tensor<float> want = full.output.slice(2, t, t + 1), want_lse = full.lse.slice(2, t, t + 1);
    if (!c.causal) {  // without causality, row t of the full attention sees the future: compare with the past only
      const auto past = attn::scaled_dot_product_attention(qt, k.slice(2, 0, t + 1), v.slice(2, 0, t + 1), o);
      want = past.output, want_lse = past.lse;
    }
    for (int64_t split : {0, 8, 64}) {
      const auto got = attn::attention_decode(qt, cache, 1, o, split);
      worst = std::max({worst, max_diff(got.output, want), max_diff(got.lse, want_lse)});
    }
    const auto ref = attn::attention_decode_reference(qt, cache, 1, o);
    worst = std::max({worst, max_diff(ref.output, want), max_diff(ref.lse, want_lse)});
  }
  EXPECT_LE(worst, kTol) << c.name;
  EXPECT_EQ(cache.length(0, 0), 0);
  EXPECT_EQ(cache.length(1, 1), L);
}

INSTANTIATE_TEST_SUITE_P(
    Options, DecodeTokenByToken,
    ::testing::Values(Case{"plain", 4, 4, true, -1, false, 0.0, false},
                      Case{"not causal (the cache holds only the past)", 4, 4, false, -1, false, 0.0, false},
                      Case{"GQA 6 over 2", 6, 2, true, -1, false, 0.0, false},
                      Case{"MQA 4 over 1", 4, 1, true, -1, false, 0.0, false},
                      Case{"window 5", 4, 2, true, 5, false, 0.0, false},
                      Case{"ALiBi", 4, 2, true, -1, true, 0.0, false},
                      Case{"softcap", 4, 4, true, -1, false, 2.0, false},
                      Case{"sinks", 4, 2, true, -1, false, 0.0, true},
                      Case{"everything", 8, 2, true, 9, true, 3.0, true}),
    [](const ::testing::TestParamInfo<Case>& info) { return "case" + std::to_string(info.index); });

// Chunked prefill: a prefix in the cache, then a chunk of C new tokens whose
// query rows attend at once. Bottom-right alignment puts the chunk at the end
// of the sequence (equal to the full sequence's rows); top-left is PyTorch's
// is_causal on the same [C, Lk] problem, and the decode step must follow the
// option too.
TEST(DecodeChunk, BothAlignments) {
  const int64_t B = 1, H = 3, L = 40, P = 25, C = 6, D = 8;
  const Tensor<float> q = random_tensor({B, H, L, D}, 11), k = random_tensor({B, H, L, D}, 12),
                      v = random_tensor({B, H, L, D}, 13);
  KVCache cache({.batch = B, .num_kv_heads = H, .capacity = L, .head_dim = D});
  cache.append(0, k.slice(2, 0, P), v.slice(2, 0, P));
  cache.append(0, k.slice(2, P, P + C), v.slice(2, P, P + C));
  const Tensor<float> qc = q.slice(2, P, P + C);
  for (CausalAlignment align : {CausalAlignment::BottomRight, CausalAlignment::TopLeft})
    for (int64_t window : {int64_t{-1}, int64_t{3}}) {
      SdpaOptions<float> o;
      o.is_causal = true;
      o.causal_alignment = align;
      o.window_left = window;
      const auto want = attn::scaled_dot_product_attention(qc, k.slice(2, 0, P + C), v.slice(2, 0, P + C), o);
      for (int64_t split : {0, 4, 7}) {
        const auto got = attn::attention_decode(qc, cache, 0, o, split);
        EXPECT_LE(max_diff(got.output, want.output), kTol);
        EXPECT_LE(max_diff(got.lse, want.lse), kTol);
      }
      if (align == CausalAlignment::BottomRight) {  // and these are rows P.. of the whole sequence
        const auto full = attn::scaled_dot_product_attention(q.slice(2, 0, P + C), k.slice(2, 0, P + C),
                                                             v.slice(2, 0, P + C), o);
        EXPECT_LE(max_diff(attn::attention_decode(qc, cache, 0, o).output, full.output.slice(2, P, P + C)), kTol);
      }
    }
}

// Varlen: sequences of different lengths in one cache; each sequence's
// result equals attention over that sequence alone.
TEST(DecodeVarlen, EqualsPerSequenceRuns) {
  const int64_t B = 3, Hq = 4, Hkv = 2, D = 16, Lq = 2;
  const std::vector<int64_t> lengths{37, 5, 130};
  KVCache cache({.batch = B, .num_kv_heads = Hkv, .capacity = 160, .head_dim = D, .value_dim = 12});
  std::vector<Tensor<float>> ks, vs;
  for (int64_t b = 0; b < B; ++b) {
    ks.push_back(random_tensor({1, Hkv, lengths[b], D}, 20 + b));
    vs.push_back(random_tensor({1, Hkv, lengths[b], 12}, 30 + b));
    // Appended in two pieces, to exercise appends after a non-zero length.
    const int64_t half = lengths[b] / 2;
    cache.append(0, b, ks[b].select(0, 0).slice(1, 0, half), vs[b].select(0, 0).slice(1, 0, half));
    cache.append(0, b, ks[b].select(0, 0).slice(1, half, lengths[b]), vs[b].select(0, 0).slice(1, half, lengths[b]));
    EXPECT_EQ(cache.length(0, b), lengths[b]);
  }
  const Tensor<float> q = random_tensor({B, Hq, Lq, D}, 40);
  SdpaOptions<float> o;
  o.is_causal = true;
  o.causal_alignment = CausalAlignment::BottomRight;
  o.enable_gqa = true;
  o.alibi_slopes = random_tensor({B, Hq}, 41);  // per-sequence slopes, [B, Hq], positive as ALiBi's
  for (int64_t n = 0; n < o.alibi_slopes.numel(); ++n) o.alibi_slopes.flat(n) = std::abs(o.alibi_slopes.flat(n));
  for (int64_t split : {0, 16}) {
    const auto got = attn::attention_decode(q, cache, 0, o, split);
    for (int64_t b = 0; b < B; ++b) {
      SdpaOptions<float> ob = o;
      ob.alibi_slopes = o.alibi_slopes.slice(0, b, b + 1);
      const auto want = attn::scaled_dot_product_attention(q.slice(0, b, b + 1), ks[b], vs[b], ob);
      EXPECT_LE(max_diff(got.output.slice(0, b, b + 1), want.output), kTol) << "sequence " << b;
      EXPECT_LE(max_diff(got.lse.slice(0, b, b + 1), want.lse), kTol) << "sequence " << b;
    }
  }
}

// attention_decode_reference is the specification the fast decode kernel is
// tested against, so it must run the reference loops whatever the size: at
// this shape (65536 multiply-adds per sequence, far above the size under
// which SdpaBackend::Auto picks the reference) it must still equal
// scaled_dot_product_attention with SdpaBackend::Reference on each sequence,
// bit for bit. (It once left the backend on Auto, so above that size the
// decode tests compared the fast kernel with the fast flash kernel.) Asking
// for the fast backend must not change that.
TEST(DecodeReference, RunsTheReferencePathAtEverySize) {
  const int64_t B = 2, Hq = 4, Hkv = 2, Lk = 256, D = 32;
  KVCache cache({.batch = B, .num_kv_heads = Hkv, .capacity = Lk, .head_dim = D});
  cache.append(0, random_tensor({B, Hkv, Lk, D}, 60), random_tensor({B, Hkv, Lk, D}, 61));
  const Tensor<float> q = random_tensor({B, Hq, 1, D}, 62);
  for (attn::SdpaBackend backend : {attn::SdpaBackend::Auto, attn::SdpaBackend::Fast}) {
    SdpaOptions<float> o;
    o.is_causal = true;
    o.causal_alignment = CausalAlignment::BottomRight;
    o.enable_gqa = true;
    o.backend = backend;
    const auto got = attn::attention_decode_reference(q, cache, 0, o);
    o.backend = attn::SdpaBackend::Reference;
    for (int64_t b = 0; b < B; ++b) {
      const auto want =
          attn::scaled_dot_product_attention(q.slice(0, b, b + 1), cache.keys(0, b), cache.values(0, b), o);
      for (int64_t n = 0; n < want.output.numel(); ++n)
        ASSERT_EQ(got.output.slice(0, b, b + 1).flat(n), want.output.flat(n))
            << "sequence " << b << ", element " << n << ", backend " << attn::to_string(backend);
      for (int64_t n = 0; n < want.lse.numel(); ++n)
        ASSERT_EQ(got.lse.slice(0, b, b + 1).flat(n), want.lse.flat(n)) << "sequence " << b << ", row " << n;
    }
  }
}

TEST(KVCache, AppendWritesInPlaceAndViewsSeeIt) {
  KVCache cache({.num_layers = 1, .batch = 2, .num_kv_heads = 2, .capacity = 5, .head_dim = 3});
  EXPECT_EQ(cache.bytes_per_token(), 2 * (3 + 3) * 4);
  const Tensor<float> k = random_tensor({2, 2, 2, 3}, 5), v = random_tensor({2, 2, 2, 3}, 6);
  const Tensor<float> storage = cache.key_storage(0);
  cache.append(0, k, v);
  const Tensor<float> kt = random_tensor({2, 2, 3, 2}, 7).transpose(2, 3);  // [2, 2, 2, 3], strided
  cache.append(0, kt, v);
  EXPECT_EQ(cache.lengths(0), (std::vector<int64_t>{4, 4}));
  EXPECT_EQ(cache.keys(0, 1).shape(), (Shape{1, 2, 4, 3}));
  EXPECT_EQ(cache.keys(0, 1)(0, 1, 3, 2), kt(1, 1, 1, 2));
  EXPECT_EQ(cache.keys(0, 1)(0, 1, 1, 2), k(1, 1, 1, 2));
  EXPECT_EQ(cache.values(0, 0)(0, 0, 2, 1), v(0, 0, 0, 1));
  EXPECT_EQ(storage(1, 1, 3, 2), kt(1, 1, 1, 2));  // the storage handle saw the write: in place
  cache.clear(1);
  EXPECT_EQ(cache.lengths(0), (std::vector<int64_t>{4, 0}));
  cache.clear();
  EXPECT_EQ(cache.length(0, 0), 0);
}

TEST(KVCache, TypedErrors) {
  KVCache cache({.num_layers = 1, .batch = 2, .num_kv_heads = 2, .capacity = 3, .head_dim = 4});
  const Tensor<float> k = random_tensor({2, 2, 2, 4}, 5), v = random_tensor({2, 2, 2, 4}, 6);
  cache.append(0, k, v);
  // Full: nothing is written, lengths unchanged.
  EXPECT_THROW(cache.append(0, k, v), attn::ValueError);
  EXPECT_EQ(cache.lengths(0), (std::vector<int64_t>{2, 2}));
  try {
    cache.append(0, k, v);
  } catch (const attn::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("capacity 3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(cache.append(0, random_tensor({2, 3, 1, 4}, 7), random_tensor({2, 3, 1, 4}, 8)), attn::ShapeError);
  EXPECT_THROW(cache.append(0, random_tensor({2, 2, 1, 4}, 7), random_tensor({2, 2, 2, 4}, 8)), attn::ShapeError);
  EXPECT_THROW(cache.append(0, random_tensor({2, 2, 1, 5}, 7), random_tensor({2, 2, 1, 4}, 8)), attn::ShapeError);
  EXPECT_THROW(cache.append(1, k, v), attn::ValueError);       // no layer 1
  EXPECT_THROW(cache.append(0, 2, k.select(0, 0), v.select(0, 0)), attn::ValueError);  // no sequence 2
  EXPECT_THROW(cache.append(0, 0, k, v), attn::ShapeError);    // per-sequence append takes rank 3
  EXPECT_THROW(KVCache({.capacity = -1}), attn::ValueError);

  const Tensor<float> q = random_tensor({2, 4, 1, 4}, 9);
  SdpaOptions<float> o;
  EXPECT_THROW(attn::attention_decode(q, cache, 0, o), attn::ValueError);  // 4 over 2 without enable_gqa
  o.enable_gqa = true;
  EXPECT_NO_THROW(attn::attention_decode(q, cache, 0, o));
  EXPECT_THROW(attn::attention_decode(random_tensor({2, 4, 1, 5}, 9), cache, 0, o), attn::ShapeError);
  EXPECT_THROW(attn::attention_decode(random_tensor({1, 4, 1, 4}, 9), cache, 0, o), attn::ShapeError);
  EXPECT_THROW(attn::attention_decode(random_tensor({2, 3, 1, 4}, 9), cache, 0, o), attn::ShapeError);
  EXPECT_THROW(attn::attention_decode(q, cache, 1, o), attn::ValueError);
  EXPECT_THROW(attn::attention_decode(q, cache, 0, o, -1), attn::ValueError);
  SdpaOptions<float> bad = o;
  bad.dropout_p = 0.1;
  EXPECT_THROW(attn::attention_decode(q, cache, 0, bad), attn::ValueError);
  bad = o;
  bad.bool_mask = Tensor<bool>({1});
  EXPECT_THROW(attn::attention_decode(q, cache, 0, bad), attn::ValueError);
  bad = o;
  bad.alibi_slopes = Tensor<float>({3});
  EXPECT_THROW(attn::attention_decode(q, cache, 0, bad), attn::ShapeError);
  bad = o;
  bad.softcap = -1;
  EXPECT_THROW(attn::attention_decode(q, cache, 0, bad), attn::ValueError);
}

// Edge cases decided for every path: an empty sequence, a window that hides
// every key, and NaN stored in keys/values the window hides.
TEST(DecodeEdges, EmptyHiddenAndNaN) {
  const int64_t D = 8;
  KVCache cache({.batch = 2, .num_kv_heads = 1, .capacity = 300, .head_dim = D});
  Tensor<float> k = random_tensor({1, 200, D}, 50), v = random_tensor({1, 200, D}, 51);
  // Position 0 holds NaN; a window of 10 never shows it to the last token.
  for (int64_t x = 0; x < D; ++x) k(0, 0, x) = v(0, 0, x) = std::nanf("");
  cache.append(0, 1, k, v);  // sequence 0 stays empty
  const Tensor<float> q = random_tensor({2, 1, 1, D}, 52);
  SdpaOptions<float> o;
  o.is_causal = true;
  o.causal_alignment = CausalAlignment::BottomRight;
  o.window_left = 10;
  for (int64_t split : {0, 64, 1}) {
    const auto got = attn::attention_decode(q, cache, 0, o, split);
    for (int64_t x = 0; x < D; ++x) {
      EXPECT_EQ(got.output(0, 0, 0, x), 0.0f);  // empty sequence: 0, lse −∞
      EXPECT_TRUE(std::isfinite(got.output(1, 0, 0, x)));
    }
    EXPECT_EQ(got.lse(0, 0, 0), kNegInf);
    EXPECT_TRUE(std::isfinite(got.lse(1, 0, 0)));
  }
  const auto ref = attn::attention_decode_reference(q, cache, 0, o);
  EXPECT_LE(max_diff(attn::attention_decode(q, cache, 0, o).output, ref.output), kTol);
}

// Paged storage (fixed-size pages + a page table, as vLLM): the same tokens
// give the same attention as a contiguous cache. With pages of 64 tokens (a
// whole number of the kernel's 64-key blocks) the block boundaries, hence
// every rounding, are the same: bit for bit. With pages of 5 tokens blocks
// are cut at page ends: equal to rounding.
TEST(PagedKVCache, EqualsContiguous) {
  const int64_t B = 3, Hq = 4, Hkv = 2, D = 16, cap = 300;
  const std::vector<int64_t> lengths{260, 7, 131};
  for (int64_t page : {int64_t{64}, int64_t{5}}) {
    KVCache contiguous({.batch = B, .num_kv_heads = Hkv, .capacity = cap, .head_dim = D});
    KVCache paged({.batch = B, .num_kv_heads = Hkv, .capacity = cap, .head_dim = D, .page_size = page});
    // Sequences grow in turns, a few tokens at a time, so their pages interleave in the pool.
    std::vector<int64_t> done(B, 0);
    for (int64_t step = 0, more = 1; more; ++step) {
      more = 0;
      for (int64_t b = 0; b < B; ++b) {
        const int64_t n = std::min<int64_t>(3 + (step + b) % 7, lengths[b] - done[b]);
        if (n <= 0) continue;
        more = 1;
        const Tensor<float> k = random_tensor({Hkv, n, D}, static_cast<uint32_t>(1000 * b + step)),
                            v = random_tensor({Hkv, n, D}, static_cast<uint32_t>(5000 + 1000 * b + step));
        contiguous.append(0, b, k, v);
        paged.append(0, b, k, v);
        done[b] += n;
      }
    }
    EXPECT_EQ(paged.lengths(0), lengths);
    EXPECT_EQ(static_cast<int64_t>(paged.page_table(0, 1).size()), (7 + page - 1) / page);
    EXPECT_EQ(max_diff(paged.keys(0, 2), contiguous.keys(0, 2)), 0.0);  // the gathered copy
    const Tensor<float> q = random_tensor({B, Hq, 2, D}, 77);
    SdpaOptions<float> o;
    o.is_causal = true;
    o.causal_alignment = CausalAlignment::BottomRight;
    o.enable_gqa = true;
    o.window_left = 100;
    for (int64_t split : {0, 64, 128}) {
      const auto want = attn::attention_decode(q, contiguous, 0, o, split);
      const auto got = attn::attention_decode(q, paged, 0, o, split);
      if (page == 64) {
        EXPECT_EQ(max_diff(got.output, want.output), 0.0) << "split " << split;
        EXPECT_EQ(max_diff(got.lse, want.lse), 0.0) << "split " << split;
      } else {
        EXPECT_LE(max_diff(got.output, want.output), kTol) << "page " << page << " split " << split;
        EXPECT_LE(max_diff(got.lse, want.lse), kTol) << "page " << page << " split " << split;
      }
    }
    const auto ref = attn::attention_decode_reference(q, paged, 0, o);
    EXPECT_LE(max_diff(ref.output, attn::attention_decode(q, paged, 0, o).output), kTol);
  }
}

TEST(PagedKVCache, PagesAreSharedAndReturned) {
  // 4 pages of 4 tokens for 2 sequences of capacity 16: not enough for both to be full.
  KVCache cache({.batch = 2, .num_kv_heads = 1, .capacity = 16, .head_dim = 2, .page_size = 4, .num_pages = 4});
  EXPECT_EQ(cache.free_pages(0), 4);
  cache.append(0, 0, random_tensor({1, 9, 2}, 1), random_tensor({1, 9, 2}, 2));  // 3 pages
  EXPECT_EQ(cache.free_pages(0), 1);
  // Sequence 1 wants 2 pages: ValueError, nothing taken or written.
  EXPECT_THROW(cache.append(0, 1, random_tensor({1, 5, 2}, 3), random_tensor({1, 5, 2}, 4)), attn::ValueError);
  EXPECT_EQ(cache.free_pages(0), 1);
  EXPECT_EQ(cache.length(0, 1), 0);
  // The batch append checks every sequence first.
  EXPECT_THROW(cache.append(0, random_tensor({2, 1, 4, 2}, 5), random_tensor({2, 1, 4, 2}, 6)), attn::ValueError);
  EXPECT_EQ(cache.lengths(0), (std::vector<int64_t>{9, 0}));
  cache.append(0, 1, random_tensor({1, 4, 2}, 3), random_tensor({1, 4, 2}, 4));  // fits the last page
  EXPECT_EQ(cache.free_pages(0), 0);
  cache.clear(0);
  EXPECT_EQ(cache.free_pages(0), 3);
  EXPECT_TRUE(cache.page_table(0, 0).empty());
  EXPECT_THROW(KVCache({.page_size = -1}), attn::ValueError);
  KVCache contiguous({.capacity = 4, .head_dim = 2});
  EXPECT_THROW(contiguous.page_table(0, 0), attn::ValueError);
}

// A sliding-window cache keeps only the pages its window can still see, and
// decoding with it equals full-sequence attention with that window.
TEST(SlidingWindowKVCache, DropsWhatTheWindowNoLongerSees) {
  const int64_t B = 2, H = 2, L = 90, D = 8, W = 10, page = 4;
  const Tensor<float> q = random_tensor({B, H, L, D}, 91), k = random_tensor({B, H, L, D}, 92),
                      v = random_tensor({B, H, L, D}, 93);
  SdpaOptions<float> o;
  o.is_causal = true;
  o.causal_alignment = CausalAlignment::BottomRight;
  o.window_left = W - 1;  // the newest token and the W − 1 before it
  const auto full = attn::scaled_dot_product_attention(q, k, v, o);
  KVCache cache({.batch = B, .num_kv_heads = H, .capacity = L, .head_dim = D, .page_size = page, .window_tokens = W});
  EXPECT_EQ(cache.config().num_pages, B * ((W + page - 1) / page + 1));
  // A first chunk longer than the window stores only its last pages.
  const int64_t P = 25;
  cache.append(0, k.slice(2, 0, P), v.slice(2, 0, P));
  EXPECT_EQ(cache.first_kept(0, 0), (P - W) / page * page);
  double worst = 0;
  for (int64_t t = P; t < L; ++t) {
    cache.append(0, k.slice(2, t, t + 1), v.slice(2, t, t + 1));
    const auto got = attn::attention_decode(q.slice(2, t, t + 1), cache, 0, o, /*split_keys=*/8);
    worst = std::max({worst, max_diff(got.output, full.output.slice(2, t, t + 1)),
                      max_diff(got.lse, full.lse.slice(2, t, t + 1))});
    // Held pages stay bounded: at most ⌈W / page⌉ + 1 per sequence.
    for (int64_t b = 0; b < B; ++b) {
      int64_t held = 0;
      for (int64_t pg : cache.page_table(0, b)) held += pg >= 0;
      EXPECT_LE(held, (W + page - 1) / page + 1);
      EXPECT_LE(cache.first_kept(0, b), t + 1 - W);
    }
  }
  EXPECT_LE(worst, kTol);
  // The reference twin reads the gathered copy, NaN where tokens were dropped:
  // equal, so no dropped token is read.
  const Tensor<float> qlast = q.slice(2, L - 1, L);
  EXPECT_LE(max_diff(attn::attention_decode_reference(qlast, cache, 0, o).output, full.output.slice(2, L - 1, L)), kTol);
  // A window that would see dropped tokens is refused.
  SdpaOptions<float> wide = o;
  wide.window_left = -1;
  EXPECT_THROW(attn::attention_decode(qlast, cache, 0, wide), attn::ValueError);
  wide.window_left = W + 8;
  EXPECT_THROW(attn::attention_decode(qlast, cache, 0, wide), attn::ValueError);
  EXPECT_THROW(KVCache({.capacity = 8, .head_dim = 2, .window_tokens = 4}), attn::ValueError);  // needs pages
  cache.clear();
  EXPECT_EQ(cache.free_pages(0), cache.config().num_pages);
}

// ---- sizes (issue 17) ------------------------------------------------------------------
// A cache's storage is the product of its config's sizes. A config whose
// product does not fit used to be constructed (the count wrapped to a small
// buffer) and segfaulted on the first append; it must be refused at
// construction, naming the config.

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const attn::Error& e) {
    return e.what();
  }
  return "(no exception)";
}

TEST(KVCacheSizes, AConfigWhoseStorageDoesNotFitIsRefusedAtConstruction) {
  const int64_t t20 = int64_t{1} << 20;
  const KVCacheConfig huge{.num_layers = 1, .batch = t20, .num_kv_heads = t20, .capacity = t20, .head_dim = t20};
  EXPECT_THROW(KVCache{huge}, attn::ValueError);
  const std::string msg = error_of([&] { KVCache c(huge); });
  EXPECT_NE(msg.find("batch 1048576, num_kv_heads 1048576, capacity 1048576, head_dim 1048576"), std::string::npos) << msg;
  EXPECT_NE(msg.find("2^63"), std::string::npos) << msg;
  // Each product separately: capacity alone, the layers, the int8 scales, the paged pool.
  EXPECT_THROW(KVCache({.capacity = int64_t{1} << 62, .head_dim = 4}), attn::ValueError);
  EXPECT_THROW(KVCache({.num_layers = int64_t{1} << 40, .capacity = t20, .head_dim = 128}), attn::ValueError);
  EXPECT_THROW(KVCache({.capacity = 16, .head_dim = 4, .storage = attn::KVStorage::Int8, .quant_group = int64_t{1} << 62}),
               attn::ValueError);
  EXPECT_THROW(KVCache({.batch = int64_t{1} << 40, .capacity = int64_t{1} << 40, .head_dim = 4, .page_size = 16}),
               attn::ValueError);  // the default pool: batch x capacity / page_size pages
  EXPECT_THROW(KVCache({.capacity = std::numeric_limits<int64_t>::max(), .head_dim = 0}), attn::ValueError);
}

TEST(KVCacheSizes, StorageTheSystemRefusesIsAResourceErrorAndAnotherCacheWorks) {
  if (attn::testing::kUnderAddressSanitizer)
    GTEST_SKIP() << "AddressSanitizer's operator new aborts on a failed allocation instead of throwing";
  // 2^46 floats per plane: 256 TiB for keys, more than a process can
  // address (so refused whatever the machine's overcommit policy).
  const KVCacheConfig big{.num_layers = 1, .batch = 1, .num_kv_heads = 1, .capacity = int64_t{1} << 39, .head_dim = 128};
  const std::string msg = error_of([&] { KVCache c(big); });
  EXPECT_NE(msg.find("cannot allocate the 562949953421320 bytes"), std::string::npos) << msg;  // 2 x 2^48 + 8
  EXPECT_NE(msg.find("capacity 549755813888"), std::string::npos) << msg;
  KVCache fine({.num_layers = 1, .batch = 1, .num_kv_heads = 2, .capacity = 8, .head_dim = 4});
  const Tensor<float> kv = Tensor<float>::full({1, 2, 3, 4}, 0.5f);
  fine.append(0, kv, kv);
  const auto r = attn::attention_decode(Tensor<float>::full({1, 2, 1, 4}, 1.0f), fine, 0);
  EXPECT_FLOAT_EQ(r.output(0, 1, 0, 3), 0.5f);
}

}  // namespace
