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

#include "attn/sdpa.hpp"
#include "cpu/simd_target.hpp"  // the SIMD target control tests and benchmarks use with these kernels
#include "sdpa_problem.hpp"

namespace attn::cpu {

/// True when the flash kernels compute a described call: its sizes fit their
/// int32 index arithmetic (every option is supported).
bool flash_supports(const SdpaProblem<float>& problem);
/// The same for raw arguments (tests): float inputs of rank 4 whose sizes fit.
bool flash_supports(const Tensor<float>& query, const Tensor<float>& key, const Tensor<float>& value,
                    const SdpaOptions<float>& options);

/// Forward pass of a described call (the public function has checked the
/// arguments; nothing is checked again). `out` ([B, Hq, Lq, Dv], any
/// strides) and `lse` ([B, Hq, Lq]) are written if defined, else allocated.
/// With options.return_weights, `*weights` ([B, Hq, Lq, Lk]) too, by a
/// second pass over the score tiles (p = exp(s − lse) times the dropout
/// factor), which holds no [Lq, Lk] buffer besides the output. Threads:
/// attn::get_num_threads(). Throws ShapeError if a given out, lse or weights
/// has the wrong shape.
void flash_attention_forward(const SdpaProblem<float>& problem, const Tensor<float>& query,
                             const Tensor<float>& key, const Tensor<float>& value, Tensor<float>& out,
                             Tensor<float>& lse, Tensor<float>* weights = nullptr);
/// The same from raw arguments (tests, benchmarks): checked first, as the public function checks them.
void flash_attention_forward(const Tensor<float>& query, const Tensor<float>& key, const Tensor<float>& value,
                             const SdpaOptions<float>& options, Tensor<float>& out, Tensor<float>& lse,
                             Tensor<float>* weights = nullptr);

/// True when flash_attention_backward computes this call: what
/// flash_supports takes (every float-mask gradient included: one broadcast
/// over batch, heads or query rows is summed after the kernel, in order).
bool flash_supports_backward(const Tensor<float>& query, const Tensor<float>& key, const Tensor<float>& value,
                             const SdpaOptions<float>& options, bool need_float_mask_grad);

/// Backward pass of a described call (arguments checked by the caller,
/// check_sdpa_backward included), the contract of
/// attn::scaled_dot_product_attention_backward: gradients of a scalar loss
/// given grad_output = dL/d(output), from the forward's output and lse (the
/// weights are recomputed, FlashAttention-2). Bit-identical for any thread
/// count: every gradient element is summed by one thread in a fixed order.
SdpaGradients<float> flash_attention_backward(const SdpaProblem<float>& problem, const Tensor<float>& grad_output,
                                              const Tensor<float>& query, const Tensor<float>& key,
                                              const Tensor<float>& value, const Tensor<float>& output,
                                              const Tensor<float>& lse, bool need_float_mask_grad);
/// The same from raw arguments (tests, benchmarks): checked first.
SdpaGradients<float> flash_attention_backward(const Tensor<float>& grad_output, const Tensor<float>& query,
                                              const Tensor<float>& key, const Tensor<float>& value,
                                              const Tensor<float>& output, const Tensor<float>& lse,
                                              const SdpaOptions<float>& options, bool need_float_mask_grad = false);

}  // namespace attn::cpu
