// attn/generator.hpp — a random generator that reproduces PyTorch's CPU draws.
//
// torch.manual_seed(s) seeds a Mersenne Twister (mt19937); torch.rand,
// torch.randn, nn.Linear's initialisation, ... consume its 32-bit outputs in a
// fixed way. Generator does the same, so
//   attn::manual_seed(123); auto w = attn::rand<float>({2, 3});
// equals torch.manual_seed(123); torch.rand(2, 3) bit for bit, and lecture
// numbers printed with torch come out the same here.
// Self-check: the first two outputs of mt19937(123) are 2991312382, 3062119789.
//
// What "torch" means here: torch's CPU results depend on the kernels it picks
// at run time. attn reproduces the AVX2 kernels (what torch runs on an x86-64
// CPU with AVX2 and without AVX-512; ATEN_CPU_CAPABILITY=avx2 forces them),
// which fuse uniform_'s multiply-add and compute float randn of >= 16 elements
// with polynomial log/sin/cos; on other CPUs torch's own uniform_(a, b) with
// (a, b) != (0, 1) and float randn can differ from these in the last bit.
// torch.rand(), double randn and randn of < 16 elements are the same everywhere.
// See src/core/generator.cpp for the exact recipe of each draw.
//
// A Generator is not thread-safe: use one per thread (torch locks a mutex).
#pragma once

#include <cstdint>
#include <optional>
#include <random>

#include "attn/tensor.hpp"

namespace attn {

class Generator {
 public:
  static constexpr uint64_t kDefaultSeed = 67280421310721ULL;  // torch's default_rng_seed_val
  explicit Generator(uint64_t seed = kDefaultSeed) { manual_seed(seed); }

  void manual_seed(uint64_t seed);
  uint64_t initial_seed() const { return seed_; }

  uint32_t random();    ///< next 32-bit output (torch: random())
  uint64_t random64();  ///< two outputs combined (torch: random64())

  /// torch.Tensor.uniform_(from, to): fills `t` in row-major order when it is
  /// contiguous, otherwise in memory order (dims by decreasing stride) as torch
  /// does. Throws ValueError unless from <= to (both finite, representable in
  /// T), or if `t` is an expanded view (a stride-0 dim).
  template <class T>
  void uniform_(Tensor<T>& t, double from = 0.0, double to = 1.0);
  /// torch.Tensor.normal_(mean, std): same order; a contiguous tensor of >= 16
  /// elements takes torch's blocked Box–Muller path, anything else the scalar
  /// path with its cached second sample. Throws ValueError unless std >= 0
  /// and both are finite.
  template <class T>
  void normal_(Tensor<T>& t, double mean = 0.0, double std = 1.0);

 private:
  friend struct GeneratorAccess;
  uint64_t seed_ = kDefaultSeed;
  std::mt19937 engine_;
  std::optional<double> next_double_normal_;  // Box–Muller's cached second sample (torch keeps one too)
  std::optional<float> next_float_normal_;
};

/// The process-wide generator, like torch's default CPU generator.
Generator& default_generator();
/// torch.manual_seed(seed)
void manual_seed(uint64_t seed);

/// torch.rand(shape): uniform [0, 1).
template <class T>
Tensor<T> rand(const Shape& shape, Generator& gen = default_generator());
/// torch.randn(shape): standard normal.
template <class T>
Tensor<T> randn(const Shape& shape, Generator& gen = default_generator());

}  // namespace attn
