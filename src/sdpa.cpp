// The public scaled dot-product attention (attn/sdpa.hpp): validate the
// arguments once, then send the call to one of two implementations that
// compute the same function —
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
std::string fast_path_refuses(const Tensor<T>& query, const Tensor<T>& key, const Tensor<T>& value,
                              const SdpaOptions<T>& options, bool backward, bool need_float_mask_grad) {
  if constexpr (!std::is_same_v<T, float>) {
    return "the fast path computes float32 only";
  } else {
    if (!cpu::flash_supports(query, key, value, options)) return "a sequence is longer than 2^30 (int32 indices)";
    if (backward && !cpu::flash_supports_backward(query, key, value, options, need_float_mask_grad))
      return "the backward of this call is not supported by the fast path";
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
double multiply_adds(const Tensor<T>& query, const Tensor<T>& key, const Tensor<T>& value) {
  return static_cast<double>(query.size(0)) * static_cast<double>(query.size(1)) *
         static_cast<double>(query.size(2)) * static_cast<double>(key.size(2)) *
         static_cast<double>(query.size(3) + value.size(3));
}

template <class T>
SdpaBackend choose(const char* fn, const Tensor<T>& query, const Tensor<T>& key, const Tensor<T>& value,
                   const SdpaOptions<T>& options, bool backward, bool need_float_mask_grad) {
  if (options.backend == SdpaBackend::Reference) return SdpaBackend::Reference;
  const std::string why_not = fast_path_refuses(query, key, value, options, backward, need_float_mask_grad);
  if (why_not.empty()) {
    const bool small = multiply_adds(query, key, value) < (backward ? kFastBackwardMinWork : kFastForwardMinWork);
    return options.backend == SdpaBackend::Auto && small ? SdpaBackend::Reference : SdpaBackend::Fast;
  }
  if (options.backend == SdpaBackend::Fast)
    throw ValueError(std::string(fn) + ": options.backend is SdpaBackend::Fast but " + why_not);
  return SdpaBackend::Reference;
}

}  // namespace

template <class T>
SdpaBackend sdpa_selected_backend(const Tensor<T>& query, const Tensor<T>& key, const Tensor<T>& value,
                                  const SdpaOptions<T>& options, bool backward, bool need_float_mask_grad) {
  return choose("sdpa_selected_backend", query, key, value, options, backward, need_float_mask_grad);
}

template <class T>
SdpaResult<T> scaled_dot_product_attention(const Tensor<T>& query, const Tensor<T>& key, const Tensor<T>& value,
                                           const SdpaOptions<T>& options) {
  const char* fn = "scaled_dot_product_attention";
  reference::check_sdpa_arguments(fn, query, key, value, options);
  if constexpr (std::is_same_v<T, float>) {
    if (choose(fn, query, key, value, options, false, false) == SdpaBackend::Fast) {
      SdpaResult<float> r;
      Tensor<float> lse;
      cpu::flash_attention_forward(query, key, value, options, r.output, lse,
                                   options.return_weights ? &r.weights : nullptr);
      if (options.return_lse) r.lse = std::move(lse);
      return r;
    }
  } else {
    (void)choose(fn, query, key, value, options, false, false);  // throws for backend Fast
  }
  return reference::scaled_dot_product_attention(query, key, value, options);
}

template <class T>
SdpaGradients<T> scaled_dot_product_attention_backward(const Tensor<T>& grad_output, const Tensor<T>& query,
                                                       const Tensor<T>& key, const Tensor<T>& value,
                                                       const Tensor<T>& output, const Tensor<T>& lse,
                                                       const SdpaOptions<T>& options, bool need_float_mask_grad) {
  const char* fn = "scaled_dot_product_attention_backward";
  reference::check_sdpa_backward_arguments(fn, grad_output, query, key, value, output, lse, options,
                                           need_float_mask_grad);
  if (choose(fn, query, key, value, options, true, need_float_mask_grad) == SdpaBackend::Fast) {
    if constexpr (std::is_same_v<T, float>)
      return cpu::flash_attention_backward(grad_output, query, key, value, output, lse, options,
                                           need_float_mask_grad);
  }
  return reference::scaled_dot_product_attention_backward(grad_output, query, key, value, output, lse, options,
                                                          need_float_mask_grad);
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
