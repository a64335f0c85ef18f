// cpu/flash_attention-inl.h — the SIMD kernels of the fast forward pass,
// compiled once per target (AVX3, AVX2, SSE4, SSSE3, portable EMU128) by
// flash_attention.cpp through Highway's foreach_target.h. Reference twin:
// src/reference/sdpa.cpp, scaled_dot_product_attention.
//
// Work and memory, per call (FlashAttention-2, Dao 2023, on a CPU):
//   1. pack: every key block is transposed into Kᵀ [Dk, Bc] and every value
//      block copied into V [Bc, Dvp] (Dv padded to whole vectors), once per
//      call, into the reused workspace. This is what makes strided inputs
//      ([B, L, H, D] views) free for the kernels, and lets the score tile be
//      an outer product: s[r, c..c+16] += q[r, k] · kᵀ[k, c..c+16].
//   2. one work item = (query block of Br rows, b, h). Its Q block [Br, Dk],
//      scores S [Br, Bc] and running output O [Br, Dvp] stay in L1/L2
//      (≈ 16 KiB each at d = 64) while the packed Kᵀ and V blocks stream past
//      from L2/L3; per block:
//        S = Q·Kᵀ                      MR×2-vector register tiles (sgemm's)
//        m' = max(m, rowmax(S)); P = exp(S − m'); l = l·e^{m−m'} + rowsum(P)
//        O = O·e^{m−m'} + P·V          same register tiles, O rescaled on load
//      and at the end out = O / l, lse = m + log l. Key blocks that a causal
//      or window mask hides from every row of the block are never visited.
// The arithmetic of a row never depends on Br, the thread or the order of
// work items, so results are bit-identical for any thread count.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "cpu/dropout_hash.hpp"
#include "cpu/flash_attention_params.hpp"
#include "cpu/parallel.hpp"

// Per-target include guard (Highway's toggle idiom): this file is included
// once for every target, each time inside a different HWY_NAMESPACE.
#if defined(ATTN_CPU_FLASH_ATTENTION_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ATTN_CPU_FLASH_ATTENTION_INL_H_
#undef ATTN_CPU_FLASH_ATTENTION_INL_H_
#else
#define ATTN_CPU_FLASH_ATTENTION_INL_H_
#endif

#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace attn::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using DI = hn::RebindToSigned<DF>;
using VF = hn::Vec<DF>;

// ---- tiling -------------------------------------------------------------------
// Keys per block. The same on every target so that every target rescales the
// running sums at the same places (it changes rounding, not the math).
constexpr int64_t kBlockK = 64;
// Query rows of one register tile: MR rows × 2 vectors of accumulators, plus
// 2 vectors of Kᵀ (or V) and a broadcast, must fit the register file:
// 6×2 + 3 = 15 of 16 on AVX2/SSE, 12×2 + 3 = 27 of 32 on AVX-512.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr int64_t kMR = 12;
#else
constexpr int64_t kMR = 6;
#endif
// Query rows per work item: ≈ 64, a whole number of register tiles. Bigger
// blocks read each K/V block fewer times; smaller ones give more work items.
constexpr int64_t kBlockQ = kMR * ((64 + kMR - 1) / kMR);

constexpr int64_t kRowsPadded = (kBlockQ + 15) / 16 * 16;

constexpr float kLog2e = 1.44269504088896340736f;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

inline int64_t RoundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Where everything lives in the workspace (in floats; each part 64-byte aligned).
struct Layout {
  int64_t nkb = 0;   // key blocks
  int64_t nqb = 0;   // query blocks
  int64_t dvp = 0;   // Dv rounded up to a whole register tile (2 vectors)
  int64_t kt_per_head = 0, vp_per_head = 0;
  int64_t kt_off = 0, vp_off = 0, flags_off = 0, scratch_off = 0, scratch_per_thread = 0, total = 0;
  // inside one thread's scratch
  int64_t qp_off = 0, s_off = 0, o_off = 0, m_off = 0, l_off = 0, alpha_off = 0, bmax_off = 0, mlog_off = 0,
          lo_off = 0, hi_off = 0, drop_off = 0;
};

