// cpu/decode-inl.h — the split-KV ("flash-decoding") attention kernel for a
// few query rows against a long KV cache, compiled once per SIMD target by
// decode.cpp through Highway's foreach_target.h. Reference twin:
// attention_decode_reference (src/inference/attention_decode.cpp), which runs
// scaled_dot_product_attention on each sequence's cache views.
//
// Why a kernel of its own: a decode step (Lq = 1) does 2 flops per float of
// K and V it reads, so it is bound by memory bandwidth; the prefill kernel's
// packing of K and V would double the traffic, and its parallelism over
// (batch, head) leaves cores idle when B·Hkv is small. Here:
//   * one work item = (sequence b, KV head g, chunk c of the key axis);
//     chunks make enough items for every thread even at B·Hkv = 1;
//   * an item holds all R = group·Lq query rows that read KV head g (the
//     query heads of a GQA group), so each key and value row comes from
//     memory once and is used R times from L1: GQA costs the bytes of Hkv
//     heads, not Hq;
//   * K and V are read along their rows (unit stride along d), from a
//     contiguous cache or from a paged one (a pool of pages and a page table
//     per sequence, as vLLM): a block of keys never crosses a page, so
//     within a block the rows are evenly strided either way. Every storage
//     is read in place and widened in registers (the tiles are templates on
//     the element type): bf16 exactly (the bits shifted up); int8 as its
//     integers, with each group's per-channel scales folded into the query
//     (keys) and applied once per group to its P·V sum (values). Memory
//     traffic is what the storage holds (1/2 or ~0.28 of float32). (A first
//     version widened rows into an L1 buffer for the float tiles: bf16 ran
//     at 37% of the read instead of ~98%.)
//   * each item returns its partial output (normalised by its own sum) and
//     its log-sum-exp; merge_partial_row (src/inference/merge.cpp, the body
//     of the public merge_attention_partials) combines the chunks of a row
//     in chunk order.
// Chunks depend on the shape only, never on the thread count, and every
// item's arithmetic is fixed, so results are bit-identical for any thread
// count.
//
// Per item, per block of kBlock keys (the online softmax of FlashAttention):
//   S[r, j] = q_r · k_j           2 rows × 4 keys of dot products at a time
//   s = scale·S, softcap, ALiBi, −∞ where hidden (causal, window)
//   m' = max(m, rowmax s);  P = exp(s − m');  l = l·e^{m−m'} + Σ P
//   O[r] = O[r]·e^{m−m'} + Σ_j P[r, j] v_j      2 rows × 4 values at a time
// and at the end out_c = O / l, lse_c = m + log l.
//
// Buffers (per thread scratch, floats):
//   q [R][Dkp]  the item's query rows, copied to unit stride (Dkp = Dk rounded to vectors)
//   stage [R][max(Dkp, Dvp)]  int8 storage: the query rows times a group's key
//               scales, then that group's P·V before its value scales
//   s [R][kBlock] scores, then weights P, of the block in hand
//   o [R][Dvp]  running output;  m, l, alpha [R]  running max, sum, rescale

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "cpu/decode_params.hpp"
#include "cpu/parallel.hpp"

// Per-target include guard (Highway's toggle idiom).
#if defined(ATTN_CPU_DECODE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ATTN_CPU_DECODE_INL_H_
#undef ATTN_CPU_DECODE_INL_H_
#else
#define ATTN_CPU_DECODE_INL_H_
#endif

#include "cpu/ops-inl.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#if HWY_ARCH_X86
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace attn::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

