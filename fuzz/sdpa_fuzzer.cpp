// fuzz/sdpa_fuzzer.cpp — libFuzzer harness for the public
// scaled_dot_product_attention (forward and backward): its argument checks
// and both of its kernels.
//
// The input bytes decide, through FuzzedDataProvider: the sizes (B, Hq, Hkv,
// Lq, Lk, Dk, Dv, empty ones included), each tensor's layout (contiguous,
// a [B, L, H, D] view, a slice of a wider buffer, a transposed head_dim, key
// and value broadcast over the batch), the options (causal in both
// alignments, a window, GQA, bool and float masks of any broadcast shape,
// ALiBi, softcap, sinks, dropout, scale, returned weights / lse), the thread
// count, the element values (specials included: ±0, ±∞, NaN, subnormals) and,
// sometimes, one deliberately bad argument. Then:
//   * the reference path and the fast path must agree on whether the call is
//     valid: both throw the same attn::Error (same type, same message), or
//     neither does;
//   * when valid, the fast path's output, lse, weights and gradients must be
//     within tests/fuzz_check.hpp's bounds of the float64 reference (the
//     same bounds as tests/cpu/flash_fuzz_test.cpp);
//   * the fast path's results must be bit-identical for two thread counts
//     (DESIGN.md: results do not depend on the number of threads);
//   * bfloat16 inputs must give exactly the float32 result on the widened
//     inputs, rounded once (attn/sdpa.hpp);
//   * float64 with SdpaBackend::Fast must be refused with a ValueError.
// Sizes are bounded (about 60k multiply-adds a call) so one input runs in
// milliseconds; block edges (64 keys) are still crossed with small head dims.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <typeinfo>

#include "attn/bfloat16.hpp"
#include "attn/errors.hpp"
#include "attn/sdpa.hpp"
#include "attn/threading.hpp"
#include "fuzz_check.hpp"
#include "fuzz_util.hpp"

