// cpu/flash_attention-inl.h — the SIMD kernels of the fast path, forward and
// backward, compiled once per target (AVX3, AVX2, SSE4, SSSE3 and the
// portable fallback) by flash_attention.cpp through Highway's
// foreach_target.h. Reference twins: src/reference/sdpa.cpp,
// scaled_dot_product_attention and scaled_dot_product_attention_backward.
//
// Forward, per call (FlashAttention-2, Dao 2023, on a CPU):
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
//   What backward needs: out and lse (nothing else is saved).
//
// Backward (see the comment above FlashBackward): P is recomputed from lse,
// tile by tile, in one pass over key blocks; every gradient element is
// summed by one thread in a fixed order — dK and dV by key block, dQ in
// partial sums per group of key blocks added in group order — with no
// atomics and no [Lq, Lk] buffer.
//
// The arithmetic of a row (forward) or of a gradient element (backward) never
// depends on the thread or the order of work items, so results are
// bit-identical for any thread count.

#include <algorithm>
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

#include "cpu/ops-inl.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace attn::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using DI = hn::RebindToSigned<DF>;
using VF = hn::Vec<DF>;
using MF = hn::Mask<DF>;

// ---- tiling -------------------------------------------------------------------
// Keys per block. The same on every target so that every target rescales the
// running sums at the same places (it changes rounding, not the math).
constexpr int64_t kBlockK = 64;
// Rows of one register tile: MR rows × 2 vectors of accumulators, plus
// 2 vectors of Kᵀ (or V) and a broadcast, must fit the register file:
// 6×2 + 3 = 15 of 16 on AVX2/SSE, 12×2 + 3 = 27 of 32 on AVX-512.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr int64_t kMR = 12;
#else
constexpr int64_t kMR = 6;
#endif
// Query rows per work item: ≈ 64, a whole number of register tiles. (64 and
// 128 measured alike on AVX2; 64 keeps a block's buffers in L1/L2.)
constexpr int64_t kBlockQ = kMR * ((64 + kMR - 1) / kMR);
// Key rows of the backward's dK/dV tiles: kBlockK rounded up to whole panels.
constexpr int64_t kBlockKPadded = kMR * ((kBlockK + kMR - 1) / kMR);
// Row stride of the score/weight tiles. The backward's dK/dV tiles read a
// tile's columns in panels of kMR, so a row must have room for
// kBlockKPadded columns (the extra ones are zeros); 16 more floats keep rows
// 64-byte aligned.
constexpr int64_t kSStride = kBlockK + 16;
static_assert(kSStride >= kBlockKPadded, "score rows must hold whole panels");
constexpr int64_t kRowsPadded = (kBlockQ + 15) / 16 * 16;

// Floats of workspace, handed out in 64-byte aligned pieces.
struct Carver {
  int64_t used = 0;
  int64_t take(int64_t floats) {
    const int64_t at = used;
    used += RoundUp(floats, 16);
    return at;
  }
};

inline int64_t TileWidth() { return 2 * static_cast<int64_t>(hn::Lanes(DF())); }

// ---- register tiles ------------------------------------------------------------

// C[r, 0..2N) = Σ_k A[r, k] · Bᵀ[k, 0..2N) for the kMR rows of one panel —
// S = Q·Kᵀ, and in the backward dP = dO·Vᵀ. A is either a packed panel
// [K][kMR] (kPanel: the kMR broadcasts of one k are adjacent) or plain rows
// with stride lda; Bᵀ: row stride kBlockK; C: row stride kSStride.
template <bool kPanel>
HWY_INLINE void ScoreTile(const float* HWY_RESTRICT a, int64_t lda, const float* HWY_RESTRICT bt, int64_t K,
                          float* HWY_RESTRICT c) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF acc0[kMR], acc1[kMR];
#pragma GCC unroll 16
  for (int64_t r = 0; r < kMR; ++r) acc0[r] = acc1[r] = hn::Zero(d);
  for (int64_t k = 0; k < K; ++k) {
    const VF b0 = hn::Load(d, bt + k * kBlockK);
    const VF b1 = hn::Load(d, bt + k * kBlockK + N);
#pragma GCC unroll 16
    for (int64_t r = 0; r < kMR; ++r) {
      const VF ar = hn::Set(d, kPanel ? a[k * kMR + r] : a[r * lda + k]);
      acc0[r] = hn::MulAdd(ar, b0, acc0[r]);
      acc1[r] = hn::MulAdd(ar, b1, acc1[r]);
    }
  }
#pragma GCC unroll 16
  for (int64_t r = 0; r < kMR; ++r) {
    hn::Store(acc0[r], d, c + r * kSStride);
    hn::Store(acc1[r], d, c + r * kSStride + N);
  }
}

// O[r, 0..2N) = alpha[r]·O[r, 0..2N) + Σ_j P(r, j) · B[j, 0..2N) for one
// panel of kMR rows, P(r, j) = p[r·kPRow + j·kPCol]: O += P·V in the forward
// (P's rows), dQ += dS·K, and dV += Pᵀ·dO, dK += dSᵀ·Q in the backward (P's
// columns: kPRow = 1). alpha == nullptr: no rescaling. B, O: row strides ldb, ldo.
template <int64_t kPRow, int64_t kPCol>
HWY_INLINE void AccumulateTile(const float* HWY_RESTRICT p, int64_t count, const float* HWY_RESTRICT b,
                               int64_t ldb, const float* HWY_RESTRICT alpha, float* HWY_RESTRICT o, int64_t ldo) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF acc0[kMR], acc1[kMR];
#pragma GCC unroll 16
  for (int64_t r = 0; r < kMR; ++r) {
    acc0[r] = hn::Load(d, o + r * ldo);
    acc1[r] = hn::Load(d, o + r * ldo + N);
    if (alpha) {
      const VF a = hn::Set(d, alpha[r]);
      acc0[r] = hn::Mul(acc0[r], a);
      acc1[r] = hn::Mul(acc1[r], a);
    }
  }
  for (int64_t j = 0; j < count; ++j) {
    const VF b0 = hn::Load(d, b + j * ldb);
    const VF b1 = hn::Load(d, b + j * ldb + N);
#pragma GCC unroll 16
    for (int64_t r = 0; r < kMR; ++r) {
      const VF pr = hn::Set(d, p[r * kPRow + j * kPCol]);
      acc0[r] = hn::MulAdd(pr, b0, acc0[r]);
      acc1[r] = hn::MulAdd(pr, b1, acc1[r]);
    }
  }
#pragma GCC unroll 16
  for (int64_t r = 0; r < kMR; ++r) {
    hn::Store(acc0[r], d, o + r * ldo);
    hn::Store(acc1[r], d, o + r * ldo + N);
  }
}

// One row of the same update when B holds NaN/Inf somewhere: coefficients
// that are exactly 0 (hidden, dropped or underflowed keys) are skipped, not
// multiplied, as the reference does, so those values never reach the result.
// P(j) = p[j·p_step]; `width` is a whole number of vectors.
HWY_INLINE void AccumulateRowSkippingZeros(const float* HWY_RESTRICT p, int64_t p_step, int64_t count,
                                           const float* HWY_RESTRICT b, int64_t ldb, int64_t width, float alpha,
                                           float* HWY_RESTRICT o) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t c = 0; c < width; c += N) hn::Store(hn::Mul(hn::Load(d, o + c), hn::Set(d, alpha)), d, o + c);
  for (int64_t j = 0; j < count; ++j) {
    const float pj = p[j * p_step];
    if (pj == 0.0f) continue;
    for (int64_t c = 0; c < width; c += N)
      hn::Store(hn::MulAdd(hn::Set(d, pj), hn::Load(d, b + j * ldb + c), hn::Load(d, o + c)), d, o + c);
  }
}

// ---- packing -----------------------------------------------------------------

// Bᵀ [rows_out = width][kBlockK] from `count` rows of a strided matrix
// (src[j·rs + x·cs], x < width), zero-padded to kBlockK columns.
HWY_INLINE void PackTransposed(const float* src, int64_t rs, int64_t cs, int64_t count, int64_t width,
                               float* HWY_RESTRICT dst) {
  const DF d;
  const DI di;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  if (count == kBlockK && rs * kBlockK <= (int64_t{1} << 30)) {
    // A whole block: column x of the source, N rows at a time, is one row
    // of Kᵀ — a gather (measured at [32, 12, 128, 32] on AVX-512: the scalar
    // copy was 12% of the forward).
    const auto rows = hn::Mul(hn::Iota(di, 0), hn::Set(di, static_cast<int32_t>(rs)));
    for (int64_t x = 0; x < width; ++x)
      for (int64_t j = 0; j < kBlockK; j += N)
        hn::Store(hn::GatherIndex(d, src + j * rs + x * cs, rows), d, dst + x * kBlockK + j);
    return;
  }
  for (int64_t j = 0; j < count; ++j)
    for (int64_t x = 0; x < width; ++x) dst[x * kBlockK + j] = src[j * rs + x * cs];
  for (int64_t x = 0; x < width; ++x)
    for (int64_t j = count; j < kBlockK; ++j) dst[x * kBlockK + j] = 0.0f;
}

// Rows [rows_out][ld] from `count` rows of a strided matrix, zero-padded to
// `rows_out` rows and `ld` columns. Returns false if a copied value is NaN/Inf.
HWY_INLINE bool PackRows(const float* src, int64_t rs, int64_t cs, int64_t count, int64_t width, int64_t rows_out,
                         int64_t ld, float* HWY_RESTRICT dst) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  bool finite = true;
  VF check = hn::Zero(d);  // Σ (v − v): stays 0 while every value is finite, NaN after a ±Inf or NaN
  for (int64_t j = 0; j < rows_out; ++j) {
    float* row = dst + j * ld;
    int64_t x = 0;
    if (j < count) {
      if (cs == 1)  // rows of unit stride, vector by vector (measured: the scalar check was 60% of packing)
        for (; x + N <= width; x += N) {
          const VF v = hn::LoadU(d, src + j * rs + x);
          hn::StoreU(v, d, row + x);
          check = hn::Add(check, hn::Sub(v, v));
        }
      for (; x < width; ++x) {
        const float value = src[j * rs + x * cs];
        finite &= (value - value == 0.0f);  // false exactly for ±Inf and NaN
        row[x] = value;
      }
    }
    for (; x < ld; ++x) row[x] = 0.0f;
  }
  return finite && hn::AllTrue(d, hn::Eq(check, hn::Zero(d)));
}

// ---- scores --------------------------------------------------------------------

// Keys query row i may see at all: [lo, hi), from causality, the window and
// Lk (the rule of visible_keys.hpp; masks are per element, see ScoreVector).
HWY_INLINE KeyRange VisibleKeys(const FlashForwardParams& p, int64_t i) {
  return visible_keys(p.causal, p.window_left, p.window_right, p.diag, p.Lk, i);
}

// What turns the raw q·k of query (b, h, i) into scores (see ScoreVector).
struct RowScore {
  int64_t b, h, i;
  KeyRange keys;
  float slope;         // ALiBi slope of (b, h); 0 without ALiBi
  const float* fmask;  // float-mask row (b, h, i, ·), or null
  const bool* bmask;   // bool-mask row (b, h, i, ·), or null
};

HWY_INLINE RowScore MakeRowScore(const FlashForwardParams& p, int64_t b, int64_t h, int64_t i) {
  RowScore row{b, h, i, VisibleKeys(p, i), 0.0f, nullptr, nullptr};
  if (p.alibi) row.slope = p.alibi[b * p.alibi_stride[0] + h * p.alibi_stride[1]];
  if (p.float_mask)
    row.fmask = p.float_mask + b * p.float_mask_stride[0] + h * p.float_mask_stride[1] + i * p.float_mask_stride[2];
  if (p.bool_mask)
    row.bmask = p.bool_mask + b * p.bool_mask_stride[0] + h * p.bool_mask_stride[1] + i * p.bool_mask_stride[2];
  return row;
}

