// attn/self_attention.hpp — self-attention with trainable weights (notes 001
// and 003; Raschka's SelfAttention_v2).
//
// The simplified mechanism of notes 004 compares raw embeddings; here each
// token is first projected three ways by trainable matrices, so training can
// learn *what to look for* (query), *what to offer* (key) and *what to pass
// on* (value):
//
//   x        [batch, seq, d_in]      (or [seq, d_in]: one sequence, no batch dim)
//   queries  Q = x·W_queryᵀ (+ b_q)  [batch, seq, d_out]
//   keys     K = x·W_keyᵀ   (+ b_k)  [batch, seq, d_out]
//   values   V = x·W_valueᵀ (+ b_v)  [batch, seq, d_out]
//   scores   S = Q·Kᵀ / √d_out       [batch, seq, seq]   divided by √d_k so the
//                                                         softmax does not saturate
//   weights  A = softmax(S)           each row sums to 1
//   context  Z = A·V                  [batch, seq, d_out]
//
// The score/softmax/context core is attn::scaled_dot_product_attention (one
// head), the projections are attn::Linear. State dict names are those of
// Raschka's SelfAttention_v2: W_query.weight, W_key.weight, W_value.weight
// (and W_*.bias when qkv_bias). Initialisation is nn.Linear's, drawn in the
// order W_query, W_key, W_value, so torch.manual_seed(s) gives torch's weights.
#pragma once

#include <cstdint>
#include <vector>

#include "attn/generator.hpp"
#include "attn/linear.hpp"
#include "attn/module.hpp"
#include "attn/tensor.hpp"

namespace attn {

template <class T>
class SelfAttention : public Module<T> {
 public:
  /// Throws ValueError if d_in or d_out is not positive.
  SelfAttention(int64_t d_in, int64_t d_out, bool qkv_bias = false, Generator& gen = default_generator());

  int64_t d_in() const { return d_in_; }
  int64_t d_out() const { return d_out_; }

  /// x [batch, seq, d_in] or [seq, d_in] → context [batch, seq, d_out] or [seq, d_out].
  /// Saves for backward: Q, K, V (as [batch, 1, seq, d_out]), the SDPA output
  /// and its log-sum-exp (the weights are recomputed from it); the three
  /// Linears save x. Throws ShapeError on a wrong rank or last dim.
  Tensor<T> forward(const Tensor<T>& x);
  /// grad_output has the forward output's shape; returns dL/dx and
  /// accumulates into every parameter's grad.
  Tensor<T> backward(const Tensor<T>& grad_output);

  std::vector<NamedParameter<T>> named_parameters() override;

  Linear<T> W_query;  ///< [d_out, d_in]
  Linear<T> W_key;    ///< [d_out, d_in]
  Linear<T> W_value;  ///< [d_out, d_in]

 private:
  int64_t d_in_, d_out_;
  // saved by forward for backward
  int64_t input_rank_ = 0;
  Shape output_shape_;
  Tensor<T> queries_, keys_, values_;  // [batch, 1, seq, d_out]
  Tensor<T> context_, lse_;            // SDPA output [batch, 1, seq, d_out], lse [batch, 1, seq]
};

}  // namespace attn