namespace decode {

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Keys per block of the online softmax: the block's scores of one row fit a
// few cache lines, and its K and V rows (64 × 512 B each at d = 128) stay
// in L1/L2 between the score pass and the P·V pass. (32 and 128 measured
// the same, 80-92% of a plain read at 32/8 heads, within this VM's noise.)
constexpr int64_t kBlock = 64;
constexpr int64_t kPrefetchKeys = 16;  // how far ahead K and V rows are prefetched

// Asks for the cache lines of `bytes` bytes at p before they are needed: the
// score pass prefetches the key rows kPrefetchKeys ahead, the P·V pass the
// value rows, so each of the two streams stays ahead of its pass across block
// and page boundaries (where the hardware prefetcher stops). On this shared
// VM it gained a few percent of a plain read on one thread, within the
// noise; 16 rows (8 KiB at d = 128) did no worse than 64, and prefetching
// to L2 only (prefetcht1) no better. A prefetch never faults, so running
// past the end of the cache is harmless.
inline void PrefetchBytes(const void* p, int64_t bytes) {
  for (int64_t x = 0; x < bytes; x += 64) __builtin_prefetch(static_cast<const char*>(p) + x, 0, 3);
}

// The keys [lo, hi) that query row i may see (causality and the window, the
// rule of visible_keys.hpp); diag places row i's diagonal at key i + diag.
// Both ends grow with i. Here lo is kept <= Lk, so an empty range is [Lk, Lk).
inline KeyRange RowKeys(const DecodeParams& p, int64_t Lk, int64_t diag, int64_t i) {
  const KeyRange r = visible_keys(p.causal, p.window_left, p.window_right, diag, Lk, i);
  const int64_t lo = std::min(r.lo, Lk);
  return {lo, std::max(lo, std::min(r.hi, Lk))};
}

// A vector of K or V elements as float32: float rows load as they are;
// bfloat16 rows (uint16_t bits) widen exactly (the bits shifted up 16);
// int8 rows convert to the integers q as floats (their per-channel scales
// are applied outside the tiles, see DecodeItem). The tiles below are
// templates on the element type, so quantised storage needs no copy.
HWY_INLINE VF LoadWide(DF d, const float* HWY_RESTRICT p) { return hn::LoadU(d, p); }
HWY_INLINE VF LoadWide(DF d, const uint16_t* HWY_RESTRICT p) {
  const hn::Rebind<uint16_t, DF> d16;
  const hn::Rebind<uint32_t, DF> du32;
  return hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(du32, hn::LoadU(d16, p))));
}
HWY_INLINE VF LoadWide(DF d, const int8_t* HWY_RESTRICT p) {
  const hn::Rebind<int8_t, DF> d8;
  const hn::Rebind<int32_t, DF> di32;
  return hn::ConvertTo(d, hn::PromoteTo(di32, hn::LoadU(d8, p)));
}
inline float Widen(float x) { return x; }
inline float Widen(int8_t x) { return static_cast<float>(x); }
inline float Widen(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

template <class E>
inline float Dot(const float* HWY_RESTRICT a, const E* HWY_RESTRICT b, int64_t n) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  VF acc0 = hn::Zero(d), acc1 = hn::Zero(d);
  int64_t x = 0;
  for (; x + 2 * N <= n; x += 2 * N) {
    acc0 = hn::MulAdd(hn::LoadU(d, a + x), LoadWide(d, b + x), acc0);
    acc1 = hn::MulAdd(hn::LoadU(d, a + x + N), LoadWide(d, b + x + N), acc1);
  }
  for (; x + N <= n; x += N) acc0 = hn::MulAdd(hn::LoadU(d, a + x), LoadWide(d, b + x), acc0);
  float dot = hn::GetLane(hn::SumOfLanes(d, hn::Add(acc0, acc1)));
  for (; x < n; ++x) dot += a[x] * Widen(b[x]);
  return dot;
}

// out[0..4) = the lane sums of a0..a3. On AVX2 three horizontal adds and one
// 128-bit add give all four at once (11 instructions instead of ~28 for four
// separate reductions); elsewhere, Highway's SumOfLanes per vector.
HWY_INLINE void SumOfLanes4(VF a0, VF a1, VF a2, VF a3, float* HWY_RESTRICT out) {
#if HWY_TARGET == HWY_AVX2
  const __m256 h01 = _mm256_hadd_ps(a0.raw, a1.raw);  // [a0 01, a0 23, a1 01, a1 23 | the same of 4..7]
  const __m256 h23 = _mm256_hadd_ps(a2.raw, a3.raw);
  const __m256 h = _mm256_hadd_ps(h01, h23);           // [a0 0..3, a1 0..3, a2 0..3, a3 0..3 | 4..7]
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
#else
  const DF d;
  out[0] = hn::GetLane(hn::SumOfLanes(d, a0));
  out[1] = hn::GetLane(hn::SumOfLanes(d, a1));
  out[2] = hn::GetLane(hn::SumOfLanes(d, a2));
  out[3] = hn::GetLane(hn::SumOfLanes(d, a3));
#endif
}