// The scores of keys key0 .. key0 + N − 1 from their raw q·k, in the
// reference's order: s = scale·raw; s = cap·tanh(s/cap) (softcap; *t gets
// the tanh, which the backward differentiates); s += (ALiBi bias + float
// mask). *hidden marks the keys that causality, the window, Lk, a False or a
// −∞ mask hide. Hidden lanes hold garbage; callers select them away.
HWY_INLINE VF ScoreVector(const FlashForwardParams& p, const RowScore& row, VF raw, int64_t key0, MF* hidden,
                          VF* t) {
  const DF d;
  const DI di;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  VF s = hn::Mul(raw, hn::Set(d, p.scale));
  if (p.softcap > 0.0f) {
    const VF cap = hn::Set(d, p.softcap);
    *t = hn::Tanh(d, hn::Div(s, cap));
    s = hn::Mul(cap, *t);
  }
  const auto key = hn::Iota(di, static_cast<int32_t>(key0));
  // (No integer >= in this Highway: key >= hi is hi − 1 < key.)
  *hidden = hn::RebindMask(d, hn::Or(hn::Lt(key, hn::Set(di, static_cast<int32_t>(row.keys.lo))),
                                     hn::Lt(hn::Set(di, static_cast<int32_t>(row.keys.hi - 1)), key)));
  HWY_ALIGN float gathered[hn::MaxLanes(DF())];
  if (p.alibi || row.fmask) {
    VF bias = hn::Zero(d);
    if (p.alibi) {
      const auto diag_i = hn::Set(di, static_cast<int32_t>(row.i + p.diag));
      const VF distance = hn::ConvertTo(d, hn::Abs(hn::Sub(diag_i, key)));
      bias = hn::Neg(hn::Mul(hn::Set(d, row.slope), distance));
    }
    if (row.fmask) {
      for (int64_t x = 0; x < N; ++x) {
        const int64_t j = key0 + x;
        gathered[x] = j < p.Lk ? row.fmask[j * p.float_mask_stride[3]] : 0.0f;
      }
      const VF mask = hn::Load(d, gathered);
      *hidden = hn::Or(*hidden, hn::Eq(mask, hn::Set(d, kNegInf)));  // −∞ hides the key, as False does
      bias = hn::Add(bias, mask);
    }
    s = hn::Add(s, bias);
  }
  if (row.bmask) {
    if (p.bool_mask_stride[3] == 1 && key0 + N <= p.Lk) {
      // N bools (one byte each, 0 or 1) widened to int32 lanes: one load,
      // not N scalar reads (measured: the scalar gather doubled a masked call).
      const hn::Rebind<uint8_t, DF> du8;
      const auto attend = hn::PromoteTo(di, hn::LoadU(du8, reinterpret_cast<const uint8_t*>(row.bmask + key0)));
      *hidden = hn::Or(*hidden, hn::RebindMask(d, hn::Eq(attend, hn::Zero(di))));
    } else {  // a strided row, or the vector crosses Lk
      for (int64_t x = 0; x < N; ++x) {
        const int64_t j = key0 + x;
        gathered[x] = (j < p.Lk && row.bmask[j * p.bool_mask_stride[3]]) ? 1.0f : 0.0f;
      }
      *hidden = hn::Or(*hidden, hn::Eq(hn::Load(d, gathered), hn::Zero(d)));
    }
  }
  return s;
}

// ---- a bool mask broadcast over query rows -------------------------------------
// A key-padding mask ([B, 1, 1, Lk], True = attend) is the same for every
// query row, so what it does to a whole key block is known before any score
// is computed. SummariseBoolMask records, once per call, for each (b, h, key
// block): every key attends (kMaskAll: the block stays plain, no mask work at
// all), none does (kMaskNone: skipped like a block causality hides — its
// weights would all be exactly 0), or some do (kMaskSome: the per-element
// path of ScoreVector). Entries exist only for the (b, h) the mask really
// varies over (stride 0 = one entry for all). Any other bool mask is
// kMaskSome everywhere; no bool mask is kMaskAll.
enum MaskBlock : uint8_t { kMaskSome = 0, kMaskAll = 1, kMaskNone = 2 };

HWY_INLINE bool RowBroadcastBoolMask(const FlashForwardParams& p) {
  return p.bool_mask != nullptr && p.bool_mask_stride[2] == 0;
}

// Entries of the summary: [nb][nh][nkb].
struct MaskSummaryShape {
  int64_t nb, nh, nkb;
};
HWY_INLINE MaskSummaryShape MaskSummaryOf(const FlashForwardParams& p) {
  if (!RowBroadcastBoolMask(p)) return {0, 0, 0};
  return {p.bool_mask_stride[0] == 0 ? 1 : p.B, p.bool_mask_stride[1] == 0 ? 1 : p.Hq, (p.Lk + kBlockK - 1) / kBlockK};
}
inline int64_t MaskSummaryBytes(const FlashForwardParams& p) {
  const MaskSummaryShape m = MaskSummaryOf(p);
  return m.nb * m.nh * m.nkb;
}

inline void SummariseBoolMask(const FlashForwardParams& p, uint8_t* HWY_RESTRICT dst) {
  const MaskSummaryShape m = MaskSummaryOf(p);
  for (int64_t b = 0; b < m.nb; ++b)
    for (int64_t h = 0; h < m.nh; ++h) {
      const bool* row = p.bool_mask + b * p.bool_mask_stride[0] + h * p.bool_mask_stride[1];
      for (int64_t kb = 0; kb < m.nkb; ++kb) {
        const int64_t end = std::min(p.Lk, (kb + 1) * kBlockK);
        int64_t attend = 0;
        for (int64_t j = kb * kBlockK; j < end; ++j) attend += row[j * p.bool_mask_stride[3]] ? 1 : 0;
        dst[(b * m.nh + h) * m.nkb + kb] = attend == 0 ? kMaskNone : attend == end - kb * kBlockK ? kMaskAll : kMaskSome;
      }
    }
}

// What the bool mask does to key block kb of query head (b, h).
HWY_INLINE uint8_t BoolMaskBlock(const FlashForwardParams& p, int64_t b, int64_t h, int64_t kb) {
  if (!p.bool_mask) return kMaskAll;
  if (!p.mask_blocks) return kMaskSome;
  const MaskSummaryShape m = MaskSummaryOf(p);
  return p.mask_blocks[((m.nb == 1 ? 0 : b) * m.nh + (m.nh == 1 ? 0 : h)) * m.nkb + kb];
}

// Does every row of [first_row, last_row] see every key of block jb with
// nothing added to its scores? Then the tile needs only the scale. `mask`:
// the block's BoolMaskBlock (a block every key of which attends is plain).
HWY_INLINE bool PlainBlock(const FlashForwardParams& p, KeyRange first_row, KeyRange last_row, int64_t jb,
                           uint8_t mask) {
  const bool has_bias = p.softcap > 0.0f || p.alibi || p.float_mask || (p.bool_mask && mask != kMaskAll);
  return !has_bias && last_row.lo <= jb && jb + kBlockK <= first_row.hi;
}

// =====================================================================================
// Forward
// =====================================================================================

// ---- decoding: a few query rows against many keys -------------------------------
// With Lq·group <= kDecodeRows (KV-cache decoding: Lq = 1), packing K and V
// would cost as much as the attention itself (each key is used by so few
// rows), so this path reads them in place, once: one item per key/value head
// (b, g) holds the rows of all its query heads, scores are dot products
// along d, and P·V adds each value row (skipping zero weights) to every row
// that uses it. Memory-bound by design; needs unit stride along d.
constexpr int64_t kDecodeRows = 8;

HWY_INLINE bool UseDecodePath(const FlashForwardParams& p) {
  // (The weights pass reads the packed keys, which only the main path makes.)
  return p.Lq * p.group <= kDecodeRows && p.k_stride[3] == 1 && p.v_stride[3] == 1 && !p.weights;
}

// ---- short sequences: each item packs its own keys and values --------------------
// Packing all of K and V up front, then running the query blocks, writes
// and reads back a copy of K and V the size of the inputs (12.6 MiB at
// [32, 12, 128, 32]) — from memory, not cache, once it outgrows L2 — and
// costs one more round of the thread pool. When there are many heads and
// each one's packed K/V is small (short sequences), one item per key/value
// head (b, g) instead packs that head's blocks into its thread's scratch,
// where they stay in L1/L2, and runs every query block of its group of
// query heads against them. With few heads or long sequences the items must
// be query blocks (to share out the work), which all read one packed copy.
// Up to 1 MiB of packed K/V per head: half this Xeon's 2 MiB L2 per core.
// (Measured there, AVX-512, 2 threads, medians, per-item vs shared copy:
// 1.33x at [8, 12, 512, 128], 1.18x at [1, 16, 2048, 64]; a 256 KiB limit
// left those shapes on the shared copy. Zen 3's L2 is 512 KiB: such a head
// then streams from L3, as the shared copy's does.)
constexpr int64_t kPackPerItemMaxBytes = 1024 * 1024;

HWY_INLINE bool PackPerItem(const FlashForwardParams& p) {
  const int64_t nkb = (p.Lk + kBlockK - 1) / kBlockK;
  const int64_t bytes = nkb * kBlockK * (p.Dk + RoundUp(p.Dv, TileWidth())) * static_cast<int64_t>(sizeof(float));
  // (The weights pass reads the packed keys after the forward: it needs the shared copy.)
  return !p.weights && !UseDecodePath(p) && p.B * p.Hkv >= 8 * p.threads && bytes <= kPackPerItemMaxBytes;
}

// Where everything lives in the workspace (in floats).
struct Layout {
  int64_t nkb = 0;   // key blocks
  int64_t nqb = 0;   // query blocks
  int64_t dvp = 0;   // Dv rounded up to a whole register tile (2 vectors)
  bool per_item = false;  // PackPerItem: K/V packed per item into scratch
  int64_t kt_per_head = 0, vp_per_head = 0;
  int64_t kt_off = 0, vp_off = 0, flags_off = 0, mask_off = 0, stats_off = 0, scratch_off = 0, scratch_per_thread = 0,
          total = 0;
  // inside one thread's scratch
  int64_t qp_off = 0, s_off = 0, o_off = 0, m_off = 0, l_off = 0, alpha_off = 0, bmax_off = 0, mlog_off = 0,
          drop_off = 0, local_kt_off = 0, local_vp_off = 0, local_flags_off = 0;
};

