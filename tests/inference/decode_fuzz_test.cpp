// Randomised test of KV-cache decoding: random cache configurations (float32,
// bfloat16 or int8 storage; contiguous or paged; sliding-window caches that
// give pages back), sequences of different lengths filled in random chunks
// (whole-batch or per-sequence appends), then one decode step of 1–4 query
// rows with random options (causal in either alignment or not, windows,
// ALiBi, softcap, sinks, scale, GQA, split-KV chunk sizes), through
// attn::attention_decode (the split-KV kernel, src/cpu/decode*).
//
// Expected values: scaled_dot_product_attention in float64 on each
// sequence's tokens as the cache holds them (cache.keys()/values(): exact for
// float32, the stored bf16/int8 values otherwise), checked with
// tests/fuzz.hpp's bound against the float32 readable twin,
// attention_decode_reference. For float32 caches the held tokens are also
// compared with what was appended (equal bit for bit), for bfloat16 and int8
// with their stated bounds, keys and values, so the storage is checked too,
// not only the kernel that reads it.
//
// Floor (tests/fuzz.hpp): 2e-5, the hand-written decode tests' tolerance
// (tests/inference/kv_cache_test.cpp), for elements the reference happens to
// get exactly right.
//
// The suite runs kDefaultCases cases; a soak run sets
//   ATTN_FUZZ_CASES=5000 ctest --preset release -R DecodeFuzz -V
// and ATTN_FUZZ_SEED=<n> reruns case n alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "fuzz.hpp"
#include "attn/kv_cache.hpp"
#include "attn/sdpa.hpp"

namespace {

using attn::CausalAlignment;
using attn::KVCache;
using attn::KVStorage;
using attn::SdpaOptions;
using attn::Tensor;

constexpr int kDefaultCases = 200;
constexpr double kFloor = 2e-5;

attn_test::AccuracyStats g_stats;

void run_case(uint64_t seed) {
  attn_test::Draw draw(static_cast<uint32_t>(seed * 2246822519u + 977u));
  const int64_t dims[] = {1, 3, 4, 16, 32, 64, 80, 128};
  std::ostringstream d;

  const int64_t B = draw.pick(1, 3), Hkv = draw.pick(1, 3), group = draw.pick(1, 4), Hq = Hkv * group;
  const int64_t Dk = dims[draw.pick(0, 7)], Dv = draw.chance(0.6) ? Dk : dims[draw.pick(0, 7)];
  const int64_t Lq = draw.chance(0.6) ? 1 : draw.pick(2, 4);
  const KVStorage storages[] = {KVStorage::Float32, KVStorage::BFloat16, KVStorage::Int8};
  const KVStorage storage = storages[draw.pick(0, 2)];
  const int64_t pages[] = {0, 4, 8, 16, 32, 64};
  const int64_t page = pages[draw.pick(0, 5)];
  const int64_t window_tokens = page > 0 && draw.chance(0.3) ? draw.pick(Lq + 3, 70) : 0;
  const int64_t capacity = 160;
  // Each sequence's final length (>= Lq: the query rows are its newest tokens).
  std::vector<int64_t> lengths(B);
  const bool varlen = B > 1 && draw.chance(0.6);
  for (int64_t b = 0; b < B; ++b) lengths[b] = (b == 0 || varlen) ? draw.pick(Lq, capacity) : lengths[0];

  KVCache cache({.batch = B,
                 .num_kv_heads = Hkv,
                 .capacity = capacity,
                 .head_dim = Dk,
                 .value_dim = Dv,
                 .page_size = page,
                 .window_tokens = window_tokens,
                 .storage = storage,
                 .quant_group = page > 0 ? std::min<int64_t>(page, 32) : 32});
  d << "B=" << B << " Hq=" << Hq << " Hkv=" << Hkv << " Dk=" << Dk << " Dv=" << Dv << " Lq=" << Lq << " "
    << attn::to_string(storage) << (page ? " paged " + std::to_string(page) : " contiguous")
    << (window_tokens ? " window cache " + std::to_string(window_tokens) : "") << " lengths";
  for (int64_t L : lengths) d << " " << L;

  // Fill in random chunks; keep what was appended, per sequence [Hkv, L, D].
  std::vector<Tensor<float>> keys(B), values(B);
  for (int64_t b = 0; b < B; ++b) {
    keys[b] = draw.uniform({Hkv, lengths[b], Dk});
    values[b] = draw.uniform({Hkv, lengths[b], Dv});
  }
  if (!varlen) {
    for (int64_t t = 0; t < lengths[0];) {
      const int64_t n = std::min(lengths[0] - t, draw.chance(0.5) ? int64_t{1} : draw.pick(1, 40));
      Tensor<float> k({B, Hkv, n, Dk}), v({B, Hkv, n, Dv});
      for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < Hkv; ++h)
          for (int64_t i = 0; i < n; ++i) {
            for (int64_t x = 0; x < Dk; ++x) k(b, h, i, x) = keys[b](h, t + i, x);
            for (int64_t x = 0; x < Dv; ++x) v(b, h, i, x) = values[b](h, t + i, x);
          }
      cache.append(0, k, v);
      t += n;
    }
  } else {
    d << " (per-sequence appends)";
    std::vector<int64_t> filled(B, 0);
    for (bool more = true; more;) {
      more = false;
      for (int64_t b = 0; b < B; ++b) {
        if (filled[b] == lengths[b]) continue;
        const int64_t n = std::min(lengths[b] - filled[b], draw.pick(1, 30));
        cache.append(0, b, keys[b].slice(1, filled[b], filled[b] + n), values[b].slice(1, filled[b], filled[b] + n));
        filled[b] += n;
        more = more || filled[b] < lengths[b];
      }
    }
  }

