// generator.cpp — PyTorch's CPU random generator, reproduced bit for bit.
//
// What torch does (ATen/CPUGeneratorImpl.cpp, ATen/core/DistributionsHelper.h,
// ATen/core/TransformationHelper.h, ATen/native/cpu/DistributionTemplates.h):
//
//   engine      mt19937 seeded with the low 32 bits of the seed.
//   random()    one 32-bit output.
//   random64()  two outputs, the FIRST one in the high half.
//   uniform     float : x = (random()   & (2^24 - 1)) * 2^-24, value = fma(x, to - from, from)
//               double: x = (random64() & (2^53 - 1)) * 2^-53, value = fma(x, to - from, from)
//               (torch writes x * (to - from) + from; its AVX2 kernels are built
//               with FMA contraction, so the multiply-add is fused) and a value
//               that rounds up to `to` is replaced by `from`.
//   normal      two paths, chosen per call:
//     * numel >= 16 and contiguous ("normal_fill"): first every element gets a
//       uniform, then each block of 16 is turned into 16 normals by Box–Muller
//       (elements j and j+8 of a block form a pair); when numel % 16 != 0 the
//       LAST 16 elements are drawn again and transformed again. float uses
//       torch's AVX2 polynomials (log256_ps, sincos256_ps from avx_mathfun.h),
//       emulated here lane by lane; double uses libm's log/cos/sin.
//     * otherwise (few elements or a strided tensor): element by element,
//       double-precision Box–Muller from two random64() uniforms; the second
//       sample of each pair is cached in the generator and returned by the
//       next scalar draw (this cache survives between calls, as in torch).
//
// Element order: torch's TensorIterator visits a non-contiguous tensor in
// memory order (dims sorted by stride), not in row-major order; so do we.
//
// Which torch: the float normal_fill and the fused uniform reproduce torch's
// AVX2 CPU kernels, the ones torch runs on an x86-64 CPU with AVX2 and without
// AVX-512 (ATEN_CPU_CAPABILITY=avx2 forces them). torch's own results differ
// from those on other CPUs (the "default" and AVX-512 kernels use libm and do
// not fuse the uniform), so tests/golden/make_generator_golden.py pins avx2.

// The emulation below must round exactly where torch's kernel rounds: every
// fused multiply-add is written as std::fma, and the compiler must not fuse
// any other a*b+c on its own (it would on -march=native builds).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "attn/generator.hpp"

#include <bit>
#include <cmath>
#include <limits>
#include <numbers>
#include <string>