inline Layout MakeLayout(const FlashForwardParams& p) {
  Layout L;
  L.nkb = (p.Lk + kBlockK - 1) / kBlockK;
  L.nqb = (p.Lq + kBlockQ - 1) / kBlockQ;
  L.dvp = RoundUp(p.Dv, TileWidth());
  L.per_item = PackPerItem(p);
  L.kt_per_head = L.nkb * p.Dk * kBlockK;
  L.vp_per_head = L.nkb * kBlockK * L.dvp;
  // The shared packed copy: none on the decode path (it packs nothing) or
  // when each item packs its own.
  const int64_t heads = UseDecodePath(p) || L.per_item ? 0 : p.B * p.Hkv;
  Carver all;
  L.kt_off = all.take(heads * L.kt_per_head);
  L.vp_off = all.take(heads * L.vp_per_head);
  L.flags_off = all.take((heads * L.nkb + 3) / 4);  // one byte per (head, key block)
  L.mask_off = all.take((MaskSummaryBytes(p) + 3) / 4);
  L.stats_off = all.take(p.weights ? 2 * p.B * p.Hq * p.Lq : 0);  // the weights pass's m, l per row
  Carver one;  // one thread's scratch; per-row arrays padded to whole vectors
  L.qp_off = one.take(kBlockQ * p.Dk);  // (also the decode path's [R][Dk] rows: R <= kBlockQ)
  L.s_off = one.take(kBlockQ * kSStride);
  L.o_off = one.take(kBlockQ * L.dvp);
  L.m_off = one.take(kRowsPadded);
  L.l_off = one.take(kRowsPadded * static_cast<int64_t>(hn::Lanes(DF())));  // (ForwardBlock: a vector per row)
  L.alpha_off = one.take(kRowsPadded);
  L.bmax_off = one.take(kRowsPadded);
  L.mlog_off = one.take(kRowsPadded);
  L.drop_off = one.take(2 * kRowsPadded);  // uint64
  if (L.per_item) {
    L.local_kt_off = one.take(L.kt_per_head);
    L.local_vp_off = one.take(L.vp_per_head);
    L.local_flags_off = one.take((L.nkb + 3) / 4);
  }
  L.scratch_per_thread = one.used;
  L.scratch_off = all.used;
  L.total = all.used + static_cast<int64_t>(p.threads) * one.used;
  return L;
}

/// How many floats of workspace FlashForward needs for these parameters.
int64_t FlashForwardWorkspaceFloats(const FlashForwardParams& p) { return MakeLayout(p).total; }

struct Ctx {
  const FlashForwardParams* p;
  Layout L;
};

// Pack key block kb of key/value head (b, g) as Kᵀ [Dk][kBlockK] (into kt)
// and its value block as V [kBlockK][dvp] (into vp), zero-padded; returns
// false if a value is not finite.
HWY_INLINE bool PackKV(const FlashForwardParams& p, const Layout& L, int64_t b, int64_t g, int64_t kb,
                       float* HWY_RESTRICT kt, float* HWY_RESTRICT vp) {
  const int64_t jb = kb * kBlockK, count = std::min<int64_t>(kBlockK, p.Lk - jb);
  const float* k = p.k + b * p.k_stride[0] + g * p.k_stride[1] + jb * p.k_stride[2];
  const float* v = p.v + b * p.v_stride[0] + g * p.v_stride[1] + jb * p.v_stride[2];
  PackTransposed(k, p.k_stride[2], p.k_stride[3], count, p.Dk, kt);
  return PackRows(v, p.v_stride[2], p.v_stride[3], count, p.Dv, kBlockK, L.dvp, vp);
}

// One item of the shared packing: block kb of head (b, g), flagged if a
// value is not finite.
void PackKVBlock(void* ctx_ptr, int64_t item, int /*thread*/) {
  const Ctx& c = *static_cast<const Ctx*>(ctx_ptr);
  const FlashForwardParams& p = *c.p;
  const Layout& L = c.L;
  const int64_t head = item / L.nkb, kb = item % L.nkb;  // head = b·Hkv + g
  const bool finite = PackKV(p, L, head / p.Hkv, head % p.Hkv, kb,
                             p.workspace + L.kt_off + head * L.kt_per_head + kb * p.Dk * kBlockK,
                             p.workspace + L.vp_off + head * L.vp_per_head + kb * kBlockK * L.dvp);
  reinterpret_cast<uint8_t*>(p.workspace + L.flags_off)[item] = finite ? 0 : 1;
}

// ---- the online softmax of one block ---------------------------------------------
// Done in passes over all rows of the block, not row by row: each row's work
// is a chain of dependent steps (max, reduce, exp, sum, reduce), and passes
// give the core many independent rows to overlap (measured: 20% of the time
// row by row, about half of that in passes).

// Pass 1, plain block: the row max of scale·q·k. Rounding is monotone, so
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

// Pass 1, general block: raw q·k → final scores (−∞ where hidden), in place;
// returns their max.
HWY_INLINE float GeneralRowMax(const FlashForwardParams& p, const RowScore& row, int64_t jb, float* HWY_RESTRICT s) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const VF neg_inf = hn::Set(d, kNegInf);
  VF mx = neg_inf, t = hn::Zero(d);
  MF hidden = hn::FirstN(d, 0);
  for (int64_t j = 0; j < kBlockK; j += N) {
    const VF score = ScoreVector(p, row, hn::Load(d, s + j), jb + j, &hidden, &t);
    const VF x = hn::IfThenElse(hidden, neg_inf, score);
    hn::Store(x, d, s + j);
    mx = hn::Max(x, mx);  // skips NaN, see PlainRowMax
  }
  return hn::GetLane(hn::MaxOfLanes(d, mx));
}

// Pass 1, a block whose keys only a row-broadcast bool mask hides (some,
// not all, see MaskBlock), every row seeing all of them otherwise and
// nothing added to the scores: which keys are hidden is the same for every
// row, so BlockHiddenKeys finds it once per block and each row only scales
// and selects (the general path recomputes ranges and mask per row and
// vector; a key-padding mask whose edge falls inside a block took 30% more
// than no mask). Same scores, bit for bit, as GeneralRowMax.
HWY_INLINE bool MaskOnlyBlock(const FlashForwardParams& p, KeyRange first_row, KeyRange last_row, int64_t jb) {
  return RowBroadcastBoolMask(p) && !(p.softcap > 0.0f) && !p.alibi && !p.float_mask && last_row.lo <= jb &&
         jb + kBlockK <= first_row.hi;
}

HWY_INLINE void BlockHiddenKeys(const FlashForwardParams& p, int64_t b, int64_t h, int64_t jb, MF* HWY_RESTRICT hide) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  // The mask's row for (b, h); its row stride is 0, so row 0 is every row. jb + kBlockK <= Lk here.
  const RowScore row{b, h, 0, KeyRange{0, p.Lk}, 0.0f, nullptr,
                     p.bool_mask + b * p.bool_mask_stride[0] + h * p.bool_mask_stride[1]};
  VF t = hn::Zero(d);
  for (int64_t j = 0; j < kBlockK; j += N) {
    MF hidden = hn::FirstN(d, 0);
    (void)ScoreVector(p, row, hn::Zero(d), jb + j, &hidden, &t);
    hide[j / N] = hidden;
  }
}