// s[r·kBlock + j] = q_r · k_j for r < R, j < count. q: rows of stride qs
// (unit stride, vector aligned); k_j = k + j·ks. Register tile: 2 query rows
// × 4 keys = 8 accumulators, 6 loads per 8 FMAs; the 4 key rows are read
// from memory by the first row pair and from L1 by the others.
template <class E>
inline void BlockScores(const float* HWY_RESTRICT q, int64_t qs, int64_t R, const E* HWY_RESTRICT k,
                        int64_t ks, int64_t count, int64_t Dk, float* HWY_RESTRICT s) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t dk_vec = Dk / N * N;
  // Four dot products of row qr with keys kj[0..4): lane sums, then the Dk tail.
  auto finish4 = [&](VF a0, VF a1, VF a2, VF a3, const float* qr, const E* const* kj, float* out) {
    SumOfLanes4(a0, a1, a2, a3, out);
    for (int64_t x = dk_vec; x < Dk; ++x)
      for (int t = 0; t < 4; ++t) out[t] += qr[x] * Widen(kj[t][x]);
  };
  int64_t j = 0;
  for (; j + 4 <= count; j += 4) {
    const E* k0 = k + j * ks;
    const E* k1 = k0 + ks;
    const E* k2 = k1 + ks;
    const E* k3 = k2 + ks;
    const E* const keys[4] = {k0, k1, k2, k3};
    for (int64_t a = 0; a < 4; ++a) PrefetchBytes(k0 + (kPrefetchKeys + a) * ks, Dk * static_cast<int64_t>(sizeof(E)));
    int64_t r = 0;
    for (; r + 2 <= R; r += 2) {
      const float* qa = q + r * qs;
      const float* qb = qa + qs;
      VF a0 = hn::Zero(d), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
      for (int64_t x = 0; x < dk_vec; x += N) {
        const VF x0 = LoadWide(d, k0 + x), x1 = LoadWide(d, k1 + x), x2 = LoadWide(d, k2 + x),
                 x3 = LoadWide(d, k3 + x);
        const VF ya = hn::Load(d, qa + x), yb = hn::Load(d, qb + x);
        a0 = hn::MulAdd(ya, x0, a0), a1 = hn::MulAdd(ya, x1, a1), a2 = hn::MulAdd(ya, x2, a2),
        a3 = hn::MulAdd(ya, x3, a3);
        b0 = hn::MulAdd(yb, x0, b0), b1 = hn::MulAdd(yb, x1, b1), b2 = hn::MulAdd(yb, x2, b2),
        b3 = hn::MulAdd(yb, x3, b3);
      }
      finish4(a0, a1, a2, a3, qa, keys, s + r * kBlock + j);
      finish4(b0, b1, b2, b3, qb, keys, s + (r + 1) * kBlock + j);
    }
    if (r < R) {  // an odd last row: 1 × 4
      const float* qa = q + r * qs;
      VF a0 = hn::Zero(d), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t x = 0; x < dk_vec; x += N) {
        const VF ya = hn::Load(d, qa + x);
        a0 = hn::MulAdd(ya, LoadWide(d, k0 + x), a0);
        a1 = hn::MulAdd(ya, LoadWide(d, k1 + x), a1);
        a2 = hn::MulAdd(ya, LoadWide(d, k2 + x), a2);
        a3 = hn::MulAdd(ya, LoadWide(d, k3 + x), a3);
      }
      finish4(a0, a1, a2, a3, qa, keys, s + r * kBlock + j);
    }
  }
  for (; j < count; ++j)
    for (int64_t r = 0; r < R; ++r) s[r * kBlock + j] = Dot(q + r * qs, k + j * ks, Dk);
}