namespace attn {

// Gives the helpers below access to the Box–Muller cache, as torch's
// maybe_get_next_normal_sample / maybe_set_next_normal_sample do. (Only the
// double cache is ever used: torch's CPU kernels draw scalar normals in double
// for float tensors too; the float cache exists for parity with torch's
// generator state and is only cleared.)
struct GeneratorAccess {
  static std::optional<double>& double_cache(Generator& g) { return g.next_double_normal_; }
};

namespace {

// ---- uniform (TransformationHelper.h: uniform_real) -------------------------

// float: 24 random bits -> [0, 1) on a grid of 2^-24, then scaled to [from, to).
float uniform_float(Generator& gen, float from, float to) {
  const float x = static_cast<float>(gen.random() & ((1u << 24) - 1)) * (1.0f / 16777216.0f);
  return std::fma(x, to - from, from);
}

// double: 53 random bits of random64() -> [0, 1) on a grid of 2^-53.
double uniform_double(Generator& gen, double from, double to) {
  const double x = static_cast<double>(gen.random64() & ((uint64_t{1} << 53) - 1)) * (1.0 / 9007199254740992.0);
  return std::fma(x, to - from, from);
}

// ---- scalar normal (DistributionsHelper.h: normal_distribution<double>) -----

// One N(mean, std) sample in double. Box–Muller yields two; the second
// (r·sin θ, before mean/std are applied) is cached for the next call.
double normal_double_scalar(Generator& gen, double mean, double std) {
  auto& cache = GeneratorAccess::double_cache(gen);
  if (cache) {
    const double ret = *cache;
    cache.reset();
    return std::fma(ret, std, mean);
  }
  const double u1 = uniform_double(gen, 0.0, 1.0);
  const double u2 = uniform_double(gen, 0.0, 1.0);
  const double r = std::sqrt(-2.0 * std::log1p(-u2));
  const double theta = 2.0 * std::numbers::pi * u1;
  cache = r * std::sin(theta);
  return std::fma(r * std::cos(theta), std, mean);
}

// ---- torch's AVX2 log and sincos (avx_mathfun.h), one lane at a time -------
//
// Cephes' single-precision polynomials as torch compiles them: GCC fuses some
// multiply-adds of the vector code into FMA instructions; each std::fma below
// stands where torch's binary has a vfmadd/vfnmadd/vfmsub.

uint32_t bits(float x) { return std::bit_cast<uint32_t>(x); }
float from_bits(uint32_t b) { return std::bit_cast<float>(b); }

// _mm256_cvttps_epi32: truncate toward zero; NaN and out-of-range give INT_MIN.
int32_t cvtt(float y) {
  if (!(y > -2147483648.0f && y < 2147483648.0f)) return std::numeric_limits<int32_t>::min();
  return static_cast<int32_t>(y);
}

// log256_ps: natural log; NaN for x <= 0.
float log_avx2(float x) {
  const bool invalid = x <= 0.0f;
  const float min_norm_pos = from_bits(0x00800000u);  // denormals are cut off
  x = x > min_norm_pos ? x : min_norm_pos;            // _mm256_max_ps(x, min)
  int32_t exponent = static_cast<int32_t>(bits(x) >> 23);
  x = from_bits((bits(x) & ~0x7f800000u) | bits(0.5f));  // mantissa in [0.5, 1)
  exponent -= 0x7f;
  float e = static_cast<float>(exponent) + 1.0f;

  // if (x < sqrt(1/2)) { e -= 1; x = x + x - 1; } else { x = x - 1; }
  const bool below = x < static_cast<float>(0.707106781186547524);
  const float tmp = below ? x : 0.0f;
  x = x - 1.0f;
  e = e - (below ? 1.0f : 0.0f);
  x = x + tmp;

  const float z = x * x;
  float y = std::fma(static_cast<float>(7.0376836292E-2), x, static_cast<float>(-1.1514610310E-1));
  y = std::fma(y, x, static_cast<float>(1.1676998740E-1));
  y = std::fma(y, x, static_cast<float>(-1.2420140846E-1));
  y = std::fma(y, x, static_cast<float>(+1.4249322787E-1));
  y = std::fma(y, x, static_cast<float>(-1.6668057665E-1));
  y = std::fma(y, x, static_cast<float>(+2.0000714765E-1));
  y = std::fma(y, x, static_cast<float>(-2.4999993993E-1));
  y = std::fma(y, x, static_cast<float>(+3.3333331174E-1));
  // y = y*x*z + e*q1 - z/2;  x = x + y + e*q2
  y = std::fma(y * x, z, e * static_cast<float>(-2.12194440e-4));
  y = std::fma(-z, 0.5f, y);
  x = x + y;
  x = std::fma(e, static_cast<float>(0.693359375), x);
  return invalid ? from_bits(0xffffffffu) : x;  // OR with an all-ones mask: a NaN
}

// sincos256_ps: sine and cosine of x (accurate for |x| < 8192).
void sincos_avx2(float x, float* s, float* c) {
  uint32_t sign_bit_sin = bits(x) & 0x80000000u;
  x = from_bits(bits(x) & 0x7fffffffu);
  // j = (int(|x| * 4/pi) + 1) & ~1: the octant, rounded up to even
  uint32_t j = static_cast<uint32_t>(cvtt(x * static_cast<float>(1.27323954473516)));
  j = (j + 1u) & ~1u;
  const float y = static_cast<float>(static_cast<int32_t>(j));
  const uint32_t swap_sign_bit_sin = (j & 4u) << 29;
  const bool poly_is_sin = (j & 2u) == 0;  // torch's poly_mask: which polynomial gives the sine
  const uint32_t sign_bit_cos = (~(j - 2u) & 4u) << 29;
  sign_bit_sin ^= swap_sign_bit_sin;

  // "Extended precision modular arithmetic": x = ((x - y*DP1) - y*DP2) - y*DP3
  x = std::fma(y, static_cast<float>(-0.78515625), x);
  x = std::fma(y, static_cast<float>(-2.4187564849853515625e-4), x);
  x = std::fma(y, static_cast<float>(-3.77489497744594108e-8), x);

  // cosine polynomial on [0, pi/4]: 1 - z/2 + z^2 (p0 z^2 + p1 z + p2)
  const float z = x * x;
  float yc = std::fma(static_cast<float>(2.443315711809948E-005), z, static_cast<float>(-1.388731625493765E-003));
  yc = std::fma(yc, z, static_cast<float>(4.166664568298827E-002));
  yc = std::fma(z, z * yc, -(z * 0.5f));
  yc = yc + 1.0f;
  // sine polynomial on [0, pi/4]: x + x z (p0 z^2 + p1 z + p2)
  float ys = std::fma(static_cast<float>(-1.9515295891E-4), z, static_cast<float>(8.3321608736E-3));
  ys = std::fma(ys, z, static_cast<float>(-1.6666654611E-1));
  ys = std::fma(x, z * ys, x);

  // Select with masks, exactly as the vector code does (it matters for -0).
  const float ysin2 = poly_is_sin ? ys : 0.0f;
  const float ysin1 = poly_is_sin ? 0.0f : yc;
  ys = ys - ysin2;
  yc = yc - ysin1;
  *s = from_bits(bits(ysin1 + ysin2) ^ sign_bit_sin);
  *c = from_bits(bits(yc + ys) ^ sign_bit_cos);
}

// ---- normal_fill: Box–Muller on blocks of 16 (DistributionTemplates.h) ------

// float, torch's AVX2 NormalFill16: data[j], data[j+8] (j < 8) hold uniforms
// u, v on entry and a pair of normals on exit.
void normal_fill_16(float* data, float mean, float std) {
  const float two_pi = static_cast<float>(2.0f * std::numbers::pi);
  for (int j = 0; j < 8; ++j) {
    const float u1 = 1.0f - data[j];  // [0, 1) -> (0, 1] for log
    const float u2 = data[j + 8];
    const float radius = std::sqrt(-2.0f * log_avx2(u1));
    float sin_theta, cos_theta;
    sincos_avx2(two_pi * u2, &sin_theta, &cos_theta);
    data[j] = std::fma(radius * cos_theta, std, mean);
    data[j + 8] = std::fma(radius * sin_theta, std, mean);
  }
}

// double: torch's generic NormalFill16, with libm.
void normal_fill_16(double* data, double mean, double std) {
  for (int j = 0; j < 8; ++j) {
    const double u1 = 1.0 - data[j];
    const double u2 = data[j + 8];
    const double radius = std::sqrt(-2.0 * std::log(u1));
    const double theta = (2.0f * std::numbers::pi) * u2;
    data[j] = std::fma(radius * std::cos(theta), std, mean);
    data[j + 8] = std::fma(radius * std::sin(theta), std, mean);
  }
}

template <class T>
T uniform_unit(Generator& gen) {
  if constexpr (std::is_same_v<T, float>)
    return uniform_float(gen, 0.0f, 1.0f);
  else
    return uniform_double(gen, 0.0, 1.0);
}

// torch's normal_fill for a contiguous tensor of n >= 16 elements.
template <class T>
void normal_fill(T* data, int64_t n, T mean, T std, Generator& gen) {
  for (int64_t i = 0; i < n; ++i) data[i] = uniform_unit<T>(gen);
  for (int64_t i = 0; i + 16 <= n; i += 16) normal_fill_16(data + i, mean, std);
  if (n % 16 != 0) {
    // The tail does not fill a block: redraw the last 16 elements and transform them.
    T* tail = data + n - 16;
    for (int i = 0; i < 16; ++i) tail[i] = uniform_unit<T>(gen);
    normal_fill_16(tail, mean, std);
  }
}

// ---- element order ----------------------------------------------------------

// Calls f(element&) for every element of t in memory order, the order torch's
// TensorIterator uses: dims sorted by decreasing stride, row-major over them.
// Row-major order when t is contiguous.
template <class T, class F>
void for_each_in_memory_order(const Tensor<T>& t, const char* who, F&& f) {
  Shape sizes, strides;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (t.size(d) == 1) continue;  // a size-1 dim does not change the order
    if (t.stride(d) == 0 && t.size(d) > 1)
      throw ValueError(std::string(who) + ": the tensor of shape " + shape_str(t.shape()) + " with strides " +
                       shape_str(t.strides()) +
                       " is an expanded view (stride 0); several elements share one memory location, "
                       "so it cannot be filled in place — clone() it first");
    sizes.push_back(t.size(d));
    strides.push_back(t.stride(d));
  }
  // Stable insertion sort by decreasing stride (few dims).
  for (size_t i = 1; i < sizes.size(); ++i)
    for (size_t k = i; k > 0 && strides[k - 1] < strides[k]; --k) {
      std::swap(strides[k - 1], strides[k]);
      std::swap(sizes[k - 1], sizes[k]);
    }
  const int64_t n = t.numel();
  T* base = t.data();
  Shape index(sizes.size(), 0);
  int64_t offset = 0;
  for (int64_t i = 0; i < n; ++i) {
    f(base[offset]);
    // advance the odometer, last dim fastest
    for (size_t d = sizes.size(); d-- > 0;) {
      offset += strides[d];
      if (++index[d] < sizes[d]) break;
      offset -= strides[d] * sizes[d];
      index[d] = 0;
    }
  }
}

}  // namespace

