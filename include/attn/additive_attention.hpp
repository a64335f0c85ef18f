// attn/additive_attention.hpp — Bahdanau (additive) attention, 2014
// ("Neural Machine Translation by Jointly Learning to Align and Translate";
// notes 000: the RNN + attention step before the Transformer).
//
// An RNN decoder in state s asks which encoder states h_j to read. Instead of
// a dot product, a small one-hidden-layer network scores each pair:
//
//   score(s, h_j) = vᵀ · tanh(W_s·s + W_h·h_j)
//   α_j           = softmax_j(score(s, h_j))      over the encoder steps
//   context       = Σ_j α_j · h_j
//
// Shapes (B = batch, Lq queries — decoder states —, Lk encoder steps, A = hidden_dim):
//   query   s  [B, Lq, query_dim]  (or [Lq, query_dim])
//   keys    h  [B, Lk, key_dim]    (or [Lk, key_dim]); h is also the value
//   W_s·s      [B, Lq, A]          W_s.weight [A, query_dim]
//   W_h·h      [B, Lk, A]          W_h.weight [A, key_dim]
//   features   [B, Lq, Lk, A]      tanh(W_s·s_i + W_h·h_j), every (i, j) pair
//   scores     [B, Lq, Lk]         v.weight [1, A]
//   weights α  [B, Lq, Lk]         rows sum to 1 over the unpadded steps
//   context    [B, Lq, key_dim]
// No biases, as in the paper (and d2l's AdditiveAttention). State dict names
// W_s.weight, W_h.weight, v.weight, initialised as nn.Linear in that order.
//
// Optional key_padding_mask [B, Lk] ([Lk] unbatched), bool,
//   True = this encoder step is PADDING: weight exactly 0
// (torch.nn.MultiheadAttention's polarity, this library's layer-level
// convention). A query whose every step is padding gets all-zero weights,
// context 0 and zero gradient (no NaN).
//
// The score is not a dot product, so this layer does not go through
// scaled_dot_product_attention; the masked softmax is written out here.
#pragma once

#include <cstdint>
#include <vector>

#include "attn/generator.hpp"
#include "attn/linear.hpp"
#include "attn/module.hpp"
#include "attn/tensor.hpp"

namespace attn {

template <class T>
struct AdditiveAttentionGradients {
  Tensor<T> d_query;  ///< shape of query
  Tensor<T> d_keys;   ///< shape of keys (through the scores and as the values)
};

template <class T>
class AdditiveAttention : public Module<T> {
 public:
  /// Throws ValueError if a size is not positive.
  AdditiveAttention(int64_t query_dim, int64_t key_dim, int64_t hidden_dim, Generator& gen = default_generator());

  /// Returns the context [B, Lq, key_dim] ([Lq, key_dim] unbatched).
  /// Saves for backward: keys, the features tanh(·) [B, Lq, Lk, A], the
  /// weights α and the mask; the Linears save their inputs. Throws
  /// ShapeError on wrong ranks/widths, a batch mismatch or a bad mask shape.
  Tensor<T> forward(const Tensor<T>& query, const Tensor<T>& keys, const Tensor<bool>& key_padding_mask = {});
  /// Returns dL/dquery and dL/dkeys; accumulates into W_s, W_h, v grads.
  AdditiveAttentionGradients<T> backward(const Tensor<T>& grad_output);

  /// The attention weights α of the last forward, [B, Lq, Lk] ([Lq, Lk] unbatched).
  Tensor<T> attention_weights() const;

  std::vector<NamedParameter<T>> named_parameters() override;

  Linear<T> W_s;  ///< [hidden_dim, query_dim], no bias
  Linear<T> W_h;  ///< [hidden_dim, key_dim], no bias
  Linear<T> v;    ///< [1, hidden_dim], no bias

 private:
  int64_t query_dim_, key_dim_, hidden_dim_;
  // saved by forward for backward
  int64_t input_rank_ = 0;
  Shape output_shape_;
  Tensor<T> keys_;      // [B, Lk, key_dim] (batch-first view of the input)
  Tensor<T> features_;  // [B, Lq, Lk, A]
  Tensor<T> weights_;   // [B, Lq, Lk]
};

}  // namespace attn
