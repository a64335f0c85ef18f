// sdpa_problem.hpp — one attention call, checked and described once (internal).
//
// The public entry points validate their arguments here, once per call, and
// hand the resulting SdpaProblem to whichever implementation runs it:
//
//   scaled_dot_product_attention  (src/sdpa.cpp)  → reference loops  (src/reference/sdpa.cpp)
//                                                 → flash kernels    (src/cpu/flash_attention.cpp)
//   attention_decode  (src/inference/attention_decode.cpp) → split-KV kernel (src/cpu/decode.cpp)
//   attention_decode_reference                            → reference loops, per sequence
//
// None of them checks the arguments again: what they read from the problem
// (sizes, scale, broadcast views of masks and ALiBi slopes) is already
// known to fit. The rules every path shares are in one place each: the
// default scale here, which keys a query row sees in visible_keys.hpp.
#pragma once

#include <cmath>
#include <cstdint>

#include "attn/sdpa.hpp"
#include "visible_keys.hpp"

namespace attn {

/// scale = 1/√Dk unless given; Dk = 0 gives 1 (every score is 0 anyway).
inline double default_scale(int64_t Dk) { return Dk > 0 ? 1.0 / std::sqrt(static_cast<double>(Dk)) : 1.0; }

/// A checked call of scaled dot-product attention (or of one decode step).
template <class T>
struct SdpaProblem {
  int64_t B = 0, Hq = 0, Hkv = 0, Lq = 0, Lk = 0, Dk = 0, Dv = 0;
  int64_t group = 1;         ///< query heads per key/value head
  int64_t diag = 0;          ///< query i's diagonal sits at key i + diag (a decode step: per sequence)
  double scale = 1;          ///< options.scale, or default_scale(Dk)
  double dropout_scale = 1;  ///< 1 / (1 − dropout_p)
  /// Dropout hashes batch index b as b + dropout_batch_offset. 0 for every
  /// public SDPA call; varlen_attention (src/varlen.cpp) runs sequence s of a
  /// packed batch as a batch of one with offset s, so it draws the mask that
  /// the padded batch would draw for batch index s.
  int64_t dropout_batch_offset = 0;
  const SdpaOptions<T>* options = nullptr;  ///< the rest: is_causal, window, softcap, dropout, sinks, ...
  Tensor<bool> bool_mask;    ///< [B, Hq, Lq, Lk] broadcast view, or undefined
  Tensor<T> float_mask;      ///< [B, Hq, Lq, Lk] broadcast view, or undefined
  Tensor<T> alibi;           ///< [B, Hq] broadcast view of the slopes, or undefined

  int64_t kv_head(int64_t h) const { return h / group; }
  KeyRange visible_keys(int64_t i) const {
    return attn::visible_keys(options->is_causal, options->window_left, options->window_right, diag, Lk, i);
  }
};

/// Checks the forward's arguments (what attn/sdpa.hpp lists under "Errors";
/// `fn` starts each message) and describes the call.
template <class T>
SdpaProblem<T> describe_sdpa(const char* fn, const Tensor<T>& query, const Tensor<T>& key, const Tensor<T>& value,
                             const SdpaOptions<T>& options);

/// The backward's extra arguments against a described call: grad_output and
/// output [B, Hq, Lq, Dv], lse [B, Hq, Lq], need_float_mask_grad only with a float mask.
template <class T>
void check_sdpa_backward(const char* fn, const SdpaProblem<T>& problem, const Tensor<T>& grad_output,
                         const Tensor<T>& output, const Tensor<T>& lse, bool need_float_mask_grad);

/// The part of describe_sdpa that reads the options alone, on the sizes
/// already in `problem` (B, Hq, Lq, Lk, Dk): numbers in range, at most one
/// mask and not with is_causal, masks broadcast to [B, Hq, Lq, Lk], ALiBi
/// slopes and sinks per query head; then fills in scale, dropout_scale, diag
/// and the views. The decode step, which has no key tensor, calls it on the
/// cache's sizes (its Lk is per sequence).
template <class T>
void describe_options(const char* fn, const SdpaOptions<T>& options, SdpaProblem<T>& problem);

/// The part of describe_sdpa after the tensors' shapes are read into
/// `problem` (B, Hq, Hkv, Lq, Lk, Dk, Dv): Hq a multiple of Hkv (and equal
/// unless enable_gqa), then describe_options. varlen_attention checks a
/// packed batch with it, on the batch's sizes (B sequences, Lq and Lk the
/// longest ones), before running each sequence.
template <class T>
void describe_heads_and_options(const char* fn, const SdpaOptions<T>& options, SdpaProblem<T>& problem);

}  // namespace attn
