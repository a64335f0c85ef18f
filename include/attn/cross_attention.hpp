// attn/cross_attention.hpp — cross-attention: queries from one sequence,
// keys and values from another (Raschka's CrossAttention; the encoder–decoder
// attention of the original Transformer, and of Stable Diffusion's text
// conditioning).
//
// Self-attention is the special case context = x. Here the two sequences may
// differ in length and in width:
//
//   x        [batch, Lq, d_q]        the sequence that asks (e.g. the decoder)
//   context  [batch, Lk, d_kv]       the sequence that answers (e.g. the encoder)
//   Q = x·W_queryᵀ (+ b)             [batch, Lq, d_out_kq]
//   K = context·W_keyᵀ (+ b)         [batch, Lk, d_out_kq]  queries and keys must share a width
//   V = context·W_valueᵀ (+ b)       [batch, Lk, d_out_v]   values may have another
//   weights = softmax(Q·Kᵀ / √d_out_kq)   [batch, Lq, Lk]   (padded keys get weight 0)
//   output  = weights·V                   [batch, Lq, d_out_v]
// Unbatched [Lq, d_q] with [Lk, d_kv] works too.
//
// Optional key_padding_mask [batch, Lk] ([Lk] unbatched), bool,
//   True = this context position is PADDING and is IGNORED
// (torch.nn.MultiheadAttention's polarity, the layer-level convention of this
// library; the opposite of SDPA's bool mask, where True = attend). A query
// whose every key is padding gets output 0.
//
// State dict names: W_query.weight, W_key.weight, W_value.weight (+ .bias with
// qkv_bias), drawn in that order as nn.Linear does.
#pragma once

#include <cstdint>
#include <vector>

#include "attn/generator.hpp"
#include "attn/linear.hpp"
#include "attn/module.hpp"
#include "attn/tensor.hpp"

namespace attn {

template <class T>
struct CrossAttentionGradients {
  Tensor<T> d_x;        ///< shape of x
  Tensor<T> d_context;  ///< shape of context
};

template <class T>
class CrossAttention : public Module<T> {
 public:
  /// Throws ValueError if a size is not positive.
  CrossAttention(int64_t d_q, int64_t d_kv, int64_t d_out_kq, int64_t d_out_v, bool qkv_bias = false,
                 Generator& gen = default_generator());

  /// Saves for backward: Q [batch, 1, Lq, d_out_kq], K, V [batch, 1, Lk, ·],
  /// the SDPA output and lse, and the mask (in the SDPA options); the Linears
  /// save x and context. Throws ShapeError on wrong ranks, widths, a batch
  /// mismatch or a mask of the wrong shape.
  Tensor<T> forward(const Tensor<T>& x, const Tensor<T>& context, const Tensor<bool>& key_padding_mask = {});
  /// Returns dL/dx and dL/dcontext; accumulates into the parameters' grads.
  CrossAttentionGradients<T> backward(const Tensor<T>& grad_output);

  std::vector<NamedParameter<T>> named_parameters() override;

  Linear<T> W_query;  ///< [d_out_kq, d_q]
  Linear<T> W_key;    ///< [d_out_kq, d_kv]
  Linear<T> W_value;  ///< [d_out_v, d_kv]

 private:
  int64_t d_q_, d_kv_, d_out_kq_, d_out_v_;
  // saved by forward for backward
  int64_t input_rank_ = 0;
  Shape output_shape_;
  Tensor<T> queries_, keys_, values_;  // [batch, 1, Lq, d_out_kq], [batch, 1, Lk, d_out_kq], [batch, 1, Lk, d_out_v]
  Tensor<T> output_, lse_;             // [batch, 1, Lq, d_out_v], [batch, 1, Lq]
  Tensor<bool> attend_;                // [batch, 1, 1, Lk] SDPA mask (True = attend), undefined if no mask
};

}  // namespace attn