inline Layout MakeLayout(const FlashForwardParams& p) {
  const DF d;
  const int64_t nr = 2 * static_cast<int64_t>(hn::Lanes(d));
  Layout L;
  L.nkb = (p.Lk + kBlockK - 1) / kBlockK;
  L.nqb = (p.Lq + kBlockQ - 1) / kBlockQ;
  L.dvp = RoundUp(p.Dv, nr);
  L.kt_per_head = L.nkb * p.Dk * kBlockK;
  L.vp_per_head = L.nkb * kBlockK * L.dvp;
  const int64_t heads = p.B * p.Hkv;
  int64_t off = 0;
  auto take = [&off](int64_t floats) {
    const int64_t at = off;
    off += RoundUp(floats, 16);
    return at;
  };
  L.kt_off = take(heads * L.kt_per_head);
  L.vp_off = take(heads * L.vp_per_head);
  L.flags_off = take((heads * L.nkb + 3) / 4);  // one byte per (head, key block)
  // One thread's scratch; the int64 arrays take two floats per entry.
  int64_t s = 0;
  auto take_s = [&s](int64_t floats) {
    const int64_t at = s;
    s += RoundUp(floats, 16);
    return at;
  };
  L.qp_off = take_s(kBlockQ * p.Dk);
  L.s_off = take_s(kBlockQ * kBlockK);
  L.o_off = take_s(kBlockQ * L.dvp);
  // Per-row arrays, padded to whole vectors (RescaleRows works N rows at a time).
  L.m_off = take_s(kRowsPadded);
  L.l_off = take_s(kRowsPadded);
  L.alpha_off = take_s(kRowsPadded);
  L.bmax_off = take_s(kRowsPadded);
  L.mlog_off = take_s(kRowsPadded);
  L.lo_off = take_s(2 * kBlockQ);
  L.hi_off = take_s(2 * kBlockQ);
  L.drop_off = take_s(2 * kBlockQ);
  L.scratch_per_thread = s;
  L.scratch_off = off;
  L.total = off + static_cast<int64_t>(p.threads) * s;
  return L;
}

/// How many floats of workspace FlashForward needs for these parameters.
int64_t FlashForwardWorkspaceFloats(const FlashForwardParams& p) { return MakeLayout(p).total; }

struct Ctx {
  const FlashForwardParams* p;
  Layout L;
  int64_t work_items;
};

// ---- exp ---------------------------------------------------------------------
// 2^x for x <= ~0: 2^x = 2^n · 2^f with n = round(x), f = x − n in [−½, ½],
// 2^f by a degree-5 polynomial (coefficients fitted for relative error; max
// 1.9e-7 ≈ 1.6 ulp, measured over [−½, ½]) and 2^n written into the exponent
// bits. Adding 1.5·2²³ + 127 rounds x to an integer and leaves n + 127 in the
// low mantissa bits, so one add gives both n (subtract it again) and the
// exponent field (shift it into place) — cheaper than round + convert.
// x = −∞ (a hidden key) gives exactly 0: x is clamped to −127, whose 2^n has
// all-zero bits. NaN stays NaN.
template <class D, class V>
HWY_INLINE V Exp2(D d, V x) {
  const hn::RebindToSigned<D> di;
  const V lowest = hn::Set(d, -127.0f);
#if HWY_ARCH_X86 && HWY_TARGET != HWY_SCALAR && HWY_TARGET != HWY_EMU128
  x = hn::Max(lowest, x);  // x86's max returns its second operand, x, when x is NaN
#else
  x = hn::IfThenElse(hn::Lt(x, lowest), lowest, x);  // portable Max would drop the NaN
#endif
  const V magic = hn::Set(d, 12583039.0f);  // 1.5·2²³ + 127
  const V shifted = hn::Add(x, magic);
  const V n = hn::Sub(shifted, magic);
  const V f = hn::Sub(x, n);
  V poly = hn::Set(d, 0.001326472614891827f);
  poly = hn::MulAdd(poly, f, hn::Set(d, 0.009671512991189957f));
  poly = hn::MulAdd(poly, f, hn::Set(d, 0.05550733581185341f));
  poly = hn::MulAdd(poly, f, hn::Set(d, 0.24022242426872253f));
  poly = hn::MulAdd(poly, f, hn::Set(d, 0.6931470036506653f));
  poly = hn::MulAdd(poly, f, hn::Set(d, 1.0f));
  // The float's bits are 0x4B400000 + n + 127; shifting by 23 drops the
  // 0x4B4 part and puts n + 127 (in [0, 255]) in the exponent field.
  const auto two_n = hn::BitCast(d, hn::ShiftLeft<23>(hn::BitCast(di, shifted)));
  return hn::Mul(poly, two_n);
}