// o_r += Σ_j P[r, j] · v_j over a block every row sees entirely and where no
// weight is exactly 0 (see HasZeroWeight: it multiplies every weight, so a
// NaN/Inf value behind a 0 would reach the output). Register tile: 2 rows × 4 value rows: 8 broadcast
// weights, 4 value vectors and 2 output vectors; the output rows are loaded
// and stored once per 4 keys. (A version that kept 2 rows × 32 columns of
// the output in registers for the whole block, walking V by columns, did as
// well from L2 but worse from memory: it reads V rows out of order.)
template <class E>
inline void BlockPV(const float* HWY_RESTRICT s, int64_t R, const E* HWY_RESTRICT v, int64_t vs, int64_t count,
                    int64_t Dv, float* HWY_RESTRICT o, int64_t os) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t dv_vec = Dv / N * N;
  int64_t j = 0;
  for (; j + 4 <= count; j += 4) {
    const E* v0 = v + j * vs;
    const E* v1 = v0 + vs;
    const E* v2 = v1 + vs;
    const E* v3 = v2 + vs;
    for (int64_t a = 0; a < 4; ++a) PrefetchBytes(v0 + (kPrefetchKeys + a) * vs, Dv * static_cast<int64_t>(sizeof(E)));
    int64_t r = 0;
    for (; r + 2 <= R; r += 2) {
      const float* pa = s + r * kBlock + j;
      const float* pb = pa + kBlock;
      const VF pa0 = hn::Set(d, pa[0]), pa1 = hn::Set(d, pa[1]), pa2 = hn::Set(d, pa[2]), pa3 = hn::Set(d, pa[3]);
      const VF pb0 = hn::Set(d, pb[0]), pb1 = hn::Set(d, pb[1]), pb2 = hn::Set(d, pb[2]), pb3 = hn::Set(d, pb[3]);
      float* oa = o + r * os;
      float* ob = oa + os;
      for (int64_t x = 0; x < dv_vec; x += N) {
        const VF x0 = LoadWide(d, v0 + x), x1 = LoadWide(d, v1 + x), x2 = LoadWide(d, v2 + x),
                 x3 = LoadWide(d, v3 + x);
        VF ya = hn::Load(d, oa + x), yb = hn::Load(d, ob + x);
        ya = hn::MulAdd(pa0, x0, ya), ya = hn::MulAdd(pa1, x1, ya), ya = hn::MulAdd(pa2, x2, ya),
        ya = hn::MulAdd(pa3, x3, ya);
        yb = hn::MulAdd(pb0, x0, yb), yb = hn::MulAdd(pb1, x1, yb), yb = hn::MulAdd(pb2, x2, yb),
        yb = hn::MulAdd(pb3, x3, yb);
        hn::Store(ya, d, oa + x);
        hn::Store(yb, d, ob + x);
      }
      for (int64_t x = dv_vec; x < Dv; ++x) {
        oa[x] += pa[0] * Widen(v0[x]) + pa[1] * Widen(v1[x]) + pa[2] * Widen(v2[x]) + pa[3] * Widen(v3[x]);
        ob[x] += pb[0] * Widen(v0[x]) + pb[1] * Widen(v1[x]) + pb[2] * Widen(v2[x]) + pb[3] * Widen(v3[x]);
      }
    }
    if (r < R) {
      const float* pa = s + r * kBlock + j;
      const VF pa0 = hn::Set(d, pa[0]), pa1 = hn::Set(d, pa[1]), pa2 = hn::Set(d, pa[2]), pa3 = hn::Set(d, pa[3]);
      float* oa = o + r * os;
      for (int64_t x = 0; x < dv_vec; x += N) {
        VF ya = hn::Load(d, oa + x);
        ya = hn::MulAdd(pa0, LoadWide(d, v0 + x), ya);
        ya = hn::MulAdd(pa1, LoadWide(d, v1 + x), ya);
        ya = hn::MulAdd(pa2, LoadWide(d, v2 + x), ya);
        ya = hn::MulAdd(pa3, LoadWide(d, v3 + x), ya);
        hn::Store(ya, d, oa + x);
      }
      for (int64_t x = dv_vec; x < Dv; ++x) oa[x] += pa[0] * Widen(v0[x]) + pa[1] * Widen(v1[x]) + pa[2] * Widen(v2[x]) + pa[3] * Widen(v3[x]);
    }
  }
  for (; j < count; ++j) {
    const E* vj = v + j * vs;
    for (int64_t r = 0; r < R; ++r) {
      const VF w = hn::Set(d, s[r * kBlock + j]);
      float* orow = o + r * os;
      for (int64_t x = 0; x < dv_vec; x += N) hn::Store(hn::MulAdd(w, LoadWide(d, vj + x), hn::Load(d, orow + x)), d, orow + x);
      for (int64_t x = dv_vec; x < Dv; ++x) orow[x] += s[r * kBlock + j] * Widen(vj[x]);
    }
  }
}