HWY_INLINE float MaskedRowMax(float* HWY_RESTRICT s, float scale, const MF* HWY_RESTRICT hide) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const VF neg_inf = hn::Set(d, kNegInf), sc = hn::Set(d, scale);
  VF mx = neg_inf;
  for (int64_t j = 0; j < kBlockK; j += N) {
    const VF x = hn::IfThenElse(hide[j / N], neg_inf, hn::Mul(hn::Load(d, s + j), sc));
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

// Pass 3: P = 2^(s·c1 − m_log2) in place; returns the row sum as a vector of
// per-lane sums. c1 is log2(e), or scale·log2(e) when s still holds the raw
// q·k (plain block). ForwardBlock keeps l lane by lane and adds the lanes
// once, at the end of the row, instead of once per key block (short
// sequences: that horizontal sum and its dependency chain were ~5% of the call).
HWY_INLINE VF ExpRowSums(float* HWY_RESTRICT s, float c1, float m_log2) {
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
  return hn::Add(sum0, sum1);
}

// Huge scores. ExpRowSums's one fused s·c1 − m_log2 is exact for the
// score, but m_log2 is the max rounded twice (scale·max, then ·log2 e): off
// by a few ulp of |m_log2|. That offset is common to the row and cancels in
// O / l while it is small; at |m_log2| ~ 1e9 it is a few hundred, and the
// max's own weight comes out as 2^+300 (inf, then inf / inf = NaN) or
// 2^−300 (every weight 0, then 0 / 0). So rows whose max is that large take
// ExpRowSumsExact: the score rounded exactly as the max was (fl(pre·s), pre
// = scale on a plain block, else 1), minus the max, then times log2 e — the
// max's exponent is exactly 0, every other one <= 0, as in the reference
// (and PyTorch), which subtract the max before the exp. One comparison per
// row and block; ordinary scores never take it. The backward's recomputed
// weights (GradientTiles) make the same choice with the row's lse.
constexpr float kFusedExpLimit = 0x1p20f;  // below it the offset is < 0.3 in the exponent

HWY_INLINE bool FusedExpIsSafe(float m_log2) { return std::abs(m_log2) < kFusedExpLimit; }

HWY_INLINE VF ExpRowSumsExact(float* HWY_RESTRICT s, float pre, float m) {
  return ExpShiftedInPlace(DF(), s, kBlockK, pre, m);  // (ops-inl.h)
}

// A running or block max beyond that limit (finite: −∞ is a row that has
// seen nothing yet).
HWY_INLINE bool IsHuge(float m) { return std::isfinite(m) && !FusedExpIsSafe(m * kLog2e); }

// One q·k as ScoreTile computes each of its lanes: MulAdd over d = 0, 1, ...
// from zero, in this target's MulAdd (fused or not), so the result is the
// one ScoreTile gives bit for bit. Slow; for huge scores only (DecodeBlock).
HWY_INLINE float TileOrderDot(const float* HWY_RESTRICT q, const float* HWY_RESTRICT k, int64_t K) {
  const DF d;
  VF acc = hn::Zero(d);
  for (int64_t x = 0; x < K; ++x) acc = hn::MulAdd(hn::Set(d, q[x]), hn::Set(d, k[x]), acc);
  return hn::GetLane(acc);
}

// Pass 3 for row r of a block: ExpRowSums, or ExpRowSumsExact when its max is huge.
HWY_INLINE VF RowExpSums(float* HWY_RESTRICT s, bool plain, float scale, float m, float m_log2) {
  if (HWY_LIKELY(FusedExpIsSafe(m_log2))) return ExpRowSums(s, plain ? scale * kLog2e : kLog2e, m_log2);
  return ExpRowSumsExact(s, plain ? scale : 1.0f, m);
}

// out = O / l (times the dropout scale), lse = m + log l for query (b, h, i).
// A row whose max is still −∞ saw no key: output 0, lse −∞. The max skips
// NaN scores, but their e^{NaN} = NaN reached l, so a row of only NaN scores
// (a NaN query) has m = −∞ and l = NaN and is not empty: output and lse NaN,
// as in the reference and PyTorch.
HWY_INLINE void FinishRow(const FlashForwardParams& p, int64_t b, int64_t h, int64_t i, const float* o, float m,
                          float l) {
  float* dst = p.out + b * p.out_stride[0] + h * p.out_stride[1] + i * p.out_stride[2];
  const bool empty = m == kNegInf && !std::isnan(l);
  const float factor = empty ? 0.0f : p.dropout_scale / l;
  int64_t x = 0;
  if (p.out_stride[3] == 1 && !empty) {  // (short sequences: the scalar loop was a few % of the call)
    const DF d;
    const int64_t N = static_cast<int64_t>(hn::Lanes(d));
    for (; x + N <= p.Dv; x += N) hn::StoreU(hn::Mul(hn::Load(d, o + x), hn::Set(d, factor)), d, dst + x);
  }
  for (; x < p.Dv; ++x) dst[x * p.out_stride[3]] = empty ? 0.0f : o[x] * factor;
  if (p.lse) p.lse[b * p.lse_stride[0] + h * p.lse_stride[1] + i * p.lse_stride[2]] = empty ? kNegInf : m + std::log(l);
  if (p.row_stats) {  // for the weights pass: m and l themselves (see WeightsItem)
    float* st = p.row_stats + 2 * ((b * p.Hq + h) * p.Lq + i);
    st[0] = m;
    st[1] = l;
  }
}

// Q block of head (b, h), rows i0 .. i0 + rows − 1, packed by register-tile
// panel into qp [panels][Dk][kMR]; rows past the block are zeros.
HWY_INLINE void PackQueryBlock(const FlashForwardParams& p, int64_t b, int64_t h, int64_t i0, int64_t rows,
                               float* HWY_RESTRICT qp) {
  const int64_t panels = (rows + kMR - 1) / kMR;
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
}

// ---- a block of query rows of one head ------------------------------------------

// Query block qb of head (b, h) against the packed key/value blocks of its
// key/value head: kt, vp and flags point at that head's first block (in the
// shared copy or the item's own).
HWY_INLINE void ForwardBlock(const Ctx& c, int64_t b, int64_t h, int64_t qb, const float* kt_head,
                             const float* vp_head, const uint8_t* flags, int thread) {
  const FlashForwardParams& p = *c.p;
  const Layout& L = c.L;
  const int64_t N = static_cast<int64_t>(hn::Lanes(DF()));
  const int64_t NR = TileWidth();
  const int64_t i0 = qb * kBlockQ;
  const int64_t rows = std::min<int64_t>(kBlockQ, p.Lq - i0);
  const int64_t panels = (rows + kMR - 1) / kMR;

  float* scratch = p.workspace + L.scratch_off + thread * L.scratch_per_thread;
  float* qp = scratch + L.qp_off;        // [panels][Dk][kMR]  the query block
  float* s = scratch + L.s_off;          // [panels·kMR][kSStride]  scores, then weights
  float* o = scratch + L.o_off;          // [panels·kMR][dvp]  running Σ P·V
  float* m = scratch + L.m_off;          // [rows]  running max
  float* l = scratch + L.l_off;          // [rows][N]  running Σ exp(s − m), lane by lane (see ExpRowSums)
  float* alpha = scratch + L.alpha_off;  // [rows]  this block's e^{m_old − m_new}
  float* bmax = scratch + L.bmax_off;    // [rows]  this block's row max
  float* mlog = scratch + L.mlog_off;    // [rows]  m·log2(e), for exp2
  uint64_t* drop = reinterpret_cast<uint64_t*>(scratch + L.drop_off);  // [rows]  dropout hash state

  // The Q block as the score tiles read it. Rows of unit stride are read
  // where they are, a panel's kMR rows by stride (short sequences: packing
  // each block into panels was 6% of the call); only a last partial panel
  // is copied, zero-padded, into qp. Otherwise all panels are packed.
  const bool q_rows_in_place = p.q_stride[3] == 1;
  const float* q_head = p.q + b * p.q_stride[0] + h * p.q_stride[1];
  const int64_t full_panels = q_rows_in_place ? rows / kMR : 0;
  if (!q_rows_in_place) {
    PackQueryBlock(p, b, h, i0, rows, qp);
  } else if (full_panels < panels) {
    const int64_t r0 = full_panels * kMR;
    PackRows(q_head + (i0 + r0) * p.q_stride[2], p.q_stride[2], 1, rows - r0, p.Dk, kMR, p.Dk, qp);
  }

  // Row state. A sink starts each row as if it were one more key already
  // seen: m = sink, l = e^{sink − m} = 1, with no value behind it. Padding
  // rows get the same start and a block max of −∞ forever: finite, unused.
  const float sink = p.sinks ? p.sinks[h * p.sinks_stride] : kNegInf;
  const float sink_l = std::exp(sink - (sink == kNegInf ? 0.0f : sink));
  for (int64_t r = 0; r < kRowsPadded; ++r) {
    m[r] = sink;
    alpha[r] = 1.0f;
    bmax[r] = kNegInf;
  }
  const VF l_start = hn::IfThenElseZero(hn::FirstN(DF(), 1), hn::Set(DF(), sink_l));
  for (int64_t r = 0; r < rows; ++r) hn::Store(l_start, DF(), l + r * N);
  if (p.dropout_p > 0.0)
    for (int64_t r = 0; r < rows; ++r) drop[r] = dropout_row_state(p.dropout_seed, b + p.dropout_batch_offset, h, i0 + r);
  std::memset(o, 0, sizeof(float) * static_cast<size_t>(panels * kMR * L.dvp));
  const uint64_t drop_threshold = dropout_threshold(p.dropout_p);

  const KeyRange first_row = VisibleKeys(p, i0), last_row = VisibleKeys(p, i0 + rows - 1);
  for (int64_t kb = first_row.lo / kBlockK; last_row.hi > first_row.lo && kb * kBlockK < last_row.hi; ++kb) {
    const uint8_t mask = BoolMaskBlock(p, b, h, kb);
    if (mask == kMaskNone) continue;  // a bool mask hides every key of the block
    const int64_t jb = kb * kBlockK;
    const int64_t count = std::min<int64_t>(kBlockK, p.Lk - jb);
    const float* kt = kt_head + kb * p.Dk * kBlockK;
    const float* vp = vp_head + jb * L.dvp;

    // The columns [lo, hi) of this block that some row of each panel can see.
    // Outside them every row of the panel hides the key (causality or the
    // window; both edges grow with the row), so on a causal diagonal block
    // about half the tiles are never computed: GeneralRowMax overwrites
    // whatever S holds there with −∞, and P·V below skips those columns, whose
    // weights are exactly 0.
    int64_t panel_lo[kBlockQ / kMR + 1], panel_hi[kBlockQ / kMR + 1];
    for (int64_t pn = 0; pn < panels; ++pn) {
      const int64_t r0 = pn * kMR, r1 = std::min(rows, r0 + kMR) - 1;
      panel_lo[pn] = std::clamp<int64_t>(VisibleKeys(p, i0 + r0).lo - jb, 0, count);
      panel_hi[pn] = std::clamp<int64_t>(VisibleKeys(p, i0 + r1).hi - jb, panel_lo[pn], count);
    }

    // S = Q·Kᵀ (raw q·k), the visible column tiles of each panel.
    for (int64_t pn = 0; pn < panels; ++pn)
      for (int64_t col = panel_lo[pn] / NR * NR; col < panel_hi[pn]; col += NR)
        if (!q_rows_in_place)
          ScoreTile<true>(qp + pn * p.Dk * kMR, 0, kt + col, p.Dk, s + pn * kMR * kSStride + col);
        else if (pn < full_panels)
          ScoreTile<false>(q_head + (i0 + pn * kMR) * p.q_stride[2], p.q_stride[2], kt + col, p.Dk,
                           s + pn * kMR * kSStride + col);
        else
          ScoreTile<false>(qp, p.Dk, kt + col, p.Dk, s + pn * kMR * kSStride + col);

    // Online softmax.
    const bool plain = PlainBlock(p, first_row, last_row, jb, mask);
    if (plain) {
      for (int64_t r = 0; r < rows; ++r) bmax[r] = PlainRowMax(s + r * kSStride, p.scale);
    } else if (mask == kMaskSome && MaskOnlyBlock(p, first_row, last_row, jb)) {
      MF hide[kBlockK / hn::MaxLanes(DF()) + 1];
      BlockHiddenKeys(p, b, h, jb, hide);
      for (int64_t r = 0; r < rows; ++r) bmax[r] = MaskedRowMax(s + r * kSStride, p.scale, hide);
    } else {
      for (int64_t r = 0; r < rows; ++r)
        bmax[r] = GeneralRowMax(p, MakeRowScore(p, b, h, i0 + r), jb, s + r * kSStride);
    }
    RescaleRows(RoundUp(rows, N), bmax, m, alpha, mlog);
    for (int64_t r = 0; r < rows; ++r) {
      float* lr = l + r * N;
      hn::Store(hn::MulAdd(hn::Load(DF(), lr), hn::Set(DF(), alpha[r]),
                           RowExpSums(s + r * kSStride, plain, p.scale, m[r], mlog[r])),
                DF(), lr);
    }

    // Dropout zeroes weights after the sum: lse and the normaliser l are the
    // softmax's; dropped weights only leave the P·V product.
    if (p.dropout_p > 0.0)
      for (int64_t r = 0; r < rows; ++r) {
        float* w = s + r * kSStride;
        for (int64_t j = 0; j < count; ++j)
          if (w[j] != 0.0f && !dropout_keep_j(drop[r], jb + j, drop_threshold)) w[j] = 0.0f;
      }
    // Padding rows (r >= rows) hold q·k = 0 from their zero queries as
    // "weights"; their output is never read.

    // O = O·alpha + P·V.
    if (!flags[kb]) {
      for (int64_t pn = 0; pn < panels; ++pn) {
        const int64_t lo = panel_lo[pn], n = panel_hi[pn] - lo;  // (n = 0 still rescales by alpha)
        for (int64_t col = 0; col < L.dvp; col += NR)
          AccumulateTile<kSStride, 1>(s + pn * kMR * kSStride + lo, n, vp + lo * L.dvp + col, L.dvp,
                                      alpha + pn * kMR, o + pn * kMR * L.dvp + col, L.dvp);
      }
    } else {
      for (int64_t r = 0; r < rows; ++r)
        AccumulateRowSkippingZeros(s + r * kSStride, 1, count, vp, L.dvp, L.dvp, alpha[r], o + r * L.dvp);
    }
  }

  for (int64_t r = 0; r < rows; ++r)
    FinishRow(p, b, h, i0 + r, o + r * L.dvp, m[r], hn::GetLane(hn::SumOfLanes(DF(), hn::Load(DF(), l + r * N))));
}

// One item of the shared packing's pass: one query block of one head.
void ForwardItem(void* ctx_ptr, int64_t item, int thread) {
  const Ctx& c = *static_cast<const Ctx*>(ctx_ptr);
  const FlashForwardParams& p = *c.p;
  const Layout& L = c.L;
  // Head by head, so that consecutive items (and the two threads) read the
  // same packed K/V, which then stays in L2/L3 (measured: 66-71% of sgemm
  // block-major at H = 16, 75-85% head-major); within a head the heaviest
  // blocks first (the last query rows see the most keys when causal).
  const int64_t bh = item / L.nqb;
  const int64_t qb = L.nqb - 1 - item % L.nqb;
  const int64_t b = bh / p.Hq, h = bh % p.Hq, head = b * p.Hkv + h / p.group;
  ForwardBlock(c, b, h, qb, p.workspace + L.kt_off + head * L.kt_per_head, p.workspace + L.vp_off + head * L.vp_per_head,
               reinterpret_cast<const uint8_t*>(p.workspace + L.flags_off) + head * L.nkb, thread);
}

// Asks for `n` rows of `width` floats (row stride rs, unit column stride)
// to be brought into L2.
HWY_INLINE void PrefetchRows(const float* src, int64_t rs, int64_t n, int64_t width) {
  for (int64_t j = 0; j < n; ++j) {
    const float* row = src + j * rs;
    for (int64_t x = 0; x < width; x += 16) __builtin_prefetch(row + x, 0, 2);
    __builtin_prefetch(row + width - 1, 0, 2);  // (a row that is not line-aligned ends on one more line)
  }
}

// Items are small (≈ 30 µs at [32, 12, 128, 32]) and read their inputs
// from memory, not cache, in strided rows that the hardware prefetcher
// follows poorly (one or two lines per 1.5 KiB row of a [B, L, H, D]
// tensor): without help every item starts by waiting for memory. So each
// item asks for the next head's inputs while it computes — its keys and
// values at the start, each query block's rows just before running the
// same block of its own head (all at once stalls on the fill buffers).
// Threads claim items in turn, so the next head is this thread's or its
// neighbour's next item, and L2/L3 hold it either way. (Measured at
// [32, 12, 128, 32], AVX-512, 2 threads, loaded machine: 13.9 → 11.7 ms;
// all of it at the start of the item instead: 12.3 ms.)
HWY_INLINE bool PrefetchNext(const FlashForwardParams& p, int64_t item) {
  return item + 1 < p.B * p.Hkv && p.k_stride[3] == 1 && p.v_stride[3] == 1 && p.q_stride[3] == 1;
}

// One item of PackPerItem: key/value head (b, g) packed into the thread's
// scratch, then every query block of its query heads.
void HeadItem(void* ctx_ptr, int64_t item, int thread) {
  const Ctx& c = *static_cast<const Ctx*>(ctx_ptr);
  const FlashForwardParams& p = *c.p;
  const Layout& L = c.L;
  const int64_t b = item / p.Hkv, g = item % p.Hkv;
  // The next item's head (nb, ng), whose query heads are h + dh for ours.
  const bool prefetch = PrefetchNext(p, item);
  const int64_t nb = (item + 1) / p.Hkv, ng = (item + 1) % p.Hkv, dh = (ng - g) * p.group;
  if (prefetch) {
    PrefetchRows(p.k + nb * p.k_stride[0] + ng * p.k_stride[1], p.k_stride[2], p.Lk, p.Dk);
    PrefetchRows(p.v + nb * p.v_stride[0] + ng * p.v_stride[1], p.v_stride[2], p.Lk, p.Dv);
  }
  float* scratch = p.workspace + L.scratch_off + thread * L.scratch_per_thread;
  float* kt = scratch + L.local_kt_off;
  float* vp = scratch + L.local_vp_off;
  uint8_t* flags = reinterpret_cast<uint8_t*>(scratch + L.local_flags_off);
  for (int64_t kb = 0; kb < L.nkb; ++kb)
    flags[kb] = PackKV(p, L, b, g, kb, kt + kb * p.Dk * kBlockK, vp + kb * kBlockK * L.dvp) ? 0 : 1;
  for (int64_t h = g * p.group; h < (g + 1) * p.group; ++h)
    for (int64_t qb = 0; qb < L.nqb; ++qb) {
      if (prefetch) {
        const int64_t i0 = qb * kBlockQ;
        PrefetchRows(p.q + nb * p.q_stride[0] + (h + dh) * p.q_stride[1] + i0 * p.q_stride[2], p.q_stride[2],
                     std::min(kBlockQ, p.Lq - i0), p.Dk);
      }
      ForwardBlock(c, b, h, qb, kt, vp, flags, thread);
    }
}

// ---- decoding (see UseDecodePath) ---------------------------------------------------

void DecodeItem(void* ctx_ptr, int64_t item, int thread) {
  const Ctx& c = *static_cast<const Ctx*>(ctx_ptr);
  const FlashForwardParams& p = *c.p;
  const Layout& L = c.L;
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t b = item / p.Hkv, g = item % p.Hkv;
  const int64_t R = p.Lq * p.group;  // row r is query (h, i) = (g·group + r / Lq, r % Lq)
  const int64_t dk_vec = p.Dk / N * N, dv_vec = p.Dv / N * N;

  float* scratch = p.workspace + L.scratch_off + thread * L.scratch_per_thread;
  float* q = scratch + L.qp_off;  // [R][Dk]
  float* s = scratch + L.s_off;   // [R][kSStride]
  float* o = scratch + L.o_off;   // [R][dvp]
  float* m = scratch + L.m_off;
  float* l = scratch + L.l_off;
  float* alpha = scratch + L.alpha_off;
  float* bmax = scratch + L.bmax_off;
  float* mlog = scratch + L.mlog_off;
  uint64_t* drop = reinterpret_cast<uint64_t*>(scratch + L.drop_off);
  auto head_of = [&](int64_t r) { return g * p.group + r / p.Lq; };
  auto row_of = [&](int64_t r) { return r % p.Lq; };

  for (int64_t r = 0; r < R; ++r) {
    const float* src = p.q + b * p.q_stride[0] + head_of(r) * p.q_stride[1] + row_of(r) * p.q_stride[2];
    for (int64_t x = 0; x < p.Dk; ++x) q[r * p.Dk + x] = src[x * p.q_stride[3]];
  }
  for (int64_t r = 0; r < kRowsPadded; ++r) {
    const float sink = (p.sinks && r < R) ? p.sinks[head_of(r) * p.sinks_stride] : kNegInf;
    m[r] = sink;
    l[r] = std::exp(sink - (sink == kNegInf ? 0.0f : sink));
    alpha[r] = 1.0f;
    bmax[r] = kNegInf;
  }
  if (p.dropout_p > 0.0)
    for (int64_t r = 0; r < R; ++r) drop[r] = dropout_row_state(p.dropout_seed, b + p.dropout_batch_offset, head_of(r), row_of(r));
  std::memset(o, 0, sizeof(float) * static_cast<size_t>(R * L.dvp));
  const uint64_t drop_threshold = dropout_threshold(p.dropout_p);

  const float* kbase = p.k + b * p.k_stride[0] + g * p.k_stride[1];
  const float* vbase = p.v + b * p.v_stride[0] + g * p.v_stride[1];
  // Every head's rows are i = 0..Lq−1, so the block range is that of i.
  const KeyRange first_row = VisibleKeys(p, 0), last_row = VisibleKeys(p, p.Lq - 1);
  for (int64_t kb = first_row.lo / kBlockK; last_row.hi > first_row.lo && kb * kBlockK < last_row.hi; ++kb) {
    const int64_t jb = kb * kBlockK, count = std::min<int64_t>(kBlockK, p.Lk - jb);
    // S[r, j] = q_r · k_j, each key row loaded once for all rows.
    for (int64_t j = 0; j < kBlockK; ++j) {
      if (j >= count) {
        for (int64_t r = 0; r < R; ++r) s[r * kSStride + j] = 0.0f;
        continue;
      }
      const float* kj = kbase + (jb + j) * p.k_stride[2];
      VF acc[kDecodeRows];
      for (int64_t r = 0; r < R; ++r) acc[r] = hn::Zero(d);
      for (int64_t x = 0; x < dk_vec; x += N) {
        const VF kv = hn::LoadU(d, kj + x);
        for (int64_t r = 0; r < R; ++r) acc[r] = hn::MulAdd(hn::LoadU(d, q + r * p.Dk + x), kv, acc[r]);
      }
      for (int64_t r = 0; r < R; ++r) {
        float dot = hn::GetLane(hn::SumOfLanes(d, acc[r]));
        for (int64_t x = dk_vec; x < p.Dk; ++x) dot += q[r * p.Dk + x] * kj[x];
        s[r * kSStride + j] = dot;
      }
    }
    // The online softmax, as in ForwardBlock. (A block a bool mask hides
    // from some head of the group is left to the per-element path.)
    uint8_t mask = BoolMaskBlock(p, b, g * p.group, kb);
    for (int64_t h = g * p.group + 1; h < (g + 1) * p.group; ++h)
      if (BoolMaskBlock(p, b, h, kb) != mask) mask = kMaskSome;
    const bool plain = PlainBlock(p, first_row, last_row, jb, mask);
    for (int64_t r = 0; r < R; ++r)
      bmax[r] = plain ? PlainRowMax(s + r * kSStride, p.scale)
                      : GeneralRowMax(p, MakeRowScore(p, b, head_of(r), row_of(r)), jb, s + r * kSStride);
    // Huge scores: the lane-parallel dot products above add d in another
    // order than ScoreTile, which the backward recomputes the scores with;
    // times a huge scale, that last-bit difference moves a weight by orders
    // of magnitude between forward and backward. Those blocks are redone in
    // ScoreTile's order (rare: ordinary scores never come here).
    bool huge = false;
    for (int64_t r = 0; r < R; ++r) huge = huge || IsHuge(bmax[r]) || IsHuge(m[r]);
    if (huge) {
      for (int64_t j = 0; j < count; ++j)
        for (int64_t r = 0; r < R; ++r)
          s[r * kSStride + j] = TileOrderDot(q + r * p.Dk, kbase + (jb + j) * p.k_stride[2], p.Dk);
      for (int64_t r = 0; r < R; ++r)
        bmax[r] = plain ? PlainRowMax(s + r * kSStride, p.scale)
                        : GeneralRowMax(p, MakeRowScore(p, b, head_of(r), row_of(r)), jb, s + r * kSStride);
    }
    RescaleRows(RoundUp(R, N), bmax, m, alpha, mlog);
    for (int64_t r = 0; r < R; ++r)
      l[r] = l[r] * alpha[r] + hn::GetLane(hn::SumOfLanes(d, RowExpSums(s + r * kSStride, plain, p.scale, m[r], mlog[r])));
    if (p.dropout_p > 0.0)
      for (int64_t r = 0; r < R; ++r)
        for (int64_t j = 0; j < count; ++j)
          if (s[r * kSStride + j] != 0.0f && !dropout_keep_j(drop[r], jb + j, drop_threshold)) s[r * kSStride + j] = 0.0f;
    // O = O·alpha + P·V, zero weights skipped (their values are never read).
    for (int64_t r = 0; r < R; ++r)
      for (int64_t x = 0; x < L.dvp; x += N) hn::Store(hn::Mul(hn::Load(d, o + r * L.dvp + x), hn::Set(d, alpha[r])), d, o + r * L.dvp + x);
    for (int64_t j = 0; j < count; ++j) {
      const float* vj = vbase + (jb + j) * p.v_stride[2];
      for (int64_t r = 0; r < R; ++r) {
        const float w = s[r * kSStride + j];
        if (w == 0.0f) continue;
        float* orow = o + r * L.dvp;
        const VF wv = hn::Set(d, w);
        for (int64_t x = 0; x < dv_vec; x += N) hn::Store(hn::MulAdd(wv, hn::LoadU(d, vj + x), hn::Load(d, orow + x)), d, orow + x);
        for (int64_t x = dv_vec; x < p.Dv; ++x) orow[x] += w * vj[x];
      }
    }
  }
  for (int64_t r = 0; r < R; ++r) FinishRow(p, b, head_of(r), row_of(r), o + r * L.dvp, m[r], l[r]);
}

// ---- returned weights: a second pass ------------------------------------------------
// Reference twin: the weights of reference::scaled_dot_product_attention,
// w_ij = p_ij · z_ij, p = exp(s − lse), z the dropout factor (0 or 1/(1−p)),
// 0 where the key is hidden. With lse known from the forward, each weight
// is independent of the others: one item = (query block, b, h) recomputes
// its score tiles from the packed Kᵀ exactly as ForwardItem does and writes
// p·z straight into weights[b, h, i, :] — no [Lq, Lk] buffer besides the
// output itself. Key blocks no row of the block sees are written as zeros
// without a tile.
void WeightsItem(void* ctx_ptr, int64_t item, int thread) {
  const Ctx& c = *static_cast<const Ctx*>(ctx_ptr);
  const FlashForwardParams& p = *c.p;
  const Layout& L = c.L;
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t NR = TileWidth();
  const int64_t bh = item / L.nqb, qb = item % L.nqb;
  const int64_t b = bh / p.Hq, h = bh % p.Hq, g = h / p.group;
  const int64_t i0 = qb * kBlockQ;
  const int64_t rows = std::min<int64_t>(kBlockQ, p.Lq - i0);
  const int64_t panels = (rows + kMR - 1) / kMR;
  float* scratch = p.workspace + L.scratch_off + thread * L.scratch_per_thread;
  float* qp = scratch + L.qp_off;  // [panels][Dk][kMR]  the query block
  float* s = scratch + L.s_off;    // [panels·kMR][kSStride]  raw q·k of one key block
  PackQueryBlock(p, b, h, i0, rows, qp);

  const KeyRange first_row = VisibleKeys(p, i0), last_row = VisibleKeys(p, i0 + rows - 1);
  const uint64_t drop_threshold = dropout_threshold(p.dropout_p);
  const VF log2e = hn::Set(d, kLog2e);
  for (int64_t kb = 0; kb < L.nkb; ++kb) {
    const int64_t jb = kb * kBlockK, count = std::min<int64_t>(kBlockK, p.Lk - jb);
    auto dst_row = [&](int64_t r) {
      return p.weights + b * p.weights_stride[0] + h * p.weights_stride[1] + (i0 + r) * p.weights_stride[2] +
             jb * p.weights_stride[3];
    };
    const bool seen = last_row.hi > first_row.lo && jb < last_row.hi && jb + count > first_row.lo &&
                      BoolMaskBlock(p, b, h, kb) != kMaskNone;
    if (seen) {
      const float* kt = p.workspace + L.kt_off + (b * p.Hkv + g) * L.kt_per_head + kb * p.Dk * kBlockK;
      for (int64_t pn = 0; pn < panels; ++pn)
        for (int64_t col = 0; col < kBlockK; col += NR)
          ScoreTile<true>(qp + pn * p.Dk * kMR, 0, kt + col, p.Dk, s + pn * kMR * kSStride + col);
    }
    for (int64_t r = 0; r < rows; ++r) {
      float* w = s + r * kSStride;  // this row's weights, in place of its raw scores
      const float* st = p.row_stats + 2 * ((b * p.Hq + h) * p.Lq + i0 + r);  // the forward's m and l
      const float row_m = st[0], row_l = st[1];
      if (!seen || (row_m == kNegInf && !std::isnan(row_l))) {  // the row sees no key of this block (or none at all)
        std::fill(w, w + count, 0.0f);
      } else {
        const RowScore row = MakeRowScore(p, b, h, i0 + r);
        // e^{s − m} / l = 2^{(s − m)·log2 e} / l: the difference first, exact
        // for the scores near m that carry the weight (Sterbenz), so huge
        // scores lose nothing (s·log2e − m·log2e would cancel
        // catastrophically). Not e^{s − lse}: with |m| ~ 1e30, lse = m + log l
        // rounds to m, and every weight of a row of equal scores came out 1.
        const VF mv = hn::Set(d, row_m), inv_l = hn::Set(d, 1.0f / row_l);
        VF t = hn::Zero(d);
        for (int64_t j = 0; j < kBlockK; j += N) {
          MF hidden = hn::FirstN(d, 0);
          const VF score = ScoreVector(p, row, hn::Load(d, w + j), jb + j, &hidden, &t);
          hn::Store(hn::IfThenZeroElse(hidden, hn::Mul(Exp2(d, hn::Mul(hn::Sub(score, mv), log2e)), inv_l)), d, w + j);
        }
        if (p.dropout_p > 0.0) {
          // p·z as the reference computes it: a dropped weight is p·0, which
          // is 0 — or NaN in a row a NaN score made NaN, as in the reference
          // and torch (a plain 0 there passed for a real weight).
          const uint64_t state = dropout_row_state(p.dropout_seed, b + p.dropout_batch_offset, h, i0 + r);
          for (int64_t j = 0; j < count; ++j)
            w[j] *= dropout_keep_j(state, jb + j, drop_threshold) ? p.dropout_scale : 0.0f;
        }
      }
      float* dst = dst_row(r);
      for (int64_t j = 0; j < count; ++j) dst[j * p.weights_stride[3]] = w[j];
    }
  }
}

/// The whole forward pass on this target: pack K and V, then every work
/// item, then (if asked) the weights pass.
void FlashForward(const FlashForwardParams& params) {
  FlashForwardParams p = params;
  Ctx c{&p, MakeLayout(p)};
  if (p.weights) p.row_stats = p.workspace + c.L.stats_off;
  if (RowBroadcastBoolMask(p)) {
    uint8_t* summary = reinterpret_cast<uint8_t*>(p.workspace + c.L.mask_off);
    SummariseBoolMask(p, summary);
    p.mask_blocks = summary;
  }
  if (UseDecodePath(p)) {
    parallel_for(p.B * p.Hkv, p.threads, &DecodeItem, &c);
    return;
  }
  if (c.L.per_item) {
    parallel_for(p.B * p.Hkv, p.threads, &HeadItem, &c);
    return;
  }
  parallel_for(p.B * p.Hkv * c.L.nkb, p.threads, &PackKVBlock, &c);
  parallel_for(p.B * p.Hq * c.L.nqb, p.threads, &ForwardItem, &c);
  if (p.weights) parallel_for(p.B * p.Hq * c.L.nqb, p.threads, &WeightsItem, &c);
}

// =====================================================================================
// Backward
// =====================================================================================
//
// Per query row i (the reference's comment, src/reference/sdpa.cpp), with
// p = exp(s − lse), z the dropout factor (0 or 1/(1 − dropout_p)), w = p·z:
//   in the forward pass this was  out_i = Σ_j w_ij v_j,  so
//     dV_j += w_ij dO_i        dp_ij = z_ij (dO_i · v_j)
//   in the forward pass this was  p = softmax(s) (with the sink in the sum),  so
//     ds_ij = p_ij (dp_ij − D_i),  D_i = dO_i · out_i     d(sink) = −p_sink D_i
//   in the forward pass this was  s = cap·tanh(scale·q·k / cap) + bias,  so
//     dr_ij = ds_ij (1 − t_ij²)  (ds_ij without softcap)
//     dQ_i += scale Σ_j dr_ij k_j          dK_j += scale Σ_i dr_ij q_i
//
// Buffers, per call (workspace):
//   Kᵀ, Vᵀ [Dk|Dv][kBlockK] and K rows [kBlockK][Dkp] per key block;
//   Q rows [kBlockQ][Dkp], dO rows [kBlockQ][Dvp], D and lse per query block;
//   dQ partial sums [G][Lq][Dkp] per query head (G key groups, below).
// Per work item (scratch): S → W and dP → dR tiles [kBlockQ][kSStride], and
// the dK, dV tiles [kBlockK][Dkp|Dvp] of the key block in hand.
//
// One pass, FlashAttention-2's five products, no atomics. A work item owns
// a key/value head (b, g) and one of G contiguous groups of its key blocks;
// for each key block, for each query head of the group and query block that
// sees it:  S = Q·Kᵀ, dP = dO·Vᵀ → W, dR;  dV += Wᵀ·dO;  dK += dRᵀ·Q;  and
// dQpart[group] += dR·K. Every dK, dV and dQpart element has one writer that
// sums in a fixed order, and a last step adds the G partial dQ in group
// order; G depends only on the shape (more groups when there are few heads,
// to give threads work), so results are bit-identical for any thread count.
// (The first version summed dQ in a separate pass over query blocks: seven
// products, measured 47-62% of sgemm.)

struct BwdLayout {
  int64_t nkb = 0, nqb = 0, dkp = 0, dvp = 0;
  int64_t kt_per_head = 0, vt_per_head = 0, kr_per_head = 0;  // per (b, g)
  int64_t qr_per_head = 0, dor_per_head = 0, rows_per_head = 0;  // per (b, h)
  int64_t kt_off = 0, vt_off = 0, kr_off = 0, kflags_off = 0;
  int64_t qr_off = 0, dor_off = 0, dd_off = 0, lse_off = 0, qflags_off = 0;
  int64_t groups = 1;                 // key groups per key/value head
  int64_t group_first_off = 0;        // [groups + 1] first key block of each group (int64)
  int64_t dqp_off = 0, dqp_per_head = 0;  // [groups][B·Hq][nqb·kBlockQ][dkp]
  int64_t mask_off = 0;               // SummariseBoolMask's bytes
  int64_t scratch_off = 0, scratch_per_thread = 0, total = 0;
  // inside one thread's scratch
  int64_t s_off = 0, dp_off = 0, dk_off = 0, dv_off = 0, drop_off = 0;
};

// Which query blocks of a head see key block kb at all: [first, end).
HWY_INLINE void QueryBlocksSeeing(const FlashForwardParams& p, int64_t nqb, int64_t kb, int64_t* first, int64_t* end) {
  const int64_t jb = kb * kBlockK;
  *first = nqb, *end = 0;
  for (int64_t qb = 0; qb < nqb; ++qb) {
    const int64_t i0 = qb * kBlockQ, rows = std::min<int64_t>(kBlockQ, p.Lq - i0);
    const KeyRange first_row = VisibleKeys(p, i0), last_row = VisibleKeys(p, i0 + rows - 1);
    if (last_row.hi <= jb || first_row.lo >= jb + kBlockK || last_row.hi <= first_row.lo) continue;
    *first = std::min(*first, qb);
    *end = qb + 1;
  }
}

inline BwdLayout MakeBwdLayout(const FlashBackwardParams& bp) {
  const FlashForwardParams& p = bp.f;
  BwdLayout L;
  L.nkb = (p.Lk + kBlockK - 1) / kBlockK;
  L.nqb = (p.Lq + kBlockQ - 1) / kBlockQ;
  L.dkp = RoundUp(p.Dk, TileWidth());
  L.dvp = RoundUp(p.Dv, TileWidth());
  L.kt_per_head = L.nkb * p.Dk * kBlockK;
  L.vt_per_head = L.nkb * p.Dv * kBlockK;
  L.kr_per_head = L.nkb * kBlockK * L.dkp;
  L.qr_per_head = L.nqb * kBlockQ * L.dkp;
  L.dor_per_head = L.nqb * kBlockQ * L.dvp;
  L.rows_per_head = L.nqb * kBlockQ;
  const int64_t kv_heads = p.B * p.Hkv, q_heads = p.B * p.Hq;
  Carver all;
  L.kt_off = all.take(kv_heads * L.kt_per_head);
  L.vt_off = all.take(kv_heads * L.vt_per_head);
  L.kr_off = all.take(kv_heads * L.kr_per_head);
  L.kflags_off = all.take((kv_heads * L.nkb + 3) / 4);
  L.qr_off = all.take(q_heads * L.qr_per_head);
  L.dor_off = all.take(q_heads * L.dor_per_head);
  L.dd_off = all.take(q_heads * L.rows_per_head);
  L.lse_off = all.take(q_heads * L.rows_per_head);
  L.qflags_off = all.take((q_heads * L.nqb + 3) / 4);
  // Key groups: one per key/value head when there are enough heads to share
  // out, else up to 4 (each costs a partial dQ the size of Q). One group when
  // the float mask's gradient is wanted: a mask broadcast along the keys sums
  // across key blocks, which must then stay in one item.
  L.groups = (bp.d_mask || kv_heads >= 8 || L.nkb <= 1) ? 1 : std::min(std::min<int64_t>(4, L.nkb), (8 + kv_heads - 1) / kv_heads);
  L.group_first_off = all.take(2 * (L.groups + 1));
  L.dqp_per_head = L.rows_per_head * L.dkp;
  L.dqp_off = all.take(L.groups * q_heads * L.dqp_per_head);
  L.mask_off = all.take((MaskSummaryBytes(p) + 3) / 4);
  Carver one;
  L.s_off = one.take(kBlockQ * kSStride);
  L.dp_off = one.take(kBlockQ * kSStride);
  L.dk_off = one.take(kBlockKPadded * L.dkp);
  L.dv_off = one.take(kBlockKPadded * L.dvp);
  L.drop_off = one.take(2 * kRowsPadded);
  L.scratch_per_thread = one.used;
  L.scratch_off = all.used;
  L.total = all.used + static_cast<int64_t>(p.threads) * one.used;
  return L;
}

/// How many floats of workspace FlashBackward needs for these parameters.
int64_t FlashBackwardWorkspaceFloats(const FlashBackwardParams& bp) { return MakeBwdLayout(bp).total; }

struct BwdCtx {
  const FlashBackwardParams* bp;
  BwdLayout L;
};

// Key side of head (b, g), block kb: Kᵀ and Vᵀ (for the score and dP tiles),
// K rows (for dQ += dR·K); flag the block if a key is not finite.
void PackKeyBlock(void* ctx_ptr, int64_t item, int /*thread*/) {
  const BwdCtx& c = *static_cast<const BwdCtx*>(ctx_ptr);
  const FlashForwardParams& p = c.bp->f;
  const BwdLayout& L = c.L;
  const int64_t head = item / L.nkb, kb = item % L.nkb;  // head = b·Hkv + g
  const int64_t b = head / p.Hkv, g = head % p.Hkv;
  const int64_t jb = kb * kBlockK, count = std::min<int64_t>(kBlockK, p.Lk - jb);
  float* ws = p.workspace;
  const float* k = p.k + b * p.k_stride[0] + g * p.k_stride[1] + jb * p.k_stride[2];
  const float* v = p.v + b * p.v_stride[0] + g * p.v_stride[1] + jb * p.v_stride[2];
  PackTransposed(k, p.k_stride[2], p.k_stride[3], count, p.Dk, ws + L.kt_off + head * L.kt_per_head + kb * p.Dk * kBlockK);
  PackTransposed(v, p.v_stride[2], p.v_stride[3], count, p.Dv, ws + L.vt_off + head * L.vt_per_head + kb * p.Dv * kBlockK);
  const bool finite = PackRows(k, p.k_stride[2], p.k_stride[3], count, p.Dk, kBlockK, L.dkp,
                               ws + L.kr_off + head * L.kr_per_head + jb * L.dkp);
  reinterpret_cast<uint8_t*>(ws + L.kflags_off)[item] = finite ? 0 : 1;
}

// Query side of head (b, h), block qb: Q and dO rows, D_i = dO_i·out_i (in
// the reference's order) and lse_i; flag the block if Q or dO is not finite.
void PackQueryBlock(void* ctx_ptr, int64_t item, int /*thread*/) {
  const BwdCtx& c = *static_cast<const BwdCtx*>(ctx_ptr);
  const FlashBackwardParams& bp = *c.bp;
  const FlashForwardParams& p = bp.f;
  const BwdLayout& L = c.L;
  const int64_t head = item / L.nqb, qb = item % L.nqb;  // head = b·Hq + h
  const int64_t b = head / p.Hq, h = head % p.Hq;
  const int64_t i0 = qb * kBlockQ, rows = std::min<int64_t>(kBlockQ, p.Lq - i0);
  float* ws = p.workspace;
  const float* q = p.q + b * p.q_stride[0] + h * p.q_stride[1] + i0 * p.q_stride[2];
  const float* dout = bp.dout + b * bp.dout_stride[0] + h * bp.dout_stride[1] + i0 * bp.dout_stride[2];
  bool finite = PackRows(q, p.q_stride[2], p.q_stride[3], rows, p.Dk, kBlockQ, L.dkp,
                         ws + L.qr_off + head * L.qr_per_head + qb * kBlockQ * L.dkp);
  finite &= PackRows(dout, bp.dout_stride[2], bp.dout_stride[3], rows, p.Dv, kBlockQ, L.dvp,
                     ws + L.dor_off + head * L.dor_per_head + qb * kBlockQ * L.dvp);
  reinterpret_cast<uint8_t*>(ws + L.qflags_off)[item] = finite ? 0 : 1;
  float* dd = ws + L.dd_off + head * L.rows_per_head + qb * kBlockQ;
  float* lse = ws + L.lse_off + head * L.rows_per_head + qb * kBlockQ;
  const float* out = bp.out + b * bp.out_stride[0] + h * bp.out_stride[1] + i0 * bp.out_stride[2];
  const float* lse_in = bp.lse + b * bp.lse_stride[0] + h * bp.lse_stride[1] + i0 * bp.lse_stride[2];
  for (int64_t r = 0; r < kBlockQ; ++r) {
    float D = 0.0f, row_lse = kNegInf;
    if (r < rows) {
      for (int64_t x = 0; x < p.Dv; ++x)
        D += dout[r * bp.dout_stride[2] + x * bp.dout_stride[3]] * out[r * bp.out_stride[2] + x * bp.out_stride[3]];
      row_lse = lse_in[r * bp.lse_stride[2]];
    }
    dd[r] = D;
    lse[r] = row_lse;
  }
}

// One block's S and dP tiles (rows r < rows of query block qb, keys jb..)
// turned into W = P·z (in s) and dR (in dp), in place. Also writes the float
// mask's gradient ds when asked (each (i, j) tile is visited once).
//   p = exp(s − lse) (0 where hidden or the row saw nothing)
//   dp = z·(dO·v) (0 where dropped: that value is never read)
//   ds = p·(dp − D), dr = ds·(1 − t²) with softcap; 0 where hidden.
HWY_INLINE void GradientTiles(const FlashBackwardParams& bp, const BwdLayout& L, int64_t b, int64_t h, int64_t qb,
                              int64_t rows, int64_t jb, const uint64_t* drop, bool write_mask_grad,
                              float* HWY_RESTRICT s, float* HWY_RESTRICT dp) {
  const FlashForwardParams& p = bp.f;
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t head = b * p.Hq + h, i0 = qb * kBlockQ;
  const float* dd = p.workspace + L.dd_off + head * L.rows_per_head + qb * kBlockQ;
  const float* lse = p.workspace + L.lse_off + head * L.rows_per_head + qb * kBlockQ;
  const KeyRange first_row = VisibleKeys(p, i0), last_row = VisibleKeys(p, i0 + rows - 1);
  const bool plain =
      PlainBlock(p, first_row, last_row, jb, BoolMaskBlock(p, b, h, jb / kBlockK)) && p.dropout_p <= 0.0 && !write_mask_grad;
  const uint64_t drop_threshold = dropout_threshold(p.dropout_p);
  const VF log2e = hn::Set(d, kLog2e), zero = hn::Zero(d);
  for (int64_t r = 0; r < rows; ++r) {
    float* srow = s + r * kSStride;
    float* dprow = dp + r * kSStride;
    // A row that saw no key (lse = −∞) gets zero gradient: p = 0 throughout.
    const bool dead = lse[r] == kNegInf;
    const VF lse2 = hn::Set(d, dead ? 0.0f : lse[r] * kLog2e);
    // p = e^{s − lse} fused as in the forward, or, for a huge lse, the score
    // rounded as the forward rounded it minus lse (see kFusedExpLimit):
    // lse = fl(max + log l) >= max, so p <= 1 and the max's p is not lost.
    const bool fused = dead || FusedExpIsSafe(lse[r] * kLog2e);
    const VF lse_v = hn::Set(d, lse[r]);
    const VF D = hn::Set(d, dd[r]);
    if (plain && !dead) {
      const VF c1 = hn::Set(d, p.scale * kLog2e), scale = hn::Set(d, p.scale);
      for (int64_t j = 0; j < kBlockK; j += N) {
        const VF raw = hn::Load(d, srow + j);
        const VF pv = fused ? Exp2(d, hn::MulSub(raw, c1, lse2))
                            : Exp2(d, hn::Mul(hn::Sub(hn::Mul(raw, scale), lse_v), log2e));
        hn::Store(pv, d, srow + j);
        hn::Store(hn::Mul(pv, hn::Sub(hn::Load(d, dprow + j), D)), d, dprow + j);
      }
      continue;
    }
    const RowScore row = MakeRowScore(p, b, h, i0 + r);
    HWY_ALIGN float z[hn::MaxLanes(DF())];
    for (int64_t j = 0; j < kBlockK; j += N) {
      MF hidden = hn::FirstN(d, 0);
      VF t = zero;
      const VF sc = ScoreVector(p, row, hn::Load(d, srow + j), jb + j, &hidden, &t);
      if (dead) hidden = hn::Not(hn::FirstN(d, 0));  // all lanes
      const VF pv = hn::IfThenZeroElse(
          hidden, Exp2(d, fused ? hn::MulSub(sc, log2e, lse2) : hn::Mul(hn::Sub(sc, lse_v), log2e)));
      VF dpv = hn::Load(d, dprow + j);
      VF wv = pv;
      if (p.dropout_p > 0.0) {
        for (int64_t x = 0; x < N; ++x) {
          const int64_t jj = jb + j + x;
          z[x] = jj < p.Lk && dropout_keep_j(drop[r], jj, drop_threshold) ? p.dropout_scale : 0.0f;
        }
        const VF zv = hn::Load(d, z);
        const MF dropped = hn::Eq(zv, zero);
        dpv = hn::IfThenZeroElse(dropped, hn::Mul(zv, dpv));
        // A dropped key adds nothing to dV, as in the reference (which skips
        // it): p·0 would be NaN in a row that a NaN score made NaN.
        wv = hn::IfThenZeroElse(dropped, hn::Mul(pv, zv));
      }
      VF ds = hn::IfThenZeroElse(hidden, hn::Mul(pv, hn::Sub(dpv, D)));
      if (write_mask_grad) {  // each (b, h, i, j) is visited once
        HWY_ALIGN float dsv[hn::MaxLanes(DF())];
        hn::Store(ds, d, dsv);
        float* dm = bp.d_mask + b * bp.d_mask_stride[0] + h * bp.d_mask_stride[1] + (i0 + r) * bp.d_mask_stride[2];
        for (int64_t x = 0; x < N && jb + j + x < p.Lk; ++x) dm[(jb + j + x) * bp.d_mask_stride[3]] += dsv[x];
      }
      // t is NaN where a hidden key holds NaN: zero those lanes again, since
      // 0·NaN would carry it into dQ and dK.
      if (p.softcap > 0.0f) ds = hn::IfThenZeroElse(hidden, hn::Mul(ds, hn::NegMulAdd(t, t, hn::Set(d, 1.0f))));
      hn::Store(wv, d, srow + j);
      hn::Store(ds, d, dprow + j);
    }
  }
}

// One work item: key group `kg` of key/value head (b, g) — dK and dV of its
// key blocks, and its partial sums of dQ for every query head of the group.
void KeyGroupItem(void* ctx_ptr, int64_t item, int thread) {
  const BwdCtx& c = *static_cast<const BwdCtx*>(ctx_ptr);
  const FlashBackwardParams& bp = *c.bp;
  const FlashForwardParams& p = bp.f;
  const BwdLayout& L = c.L;
  const int64_t NR = TileWidth();
  constexpr int64_t kPanelsK = kBlockKPadded / kMR;
  const int64_t bg = item / L.groups, kg = item % L.groups;
  const int64_t b = bg / p.Hkv, g = bg % p.Hkv, kv_head = b * p.Hkv + g;
  const int64_t* group_first = reinterpret_cast<const int64_t*>(p.workspace + L.group_first_off);

  float* scratch = p.workspace + L.scratch_off + thread * L.scratch_per_thread;
  float* s = scratch + L.s_off;    // [kBlockQ][kSStride]  S, then W
  float* dp = scratch + L.dp_off;  // [kBlockQ][kSStride]  dP, then dR
  float* dk = scratch + L.dk_off;  // [kBlockKPadded][dkp]  Σ dRᵀ·Q
  float* dv = scratch + L.dv_off;  // [kBlockKPadded][dvp]  Σ Wᵀ·dO
  uint64_t* drop = reinterpret_cast<uint64_t*>(scratch + L.drop_off);
  // The tiles' columns kBlockK..kBlockKPadded are read as panels: keep them 0.
  for (int64_t r = 0; r < kBlockQ; ++r)
    for (int64_t j = kBlockK; j < kSStride; ++j) s[r * kSStride + j] = dp[r * kSStride + j] = 0.0f;
  const uint8_t* kflags = reinterpret_cast<const uint8_t*>(p.workspace + L.kflags_off);
  const uint8_t* qflags = reinterpret_cast<const uint8_t*>(p.workspace + L.qflags_off);

  for (int64_t kb = group_first[kg]; kb < group_first[kg + 1]; ++kb) {
    const int64_t jb = kb * kBlockK, count = std::min<int64_t>(kBlockK, p.Lk - jb);
    const float* kt = p.workspace + L.kt_off + kv_head * L.kt_per_head + kb * p.Dk * kBlockK;
    const float* vt = p.workspace + L.vt_off + kv_head * L.vt_per_head + kb * p.Dv * kBlockK;
    const float* kr = p.workspace + L.kr_off + kv_head * L.kr_per_head + jb * L.dkp;
    const bool k_finite = !kflags[kv_head * L.nkb + kb];
    std::memset(dk, 0, sizeof(float) * static_cast<size_t>(kBlockKPadded * L.dkp));
    std::memset(dv, 0, sizeof(float) * static_cast<size_t>(kBlockKPadded * L.dvp));
    int64_t qb_first, qb_end;
    QueryBlocksSeeing(p, L.nqb, kb, &qb_first, &qb_end);

    for (int64_t h = g * p.group; h < (g + 1) * p.group; ++h) {
      // A block a bool mask hides from every row: W = dR = 0, nothing to add.
      if (BoolMaskBlock(p, b, h, kb) == kMaskNone) continue;
      const int64_t head = b * p.Hq + h;
      for (int64_t qb = qb_first; qb < qb_end; ++qb) {
        const int64_t i0 = qb * kBlockQ, rows = std::min<int64_t>(kBlockQ, p.Lq - i0);
        const int64_t panels = (rows + kMR - 1) / kMR;
        const float* qr = p.workspace + L.qr_off + head * L.qr_per_head + qb * kBlockQ * L.dkp;
        const float* dor = p.workspace + L.dor_off + head * L.dor_per_head + qb * kBlockQ * L.dvp;
        float* dqp = p.workspace + L.dqp_off + (kg * p.B * p.Hq + head) * L.dqp_per_head + qb * kBlockQ * L.dkp;
        if (p.dropout_p > 0.0)
          for (int64_t r = 0; r < rows; ++r) drop[r] = dropout_row_state(p.dropout_seed, b + p.dropout_batch_offset, h, i0 + r);
        // As in ForwardItem: the key columns [lo, hi) some row of each query
        // panel sees, and for each key panel the rows [first, end) that see
        // some of its keys. Outside them W and dR are exactly 0 (GradientTiles
        // writes 0 wherever a key is hidden, whatever S and dP held), so those
        // tiles are neither computed nor added.
        int64_t panel_lo[kBlockQ / kMR + 1], panel_hi[kBlockQ / kMR + 1];
        for (int64_t pn = 0; pn < panels; ++pn) {
          const int64_t r0 = pn * kMR, r1 = std::min(rows, r0 + kMR) - 1;
          panel_lo[pn] = std::clamp<int64_t>(VisibleKeys(p, i0 + r0).lo - jb, 0, count);
          panel_hi[pn] = std::clamp<int64_t>(VisibleKeys(p, i0 + r1).hi - jb, panel_lo[pn], count);
        }
        // (Both ends of a row's visible keys grow with the row, so both row
        // bounds grow with the key panel: one sweep finds them all.)
        int64_t key_first[kPanelsK], key_end[kPanelsK];
        for (int64_t kp = 0, first = 0, end = 0; kp < kPanelsK; ++kp) {
          const int64_t k0 = jb + kp * kMR, k1 = std::min(jb + count, k0 + kMR) - 1;  // its keys [k0, k1]
          while (first < rows && VisibleKeys(p, i0 + first).hi <= k0) ++first;  // rows before see none yet
          end = std::max(end, first);
          while (end < rows && VisibleKeys(p, i0 + end).lo <= k1) ++end;  // rows from `end` on see none any more
          key_first[kp] = first;
          key_end[kp] = k0 <= k1 ? end : first;
        }
        for (int64_t pn = 0; pn < panels; ++pn)
          for (int64_t col = panel_lo[pn] / NR * NR; col < panel_hi[pn]; col += NR) {
            ScoreTile<false>(qr + pn * kMR * L.dkp, L.dkp, kt + col, p.Dk, s + pn * kMR * kSStride + col);
            ScoreTile<false>(dor + pn * kMR * L.dvp, L.dvp, vt + col, p.Dv, dp + pn * kMR * kSStride + col);
          }
        GradientTiles(bp, L, b, h, qb, rows, jb, drop, bp.d_mask != nullptr, s, dp);
        // Padding rows r >= rows hold zero tiles (zero Q and dO rows), never
        // transformed: they add 0 to dQ's padding rows.

        // dV += Wᵀ·dO and dK += dRᵀ·Q over the block's real rows.
        if (!qflags[head * L.nqb + qb]) {
          for (int64_t pn = 0; pn < kPanelsK; ++pn) {
            const int64_t r0 = key_first[pn], n = key_end[pn] - r0;
            if (n == 0) continue;
            for (int64_t col = 0; col < L.dvp; col += NR)
              AccumulateTile<1, kSStride>(s + r0 * kSStride + pn * kMR, n, dor + r0 * L.dvp + col, L.dvp, nullptr,
                                          dv + pn * kMR * L.dvp + col, L.dvp);
            for (int64_t col = 0; col < L.dkp; col += NR)
              AccumulateTile<1, kSStride>(dp + r0 * kSStride + pn * kMR, n, qr + r0 * L.dkp + col, L.dkp, nullptr,
                                          dk + pn * kMR * L.dkp + col, L.dkp);
          }
        } else {
          for (int64_t j = 0; j < count; ++j) {
            AccumulateRowSkippingZeros(s + j, kSStride, rows, dor, L.dvp, L.dvp, 1.0f, dv + j * L.dvp);
            AccumulateRowSkippingZeros(dp + j, kSStride, rows, qr, L.dkp, L.dkp, 1.0f, dk + j * L.dkp);
          }
        }
        // dQ (this group's part) += dR·K.
        if (k_finite) {
          for (int64_t pn = 0; pn < panels; ++pn) {
            const int64_t lo = panel_lo[pn], n = panel_hi[pn] - lo;
            if (n == 0) continue;
            for (int64_t col = 0; col < L.dkp; col += NR)
              AccumulateTile<kSStride, 1>(dp + pn * kMR * kSStride + lo, n, kr + lo * L.dkp + col, L.dkp, nullptr,
                                          dqp + pn * kMR * L.dkp + col, L.dkp);
          }
        } else {
          for (int64_t r = 0; r < rows; ++r)
            AccumulateRowSkippingZeros(dp + r * kSStride, 1, count, kr, L.dkp, L.dkp, 1.0f, dqp + r * L.dkp);
        }
      }
    }

    float* dk_out = bp.dk + b * bp.dk_stride[0] + g * bp.dk_stride[1];
    float* dv_out = bp.dv + b * bp.dv_stride[0] + g * bp.dv_stride[1];
    for (int64_t j = 0; j < count; ++j) {
      for (int64_t x = 0; x < p.Dk; ++x)
        dk_out[(jb + j) * bp.dk_stride[2] + x * bp.dk_stride[3]] = p.scale * dk[j * L.dkp + x];
      for (int64_t x = 0; x < p.Dv; ++x) dv_out[(jb + j) * bp.dv_stride[2] + x * bp.dv_stride[3]] = dv[j * L.dvp + x];
    }
  }
}

// Last step, per query block of head (b, h): dQ = scale · Σ_groups dQpart in
// group order, and each row's −p_sink·D for d_sinks.
void FinishQueryBlock(void* ctx_ptr, int64_t item, int /*thread*/) {
  const BwdCtx& c = *static_cast<const BwdCtx*>(ctx_ptr);
  const FlashBackwardParams& bp = *c.bp;
  const FlashForwardParams& p = bp.f;
  const BwdLayout& L = c.L;
  const int64_t head = item / L.nqb, qb = item % L.nqb;
  const int64_t b = head / p.Hq, h = head % p.Hq;
  const int64_t i0 = qb * kBlockQ, rows = std::min<int64_t>(kBlockQ, p.Lq - i0);
  float* out = bp.dq + b * bp.dq_stride[0] + h * bp.dq_stride[1];
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t x = 0; x < p.Dk; ++x) {
      float sum = 0.0f;
      for (int64_t kg = 0; kg < L.groups; ++kg)
        sum += p.workspace[L.dqp_off + (kg * p.B * p.Hq + head) * L.dqp_per_head + (qb * kBlockQ + r) * L.dkp + x];
      out[(i0 + r) * bp.dq_stride[2] + x * bp.dq_stride[3]] = p.scale * sum;
    }
}