// ---- register tiles ------------------------------------------------------------

// S[r, 0..2N) = Σ_k Qp[k, r] · Kᵀ[k, 0..2N) for the kMR rows of one panel.
// qp: the panel, [Dk][kMR] (so the kMR broadcasts of one k are adjacent);
// kt: Kᵀ block at this column chunk, row stride kBlockK; s: row stride kBlockK.
HWY_INLINE void ScoreTile(const float* HWY_RESTRICT qp, const float* HWY_RESTRICT kt, int64_t Dk,
                          float* HWY_RESTRICT s) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF acc0[kMR], acc1[kMR];
#pragma GCC unroll 16
  for (int64_t r = 0; r < kMR; ++r) acc0[r] = acc1[r] = hn::Zero(d);
  for (int64_t k = 0; k < Dk; ++k) {
    const VF k0 = hn::Load(d, kt + k * kBlockK);
    const VF k1 = hn::Load(d, kt + k * kBlockK + N);
    const float* q = qp + k * kMR;
#pragma GCC unroll 16
    for (int64_t r = 0; r < kMR; ++r) {
      const VF qr = hn::Set(d, q[r]);
      acc0[r] = hn::MulAdd(qr, k0, acc0[r]);
      acc1[r] = hn::MulAdd(qr, k1, acc1[r]);
    }
  }
#pragma GCC unroll 16
  for (int64_t r = 0; r < kMR; ++r) {
    hn::Store(acc0[r], d, s + r * kBlockK);
    hn::Store(acc1[r], d, s + r * kBlockK + N);
  }
}

// O[r, 0..2N) = alpha[r] · O[r, 0..2N) + Σ_j P[r, j] · V[j, 0..2N) for one
// panel of kMR rows. p: row stride kBlockK; v: row stride dvp; o: row stride dvp.
HWY_INLINE void AccumulateTile(const float* HWY_RESTRICT p, int64_t count, const float* HWY_RESTRICT v,
                               int64_t dvp, const float* HWY_RESTRICT alpha, float* HWY_RESTRICT o) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF acc0[kMR], acc1[kMR];
#pragma GCC unroll 16
  for (int64_t r = 0; r < kMR; ++r) {
    const VF a = hn::Set(d, alpha[r]);
    acc0[r] = hn::Mul(hn::Load(d, o + r * dvp), a);
    acc1[r] = hn::Mul(hn::Load(d, o + r * dvp + N), a);
  }
  for (int64_t j = 0; j < count; ++j) {
    const VF v0 = hn::Load(d, v + j * dvp);
    const VF v1 = hn::Load(d, v + j * dvp + N);
#pragma GCC unroll 16
    for (int64_t r = 0; r < kMR; ++r) {
      const VF pr = hn::Set(d, p[r * kBlockK + j]);
      acc0[r] = hn::MulAdd(pr, v0, acc0[r]);
      acc1[r] = hn::MulAdd(pr, v1, acc1[r]);
    }
  }
