// attn/varlen.hpp — attention over a packed batch of sequences of different
// lengths (FlashAttention's flash_attn_varlen_func), forward and backward.
//
// A batch of `batch` sequences is stored without padding, one token after
// another, and cumulative offsets say where each sequence starts:
//
//   query [total_q, Hq, Dk]   key [total_k, Hkv, Dk]   value [total_k, Hkv, Dv]
//   cu_seqlens_q [batch + 1]: sequence b's queries are rows
//                             cu_seqlens_q[b] .. cu_seqlens_q[b + 1] − 1 of query
//   cu_seqlens_k [batch + 1]: the same for its keys and values
//   output [total_q, Hq, Dv]  lse [Hq, total_q] (FlashAttention's softmax_lse layout)
//
// Sequence b attends only to its own keys: it is exactly
//   scaled_dot_product_attention(q_b, k_b, v_b)  with q_b [1, Hq, Lq_b, Dk] ...
// and that is how it is computed: each sequence is a zero-copy strided view
// of the packed tensors, run through the SDPA path options.backend picks
// (src/sdpa_run.hpp), so no work is spent on padding and the reference and
// fast paths are the ones SDPA's tests check. Sequences run one after
// another, each on the kernel's threads (heads × query blocks); results are
// bit-identical for any thread count, as SDPA's are.
//
// Every SdpaOptions option that makes sense per sequence applies to each one:
//   is_causal, causal_alignment  the diagonal of sequence b sits at key
//                                i + (Lk_b − Lq_b) for BottomRight (the default
//                                of VarlenOptions: FlashAttention's varlen
//                                causal), at key i for TopLeft (PyTorch's);
//   window_left/right, softcap, scale, sinks [Hq], enable_gqa (on by default:
//   FlashAttention infers GQA from the head counts), backend;
//   alibi_slopes                 [Hq], or [batch, Hq] (row b for sequence b);
//   dropout_p, dropout_seed      sequence b plays batch index b: weight
//                                (b, h, i, j), i and j positions inside the
//                                sequence, is kept when dropout_keep(seed, b, h,
//                                i, j, p) — the mask a padded [batch, Hq, Lq, Lk]
//                                SDPA call with the same seed draws;
//   return_lse                   lse [Hq, total_q], natural log, −inf for a row
//                                that sees no key (an empty key sequence).
// Not applicable (ValueError): bool_mask, float_mask, return_weights.
//
// Edge cases: empty sequences (Lq_b = 0 or Lk_b = 0) are allowed; a query
// sequence with no keys gives output 0 and lse −inf (SDPA's rule); batch = 0
// (cu_seqlens = [0]) gives empty outputs.
//
// Errors, each naming the argument and what was seen and expected:
//   ShapeError  query/key/value not rank 3; key and value disagreeing in
//               tokens or heads, key and query in Dk; Hq not a multiple of
//               Hkv; cu_seqlens not rank 1 with at least one entry;
//               cu_seqlens_q and cu_seqlens_k of different lengths (batch
//               sizes); alibi_slopes not [Hq] or [batch, Hq]; sinks not [Hq];
//               in backward, grad_output/output not [total_q, Hq, Dv], lse
//               not [Hq, total_q].
//   ValueError  cu_seqlens not starting at 0, decreasing (a negative length),
//               or not ending at the token count; max_seqlen negative or
//               smaller than a sequence; a mask or return_weights in the
//               options; every SdpaOptions value error (dropout_p, scale,
//               softcap, window, sinks, slopes).
// No cu_seqlens entry is used as an index before all of them are checked.
#pragma once

#include <cstdint>

#include "attn/sdpa.hpp"
#include "attn/tensor.hpp"

namespace attn {

/// SdpaOptions with FlashAttention's varlen defaults: causal alignment
/// bottom-right and GQA inferred from the head counts. Every field of
/// SdpaOptions can still be set (TopLeft gives PyTorch's is_causal per sequence).
template <class T>
struct VarlenOptions : SdpaOptions<T> {
  VarlenOptions() {
    this->causal_alignment = CausalAlignment::BottomRight;
    this->enable_gqa = true;
  }
};

template <class T>
struct VarlenResult {
  Tensor<T> output;  ///< [total_q, Hq, Dv]
  Tensor<T> lse;     ///< [Hq, total_q] if options.return_lse, else undefined
};

/// Forward. `Index` is int32_t or int64_t (the dtype of cu_seqlens; both
/// tensors have the same one). max_seqlen_q/k must be at least the longest
/// query/key sequence (FlashAttention sizes its grid with them; here they are
/// only checked, so a larger bound is fine).
template <class T, class Index>
VarlenResult<T> varlen_attention(const Tensor<T>& query, const Tensor<T>& key, const Tensor<T>& value,
                                 const Tensor<Index>& cu_seqlens_q, const Tensor<Index>& cu_seqlens_k,
                                 int64_t max_seqlen_q, int64_t max_seqlen_k,
                                 const SdpaOptions<T>& options = VarlenOptions<T>{});

/// Backward: gradients of a scalar loss given dL/d(output) = grad_output
/// [total_q, Hq, Dv], from the forward's output and lse [Hq, total_q] and the
/// same options (dropout regenerates its mask). Returns d_query, d_key,
/// d_value in the packed shapes of query, key, value, and d_sinks [Hq]
/// (summed over the sequences in order) when sinks were given.
template <class T, class Index>
SdpaGradients<T> varlen_attention_backward(const Tensor<T>& grad_output, const Tensor<T>& query,
                                           const Tensor<T>& key, const Tensor<T>& value, const Tensor<T>& output,
                                           const Tensor<T>& lse, const Tensor<Index>& cu_seqlens_q,
                                           const Tensor<Index>& cu_seqlens_k, int64_t max_seqlen_q,
                                           int64_t max_seqlen_k, const SdpaOptions<T>& options = VarlenOptions<T>{});

}  // namespace attn
