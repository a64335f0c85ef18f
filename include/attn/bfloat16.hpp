// attn/bfloat16.hpp — the bfloat16 number format ("brain float"): the top 16
// bits of an IEEE float32 — sign, the same 8 exponent bits, 7 mantissa bits.
// Same range as float32, 8 significant bits (relative rounding error
// <= 2^-8). Converting to float32 is exact (append 16 zero bits); from
// float32 rounds to nearest, ties to even, as PyTorch's .to(torch.bfloat16)
// does; NaN stays NaN. Arithmetic is done in float32: widen, compute, round.
//
//   attn::bfloat16 h(3.14159f);            // 3.140625
//   float x = static_cast<float>(h);
//   Tensor<bfloat16> t = attn::to_bfloat16(tensor_f32);
//   Tensor<float> back = attn::to_float(t);
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "attn/tensor.hpp"

namespace attn {

struct bfloat16 {
  uint16_t bits = 0;  ///< +0.0 by default

  bfloat16() = default;
  /// float32 → bfloat16, rounded to nearest, ties to even; NaN stays a quiet NaN.
  explicit bfloat16(float x) : bits(round_bits(x)) {}
  /// bfloat16 → float32, exact.
  explicit operator float() const {
    const uint32_t u = static_cast<uint32_t>(bits) << 16;
    float x;
    std::memcpy(&x, &u, sizeof x);
    return x;
  }
  static bfloat16 from_bits(uint16_t b) {
    bfloat16 h;
    h.bits = b;
    return h;
  }
  friend bool operator==(bfloat16 a, bfloat16 b) { return a.bits == b.bits; }

 private:
  static uint16_t round_bits(float x) {
    uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    if (std::isnan(x)) return static_cast<uint16_t>((u >> 16) | 0x40);  // keep the sign, force quiet
    u += 0x7FFF + ((u >> 16) & 1);  // add just under half an ulp, plus 1 if the kept part is odd
    return static_cast<uint16_t>(u >> 16);
  }
};

/// Elementwise conversions (contiguous results, any input strides).
inline Tensor<float> to_float(const Tensor<bfloat16>& t) {
  Tensor<float> out(t.shape());
  float* dst = out.data();
  if (t.is_contiguous()) {
    const bfloat16* src = t.data();
    for (int64_t i = 0; i < t.numel(); ++i) dst[i] = static_cast<float>(src[i]);
  } else {
    for (int64_t i = 0; i < t.numel(); ++i) dst[i] = static_cast<float>(t.flat(i));
  }
  return out;
}
inline Tensor<bfloat16> to_bfloat16(const Tensor<float>& t) {
  Tensor<bfloat16> out(t.shape());
  bfloat16* dst = out.data();
  if (t.is_contiguous()) {
    const float* src = t.data();
    for (int64_t i = 0; i < t.numel(); ++i) dst[i] = bfloat16(src[i]);
  } else {
    for (int64_t i = 0; i < t.numel(); ++i) dst[i] = bfloat16(t.flat(i));
  }
  return out;
}

}  // namespace attn