#pragma GCC unroll 16
  for (int64_t r = 0; r < kMR; ++r) {
    hn::Store(acc0[r], d, o + r * dvp);
    hn::Store(acc1[r], d, o + r * dvp + N);
  }
}

// The same update for one row when the value block holds NaN/Inf: weights
// that are exactly 0 (hidden, dropped or underflowed keys) are skipped, not
// multiplied, as the reference does, so those values never reach the output.
HWY_INLINE void AccumulateRowSkippingZeros(const float* HWY_RESTRICT p, int64_t count,
                                           const float* HWY_RESTRICT v, int64_t dvp, float alpha,
                                           float* HWY_RESTRICT o) {
  const DF d;
  const size_t N = hn::Lanes(d);
  for (int64_t c = 0; c < dvp; c += static_cast<int64_t>(N)) hn::Store(hn::Mul(hn::Load(d, o + c), hn::Set(d, alpha)), d, o + c);
  for (int64_t j = 0; j < count; ++j) {
    if (p[j] == 0.0f) continue;
    const VF pj = hn::Set(d, p[j]);
    for (int64_t c = 0; c < dvp; c += static_cast<int64_t>(N))
      hn::Store(hn::MulAdd(pj, hn::Load(d, v + j * dvp + c), hn::Load(d, o + c)), d, o + c);
  }
}

// ---- packing -----------------------------------------------------------------

// Pack key block kb of head (b, g) as Kᵀ [Dk][kBlockK] and value block as
// V [kBlockK][dvp], zero-padded; flag the block if a value is not finite.
void PackKVBlock(void* ctx_ptr, int64_t item, int /*thread*/) {
  const Ctx& c = *static_cast<const Ctx*>(ctx_ptr);
  const FlashForwardParams& p = *c.p;
  const Layout& L = c.L;
  const int64_t head = item / L.nkb, kb = item % L.nkb;  // head = b·Hkv + g
  const int64_t b = head / p.Hkv, g = head % p.Hkv;
  const int64_t jb = kb * kBlockK, count = std::min<int64_t>(kBlockK, p.Lk - jb);

  float* kt = p.workspace + L.kt_off + head * L.kt_per_head + kb * p.Dk * kBlockK;
  const float* k = p.k + b * p.k_stride[0] + g * p.k_stride[1] + jb * p.k_stride[2];
  for (int64_t jj = 0; jj < count; ++jj)
    for (int64_t x = 0; x < p.Dk; ++x) kt[x * kBlockK + jj] = k[jj * p.k_stride[2] + x * p.k_stride[3]];
  for (int64_t x = 0; x < p.Dk; ++x)
    for (int64_t jj = count; jj < kBlockK; ++jj) kt[x * kBlockK + jj] = 0.0f;

  float* vp = p.workspace + L.vp_off + head * L.vp_per_head + jb * L.dvp;
  const float* v = p.v + b * p.v_stride[0] + g * p.v_stride[1] + jb * p.v_stride[2];
  bool finite = true;
  for (int64_t jj = 0; jj < kBlockK; ++jj) {
    float* row = vp + jj * L.dvp;
    int64_t x = 0;
    if (jj < count)
      for (; x < p.Dv; ++x) {
        const float value = v[jj * p.v_stride[2] + x * p.v_stride[3]];
        finite &= (value - value == 0.0f);  // false exactly for ±Inf and NaN
        row[x] = value;
      }
    for (; x < L.dvp; ++x) row[x] = 0.0f;
  }
  reinterpret_cast<uint8_t*>(p.workspace + L.flags_off)[item] = finite ? 0 : 1;
}

// ---- the online softmax of one block ---------------------------------------------
// Done in passes over all rows of the block, not row by row: each row's work
// is a chain of dependent steps (max, reduce, exp, sum, reduce), and passes
// give the core many independent rows to overlap.