// Whether some weight P[r, j] of the block is exactly 0: a key outside a
// row's band, but also, in a block every row sees, a key whose score is −∞
// (a −∞ in the key) or so far below the row's largest that e^{s − m}
// underflows. The reference and the flash kernels skip such a key's value
// rather than multiply it by 0, so a NaN or ±∞ stored there never reaches the
// output; BlockPVMasked does the same. (R·count compares, beside the
// R·count·Dv multiply-adds of the sum.)
inline bool HasZeroWeight(const float* HWY_RESTRICT s, int64_t R, int64_t count) {
  for (int64_t r = 0; r < R; ++r)
    for (int64_t j = 0; j < count; ++j)
      if (s[r * kBlock + j] == 0.0f) return true;
  return false;
}

// The same sum for a block at the edge of some row's causal or window band,
// or holding a weight of exactly 0: a weight of 0 (a hidden key, or one whose
// weight underflowed) is skipped, so that a NaN or Inf stored there can never
// reach the output.
template <class E>
inline void BlockPVMasked(const float* HWY_RESTRICT s, int64_t R, const E* HWY_RESTRICT v, int64_t vs,
                          int64_t count, int64_t Dv, float* HWY_RESTRICT o, int64_t os) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t dv_vec = Dv / N * N;
  for (int64_t j = 0; j < count; ++j) {
    const E* vj = v + j * vs;
    for (int64_t r = 0; r < R; ++r) {
      const float w = s[r * kBlock + j];
      if (w == 0.0f) continue;
      const VF wv = hn::Set(d, w);
      float* orow = o + r * os;
      for (int64_t x = 0; x < dv_vec; x += N) hn::Store(hn::MulAdd(wv, LoadWide(d, vj + x), hn::Load(d, orow + x)), d, orow + x);
      for (int64_t x = dv_vec; x < Dv; ++x) orow[x] += w * Widen(vj[x]);
    }
  }
}

// Row r's scores → final scores, in the reference's order: scale·q·k,
// softcap, ALiBi bias; −∞ outside the row's band [lo, hi).
inline void FinishScores(const DecodeParams& p, float* HWY_RESTRICT srow, int64_t count, int64_t jb, KeyRange band,
                         int64_t row_diag_pos, float slope, bool plain) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  if (plain) {  // the common case: scale only, vectorised
    const VF sc = hn::Set(d, p.scale);
    int64_t j = 0;
    for (; j + N <= count; j += N) hn::Store(hn::Mul(sc, hn::Load(d, srow + j)), d, srow + j);
    for (; j < count; ++j) srow[j] *= p.scale;
    return;
  }
  for (int64_t j = 0; j < count; ++j) {
    const int64_t key = jb + j;
    if (key < band.lo || key >= band.hi) {
      srow[j] = kNegInf;
      continue;
    }
    float x = p.scale * srow[j];
    if (p.softcap > 0) x = p.softcap * std::tanh(x / p.softcap);
    if (p.alibi) x -= slope * static_cast<float>(std::abs(row_diag_pos - key));
    srow[j] = x;
  }
}

