// cpu/ops-inl.h — the small inline ops the fast kernels share (internal),
// compiled per SIMD target by whichever kernel includes them (the pattern of
// gemma.cpp's ops-inl.h): flash_attention-inl.h and decode-inl.h.
//
// The visibility rule (which keys a row sees by position) is plain C++ in
// ../visible_keys.hpp, shared with the reference path too.
//
// exp: the flash kernels use Exp2 below (softmax in base 2, the scale folded
// into one multiply-subtract per score); the decode kernel uses Highway's
// hn::Exp on s − m (base e). They round differently, so moving decode onto
// Exp2 would change its results in the last bits: not done in the refactor
// that gathered these ops, which kept every result bit for bit.

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

}  // namespace attn::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