// Pass 1, plain case (every key of the block visible to every row, no
// bias): the row max of scale·q·k. Rounding is monotone, so
// max(fl(scale·x)) = fl(scale·max(x)) and the scaled scores need not be stored.
HWY_INLINE float PlainRowMax(const float* HWY_RESTRICT s, float scale) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  VF mx0 = hn::Set(d, kNegInf), mx1 = mx0;
  for (int64_t j = 0; j < kBlockK; j += 2 * N) {
    // Max(x, mx) skips a NaN x on every target (x86 returns the second
    // operand, the portable targets the number), as the reference's
    // std::max(m, s) does.
    mx0 = hn::Max(hn::Load(d, s + j), mx0);
    mx1 = hn::Max(hn::Load(d, s + j + N), mx1);
  }
  return hn::GetLane(hn::MaxOfLanes(d, hn::Max(mx0, mx1))) * scale;
}

// Pass 1, general case: turns the raw q·k of query (b, h, i) against keys
// jb.. into final scores in place, in the reference's order — scale,
// softcap, + (ALiBi bias + float mask), −∞ where hidden — and returns their max.
// Keys [lo, hi) are those causality, the window and Lk leave visible.
HWY_INLINE float GeneralRow(const FlashForwardParams& p, int64_t b, int64_t h, int64_t i, int64_t lo, int64_t hi,
                            int64_t jb, float* HWY_RESTRICT s) {
  const DF d;
  const DI di;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const VF scale = hn::Set(d, p.scale);
  const VF cap = hn::Set(d, p.softcap);
  const VF neg_inf = hn::Set(d, kNegInf);
  const auto first = hn::Set(di, static_cast<int32_t>(lo));
  const auto last = hn::Set(di, static_cast<int32_t>(hi - 1));  // (no integer >= in this Highway)
  const auto diag_i = hn::Set(di, static_cast<int32_t>(i + p.diag));
  const float slope = p.alibi ? p.alibi[b * p.alibi_stride[0] + h * p.alibi_stride[1]] : 0.0f;
  const float* fmask =
      p.float_mask ? p.float_mask + b * p.float_mask_stride[0] + h * p.float_mask_stride[1] + i * p.float_mask_stride[2]
                   : nullptr;
  const bool* bmask =
      p.bool_mask ? p.bool_mask + b * p.bool_mask_stride[0] + h * p.bool_mask_stride[1] + i * p.bool_mask_stride[2]
                  : nullptr;
  HWY_ALIGN float gathered[hn::MaxLanes(DF())];
  VF mx = neg_inf;
  for (int64_t j = 0; j < kBlockK; j += N) {
    VF x = hn::Mul(hn::Load(d, s + j), scale);
    if (p.softcap > 0.0f) x = hn::Mul(cap, hn::Tanh(d, hn::Div(x, cap)));
    const auto key = hn::Iota(di, static_cast<int32_t>(jb + j));
    auto hide = hn::RebindMask(d, hn::Or(hn::Lt(key, first), hn::Lt(last, key)));
    if (p.alibi || fmask) {
      VF bias = hn::Zero(d);
      if (p.alibi) {
        const VF distance = hn::ConvertTo(d, hn::Abs(hn::Sub(diag_i, key)));
        bias = hn::Neg(hn::Mul(hn::Set(d, slope), distance));
      }
      if (fmask) {
        for (int64_t t = 0; t < N; ++t) {
          const int64_t jj = jb + j + t;
          gathered[t] = jj < p.Lk ? fmask[jj * p.float_mask_stride[3]] : 0.0f;
        }
        const VF mask = hn::Load(d, gathered);
        hide = hn::Or(hide, hn::Eq(mask, neg_inf));  // −∞ hides the key, as False does
        bias = hn::Add(bias, mask);
      }
      x = hn::Add(x, bias);
    }
    if (bmask) {
      for (int64_t t = 0; t < N; ++t) {
        const int64_t jj = jb + j + t;
        gathered[t] = (jj < p.Lk && bmask[jj * p.bool_mask_stride[3]]) ? 1.0f : 0.0f;
      }
      hide = hn::Or(hide, hn::Eq(hn::Load(d, gathered), hn::Zero(d)));
    }
    x = hn::IfThenElse(hide, neg_inf, x);
    hn::Store(x, d, s + j);
    mx = hn::Max(x, mx);  // skips NaN, see PlainRowMax
  }
  return hn::GetLane(hn::MaxOfLanes(d, mx));
}