// ---- the engine ----------------------------------------------------------------

void Generator::manual_seed(uint64_t seed) {
  seed_ = seed;
  engine_.seed(static_cast<std::mt19937::result_type>(seed & 0xffffffffu));  // torch keeps the low 32 bits
  next_double_normal_.reset();  // torch drops the cached Box–Muller samples on reseed
  next_float_normal_.reset();
}

uint32_t Generator::random() { return static_cast<uint32_t>(engine_()); }

uint64_t Generator::random64() {
  const uint64_t hi = random();
  const uint64_t lo = random();
  return (hi << 32) | lo;
}

// ---- uniform_ ------------------------------------------------------------------

template <class T>
void Generator::uniform_(Tensor<T>& t, double from, double to) {
  // torch's check_uniform_bounds
  const double lowest = static_cast<double>(std::numeric_limits<T>::lowest());
  const double highest = static_cast<double>(std::numeric_limits<T>::max());
  if (!(from >= lowest && from <= highest) || !(to >= lowest && to <= highest))
    throw ValueError("Generator::uniform_: from = " + std::to_string(from) + ", to = " + std::to_string(to) +
                     " must both be finite and representable in the tensor's type");
  if (!(from <= to))
    throw ValueError("Generator::uniform_: expects a range [from, to) with from <= to, but got from = " +
                     std::to_string(from) + " > to = " + std::to_string(to));
  if (!(to - from <= highest))
    throw ValueError("Generator::uniform_: to - from = " + std::to_string(to - from) +
                     " overflows the tensor's type");
  const T lo = static_cast<T>(from), hi = static_cast<T>(to);
  for_each_in_memory_order(t, "Generator::uniform_", [&](T& v) {
    T value;
    if constexpr (std::is_same_v<T, float>)
      value = uniform_float(*this, lo, hi);
    else
      value = uniform_double(*this, lo, hi);
    v = value == hi ? lo : value;  // [from, to): a value rounded up to `to` becomes `from`
  });
}

