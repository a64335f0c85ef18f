// The public scaled dot-product attention (attn/sdpa.hpp): validate the
// arguments once (describe_sdpa, src/sdpa_problem.hpp), then send the
// described call to one of two implementations that compute the same
// function, neither of which checks again —
//
//   reference  src/reference/sdpa.cpp       plain loops, any T: the specification
//   fast       src/cpu/flash_attention.cpp  fused, tiled, SIMD, threaded: float
//
// tests/cpu/ check the fast one against the reference on every option.
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#include "attn/errors.hpp"
#include "attn/sdpa.hpp"
#include "cpu/flash_attention.hpp"
#include "reference/sdpa.hpp"
#include "sdpa_problem.hpp"
#include "sdpa_run.hpp"

namespace attn {

const char* to_string(SdpaBackend backend) {
  switch (backend) {
    case SdpaBackend::Auto: return "auto";
    case SdpaBackend::Reference: return "reference";
    case SdpaBackend::Fast: return "fast";
  }
  return "?";
}

namespace {

// Why the fast path does not take a call, or "" when it does.
template <class T>
std::string fast_path_refuses(const SdpaProblem<T>& pb) {
  if constexpr (!std::is_same_v<T, float>) {
    return "the fast path computes float32 only";
  } else {
    if (!cpu::flash_supports(pb)) return "a sequence is longer than 2^30 (int32 indices)";
    return "";
  }
}

// Below this many multiply-adds (B·Hq·Lq·Lk·(Dk + Dv)) the fast path's fixed
// cost — packing, workspace, waking a thread: 3 µs forward, ~10 µs backward —
// is more than the reference loops take. Measured with
// bench/sdpa_small_bench (bench/results/2026-11-23.md): forward breaks even
// near 1024, backward between 4096 and 32768.
constexpr double kFastForwardMinWork = 1024;
constexpr double kFastBackwardMinWork = 8192;

template <class T>
double multiply_adds(const SdpaProblem<T>& pb) {
  return static_cast<double>(pb.B) * static_cast<double>(pb.Hq) * static_cast<double>(pb.Lq) *
         static_cast<double>(pb.Lk) * static_cast<double>(pb.Dk + pb.Dv);
}

}  // namespace

template <class T>
SdpaBackend choose_sdpa_backend(const char* fn, const SdpaProblem<T>& pb, bool backward) {
  const SdpaBackend asked = pb.options->backend;
  if (asked == SdpaBackend::Reference) return SdpaBackend::Reference;
  const std::string why_not = fast_path_refuses(pb);
  if (why_not.empty()) {
    const bool small = multiply_adds(pb) < (backward ? kFastBackwardMinWork : kFastForwardMinWork);
    return asked == SdpaBackend::Auto && small ? SdpaBackend::Reference : SdpaBackend::Fast;
  }
  if (asked == SdpaBackend::Fast)
    throw ValueError(std::string(fn) + ": options.backend is SdpaBackend::Fast but " + why_not);
  return SdpaBackend::Reference;
}

template <class T>
void run_sdpa_forward(const char* fn, const SdpaProblem<T>& pb, const Tensor<T>& query, const Tensor<T>& key,
                      const Tensor<T>& value, Tensor<T>& out, Tensor<T>& lse, Tensor<T>* weights) {
  if (choose_sdpa_backend(fn, pb, false) == SdpaBackend::Fast) {
    if constexpr (std::is_same_v<T, float>) {
      cpu::flash_attention_forward(pb, query, key, value, out, lse, weights);
      return;
    }
  }
  SdpaResult<T> r = reference::scaled_dot_product_attention(pb, query, key, value);
  // The reference allocates its results; views the caller passed get a copy.
  if (out.defined())
    out.copy_(r.output);
  else
    out = std::move(r.output);
  if (!lse.defined())
    lse = std::move(r.lse);
  else if (r.lse.defined())
    lse.copy_(r.lse);
  if (weights) *weights = std::move(r.weights);
}

template <class T>
SdpaGradients<T> run_sdpa_backward(const char* fn, const SdpaProblem<T>& pb, const Tensor<T>& grad_output,
                                   const Tensor<T>& query, const Tensor<T>& key, const Tensor<T>& value,
                                   const Tensor<T>& output, const Tensor<T>& lse, bool need_float_mask_grad) {
  if (choose_sdpa_backend(fn, pb, true) == SdpaBackend::Fast) {
    if constexpr (std::is_same_v<T, float>)
      return cpu::flash_attention_backward(pb, grad_output, query, key, value, output, lse, need_float_mask_grad);
  }
  return reference::scaled_dot_product_attention_backward(pb, grad_output, query, key, value, output, lse,
                                                          need_float_mask_grad);
}

template <class T>
SdpaBackend sdpa_selected_backend(const Tensor<T>& query, const Tensor<T>& key, const Tensor<T>& value,
                                  const SdpaOptions<T>& options, bool backward, bool /*need_float_mask_grad*/) {
  const char* fn = "sdpa_selected_backend";
  return choose_sdpa_backend(fn, describe_sdpa(fn, query, key, value, options), backward);
}

template <class T>
SdpaResult<T> scaled_dot_product_attention(const Tensor<T>& query, const Tensor<T>& key, const Tensor<T>& value,
                                           const SdpaOptions<T>& options) {
  const char* fn = "scaled_dot_product_attention";
  const SdpaProblem<T> pb = describe_sdpa(fn, query, key, value, options);
  SdpaResult<T> r;
  run_sdpa_forward(fn, pb, query, key, value, r.output, r.lse, options.return_weights ? &r.weights : nullptr);
  if (!options.return_lse) r.lse = Tensor<T>();
  return r;
}

template <class T>
SdpaGradients<T> scaled_dot_product_attention_backward(const Tensor<T>& grad_output, const Tensor<T>& query,
                                                       const Tensor<T>& key, const Tensor<T>& value,
                                                       const Tensor<T>& output, const Tensor<T>& lse,
                                                       const SdpaOptions<T>& options, bool need_float_mask_grad) {
  const char* fn = "scaled_dot_product_attention_backward";
  const SdpaProblem<T> pb = describe_sdpa(fn, query, key, value, options);
  check_sdpa_backward(fn, pb, grad_output, output, lse, need_float_mask_grad);
  return run_sdpa_backward(fn, pb, grad_output, query, key, value, output, lse, need_float_mask_grad);
}

// ---- bfloat16: widen, compute in float32, round once ------------------------------------

namespace {
// The widened inputs live in buffers kept per thread and purpose: a fresh
// float32 copy per call would cost a page fault per 4 KiB on first touch
// (6–11 µs each on the development machine: ~30 ms for three 4 MiB inputs,
// more than the attention at N = 1024). Returned tensors never alias them.
enum WidenSlot { kQuery, kKey, kValue, kGradOutput, kOutput, kSlots };
Tensor<float> widen(const Tensor<bfloat16>& t, WidenSlot slot) {
  static thread_local std::vector<float> buffers[kSlots];
  std::vector<float>& buf = buffers[slot];
  const int64_t n = t.numel();
  try {
    if (static_cast<int64_t>(buf.size()) < n) buf.resize(static_cast<size_t>(n));
  } catch (const std::bad_alloc&) {
    throw ResourceError("scaled_dot_product_attention: cannot allocate the float32 copy of a bfloat16 input of shape " +
                        shape_str(t.shape()) + " (" + std::to_string(n) + " floats): out of memory");
  }
  Tensor<float> out = Tensor<float>::from_blob(buf.data(), t.shape());
  if (t.is_contiguous()) {
    const bfloat16* src = t.data();
    for (int64_t i = 0; i < n; ++i) buf[static_cast<size_t>(i)] = static_cast<float>(src[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) buf[static_cast<size_t>(i)] = static_cast<float>(t.flat(i));
  }
  return out;
}
}  // namespace

SdpaResultBF16 scaled_dot_product_attention(const Tensor<bfloat16>& query, const Tensor<bfloat16>& key,
                                            const Tensor<bfloat16>& value, const SdpaOptions<float>& options) {
  for (const auto& [name, t] : {std::pair{"query", &query}, std::pair{"key", &key}, std::pair{"value", &value}})
    if (!t->defined()) throw ShapeError(std::string("scaled_dot_product_attention: ") + name + " is undefined");
  const SdpaResult<float> r =
      scaled_dot_product_attention(widen(query, kQuery), widen(key, kKey), widen(value, kValue), options);
  SdpaResultBF16 out;
  out.output = to_bfloat16(r.output);
  out.lse = r.lse;
  if (r.weights.defined()) out.weights = to_bfloat16(r.weights);
  return out;
}

SdpaGradientsBF16 scaled_dot_product_attention_backward(const Tensor<bfloat16>& grad_output,
                                                        const Tensor<bfloat16>& query, const Tensor<bfloat16>& key,
                                                        const Tensor<bfloat16>& value,
                                                        const Tensor<bfloat16>& output, const Tensor<float>& lse,
                                                        const SdpaOptions<float>& options, bool need_float_mask_grad) {
  for (const auto& [name, t] : {std::pair{"grad_output", &grad_output}, std::pair{"query", &query},
                                std::pair{"key", &key}, std::pair{"value", &value}, std::pair{"output", &output}})
    if (!t->defined())
      throw ShapeError(std::string("scaled_dot_product_attention_backward: ") + name + " is undefined");
  const SdpaGradients<float> g =
      scaled_dot_product_attention_backward(widen(grad_output, kGradOutput), widen(query, kQuery), widen(key, kKey),
                                            widen(value, kValue), widen(output, kOutput), lse, options,
                                            need_float_mask_grad);
  SdpaGradientsBF16 out;
  out.d_query = to_bfloat16(g.d_query);
  out.d_key = to_bfloat16(g.d_key);
  out.d_value = to_bfloat16(g.d_value);
  out.d_float_mask = g.d_float_mask;
  out.d_sinks = g.d_sinks;
  return out;
}

#define ATTN_INSTANTIATE(T)                                                                                   \
  template SdpaBackend choose_sdpa_backend<T>(const char*, const SdpaProblem<T>&, bool);                      \
  template void run_sdpa_forward<T>(const char*, const SdpaProblem<T>&, const Tensor<T>&, const Tensor<T>&,   \
                                    const Tensor<T>&, Tensor<T>&, Tensor<T>&, Tensor<T>*);                    \
  template SdpaGradients<T> run_sdpa_backward<T>(const char*, const SdpaProblem<T>&, const Tensor<T>&,        \
                                                 const Tensor<T>&, const Tensor<T>&, const Tensor<T>&,        \
                                                 const Tensor<T>&, const Tensor<T>&, bool);                   \
  template SdpaBackend sdpa_selected_backend<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&,         \
                                                const SdpaOptions<T>&, bool, bool);                           \
  template SdpaResult<T> scaled_dot_product_attention<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, \
                                                         const SdpaOptions<T>&);                               \
  template SdpaGradients<T> scaled_dot_product_attention_backward<T>(                                         \
      const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, \
      const SdpaOptions<T>&, bool);
ATTN_INSTANTIATE(float)
ATTN_INSTANTIATE(double)
#undef ATTN_INSTANTIATE

}  // namespace attn
