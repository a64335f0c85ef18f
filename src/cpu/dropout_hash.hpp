// cpu/dropout_hash.hpp — attn::dropout_keep (src/reference/dropout.cpp), split
// so a kernel can hash (seed, b, h, i) once per row and only j per element.
// Must stay bit-for-bit the same function; flash_forward_test checks it.
#pragma once

#include <cmath>
#include <cstdint>

namespace attn::cpu {

inline uint64_t dropout_mix64(uint64_t x) {  // SplitMix64's finaliser, as in dropout.cpp
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

constexpr uint64_t kDropoutGolden = 0x9e3779b97f4a7c15ULL;

/// The hash state after seed, b, h and i.
inline uint64_t dropout_row_state(uint64_t seed, int64_t b, int64_t h, int64_t i) {
  uint64_t x = dropout_mix64(seed + kDropoutGolden);
  for (int64_t c : {b, h, i}) x = dropout_mix64(x ^ (static_cast<uint64_t>(c) + kDropoutGolden));
  return x;
}

/// dropout_keep compares u = (x >> 11)·2⁻⁵³ with p; u >= p exactly when
/// (x >> 11) >= ceil(p·2⁵³) (p·2⁵³ is exact in double), an integer compare.
inline uint64_t dropout_threshold(double p) { return static_cast<uint64_t>(std::ceil(p * 0x1.0p53)); }

inline bool dropout_keep_j(uint64_t row_state, int64_t j, uint64_t threshold) {
  const uint64_t x = dropout_mix64(row_state ^ (static_cast<uint64_t>(j) + kDropoutGolden));
  return (x >> 11) >= threshold;
}

}  // namespace attn::cpu
