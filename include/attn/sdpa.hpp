// attn/sdpa.hpp — scaled dot-product attention, forward and backward.
//
// The heart of every mechanism in this library (notes 001 and 003):
//
//   scores  S = scale · Q·Kᵀ                  [batch, heads, Lq, Lk]
//   weights P = softmax(S + bias, dim=-1)     rows sum to 1 (masked keys get 0)
//   output  O = P·V                           [batch, heads, Lq, Dv]
//
// Shapes, PyTorch's SDPA layout (any strides, so a [batch, seq, heads, dim]
// tensor viewed with .transpose(1, 2) works without a copy):
//   query [B, Hq, Lq, Dk]   key [B, Hkv, Lk, Dk]   value [B, Hkv, Lk, Dv]
//   Hq must be a multiple of Hkv (GQA/MQA; PyTorch's enable_gqa).
//
// The order in which a score is built (the same on every path):
//   s = scale · q·k                         scale defaults to 1/√Dk
//   s = softcap · tanh(s / softcap)         if softcap > 0 (Gemma 2, Grok)
//   s = s − slope[h] · |i + diag − j|       if alibi_slopes given (ALiBi)
//   s = s + attn_mask[b, h, i, j]           if a float mask is given
//   s = −∞ where bool mask is False, where causal hides j, or outside the window
//   p = exp(s − lse),  lse = log(Σ_j exp(s_j) [+ exp(sink[h])])
// `diag` is 0 for top-left alignment (PyTorch's is_causal) and Lk − Lq for
// bottom-right (FlashAttention's, what KV-cache decoding needs).
//
// Edge cases, decided once for every path: a row that sees no key gives
// output 0, lse −∞ and zero gradient; NaN/Inf in a masked-out key or value
// never reaches the output; empty Lq or Lk gives empty/zero outputs.
//
// Where this differs from, or goes beyond, torch's SDPA (on purpose):
//   * A row that sees no key (an all-False bool-mask row, an all −∞ float-mask
//     row, a causal/window band that misses every key) gives output 0 and lse
//     −∞; torch gives NaN there.
//   * A float-mask entry of −∞ hides its key exactly like False in a bool
//     mask: that score is never computed and that value never read, so NaN/Inf
//     in a hidden key or value cannot reach the output. A key that dropout
//     dropped is skipped the same way (its value is not multiplied by 0).
//   * With sinks, lse = log(Σ_j e^{s_j} + e^{sink[h]}) includes the sink, so it
//     is finite even for a row that sees no key (whose output is still 0).
//   * Dropout: weight[b,h,i,j] = p_ij · keep / (1 − dropout_p) with keep =
//     dropout_keep(dropout_seed, b, h, i, j, dropout_p), h the query head.
//   * GQA: query head h reads key/value head h / (Hq / Hkv), as torch's
//     repeat_interleave does; d_key/d_value sum over those query heads.
//   * `diag` follows causal_alignment for the window and ALiBi too, causal or not.
//   * Dk = 0: the default scale is 1 (every score is 0 anyway), not 1/√0.
// Errors, each naming the argument and the shapes or value seen:
//   ShapeError  query/key/value not rank 4; key/value batch, Dk, heads or Lk
//               not matching; Hq not a multiple of Hkv; a mask that does not
//               broadcast to [B, Hq, Lq, Lk]; alibi_slopes not [Hq] or [B, Hq];
//               sinks not [Hq]; in backward, grad_output or output not
//               [B, Hq, Lq, Dv], lse not [B, Hq, Lq].
//   ValueError  Hq != Hkv without enable_gqa; is_causal with a mask; both a
//               bool and a float mask; dropout_p not in [0, 1); scale not
//               finite or <= 0; softcap < 0 or not finite; window_left or
//               window_right < −1; in backward, need_float_mask_grad without
//               a float_mask.
#pragma once

#include <cstdint>
#include <optional>

#include "attn/bfloat16.hpp"
#include "attn/tensor.hpp"