namespace {

using attn::SdpaBackend;
using attn::SdpaOptions;
using attn::Shape;
using attn::Tensor;
using attn_fuzz::fuzz_fail;

// multiply-adds of one call, B·Hq·Lq·Lk·(Dk + Dv): the bound on an input's work.
constexpr int64_t kMaxWork = 60000;

// How a [B, H, L, D] argument is laid out in memory.
enum class Layout { Contiguous, BLHD, Slice, TransposedD, BroadcastBatch, kCount };

const char* layout_name(Layout l) {
  static const char* kNames[] = {"contiguous", "[B, L, H, D] view", "slice of wider rows", "transposed head_dim",
                                 "broadcast over batch"};
  return kNames[static_cast<int>(l)];
}

// no_infinity: the activation gets NaN but not ±∞ among its specials.
// Queries and keys used to be drawn that way: with an ∞ in a key, the
// reference backward multiplied that key by a zero ds (NaN in d_query) where
// the fast backward skipped it (0) — found by this fuzzer. Both paths now skip
// zero coefficients (tests/reference/sdpa_grad_test.cpp), so every activation
// gets ±∞ and NaN; NaN in a query or key makes its row NaN on both paths
// (DESIGN.md).
Tensor<float> make_activation(FuzzedDataProvider& in, const char* name, int64_t B, int64_t H, int64_t L, int64_t D,
                              Layout layout, bool no_infinity) {
  attn_fuzz::trace() += std::string(name) + ": " + layout_name(layout) + "\n";
  auto draw = [&](const attn::Shape& shape) { return attn_fuzz::draw_tensor(in, shape, true, name, no_infinity); };
  switch (layout) {
    case Layout::BLHD:  // a model's projections: [B, L, H, D] viewed as [B, H, L, D]
      return draw({B, L, H, D}).transpose(1, 2);
    case Layout::Slice: {  // head_dim is a slice of a wider row (row stride > D)
      const int64_t extra = in.ConsumeIntegralInRange<int64_t>(1, 5), off = in.ConsumeIntegralInRange<int64_t>(0, extra);
      return draw({B, H, L, D + extra}).slice(3, off, off + D);
    }
    case Layout::TransposedD:  // stored [B, H, D, L]: head_dim is not the unit-stride axis
      return draw({B, H, D, L}).transpose(2, 3);
    case Layout::BroadcastBatch:  // one sequence shared by the batch (stride 0)
      return draw({1, H, L, D}).expand({B, H, L, D});
    default:
      return draw({B, H, L, D});
  }
}

// A mask shape that broadcasts to [B, Hq, Lq, Lk]: rank 1..4 (the rightmost
// dims), each dim full or 1.
Shape broadcast_shape(FuzzedDataProvider& in, int64_t B, int64_t Hq, int64_t Lq, int64_t Lk) {
  const Shape full = {B, Hq, Lq, Lk};
  const int rank = in.ConsumeIntegralInRange<int>(1, 4);
  const uint8_t ones = in.ConsumeIntegral<uint8_t>();
  Shape s;
  for (int d = 4 - rank; d < 4; ++d) s.push_back((ones >> d) & 1 ? 1 : full[static_cast<size_t>(d)]);
  return s;
}

// One deliberately bad argument (or none): what the checks must reject.
enum class Bad {
  None, QueryRank, KeyDk, ValueLk, KeyBatch, HeadsNotMultiple, NoGqaFlag, MaskShape, BothMasks, CausalAndMask,
  DropoutP, Scale, Softcap, Window, AlibiShape, SinksShape, UndefinedValue, SinksValue, AlibiValue, kCount
};

struct Case {
  bool skip = false;  // too much work even at head_dim 1
  Tensor<float> q, k, v, dout;
  SdpaOptions<float> options;
  bool need_mask_grad = false;
  int threads = 1, other_threads = 2;
  Bad bad = Bad::None;
  // A backward argument made bad (the forward ran): 0 none, 1 grad_output shape, 2 lse shape, 3 mask grad without mask.
  int bad_backward = 0;
};

Case make_case(FuzzedDataProvider& in) {
  Case c;
  attn_fuzz::large_values() = in.ConsumeIntegralInRange<int>(0, 3) == 3;  // see attn_fuzz::large_values
  c.threads = in.ConsumeIntegralInRange<int>(1, 4);
  c.other_threads = in.ConsumeIntegralInRange<int>(1, 4);
  c.bad = in.ConsumeBool() ? static_cast<Bad>(in.ConsumeIntegralInRange<int>(1, static_cast<int>(Bad::kCount) - 1))
                           : Bad::None;
  const int64_t B = in.ConsumeIntegralInRange<int64_t>(1, 3);
  const int64_t Hkv = in.ConsumeIntegralInRange<int64_t>(1, 3), group = in.ConsumeIntegralInRange<int64_t>(1, 3);
  int64_t Hq = Hkv * group;
  if (c.bad == Bad::HeadsNotMultiple && Hkv > 1) Hq = Hkv + 1;
  // Lengths: mostly short, sometimes past a key block (64) or a query block.
  auto length = [&] {
    return in.ConsumeBool() ? in.ConsumeIntegralInRange<int64_t>(0, 9) : in.ConsumeIntegralInRange<int64_t>(0, 140);
  };
  const int64_t Lq = length(), Lk = length();
  static constexpr int64_t kDims[] = {0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 32, 33, 64, 80, 128};
  int64_t Dk = kDims[in.ConsumeIntegralInRange<size_t>(0, std::size(kDims) - 1)];
  int64_t Dv = in.ConsumeBool() ? Dk : kDims[in.ConsumeIntegralInRange<size_t>(0, std::size(kDims) - 1)];
  // Keep the work bounded: shrink the head dims first.
  const int64_t rows = B * Hq * std::max<int64_t>(Lq, 1) * std::max<int64_t>(Lk, 1);
  while (rows * (Dk + Dv + 1) > kMaxWork && (Dk > 1 || Dv > 1)) {
    Dk = (Dk + 1) / 2;
    Dv = (Dv + 1) / 2;
  }
  if (rows * (Dk + Dv + 1) > kMaxWork) {
    c.skip = true;
    return c;
  }

  auto layout = [&](bool kv) {
    const auto l = static_cast<Layout>(in.ConsumeIntegralInRange<int>(0, static_cast<int>(Layout::kCount) - 1));
    return !kv && l == Layout::BroadcastBatch ? Layout::Contiguous : l;
  };
  attn_fuzz::trace() += std::string(attn_fuzz::large_values() ? "large values; " : "unit values; ") + "B " + std::to_string(B) + ", Hq " + std::to_string(Hq) + ", Hkv " + std::to_string(Hkv) +
                        ", Lq " + std::to_string(Lq) + ", Lk " + std::to_string(Lk) + ", Dk " + std::to_string(Dk) +
                        ", Dv " + std::to_string(Dv) + "; threads " + std::to_string(c.threads) + " and " +
                        std::to_string(c.other_threads) + "\n";
  c.q = make_activation(in, "query", B, Hq, Lq, Dk, layout(false), false);
  c.k = make_activation(in, "key", B, Hkv, Lk, Dk, layout(true), false);
  c.v = make_activation(in, "value", B, Hkv, Lk, Dv, layout(true), false);
  c.dout = attn_fuzz::draw_tensor(in, {B, Hq, Lq, Dv}, true, "grad_output");

  SdpaOptions<float>& o = c.options;
  o.enable_gqa = Hq != Hkv && c.bad != Bad::NoGqaFlag;
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {  // at most one of: causal, a bool mask, a float mask
    case 0:
      break;
    case 1:
      o.is_causal = true;
      break;
    case 2: {
      o.bool_mask = Tensor<bool>(broadcast_shape(in, B, Hq, Lq, Lk));
      // p(True) from 0 to 1 in eighths: all-False rows (output 0, lse −∞) included.
      const int eighths = in.ConsumeIntegralInRange<int>(0, 8);
      std::mt19937 gen(in.ConsumeIntegral<uint32_t>());
      for (int64_t n = 0; n < o.bool_mask.numel(); ++n) o.bool_mask.flat(n) = static_cast<int>(gen() % 8) < eighths;
      break;
    }
    default: {
      o.float_mask = attn_fuzz::draw_tensor(in, broadcast_shape(in, B, Hq, Lq, Lk), true, "float_mask");
      const int eighths = in.ConsumeIntegralInRange<int>(0, 8);  // how many keys −∞ hides
      std::mt19937 gen(in.ConsumeIntegral<uint32_t>());
      for (int64_t n = 0; n < o.float_mask.numel(); ++n)
        if (static_cast<int>(gen() % 8) < eighths) o.float_mask.flat(n) = -std::numeric_limits<float>::infinity();
      c.need_mask_grad = in.ConsumeBool();
      break;
    }
  }
  // The diagonal (causal, window, ALiBi distances): top-left or bottom-right.
  o.causal_alignment = in.ConsumeBool() ? attn::CausalAlignment::TopLeft : attn::CausalAlignment::BottomRight;
  if (in.ConsumeBool()) {
    o.window_left = in.ConsumeIntegralInRange<int64_t>(-1, 150);
    o.window_right = in.ConsumeIntegralInRange<int64_t>(-1, 20);
  }
  if (in.ConsumeBool()) {
    const bool per_batch = in.ConsumeBool();
    o.alibi_slopes = per_batch ? Tensor<float>({B, Hq}) : Tensor<float>({Hq});
    std::mt19937 gen(in.ConsumeIntegral<uint32_t>());
    for (int64_t n = 0; n < o.alibi_slopes.numel(); ++n) o.alibi_slopes.flat(n) = static_cast<float>(gen() % 1000) * 3e-4f;
  }
  if (in.ConsumeBool()) o.softcap = in.ConsumeFloatingPointInRange<double>(0.1, 50.0);
  // Sinks: finite, or −∞ (no sink) for some heads. +∞ and NaN are refused
  // (Bad::SinksValue): with them the fast path's rows that see no key were
  // NaN (e^{∞ − ∞}) where the reference gave 0 — found by this fuzzer.
  if (in.ConsumeBool()) {
    o.sinks = attn_fuzz::draw_tensor(in, {Hq}, false, "sinks");
    if (Hq > 0 && in.ConsumeBool()) o.sinks(in.ConsumeIntegralInRange<int64_t>(0, Hq - 1)) = -INFINITY;
  }
  if (in.ConsumeBool()) o.scale = in.ConsumeFloatingPointInRange<double>(1e-3, 4.0);
  if (in.ConsumeBool()) {
    static constexpr double kP[] = {0.1, 0.5, 0.9, 0.0};
    o.dropout_p = kP[in.ConsumeIntegralInRange<int>(0, 3)];
    o.dropout_seed = in.ConsumeIntegral<uint64_t>();
  }
  o.return_weights = in.ConsumeBool();
  o.return_lse = in.ConsumeIntegralInRange<int>(0, 7) != 0;

  // The bad argument, if any.
  switch (c.bad) {
    case Bad::QueryRank: c.q = c.q.select(0, 0); break;
    case Bad::KeyDk: c.k = attn_fuzz::draw_tensor(in, {B, Hkv, Lk, Dk + 1}); break;
    case Bad::ValueLk: c.v = attn_fuzz::draw_tensor(in, {B, Hkv, Lk + 1, Dv}); break;
    case Bad::KeyBatch: c.k = attn_fuzz::draw_tensor(in, {B + 1, Hkv, Lk, Dk}); break;
    case Bad::MaskShape: o.bool_mask = Tensor<bool>({Lq + 1, Lk}); o.float_mask = {}; o.is_causal = false; break;
    case Bad::BothMasks:
      o.bool_mask = Tensor<bool>({Lq, Lk});
      o.float_mask = Tensor<float>({Lq, Lk});
      break;
    case Bad::CausalAndMask: o.is_causal = true; if (!o.float_mask.defined()) o.bool_mask = Tensor<bool>({Lk}); break;
    case Bad::DropoutP: {
      static constexpr double kBadP[] = {1.0, -0.1, 2.0, std::numeric_limits<double>::quiet_NaN()};
      o.dropout_p = kBadP[in.ConsumeIntegralInRange<int>(0, 3)];
      break;
    }
    case Bad::Scale: {
      static constexpr double kBadScale[] = {0.0, -1.0, std::numeric_limits<double>::infinity(),
                                             std::numeric_limits<double>::quiet_NaN()};
      o.scale = kBadScale[in.ConsumeIntegralInRange<int>(0, 3)];
      break;
    }
    case Bad::Softcap: {
      static constexpr double kBadCap[] = {-1.0, std::numeric_limits<double>::infinity(),
                                           std::numeric_limits<double>::quiet_NaN()};
      o.softcap = kBadCap[in.ConsumeIntegralInRange<int>(0, 2)];
      break;
    }
    case Bad::Window: o.window_left = in.ConsumeIntegralInRange<int64_t>(-1000, -2); break;
    case Bad::AlibiShape: o.alibi_slopes = Tensor<float>({Hq + 1}); break;
    case Bad::SinksShape: o.sinks = Tensor<float>({B, Hq}); break;
    case Bad::UndefinedValue: c.v = {}; break;
    case Bad::SinksValue: {
      if (!o.sinks.defined()) o.sinks = Tensor<float>({Hq});
      static constexpr float kBad[] = {INFINITY, NAN};
      if (Hq > 0) o.sinks(in.ConsumeIntegralInRange<int64_t>(0, Hq - 1)) = kBad[in.ConsumeIntegralInRange<int>(0, 1)];
      break;
    }
    case Bad::AlibiValue: {
      if (!o.alibi_slopes.defined()) o.alibi_slopes = Tensor<float>({Hq});
      static constexpr float kBad[] = {INFINITY, -INFINITY, NAN};
      if (o.alibi_slopes.numel() > 0)
        o.alibi_slopes.flat(in.ConsumeIntegralInRange<int64_t>(0, o.alibi_slopes.numel() - 1)) =
            kBad[in.ConsumeIntegralInRange<int>(0, 2)];
      break;
    }
    default: break;
  }
  c.need_mask_grad = c.need_mask_grad && o.float_mask.defined();  // (a bad argument may have replaced the mask)
  c.bad_backward = in.ConsumeIntegralInRange<int>(0, 15);  // 1..3 bad, else fine
  if (c.bad_backward > 3) c.bad_backward = 0;
  attn_fuzz::trace() +=
      std::string("options:") + (o.is_causal ? " causal" : "") +
      (o.causal_alignment == attn::CausalAlignment::TopLeft ? " top-left" : " bottom-right") +
      (o.bool_mask.defined() ? " bool_mask " + attn::shape_str(o.bool_mask.shape()) : std::string()) +
      (o.float_mask.defined() ? " float_mask " + attn::shape_str(o.float_mask.shape()) : std::string()) +
      (c.need_mask_grad ? " (its gradient)" : "") + " window (" + std::to_string(o.window_left) + ", " +
      std::to_string(o.window_right) + ")" + (o.enable_gqa ? " gqa" : "") +
      (o.alibi_slopes.defined() ? " alibi " + attn::shape_str(o.alibi_slopes.shape()) : std::string()) +
      (o.softcap != 0 ? " softcap " + std::to_string(o.softcap) : std::string()) + (o.sinks.defined() ? " sinks" : "") +
      (o.scale ? " scale " + std::to_string(*o.scale) : std::string()) +
      (o.dropout_p != 0 ? " dropout " + std::to_string(o.dropout_p) : std::string()) +
      (o.return_weights ? " return_weights" : "") + (o.return_lse ? "" : " no lse") + "; bad argument " +
      std::to_string(static_cast<int>(c.bad)) + ", bad backward argument " + std::to_string(c.bad_backward) + "\n";
  return c;
}

// Whether the bad argument drawn is bad for these sizes (a few are not:
// a [Lq + 1, Lk] mask broadcasts when Lq = 0; Hq = Hkv without the GQA flag).
bool must_be_rejected(const Case& c) {
  switch (c.bad) {
    case Bad::None: return false;
    case Bad::HeadsNotMultiple: return c.k.size(1) > 1;
    case Bad::NoGqaFlag: return c.q.size(1) != c.k.size(1);
    case Bad::MaskShape: return c.q.size(2) != 0;
    case Bad::SinksValue: return c.q.size(1) != 0;                        // a head whose sink is bad
    case Bad::AlibiValue: return c.q.size(1) != 0 && c.q.size(0) != 0;  // a (batch, head) whose slope is bad
    default: return true;
  }
}

// Runs f; returns the attn::Error it threw (type and message) or nullopt.
struct Thrown {
  const std::type_info* type;
  std::string what;
};
template <class F>
std::optional<Thrown> attempt(F&& f) {
  try {
    f();
  } catch (const attn::Error& e) {
    return Thrown{&typeid(e), e.what()};
  }
  return std::nullopt;
}

void same_outcome(const char* what, const std::optional<Thrown>& ref, const std::optional<Thrown>& fast) {
  if (ref.has_value() != fast.has_value())
    fuzz_fail(std::string(what) + ": the " + (ref ? "reference" : "fast") + " path threw (" +
              (ref ? ref->what : fast->what) + "), the other did not");
  if (ref && (*ref->type != *fast->type || ref->what != fast->what))
    fuzz_fail(std::string(what) + ": different errors: reference " + ref->what + " / fast " + fast->what);
}

struct ThreadsFor {
  explicit ThreadsFor(int n) { attn::set_num_threads(n); }
  ~ThreadsFor() { attn::set_num_threads(0); }
};

attn_test::AccuracyStats g_stats;

// One more floor than tests/fuzz_check.hpp's, for the magnitudes drawn here
// (values up to ±300, scale up to 4; the gtests draw ±1): each score
// s = scale·Σ_d q_d·k_d is rounded in float32 with an error that grows with
// the terms, not with s — q·k can cancel to a small score from terms of
// thousands — and e^{s − lse} carries that error into every weight, output
// and gradient, differently on each float32 path (they sum in different
// orders). Measured on one such case: 5.6e-4 relative in d_value, with terms
// of 900, Dk 16, scale 3.65, softcap 46. The floor:
//   kRecomputeFactor · (1 + √Dk) · scale · max_ij ‖q_i ∘ k_j‖₂ · 2⁻²⁴,
// ‖q_i ∘ k_j‖₂ the 2-norm of the products (their typical rounding; ~5e-3 there).
double score_rounding_floor(const Tensor<float>& q, const Tensor<float>& k, double scale) {
  const int64_t B = q.size(0), Hq = q.size(1), Lq = q.size(2), Dk = q.size(3), Hkv = k.size(1), Lk = k.size(2);
  double worst = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t i = 0; i < Lq; ++i)
        for (int64_t j = 0; j < Lk; ++j) {
          double sum = 0;
          for (int64_t x = 0; x < Dk; ++x) {
            const double t = static_cast<double>(q(b, h, i, x)) * k(b, h / (Hq / Hkv), j, x);
            if (std::isfinite(t)) sum += t * t;
          }
          worst = std::max(worst, sum);
        }
  return attn_test::kRecomputeFactor * (1 + std::sqrt(static_cast<double>(Dk))) * scale * std::sqrt(worst) * 0x1p-24;
}