// The online-softmax step of one row: returns the rescale factor
// e^{m − m'} of its running output, turns srow into P = e^{s − m'}.
// A NaN score (NaN in the query or in a visible key; hidden keys are −∞ by
// now) makes the row NaN, as in the reference: m and l become NaN, which the
// caller's rescale (alpha = NaN) spreads to the running output, and every
// later block keeps (std::max(NaN, x) is NaN when NaN comes first).
inline float SoftmaxStep(float* HWY_RESTRICT srow, int64_t count, float& m, float& l) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t j = count; j < RoundUp(count, N); ++j) srow[j] = kNegInf;  // pad to whole vectors
  const int64_t cv = RoundUp(count, N);
  VF vmax = hn::Set(d, kNegInf);
  auto nan = hn::FirstN(d, 0);
  for (int64_t j = 0; j < cv; j += N) {
    const VF x = hn::Load(d, srow + j);
    vmax = hn::Max(vmax, x);
    nan = hn::Or(nan, hn::IsNaN(x));
  }
  if (!hn::AllFalse(d, nan) || std::isnan(m)) {
    std::memset(srow, 0, sizeof(float) * static_cast<size_t>(count));  // no weights; the row is NaN anyway
    m = l = std::numeric_limits<float>::quiet_NaN();
    return std::numeric_limits<float>::quiet_NaN();
  }
  const float bmax = hn::GetLane(hn::MaxOfLanes(d, vmax));
  const float m_new = std::max(m, bmax);
  if (m_new == kNegInf) {  // nothing visible yet: all weights 0, nothing to rescale
    std::memset(srow, 0, sizeof(float) * static_cast<size_t>(count));
    return 1.0f;
  }
  const float alpha = m == kNegInf ? 0.0f : std::exp(m - m_new);
  const VF vsum = ExpShiftedInPlace(d, srow, cv, 1.0f, m_new);  // P = e^{s − m'}, e^{−∞} = 0 exactly (ops-inl.h)
  l = l * alpha + hn::GetLane(hn::SumOfLanes(d, vsum));
  m = m_new;
  return alpha;
}

struct Ctx {
  const DecodeParams* p;
  int64_t R, Dkp, Dvp, scratch_per_thread;
  float* scratch;  // [threads][scratch_per_thread]
};

