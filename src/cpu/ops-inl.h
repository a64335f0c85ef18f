// cpu/ops-inl.h — the small inline ops the fast kernels share (internal),
// compiled per SIMD target by whichever kernel includes them (the pattern of
// gemma.cpp's ops-inl.h): flash_attention-inl.h and decode-inl.h.
//
// The visibility rule (which keys a row sees by position) is plain C++ in
// ../visible_keys.hpp, shared with the reference path too.
//
// exp: every softmax of the fast kernels goes through Exp2 below (base 2;
// e^x = 2^{x·log2 e}). The flash forward's common case folds the scale and
// log2 e into one multiply-subtract per score (ExpRowSums there); rows with
// huge scores in the flash kernels and every decode block use
// ExpShiftedInPlace below, which subtracts the max first.

#include <cstdint>
#include <limits>

#include "visible_keys.hpp"

// Per-target include guard (Highway's toggle idiom).
#if defined(ATTN_CPU_OPS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ATTN_CPU_OPS_INL_H_
#undef ATTN_CPU_OPS_INL_H_
#else
#define ATTN_CPU_OPS_INL_H_
#endif

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace attn::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kLog2e = 1.44269504088896340736f;

inline int64_t RoundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

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

// The exponentials of one row of scores against its max m, in place:
// s_j <- e^{pre·s_j − m} for j in [0, width) (width a whole number of
// vectors), and their sum, lane by lane. The max is subtracted before the
// exp, as the reference and PyTorch do, so the max's own weight is exactly
// e^0 = 1 however large the scores; s_j = −∞ (a hidden key, or padding)
// gives exactly 0. `pre` is applied to each score first when the max was
// taken of scaled scores (the flash kernels' plain blocks: the same rounding
// as the max had); 1 otherwise. The online-softmax step of flash_attention-
// inl.h (rows with huge scores) and of decode-inl.h (every block) share it.
template <class D>
HWY_INLINE hn::Vec<D> ExpShiftedInPlace(D d, float* HWY_RESTRICT s, int64_t width, float pre, float m) {
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const auto pv = hn::Set(d, pre), mv = hn::Set(d, m), log2e = hn::Set(d, kLog2e);
  auto sum = hn::Zero(d);
  for (int64_t j = 0; j < width; j += N) {
    const auto e = Exp2(d, hn::Mul(hn::Sub(hn::Mul(hn::Load(d, s + j), pv), mv), log2e));
    hn::Store(e, d, s + j);
    sum = hn::Add(sum, e);
  }
  return sum;
}

}  // namespace attn::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