void run(const Case& c) {
  SdpaOptions<float> ref_o = c.options, fast_o = c.options;
  ref_o.backend = SdpaBackend::Reference;
  fast_o.backend = SdpaBackend::Fast;
  ThreadsFor threads(c.threads);

  attn::SdpaResult<float> ref, fast;
  const auto ref_error = attempt([&] { ref = attn::scaled_dot_product_attention(c.q, c.k, c.v, ref_o); });
  const auto fast_error = attempt([&] { fast = attn::scaled_dot_product_attention(c.q, c.k, c.v, fast_o); });
  same_outcome("forward", ref_error, fast_error);
  if (ref_error && c.bad == Bad::None) fuzz_fail("valid arguments were rejected: " + ref_error->what);
  if (ref_error) {
    // A float64 call with the same arguments must be rejected the same way
    // (the checks are shared), and never crash.
    if (c.q.defined() && c.k.defined() && c.v.defined()) {
      const auto e64 = attempt([&] {
        attn::scaled_dot_product_attention(attn_test::to_double(c.q), attn_test::to_double(c.k),
                                           attn_test::to_double(c.v), attn_test::to_double(c.options));
      });
      if (!e64 || *e64->type != *ref_error->type) fuzz_fail("float64 accepts what float32 rejects: " + ref_error->what);
    }
    return;
  }
  if (must_be_rejected(c)) fuzz_fail("an invalid argument was accepted (Bad case " + std::to_string(static_cast<int>(c.bad)) + ")");

  // The float64 reference (the specification, computed on the same float32 values).
  SdpaOptions<double> exact_o = attn_test::to_double(c.options);
  exact_o.return_lse = true;
  const auto q64 = attn_test::to_double(c.q), k64 = attn_test::to_double(c.k), v64 = attn_test::to_double(c.v);
  const auto exact = attn::scaled_dot_product_attention(q64, k64, v64, exact_o);
  attn_test::SdpaFloors floors = attn_test::sdpa_floors(c.q, c.k, c.v, c.options, exact.lse);
  {
    const double Dk = static_cast<double>(c.q.size(3));
    const double rounding = score_rounding_floor(
        c.q, c.k, c.options.scale ? *c.options.scale : Dk == 0 ? 1.0 : 1.0 / std::sqrt(Dk));
    for (double* f : {&floors.forward, &floors.grad, &floors.dq, &floors.dk}) *f = std::max(*f, rounding);
  }
  // NaN/∞ among the inputs: compared with the float64 reference only where no
  // weight can underflow (attn_fuzz::comparable_with_non_finite); the other
  // checks (same errors, thread counts, bfloat16) hold regardless.
  const bool nf = attn_fuzz::has_non_finite(c.q) || attn_fuzz::has_non_finite(c.k) ||
                  attn_fuzz::has_non_finite(c.v) || attn_fuzz::has_non_finite(c.dout) ||
                  attn_fuzz::has_non_finite(c.options.float_mask) || attn_fuzz::has_non_finite(c.options.sinks);
  const double Dk = static_cast<double>(c.q.size(3));
  const double scale = c.options.scale ? *c.options.scale : Dk == 0 ? 1.0 : 1.0 / std::sqrt(Dk);
  double score_bound = c.options.softcap > 0 ? c.options.softcap
                                             : attn_fuzz::max_abs_finite(c.q) * attn_fuzz::max_abs_finite(c.k) * Dk * scale;
  score_bound += attn_fuzz::max_abs_finite(c.options.float_mask) +
                 attn_fuzz::max_abs_finite(c.options.alibi_slopes) * static_cast<double>(c.q.size(2) + c.k.size(2)) +
                 attn_fuzz::max_abs_finite(c.options.sinks);
  // Soft-capping's derivative 1 − tanh²(r/c) is exactly 0 in float32 once
  // |r/c| passes ~9 and tiny in float64: with a NaN/∞ in the gradient it
  // meets, ∞ · 0 = NaN in float32 and ∞ · tiny = ∞ in float64 — rounding,
  // not a fault (found by the hour-long run). Compared with float64 only
  // while every raw score keeps |r/c| <= 8.
  const double raw_score_bound = attn_fuzz::max_abs_finite(c.q) * attn_fuzz::max_abs_finite(c.k) * Dk * scale;
  const bool cap_differentiable = c.options.softcap == 0 || raw_score_bound <= 8 * c.options.softcap;
  const bool compare = !attn_fuzz::large_values() &&
                       (!nf || (attn_fuzz::comparable_with_non_finite(score_bound) && cap_differentiable));
  auto check = [&](const std::string& failures, const char* where) {
    if (compare && !failures.empty()) fuzz_fail(std::string(where) + ":\n" + failures);
  };
  check(attn_test::check_accurate(fast.output, ref.output, exact.output, floors.forward, "output", g_stats),
        "forward");
  if (c.options.return_lse)
    check(attn_test::check_accurate(fast.lse, ref.lse, exact.lse, floors.forward, "lse", g_stats), "forward");
  else if (fast.lse.defined() || ref.lse.defined())
    fuzz_fail("return_lse = false, but an lse was returned");
  if (c.options.return_weights)
    check(attn_test::check_accurate(fast.weights, ref.weights, exact.weights, floors.forward, "weights", g_stats),
          "forward");

  // Float64 with the fast backend: refused, never computed.
  {
    SdpaOptions<double> o = exact_o;
    o.backend = SdpaBackend::Fast;
    const auto e = attempt([&] { attn::scaled_dot_product_attention(q64, k64, v64, o); });
    if (!e || *e->type != typeid(attn::ValueError)) fuzz_fail("float64 with SdpaBackend::Fast was not refused");
  }

  // Thread count: the fast forward again on another count, bit for bit.
  {
    ThreadsFor other(c.other_threads);
    const auto again = attn::scaled_dot_product_attention(c.q, c.k, c.v, fast_o);
    if (!attn_fuzz::same_bits(again.output, fast.output) || !attn_fuzz::same_bits(again.lse, fast.lse) ||
        !attn_fuzz::same_bits(again.weights, fast.weights))
      fuzz_fail("the fast forward differs between " + std::to_string(c.threads) + " and " +
                std::to_string(c.other_threads) + " threads");
  }

  // bfloat16: exactly the float32 result on the widened inputs, rounded once.
  {
    const Tensor<attn::bfloat16> qb = attn::to_bfloat16(c.q), kb = attn::to_bfloat16(c.k), vb = attn::to_bfloat16(c.v);
    const auto r16 = attn::scaled_dot_product_attention(qb, kb, vb, fast_o);
    const auto r32 = attn::scaled_dot_product_attention(attn::to_float(qb), attn::to_float(kb), attn::to_float(vb), fast_o);
    if (!attn_fuzz::same_bits(attn::to_float(r16.output), attn::to_float(attn::to_bfloat16(r32.output))) ||
        !attn_fuzz::same_bits(r16.lse, r32.lse))
      fuzz_fail("bfloat16 SDPA is not the float32 result rounded once");
  }

  if (!c.options.return_lse) return;  // backward needs the lse

  // Backward: each path from its own precision's reference forward, as
  // tests/cpu/flash_fuzz_test.cpp does; then the fast chain.
  Tensor<float> dout = c.dout, lse = ref.lse;
  bool need_mask_grad = c.need_mask_grad;
  // Of a rank no call has, so never accidentally right (a [1, 1, 1, 1]
  // grad_output was valid for a one-element problem, and the float64 check
  // then compared zeros against the real grad_output's gradients).
  if (c.bad_backward == 1) dout = Tensor<float>({1, 1, 1});
  if (c.bad_backward == 2) lse = Tensor<float>({1, 2});
  if (c.bad_backward == 3 && !c.options.float_mask.defined()) need_mask_grad = true;
  attn::SdpaGradients<float> ref_grad, fast_grad;
  const auto ref_bwd_error = attempt([&] {
    ref_grad = attn::scaled_dot_product_attention_backward(dout, c.q, c.k, c.v, ref.output, lse, ref_o, need_mask_grad);
  });
  const auto fast_bwd_error = attempt([&] {
    fast_grad = attn::scaled_dot_product_attention_backward(dout, c.q, c.k, c.v, ref.output, lse, fast_o, need_mask_grad);
  });
  same_outcome("backward", ref_bwd_error, fast_bwd_error);
  if (ref_bwd_error) {
    const bool expected = c.bad_backward == 1 || c.bad_backward == 2 ||
                          (c.bad_backward == 3 && !c.options.float_mask.defined());
    if (!expected) fuzz_fail("backward rejected the arguments its forward accepted: " + ref_bwd_error->what);
    return;
  }
  const auto exact_grad = attn::scaled_dot_product_attention_backward(attn_test::to_double(c.dout), q64, k64, v64,
                                                                      exact.output, exact.lse, exact_o, need_mask_grad);
  auto check_grads = [&](const attn::SdpaGradients<float>& g, const char* where) {
    check(attn_test::check_accurate(g.d_query, ref_grad.d_query, exact_grad.d_query, floors.dq, "d_query", g_stats),
          where);
    check(attn_test::check_accurate(g.d_key, ref_grad.d_key, exact_grad.d_key, floors.dk, "d_key", g_stats), where);
    check(attn_test::check_accurate(g.d_value, ref_grad.d_value, exact_grad.d_value, floors.grad, "d_value", g_stats),
          where);
    check(attn_test::check_accurate(g.d_sinks, ref_grad.d_sinks, exact_grad.d_sinks, floors.grad, "d_sinks", g_stats),
          where);
  };
  check_grads(fast_grad, "backward (fast, from the reference forward)");
  check(attn_test::check_accurate(fast_grad.d_float_mask, ref_grad.d_float_mask, exact_grad.d_float_mask, floors.grad,
                                  "d_float_mask", g_stats),
        "backward");
  const auto chain = attn::scaled_dot_product_attention_backward(c.dout, c.q, c.k, c.v, fast.output, fast.lse, fast_o,
                                                                 need_mask_grad);
  check_grads(chain, "backward (fast chain)");
  {
    ThreadsFor other(c.other_threads);
    const auto again = attn::scaled_dot_product_attention_backward(c.dout, c.q, c.k, c.v, fast.output, fast.lse,
                                                                   fast_o, need_mask_grad);
    if (!attn_fuzz::same_bits(again.d_query, chain.d_query) || !attn_fuzz::same_bits(again.d_key, chain.d_key) ||
        !attn_fuzz::same_bits(again.d_value, chain.d_value) || !attn_fuzz::same_bits(again.d_sinks, chain.d_sinks) ||
        !attn_fuzz::same_bits(again.d_float_mask, chain.d_float_mask))
      fuzz_fail("the fast backward differs between " + std::to_string(c.threads) + " and " +
                std::to_string(c.other_threads) + " threads");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  attn_fuzz::trace().clear();
  const Case c = make_case(in);
  if (!c.skip) run(c);
  return 0;
}