/// The whole backward pass on this target.
void FlashBackward(const FlashBackwardParams& params) {
  FlashBackwardParams bp = params;
  const FlashForwardParams& p = bp.f;
  BwdCtx c{&bp, MakeBwdLayout(bp)};
  const BwdLayout& L = c.L;
  if (RowBroadcastBoolMask(p)) {
    uint8_t* summary = reinterpret_cast<uint8_t*>(p.workspace + L.mask_off);
    SummariseBoolMask(p, summary);
    bp.f.mask_blocks = summary;
  }
  // Key groups: contiguous runs of key blocks with about equal work (the
  // number of query blocks that see each key block), from the shape alone.
  int64_t* group_first = reinterpret_cast<int64_t*>(p.workspace + L.group_first_off);
  {
    auto work = [&](int64_t kb) {  // (no std::vector in per-target code)
      int64_t first, end;
      QueryBlocksSeeing(p, L.nqb, kb, &first, &end);
      return std::max<int64_t>(end - first, 0) + 1;
    };
    int64_t total = 0;
    for (int64_t kb = 0; kb < L.nkb; ++kb) total += work(kb);
    int64_t kg = 0, acc = 0;
    group_first[0] = 0;
    for (int64_t kb = 0; kb < L.nkb && kg + 1 < L.groups; ++kb) {
      acc += work(kb);
      if (acc * L.groups >= (kg + 1) * total) group_first[++kg] = kb + 1;
    }
    while (kg + 1 < L.groups) group_first[++kg] = L.nkb;  // (tiny shapes: empty groups)
    group_first[L.groups] = L.nkb;
  }
  std::memset(p.workspace + L.dqp_off, 0, sizeof(float) * static_cast<size_t>(L.groups * p.B * p.Hq * L.dqp_per_head));
  parallel_for(p.B * p.Hkv * L.nkb, p.threads, &PackKeyBlock, &c);
  parallel_for(p.B * p.Hq * L.nqb, p.threads, &PackQueryBlock, &c);
  parallel_for(p.B * p.Hkv * L.groups, p.threads, &KeyGroupItem, &c);
  parallel_for(p.B * p.Hq * L.nqb, p.threads, &FinishQueryBlock, &c);
  if (bp.d_sinks)  // Σ_b Σ_i −p_sink·D, in that order, for each head (the reference's order)
    for (int64_t h = 0; h < p.Hq; ++h) {
      const float sink = p.sinks[h * p.sinks_stride];
      float sum = 0.0f;
      for (int64_t b = 0; b < p.B; ++b) {
        const int64_t head = b * p.Hq + h;
        const float* dd = p.workspace + L.dd_off + head * L.rows_per_head;
        const float* lse = p.workspace + L.lse_off + head * L.rows_per_head;
        for (int64_t i = 0; i < p.Lq; ++i)
          if (lse[i] != kNegInf) sum += -std::exp(sink - lse[i]) * dd[i];
      }
      bp.d_sinks[h * bp.d_sinks_stride] = sum;
    }
}

/// The name of this target, for tests and benchmarks.

}  // namespace attn::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
