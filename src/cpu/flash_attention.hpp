// cpu/flash_attention.hpp — the fast CPU path of scaled dot-product attention
// (internal; the public entry point is attn::scaled_dot_product_attention).
//
// FlashAttention-2 on a CPU: a block of query rows is kept in L1/L2 while the
// keys and values stream past in blocks; an online softmax (running row max m
// and sum l) means the [Lq, Lk] weights are never stored, so memory is O(N).
// Its reference twin is src/reference/sdpa.cpp (scaled_dot_product_attention),
// which it must agree with on every option; tests/cpu/flash_forward_test.cpp
// checks that.
//
// Buffers, for query (b, h) with key/value head g = h / (Hq / Hkv):
//   query  [B, Hq, Lq, Dk]   key [B, Hkv, Lk, Dk]   value [B, Hkv, Lk, Dv]
//          (any strides: [B, L, H, D].transpose(1, 2) views need no copy)
//   out    [B, Hq, Lq, Dv]   lse [B, Hq, Lq]  (natural log; what backward needs)
//   masks, ALiBi slopes, sinks: as in attn/sdpa.hpp (broadcast views).
#pragma once

#include <string>
#include <vector>

#include "attn/sdpa.hpp"

namespace attn::cpu {

/// True when flash_attention_forward computes this call (float inputs of rank
/// 4 whose sizes fit its int32 index arithmetic). Arguments must already be
/// valid (the public function checks them).
bool flash_supports(const Tensor<float>& query, const Tensor<float>& key, const Tensor<float>& value,
                    const SdpaOptions<float>& options);

/// Forward pass. `out` ([B, Hq, Lq, Dv], any strides) and `lse` ([B, Hq, Lq])
/// are written if defined, else allocated. With options.return_weights,
/// `*weights` ([B, Hq, Lq, Lk]) too, by a second pass over the score tiles
/// (p = exp(s − lse) times the dropout factor), which holds no [Lq, Lk]
/// buffer besides the output. Threads: attn::get_num_threads().
/// Throws ShapeError if the shapes do not fit together (the public function
/// has usually said so already, with more detail).
void flash_attention_forward(const Tensor<float>& query, const Tensor<float>& key, const Tensor<float>& value,
                             const SdpaOptions<float>& options, Tensor<float>& out, Tensor<float>& lse,
                             Tensor<float>* weights = nullptr);

/// True when flash_attention_backward computes this call: what
/// flash_supports takes (every float-mask gradient included: one broadcast
/// over batch, heads or query rows is summed after the kernel, in order).
bool flash_supports_backward(const Tensor<float>& query, const Tensor<float>& key, const Tensor<float>& value,
                             const SdpaOptions<float>& options, bool need_float_mask_grad);

/// Backward pass, the same contract as attn::scaled_dot_product_attention_backward:
/// gradients of a scalar loss given grad_output = dL/d(output), from the
/// forward's output and lse (the weights are recomputed, FlashAttention-2).
/// Bit-identical for any thread count: every gradient element is summed by
/// one thread in a fixed order.
SdpaGradients<float> flash_attention_backward(const Tensor<float>& grad_output, const Tensor<float>& query,
                                              const Tensor<float>& key, const Tensor<float>& value,
                                              const Tensor<float>& output, const Tensor<float>& lse,
                                              const SdpaOptions<float>& options, bool need_float_mask_grad = false);

// ---- SIMD target control (tests and benchmarks) ----------------------------
// The kernels are compiled once per SIMD target (Highway: AVX3, AVX2, SSE4,
// SSSE3 and the portable EMU128 on x86) and the best one the CPU supports is
// chosen once at the top of each call. The environment variable
// ATTN_SIMD_TARGET=<name> (read on the first call) or force_simd_target()
// restricts the choice, e.g. to "EMU128", the portable fallback.

/// The targets compiled in and supported by this CPU, best first.
std::vector<std::string> available_simd_targets();
/// Use only `name` (one of available_simd_targets()); "" restores the default.
/// Returns false (and changes nothing) for an unknown or unsupported name.
bool force_simd_target(const std::string& name);
/// The target the next call will use.
std::string current_simd_target();

}  // namespace attn::cpu