  SdpaOptions<float> o;
  o.enable_gqa = Hq != Hkv;
  if (window_tokens > 0) {
    // A window cache holds the last window_tokens tokens (at least): the
    // oldest query row may look back window_tokens − Lq keys.
    o.is_causal = true;
    o.causal_alignment = CausalAlignment::BottomRight;
    o.window_left = draw.pick(0, window_tokens - Lq);
  } else {
    o.is_causal = draw.chance(0.7);
    o.causal_alignment = draw.chance(0.8) ? CausalAlignment::BottomRight : CausalAlignment::TopLeft;
    if (draw.chance(0.3)) o.window_left = draw.pick(0, 60);
    if (draw.chance(0.2)) o.window_right = draw.pick(0, 10);
  }
  if (draw.chance(0.25))
    o.alibi_slopes = draw.chance(0.5) ? draw.uniform({Hq}, 0.0f, 0.3f) : draw.uniform({B, Hq}, 0.0f, 0.3f);
  if (draw.chance(0.25)) o.softcap = draw.real(0.5, 5.0);
  if (draw.chance(0.25)) o.sinks = draw.uniform({Hq});
  if (draw.chance(0.3)) o.scale = draw.real(0.05, 2.0);
  const int64_t splits[] = {0, 8, 16, 64, 1000};
  const int64_t split = splits[draw.pick(0, 4)];
  d << (o.is_causal ? (o.causal_alignment == CausalAlignment::BottomRight ? " causal bottom-right" : " causal top-left")
                    : " not causal")
    << " window (" << o.window_left << ", " << o.window_right << ")" << (o.alibi_slopes.defined() ? " ALiBi" : "")
    << (o.softcap > 0 ? " softcap" : "") << (o.sinks.defined() ? " sinks" : "")
    << (o.scale ? " scale " + std::to_string(*o.scale) : "") << " split_keys " << split;
  SCOPED_TRACE("case " + std::to_string(seed) + ": " + d.str() + "  (rerun: ATTN_FUZZ_SEED=" + std::to_string(seed) +
               ")");

  // The storage: what the cache holds against what was appended, keys and
  // values, within each storage's stated bound (attn/kv_cache.hpp): float32
  // exact; bfloat16 |stored − x| <= 2⁻⁸·|x|; int8 |stored − x| <= s/2 with
  // s = max |x| / 127 over the token's group of quant_group tokens, per
  // channel (plus the float rounding of stored = round(x/s)·s).
  const int64_t G = cache.config().quant_group;
  for (int64_t b = 0; b < B; ++b) {
    ASSERT_EQ(cache.length(0, b), lengths[b]);
    const int64_t first = cache.first_kept(0, b);
    for (const auto& [name, appended, held] :
         {std::tuple{"key", &keys[b], cache.keys(0, b)}, std::tuple{"value", &values[b], cache.values(0, b)}}) {
      const int64_t D = appended->size(2);
      for (int64_t h = 0; h < Hkv; ++h)
        for (int64_t t = first; t < lengths[b]; ++t)
          for (int64_t x = 0; x < D; ++x) {
            const double want = (*appended)(h, t, x), got = held(0, h, t, x);
            double bound = 0;
            if (storage == KVStorage::BFloat16) bound = 0x1p-8 * std::abs(want);
            if (storage == KVStorage::Int8) {
              double amax = 0;
              for (int64_t u = t / G * G; u < std::min((t / G + 1) * G, lengths[b]); ++u)
                amax = std::max(amax, std::abs(static_cast<double>((*appended)(h, u, x))));
              bound = amax / 127 / 2 * (1 + 1e-6) + 1e-7 * std::abs(want);
            }
            ASSERT_LE(std::abs(got - want), bound) << name << " b=" << b << " h=" << h << " t=" << t << " x=" << x;
          }
    }
  }

  const Tensor<float> q = draw.uniform({B, Hq, Lq, Dk});
  const auto got = attn::attention_decode(q, cache, 0, o, split);
  const auto ref = attn::attention_decode_reference(q, cache, 0, o);
  // float64, sequence by sequence, on the tokens as stored.
  const attn::SdpaOptions<double> o64 = attn_test::to_double(o);
  Tensor<double> exact_out({B, Hq, Lq, Dv}), exact_lse({B, Hq, Lq});
  for (int64_t b = 0; b < B; ++b) {
    attn::SdpaOptions<double> ob = o64;
    if (ob.alibi_slopes.defined() && ob.alibi_slopes.dim() == 2) ob.alibi_slopes = ob.alibi_slopes.slice(0, b, b + 1);
    const auto e = attn::scaled_dot_product_attention(attn_test::to_double(q.slice(0, b, b + 1)),
                                                      attn_test::to_double(cache.keys(0, b)),
                                                      attn_test::to_double(cache.values(0, b)), ob);
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t i = 0; i < Lq; ++i) {
        exact_lse(b, h, i) = e.lse(0, h, i);
        for (int64_t x = 0; x < Dv; ++x) exact_out(b, h, i, x) = e.output(0, h, i, x);
      }
  }
  attn_test::expect_accurate(got.output, ref.output, exact_out, kFloor, "output", g_stats);
  attn_test::expect_accurate(got.lse, ref.lse, exact_lse, kFloor, "lse", g_stats);
}

TEST(DecodeFuzz, RandomCachesAndOptionsMatchTheReference) {
  attn_test::run_cases("DecodeFuzz (KV caches and decode steps)", kDefaultCases, g_stats, run_case);
}

}  // namespace
