// attn/causal_attention.hpp — causal (masked) self-attention with dropout
// (notes 001; Raschka's CausalAttention).
//
// A language model predicts the next token, so token i may only look at
// tokens 0..i: the scores of later tokens are set to −∞ before the softmax,
// which gives them weight exactly 0 and renormalises the rest (one masking
// step, no second normalisation needed). While training, dropout zeroes
// attention weights at random and scales the survivors by 1/(1 − p), so the
// model cannot lean on a few positions.
//
//   x        [batch, seq, d_in]      (or [seq, d_in]); seq <= context_length
//   Q, K, V  x·W_{query,key,value}ᵀ (+ b)      [batch, seq, d_out]
//   scores   S = Q·Kᵀ / √d_out,  S[i][j] = −∞ for j > i
//   weights  A = dropout(softmax(S))           training only
//   context  Z = A·V                           [batch, seq, d_out]
//
// The core is attn::scaled_dot_product_attention with is_causal and its
// counter-based dropout. Each training forward uses the next dropout seed
// (dropout_seed() then advances by one), so successive calls draw different
// masks and backward regenerates the forward's. In eval() no dropout at all.
// State dict names as in Raschka: W_query.weight, W_key.weight,
// W_value.weight (+ .bias with qkv_bias). Raschka's `mask` buffer is not a
// parameter and is not stored: the causal rule is applied by SDPA.
#pragma once

#include <cstdint>
#include <vector>

#include "attn/generator.hpp"
#include "attn/linear.hpp"
#include "attn/module.hpp"
#include "attn/tensor.hpp"

namespace attn {

template <class T>
class CausalAttention : public Module<T> {
 public:
  /// Throws ValueError if a size is not positive or dropout is not in [0, 1).
  CausalAttention(int64_t d_in, int64_t d_out, int64_t context_length, double dropout, bool qkv_bias = false,
                  Generator& gen = default_generator());

  int64_t d_in() const { return d_in_; }
  int64_t d_out() const { return d_out_; }
  int64_t context_length() const { return context_length_; }
  double dropout() const { return dropout_; }

  /// Like nn.Module.train()/eval(): dropout is applied only while training.
  /// A new layer is in training mode, as in PyTorch.
  void train(bool mode = true) { training_ = mode; }
  void eval() { train(false); }
  bool is_training() const { return training_; }

  /// The seed the next training forward will use for its dropout mask.
  uint64_t dropout_seed() const { return dropout_seed_; }
  void set_dropout_seed(uint64_t seed) { dropout_seed_ = seed; }

  /// x [batch, seq, d_in] or [seq, d_in] → [batch, seq, d_out] or [seq, d_out].
  /// Saves for backward: Q, K, V ([batch, 1, seq, d_out]), the SDPA output and
  /// lse, and the SDPA options (so backward regenerates the same dropout
  /// mask); the Linears save x. Throws ShapeError on a wrong rank or last dim,
  /// or seq > context_length.
  Tensor<T> forward(const Tensor<T>& x);
  /// Returns dL/dx; accumulates into the parameters' grads.
  Tensor<T> backward(const Tensor<T>& grad_output);

  std::vector<NamedParameter<T>> named_parameters() override;

  Linear<T> W_query;  ///< [d_out, d_in]
  Linear<T> W_key;    ///< [d_out, d_in]
  Linear<T> W_value;  ///< [d_out, d_in]

 private:
  int64_t d_in_, d_out_, context_length_;
  double dropout_;
  bool training_ = true;
  uint64_t dropout_seed_ = 0;
  // saved by forward for backward
  int64_t input_rank_ = 0;
  Shape output_shape_;
  Tensor<T> queries_, keys_, values_;  // [batch, 1, seq, d_out]
  Tensor<T> context_, lse_;            // [batch, 1, seq, d_out], [batch, 1, seq]
  uint64_t used_seed_ = 0;             // the dropout seed of the saved forward
  double used_dropout_p_ = 0.0;        // 0 when the saved forward ran in eval mode
};

}  // namespace attn