// Pass 2, vectorised over rows: m_new = max(m, block max); alpha = e^{m − m_new}
// rescales what was summed so far; m_log2 = m_new·log2(e) for pass 3. A row
// that has seen nothing yet (m_new = −∞) uses 0 instead, avoiding −∞ − −∞.
HWY_INLINE void RescaleRows(int64_t rows, const float* HWY_RESTRICT block_max, float* HWY_RESTRICT m,
                            float* HWY_RESTRICT alpha, float* HWY_RESTRICT m_log2) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const VF neg_inf = hn::Set(d, kNegInf), log2e = hn::Set(d, kLog2e);
  for (int64_t r = 0; r < rows; r += N) {
    const VF m_old = hn::Load(d, m + r), bm = hn::Load(d, block_max + r);
    const VF m_new = hn::IfThenElse(hn::Gt(bm, m_old), bm, m_old);
    const VF m_use = hn::IfThenZeroElse(hn::Eq(m_new, neg_inf), m_new);
    hn::Store(Exp2(d, hn::Mul(hn::Sub(m_old, m_use), log2e)), d, alpha + r);
    hn::Store(m_new, d, m + r);
    hn::Store(hn::Mul(m_use, log2e), d, m_log2 + r);
  }
}

// Pass 3: P = 2^(s·c1 − m_log2) in place; returns the row sum. c1 is
// log2(e), or scale·log2(e) when s still holds the raw q·k (plain case).
HWY_INLINE float ExpRow(float* HWY_RESTRICT s, float c1, float m_log2) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const VF c1v = hn::Set(d, c1), mv = hn::Set(d, m_log2);
  VF sum0 = hn::Zero(d), sum1 = hn::Zero(d);
  for (int64_t j = 0; j < kBlockK; j += 2 * N) {
    const VF e0 = Exp2(d, hn::MulSub(hn::Load(d, s + j), c1v, mv));
    const VF e1 = Exp2(d, hn::MulSub(hn::Load(d, s + j + N), c1v, mv));
    hn::Store(e0, d, s + j);
    hn::Store(e1, d, s + j + N);
    sum0 = hn::Add(sum0, e0);
    sum1 = hn::Add(sum1, e1);
  }
  return hn::GetLane(hn::SumOfLanes(d, hn::Add(sum0, sum1)));
}

// ---- one work item: a block of query rows of one head -----------------------------

