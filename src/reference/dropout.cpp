// Counter-based dropout: the keep/drop decision for weight (b, h, i, j) is a
// pure function of (seed, b, h, i, j). No generator state is carried between
// elements, so the mask does not depend on thread count, tiling or order, and
// the backward pass regenerates exactly the forward's mask.
#include <cstdint>

#include "attn/sdpa.hpp"

namespace attn {
namespace {

// SplitMix64's finaliser: a bijective mix with full avalanche, so nearby
// counters give independent-looking outputs.
uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

bool dropout_keep(uint64_t seed, int64_t b, int64_t h, int64_t i, int64_t j, double p) {
  if (p <= 0.0) return true;
  // Chain the coordinates through the mixer so (b, h, i, j) and any
  // permutation of them land on unrelated outputs.
  uint64_t x = mix64(seed + 0x9e3779b97f4a7c15ULL);
  for (int64_t c : {b, h, i, j}) x = mix64(x ^ (static_cast<uint64_t>(c) + 0x9e3779b97f4a7c15ULL));
  const double u = static_cast<double>(x >> 11) * 0x1.0p-53;  // uniform in [0, 1)
  return u >= p;
}

}  // namespace attn