// ---- normal_ -------------------------------------------------------------------

template <class T>
void Generator::normal_(Tensor<T>& t, double mean, double std) {
  if (!(std >= 0.0) || !std::isfinite(std) || !std::isfinite(mean))
    throw ValueError("Generator::normal_: expects a finite mean and std >= 0, but got mean = " +
                     std::to_string(mean) + ", std = " + std::to_string(std));
  if (t.numel() >= 16 && t.is_contiguous()) {
    normal_fill<T>(t.data(), t.numel(), static_cast<T>(mean), static_cast<T>(std), *this);
  } else {
    for_each_in_memory_order(t, "Generator::normal_",
                             [&](T& v) { v = static_cast<T>(normal_double_scalar(*this, mean, std)); });
  }
}

// ---- process-wide generator and factories -----------------------------------------

Generator& default_generator() {
  static Generator gen;
  return gen;
}

void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

template <class T>
Tensor<T> rand(const Shape& shape, Generator& gen) {
  Tensor<T> t(shape);
  gen.uniform_(t, 0.0, 1.0);
  return t;
}

template <class T>
Tensor<T> randn(const Shape& shape, Generator& gen) {
  Tensor<T> t(shape);
  gen.normal_(t, 0.0, 1.0);
  return t;
}

template void Generator::uniform_<float>(Tensor<float>&, double, double);
template void Generator::uniform_<double>(Tensor<double>&, double, double);
template void Generator::normal_<float>(Tensor<float>&, double, double);
template void Generator::normal_<double>(Tensor<double>&, double, double);
template Tensor<float> rand<float>(const Shape&, Generator&);
template Tensor<double> rand<double>(const Shape&, Generator&);
template Tensor<float> randn<float>(const Shape&, Generator&);
template Tensor<double> randn<double>(const Shape&, Generator&);

}  // namespace attn