void ForwardItem(void* ctx_ptr, int64_t item, int thread) {
  const Ctx& c = *static_cast<const Ctx*>(ctx_ptr);
  const FlashForwardParams& p = *c.p;
  const Layout& L = c.L;
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t NR = 2 * N;

  // Heaviest blocks first (the last query rows see the most keys when causal).
  const int64_t bh = item % (p.B * p.Hq);
  const int64_t qb = L.nqb - 1 - item / (p.B * p.Hq);
  const int64_t b = bh / p.Hq, h = bh % p.Hq, g = h / p.group;
  const int64_t i0 = qb * kBlockQ;
  const int64_t rows = std::min<int64_t>(kBlockQ, p.Lq - i0);
  const int64_t panels = (rows + kMR - 1) / kMR;

  float* scratch = p.workspace + L.scratch_off + thread * L.scratch_per_thread;
  float* qp = scratch + L.qp_off;        // [panels][Dk][kMR]  the query block
  float* s = scratch + L.s_off;          // [panels·kMR][kBlockK]  scores, then weights
  float* o = scratch + L.o_off;          // [panels·kMR][dvp]  running Σ P·V
  float* m = scratch + L.m_off;          // [rows]  running max
  float* l = scratch + L.l_off;          // [rows]  running Σ exp(s − m)
  float* alpha = scratch + L.alpha_off;  // [rows]  this block's e^{m_old − m_new}
  float* bmax = scratch + L.bmax_off;    // [rows]  this block's row max
  float* mlog = scratch + L.mlog_off;    // [rows]  m·log2(e), for exp2
  int64_t* lo = reinterpret_cast<int64_t*>(scratch + L.lo_off);  // [rows]  first visible key
  int64_t* hi = reinterpret_cast<int64_t*>(scratch + L.hi_off);  // [rows]  one past the last
  uint64_t* drop = reinterpret_cast<uint64_t*>(scratch + L.drop_off);  // [rows]  dropout hash state

  // Q block, packed by register-tile panel; rows past Lq are zeros.
  const float* q = p.q + b * p.q_stride[0] + h * p.q_stride[1];
  for (int64_t pn = 0; pn < panels; ++pn)
    for (int64_t r = 0; r < kMR; ++r) {
      const int64_t i = i0 + pn * kMR + r;
      float* dst = qp + pn * p.Dk * kMR + r;
      if (i < i0 + rows)
        for (int64_t x = 0; x < p.Dk; ++x) dst[x * kMR] = q[i * p.q_stride[2] + x * p.q_stride[3]];
      else
        for (int64_t x = 0; x < p.Dk; ++x) dst[x * kMR] = 0.0f;
    }

  // Row state. A sink starts each row as if it were one more key already
  // seen: m = sink, l = e^{sink − m} = 1, with no value behind it. Padding
  // rows get the same start and a block max of −∞ forever: finite, unused.
  const float sink = p.sinks ? p.sinks[h * p.sinks_stride] : kNegInf;
  const float sink_l = std::exp(sink - (sink == kNegInf ? 0.0f : sink));
  for (int64_t r = 0; r < kRowsPadded; ++r) {
    m[r] = sink;
    l[r] = sink_l;
    alpha[r] = 1.0f;
    bmax[r] = kNegInf;
  }
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = i0 + r;
    // Keys row i may see at all: [lo, hi). Both grow with i, so the block's
    // keys are [lo[0], hi[rows − 1]); whole key blocks outside are skipped.
    int64_t first = 0, end = p.Lk;
    if (p.causal) end = std::min(end, i + p.diag + 1);
    if (p.window_right >= 0) end = std::min(end, i + p.diag + p.window_right + 1);
    if (p.window_left >= 0) first = std::max(first, i + p.diag - p.window_left);
    lo[r] = first;
    hi[r] = std::max(end, first);
    if (p.dropout_p > 0.0) drop[r] = dropout_row_state(p.dropout_seed, b, h, i);
  }
  std::memset(o, 0, sizeof(float) * static_cast<size_t>(panels * kMR * L.dvp));
  const uint64_t drop_threshold = dropout_threshold(p.dropout_p);
  const bool has_bias = p.softcap > 0.0f || p.alibi || p.float_mask || p.bool_mask;

  const int64_t key_first = lo[0], key_end = hi[rows - 1];
  const uint8_t* flags = reinterpret_cast<const uint8_t*>(p.workspace + L.flags_off);
  const int64_t head = b * p.Hkv + g;
  for (int64_t kb = key_first / kBlockK; key_end > key_first && kb * kBlockK < key_end; ++kb) {
    const int64_t jb = kb * kBlockK;
    const int64_t count = std::min<int64_t>(kBlockK, p.Lk - jb);
    const float* kt = p.workspace + L.kt_off + head * L.kt_per_head + kb * p.Dk * kBlockK;
    const float* vp = p.workspace + L.vp_off + head * L.vp_per_head + jb * L.dvp;

    // S = Q·Kᵀ (raw q·k).
    for (int64_t pn = 0; pn < panels; ++pn)
      for (int64_t col = 0; col < kBlockK; col += NR)
        ScoreTile(qp + pn * p.Dk * kMR, kt + col, p.Dk, s + pn * kMR * kBlockK + col);

    // Online softmax. Plain when every row sees every key of the block
    // (lo only grows and hi too, so checking the last lo and first hi is
    // enough) and nothing is added to the scores.
    const bool plain = !has_bias && lo[rows - 1] <= jb && jb + kBlockK <= hi[0];
    if (plain) {
      for (int64_t r = 0; r < rows; ++r) bmax[r] = PlainRowMax(s + r * kBlockK, p.scale);
    } else {
      for (int64_t r = 0; r < rows; ++r) bmax[r] = GeneralRow(p, b, h, i0 + r, lo[r], hi[r], jb, s + r * kBlockK);
    }
    RescaleRows(RoundUp(rows, N), bmax, m, alpha, mlog);
    const float c1 = plain ? p.scale * kLog2e : kLog2e;
    for (int64_t r = 0; r < rows; ++r) l[r] = l[r] * alpha[r] + ExpRow(s + r * kBlockK, c1, mlog[r]);

    // Dropout zeroes weights after the sum: lse and the normaliser l are the
    // softmax's; dropped weights only leave the P·V product.
    if (p.dropout_p > 0.0)
      for (int64_t r = 0; r < rows; ++r) {
        float* w = s + r * kBlockK;
        for (int64_t j = 0; j < count; ++j)
          if (w[j] != 0.0f && !dropout_keep_j(drop[r], jb + j, drop_threshold)) w[j] = 0.0f;
      }
    // Padding rows (r >= rows) hold q·k = 0 from their zero queries as
    // "weights"; their output is never read.

    // O = O·alpha + P·V.
    if (!flags[head * L.nkb + kb]) {
      for (int64_t pn = 0; pn < panels; ++pn)
        for (int64_t col = 0; col < L.dvp; col += NR)
          AccumulateTile(s + pn * kMR * kBlockK, count, vp + col, L.dvp, alpha + pn * kMR,
                         o + pn * kMR * L.dvp + col);
    } else {
      for (int64_t r = 0; r < rows; ++r)
        AccumulateRowSkippingZeros(s + r * kBlockK, count, vp, L.dvp, alpha[r], o + r * L.dvp);
    }
  }

  // out = O / l (times the dropout scale), lse = m + log l. A row whose max
  // is still −∞ saw no key (or only NaN scores, which the max skips, as in
  // the reference): output 0, lse −∞.
  float* out = p.out + b * p.out_stride[0] + h * p.out_stride[1];
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = i0 + r;
    float* dst = out + i * p.out_stride[2];
    const bool empty = m[r] == kNegInf;
    const float factor = empty ? 0.0f : p.dropout_scale / l[r];
    for (int64_t x = 0; x < p.Dv; ++x) dst[x * p.out_stride[3]] = empty ? 0.0f : o[r * L.dvp + x] * factor;
    if (p.lse)
      p.lse[b * p.lse_stride[0] + h * p.lse_stride[1] + i * p.lse_stride[2]] = empty ? kNegInf : m[r] + std::log(l[r]);
  }
}

/// The whole forward pass on this target: pack K and V, then every work item.
void FlashForward(const FlashForwardParams& p) {
  Ctx c{&p, MakeLayout(p), 0};
  parallel_for(p.B * p.Hkv * c.L.nkb, p.threads, &PackKVBlock, &c);
  c.work_items = c.L.nqb * p.B * p.Hq;
  parallel_for(c.work_items, p.threads, &ForwardItem, &c);
}

/// The name of this target, for tests and benchmarks.
const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace attn::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