namespace attn {

/// Where the causal diagonal sits when Lq != Lk.
enum class CausalAlignment {
  TopLeft,      ///< query i sees keys j <= i (PyTorch is_causal)
  BottomRight,  ///< query i sees keys j <= i + Lk - Lq (FlashAttention, KV-cache decode)
};

/// Which implementation computes a call. Both compute the same function (the
/// fast one is checked against the reference on every option); they differ
/// in speed and in rounding order.
enum class SdpaBackend {
  Auto,       ///< the fast CPU path where it supports the call and is faster (not on tiny shapes)
  Reference,  ///< the plain loops of src/reference/sdpa.cpp (the specification)
  Fast,       ///< the fused flash kernel of src/cpu/ (float only); ValueError where unsupported
};

/// "auto", "reference" or "fast".
const char* to_string(SdpaBackend backend);

template <class T>
struct SdpaOptions {
  /// Bool mask, True = attend (PyTorch SDPA). Broadcastable to [B, Hq, Lq, Lk].
  Tensor<bool> bool_mask;
  /// Float mask added to the scores (−inf hides a key). Broadcastable to [B, Hq, Lq, Lk].
  Tensor<T> float_mask;
  bool is_causal = false;  ///< mutually exclusive with a mask, as in PyTorch
  CausalAlignment causal_alignment = CausalAlignment::TopLeft;
  /// Sliding window: query i sees keys j with −window_left <= j − (i + diag) <= window_right.
  /// −1 means unbounded on that side (FlashAttention's window_size convention).
  int64_t window_left = -1;
  int64_t window_right = -1;
  std::optional<double> scale;  ///< default 1/√Dk
  double dropout_p = 0.0;       ///< in [0, 1); applied to the weights (training)
  uint64_t dropout_seed = 0;    ///< counter-based: mask depends on (seed, b, h, i, j) only
  bool enable_gqa = false;      ///< allow Hq != Hkv (PyTorch's flag)
  Tensor<T> alibi_slopes;       ///< [Hq] or [B, Hq]; bias −slope·|i + diag − j|
  double softcap = 0.0;         ///< > 0 enables softcap·tanh(s/softcap)
  Tensor<T> sinks;              ///< [Hq] attention-sink logits: in the softmax denominator, no value
  bool return_weights = false;  ///< also return the [B, Hq, Lq, Lk] weights (after dropout)
  bool return_lse = true;       ///< return the [B, Hq, Lq] log-sum-exp (needed by backward)
  SdpaBackend backend = SdpaBackend::Auto;  ///< which implementation (see SdpaBackend)
};

template <class T>
struct SdpaResult {
  Tensor<T> output;   ///< [B, Hq, Lq, Dv]
  Tensor<T> lse;      ///< [B, Hq, Lq], natural log; −inf for rows that see no key
  Tensor<T> weights;  ///< [B, Hq, Lq, Lk] if return_weights, else undefined
};

template <class T>
struct SdpaGradients {
  Tensor<T> d_query;       ///< shape of query
  Tensor<T> d_key;         ///< shape of key (summed over the query heads that share it)
  Tensor<T> d_value;       ///< shape of value
  Tensor<T> d_float_mask;  ///< shape of the float mask (summed over broadcast dims), if asked
  Tensor<T> d_sinks;       ///< [Hq], if sinks were given
};

/// Forward. Validates every argument and throws ShapeError / ValueError with
/// the argument's name, the shape seen and the shape expected.
template <class T>
SdpaResult<T> scaled_dot_product_attention(const Tensor<T>& query, const Tensor<T>& key,
                                           const Tensor<T>& value, const SdpaOptions<T>& options = {});

/// Backward: the gradients of a scalar loss given dL/d(output) = grad_output.
/// Needs the forward's output and lse (the weights are recomputed from lse,
/// as FlashAttention-2 does); the same options, so dropout regenerates its mask.
template <class T>
SdpaGradients<T> scaled_dot_product_attention_backward(const Tensor<T>& grad_output, const Tensor<T>& query,
                                                       const Tensor<T>& key, const Tensor<T>& value,
                                                       const Tensor<T>& output, const Tensor<T>& lse,
                                                       const SdpaOptions<T>& options = {},
                                                       bool need_float_mask_grad = false);

// ---- bfloat16 inputs -----------------------------------------------------------------
// What PyTorch's CPU SDPA does for torch.bfloat16: the inputs are widened to
// float32 (exact), attention is computed and accumulated in float32 (the
// path options.backend picks, as for float32), and the results are rounded
// to bfloat16 once. Masks, ALiBi slopes and sinks are given in float32 (a
// bf16 mask widens exactly: attn::to_float). Each input is widened once,
// O(B·H·L·D) next to the O(B·H·L²·D) attention. (The CPU's bf16 dot-product
// instructions, avx512_bf16's vdpbf16ps, are not used: this project's
// machines lack them and Debian's Highway 1.0.3 does not emit them.)

struct SdpaResultBF16 {
  Tensor<bfloat16> output;   ///< [B, Hq, Lq, Dv], rounded once from float32
  Tensor<float> lse;         ///< [B, Hq, Lq], float32 (what backward needs)
  Tensor<bfloat16> weights;  ///< [B, Hq, Lq, Lk] if return_weights
};

struct SdpaGradientsBF16 {
  Tensor<bfloat16> d_query, d_key, d_value;  ///< rounded once from float32
  Tensor<float> d_float_mask, d_sinks;       ///< float32, as the mask and sinks are
};

SdpaResultBF16 scaled_dot_product_attention(const Tensor<bfloat16>& query, const Tensor<bfloat16>& key,
                                            const Tensor<bfloat16>& value, const SdpaOptions<float>& options = {});

SdpaGradientsBF16 scaled_dot_product_attention_backward(const Tensor<bfloat16>& grad_output,
                                                        const Tensor<bfloat16>& query, const Tensor<bfloat16>& key,
                                                        const Tensor<bfloat16>& value,
                                                        const Tensor<bfloat16>& output, const Tensor<float>& lse,
                                                        const SdpaOptions<float>& options = {},
                                                        bool need_float_mask_grad = false);

/// The implementation scaled_dot_product_attention (or, with `backward`, its
/// backward) uses for these arguments: Reference or Fast, never Auto. Auto
/// picks Reference for tiny problems (under ~1000 multiply-adds forward,
/// ~8000 backward), where the fast path's fixed cost dominates. The fast
/// path takes every float32 call (returned weights from a second pass over
/// the score tiles; a float-mask gradient broadcast over batch, heads or
/// rows summed after the kernel); float64 runs on the reference path.
/// Throws what the call would throw for invalid arguments (the arguments are
/// checked the same way), and ValueError if options.backend is Fast and the
/// fast path does not take the call (the message says why).
template <class T>
SdpaBackend sdpa_selected_backend(const Tensor<T>& query, const Tensor<T>& key, const Tensor<T>& value,
                                  const SdpaOptions<T>& options, bool backward = false,
                                  bool need_float_mask_grad = false);

/// The keep/drop decision of dropout for weight (b, h, i, j): a counter-based
/// hash of (seed, b, h, i, j), so it does not depend on threads or tiling.
/// Returns true when the weight is kept (probability 1 − p).
bool dropout_keep(uint64_t seed, int64_t b, int64_t h, int64_t i, int64_t j, double p);

}  // namespace attn