void DecodeItem(void* ctx_ptr, int64_t item, int thread) {
  const Ctx& c = *static_cast<const Ctx*>(ctx_ptr);
  const DecodeParams& p = *c.p;
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t chunk_index = item % p.nsplit;
  const int64_t g = (item / p.nsplit) % p.Hkv, b = item / p.nsplit / p.Hkv;
  const int64_t R = c.R;  // row r is query (h, i) = (g·group + r / Lq, r % Lq)
  float* q = c.scratch + thread * c.scratch_per_thread;  // [R][Dkp]
  float* s = q + R * c.Dkp;                                // [R][kBlock]
  float* o = s + R * kBlock;                               // [R][Dvp]
  float* m = o + R * c.Dvp;                                // [R]
  float* l = m + RoundUp(R, 16);                           // [R]
  float* alpha = l + RoundUp(R, 16);                       // [R]
  float* stage = alpha + RoundUp(R, 16);                   // int8: [R][max(Dkp, Dvp)]
  auto head_of = [&](int64_t r) { return g * p.group + r / p.Lq; };
  auto row_of = [&](int64_t r) { return r % p.Lq; };

  const int64_t Lk = p.lengths[b];
  const int64_t diag = p.bottom_right ? Lk - p.Lq : 0;
  // The item's keys: its chunk, cut to what some row can see (rows' bands grow with i).
  const KeyRange first = RowKeys(p, Lk, diag, 0), last = RowKeys(p, Lk, diag, p.Lq - 1);
  const int64_t j0 = std::max(chunk_index * p.chunk, first.lo);
  const int64_t j1 = std::min({(chunk_index + 1) * p.chunk, Lk, last.hi});

  for (int64_t r = 0; r < R; ++r) {
    // Chunk 0 carries the sink: one more softmax term with no value behind it.
    const float sink = (p.sinks && chunk_index == 0) ? p.sinks[head_of(r) * p.sinks_stride] : kNegInf;
    m[r] = sink;
    l[r] = sink == kNegInf ? 0.0f : 1.0f;  // e^{sink − m}, m = sink
  }
  if (j0 < j1) {
    for (int64_t r = 0; r < R; ++r) {
      const float* src = p.q + b * p.q_stride[0] + head_of(r) * p.q_stride[1] + row_of(r) * p.q_stride[2];
      for (int64_t x = 0; x < p.Dk; ++x) q[r * c.Dkp + x] = src[x * p.q_stride[3]];
      for (int64_t x = p.Dk; x < c.Dkp; ++x) q[r * c.Dkp + x] = 0.0f;
    }
    std::memset(o, 0, sizeof(float) * static_cast<size_t>(R * c.Dvp));
  }
  // Where rows jb.. of key/value head g start in a storage with element
  // strides st (one block never passes the end of jb's page or sequence).
  auto offset_of = [&](const int64_t* st, int64_t jb, int64_t* i0, int64_t* row) {
    *i0 = b, *row = jb;
    if (p.page_size > 0) *i0 = p.page_table[b * p.page_table_stride + jb / p.page_size], *row = jb % p.page_size;
    return *i0 * st[0] + g * st[1] + *row * st[2];
  };
  for (int64_t jb = j0, count = 0; jb < j1; jb += count) {
    // Blocks start at multiples of kBlock (so that the rounding does not depend
    // on where a window starts, and a paged cache whose pages hold whole blocks
    // gives the same bits as a contiguous one), and never cross a page.
    count = std::min(kBlock - jb % kBlock, j1 - jb);
    if (p.page_size > 0) count = std::min(count, p.page_size - jb % p.page_size);
    // S = Q·Kᵀ, the keys read in place in their storage type.
    int64_t i0 = 0, row0 = 0;
    if (p.kv_type == 0) {
      BlockScores(q, c.Dkp, R, static_cast<const float*>(p.k) + offset_of(p.k_stride, jb, &i0, &row0), p.k_stride[2],
                  count, p.Dk, s);
    } else if (p.kv_type == 1) {
      BlockScores(q, c.Dkp, R, static_cast<const uint16_t*>(p.k) + offset_of(p.k_stride, jb, &i0, &row0),
                  p.k_stride[2], count, p.Dk, s);
    } else {
      // int8, one scale group at a time: q·k = Σ_d q_d·(s_d·kq_d) = Σ_d (q_d·s_d)·kq_d,
      // so the group's key scales are folded into a copy of the query rows
      // (R·Dk multiplies per quant_group keys) and the tile reads kq as is.
      for (int64_t j = 0, n = 0; j < count; j += n) {
        const int64_t off = offset_of(p.k_stride, jb + j, &i0, &row0);
        n = std::min(count - j, p.quant_group - row0 % p.quant_group);
        const float* sc =
            p.k_scale + i0 * p.k_scale_stride[0] + g * p.k_scale_stride[1] + (row0 / p.quant_group) * p.k_scale_stride[2];
        for (int64_t r = 0; r < R; ++r) {
          for (int64_t x = 0; x < p.Dk; ++x) stage[r * c.Dkp + x] = q[r * c.Dkp + x] * sc[x];
          for (int64_t x = p.Dk; x < c.Dkp; ++x) stage[r * c.Dkp + x] = 0.0f;
        }
        BlockScores(stage, c.Dkp, R, static_cast<const int8_t*>(p.k) + off, p.k_stride[2], n, p.Dk, s + j);
      }
    }
    // Every row sees every key of the block: no −∞ to place.
    const bool full = last.lo <= jb && jb + count <= first.hi;
    const bool plain = full && p.softcap == 0 && !p.alibi;
    for (int64_t r = 0; r < R; ++r) {
      const int64_t h = head_of(r), i = row_of(r);
      const float slope = p.alibi ? p.alibi[b * p.alibi_stride[0] + h * p.alibi_stride[1]] : 0.0f;
      FinishScores(p, s + r * kBlock, count, jb, RowKeys(p, Lk, diag, i), i + diag, slope, plain);
      alpha[r] = SoftmaxStep(s + r * kBlock, count, m[r], l[r]);
      if (alpha[r] != 1.0f) {
        float* orow = o + r * c.Dvp;
        const VF a = hn::Set(d, alpha[r]);
        for (int64_t x = 0; x < c.Dvp; x += N) hn::Store(hn::Mul(a, hn::Load(d, orow + x)), d, orow + x);
      }
    }
    // O += P·V, values read the same way.
    auto pv = [&](const float* w, const auto* vrows, int64_t vs, int64_t n, float* out) {
      if (full && !HasZeroWeight(w, R, n))
        BlockPV(w, R, vrows, vs, n, p.Dv, out, c.Dvp);
      else
        BlockPVMasked(w, R, vrows, vs, n, p.Dv, out, c.Dvp);
    };
    if (p.kv_type == 0) {
      pv(s, static_cast<const float*>(p.v) + offset_of(p.v_stride, jb, &i0, &row0), p.v_stride[2], count, o);
    } else if (p.kv_type == 1) {
      pv(s, static_cast<const uint16_t*>(p.v) + offset_of(p.v_stride, jb, &i0, &row0), p.v_stride[2], count, o);
    } else {
      // int8, one scale group at a time: Σ_t p_t·(s_d·vq_td) = s_d·Σ_t p_t·vq_td,
      // summed into `stage` [R][Dvp] and added to O scaled by the group's s_d.
      for (int64_t j = 0, n = 0; j < count; j += n) {
        const int64_t off = offset_of(p.v_stride, jb + j, &i0, &row0);
        n = std::min(count - j, p.quant_group - row0 % p.quant_group);
        const float* sc =
            p.v_scale + i0 * p.v_scale_stride[0] + g * p.v_scale_stride[1] + (row0 / p.quant_group) * p.v_scale_stride[2];
        std::memset(stage, 0, sizeof(float) * static_cast<size_t>(R * c.Dvp));
        pv(s + j, static_cast<const int8_t*>(p.v) + off, p.v_stride[2], n, stage);
        for (int64_t r = 0; r < R; ++r)
          for (int64_t x = 0; x < p.Dv; ++x) o[r * c.Dvp + x] += sc[x] * stage[r * c.Dvp + x];
      }
    }
  }

  // The partial result of this chunk: out_c = O / l, lse_c = m + log l.
  for (int64_t r = 0; r < R; ++r) {
    const int64_t row = (b * p.Hq + head_of(r)) * p.Lq + row_of(r);
    float* po = p.part_out + (row * p.nsplit + chunk_index) * p.Dv;
    float* pl = p.part_lse + row * p.nsplit + chunk_index;
    if (m[r] == kNegInf || j0 >= j1) {  // saw no key (perhaps only the sink)
      std::memset(po, 0, sizeof(float) * static_cast<size_t>(p.Dv));
      *pl = m[r] == kNegInf ? kNegInf : m[r] + std::log(l[r]);
      continue;
    }
    const float inv = 1.0f / l[r];
    for (int64_t x = 0; x < p.Dv; ++x) po[x] = o[r * c.Dvp + x] * inv;
    *pl = m[r] + std::log(l[r]);
  }
}

}  // namespace decode

/// Floats of per-thread scratch one item of `p` needs.
int64_t DecodeScratchFloats(const DecodeParams& p) {
  const int64_t N = static_cast<int64_t>(hn::Lanes(decode::DF()));
  const int64_t R = p.group * p.Lq;
  const int64_t stage = p.kv_type != 2 ? 0 : R * std::max(RoundUp(p.Dk, N), RoundUp(p.Dv, N));
  return R * (RoundUp(p.Dk, N) + decode::kBlock + RoundUp(p.Dv, N)) + 3 * RoundUp(R, 16) +
         stage + 16;
}

/// Every (b, g, chunk) item, on p.threads threads; partials into p.part_*.
/// `scratch`: p.threads × DecodeScratchFloats(p) floats, 64-byte aligned.
void SplitKVDecode(const DecodeParams& p, float* scratch) {
  const int64_t N = static_cast<int64_t>(hn::Lanes(decode::DF()));
  decode::Ctx c{&p, p.group * p.Lq, RoundUp(p.Dk, N), RoundUp(p.Dv, N),
                RoundUp(DecodeScratchFloats(p), 16), scratch};
  parallel_for(p.B * p.Hkv * p.nsplit, p.threads, &decode::DecodeItem, &c);
}

}  // namespace attn::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
