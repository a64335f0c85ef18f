// attn/multihead_attention.hpp — multi-head attention, the two forms of the
// notes (001; Raschka's MultiHeadAttentionWrapper and MultiHeadAttention).
//
// One head learns one notion of "which tokens matter"; several heads in
// parallel learn several, and their context vectors are concatenated.
//
// 1. MultiHeadAttentionWrapper — literally a stack of CausalAttention heads:
//      x [batch, seq, d_in] → head_h(x) [batch, seq, d_out] for h < num_heads
//      → concatenated on the last dim [batch, seq, num_heads·d_out]
//    Each head has its own W_query/W_key/W_value; names heads.0.W_query.weight, ...
//
// 2. MultiHeadAttention — the efficient form: ONE projection of width d_out,
//    split into num_heads heads of head_dim = d_out / num_heads, attention
//    run on all heads at once, heads merged back and mixed by out_proj:
//      Q, K, V = x·W_{query,key,value}ᵀ (+ b)       [batch, seq, d_out]
//      viewed as [batch, seq, heads, head_dim] → [batch, heads, seq, head_dim]
//      context = causal SDPA per head, scale 1/√head_dim, dropout on weights
//      merged [batch, seq, d_out] → out_proj → [batch, seq, d_out]
//    Names: W_query.weight, W_key.weight, W_value.weight (+ .bias with
//    qkv_bias), out_proj.weight, out_proj.bias; drawn in that order.
//    With out_proj = identity and W_query's rows [h·head_dim, (h+1)·head_dim)
//    equal to head h's W_query (same for K, V), it equals the wrapper with
//    d_out = head_dim per head.
//
// Both are causal, with dropout in training only (train()/eval()), using the
// counter-based dropout of SDPA; each training forward advances the seed.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "attn/causal_attention.hpp"
#include "attn/generator.hpp"
#include "attn/linear.hpp"
#include "attn/module.hpp"
#include "attn/tensor.hpp"

namespace attn {

template <class T>
class MultiHeadAttentionWrapper : public Module<T> {
 public:
  /// num_heads CausalAttention(d_in, d_out, context_length, dropout, qkv_bias)
  /// heads, created (and so drawn) in order 0, 1, ... Throws ValueError on a
  /// non-positive size or a dropout outside [0, 1).
  MultiHeadAttentionWrapper(int64_t d_in, int64_t d_out, int64_t context_length, double dropout, int64_t num_heads,
                            bool qkv_bias = false, Generator& gen = default_generator());

  int64_t num_heads() const { return static_cast<int64_t>(heads_.size()); }
  CausalAttention<T>& head(int64_t h) { return *heads_.at(static_cast<size_t>(h)); }

  void train(bool mode = true);
  void eval() { train(false); }
  bool is_training() const { return heads_.front()->is_training(); }
  /// Gives every head its own seed derived from `seed` (each then advances
  /// on its own per training call), so heads draw different dropout masks.
  void set_dropout_seed(uint64_t seed);

  /// x [batch, seq, d_in] or [seq, d_in] → [..., seq, num_heads·d_out].
  /// Saves nothing itself; each head saves what its backward needs.
  Tensor<T> forward(const Tensor<T>& x);
  /// Splits grad_output along the last dim, one slice per head; returns the
  /// sum of the heads' dL/dx.
  Tensor<T> backward(const Tensor<T>& grad_output);

  std::vector<NamedParameter<T>> named_parameters() override;

 private:
  std::vector<std::unique_ptr<CausalAttention<T>>> heads_;  // pointers: parameters must not move
  Shape output_shape_;
};

template <class T>
class MultiHeadAttention : public Module<T> {
 public:
  /// Throws ValueError if d_out is not divisible by num_heads, a size is not
  /// positive or dropout is not in [0, 1).
  MultiHeadAttention(int64_t d_in, int64_t d_out, int64_t context_length, double dropout, int64_t num_heads,
                     bool qkv_bias = false, Generator& gen = default_generator());

  int64_t d_in() const { return d_in_; }
  int64_t d_out() const { return d_out_; }
  int64_t num_heads() const { return num_heads_; }
  int64_t head_dim() const { return head_dim_; }
  int64_t context_length() const { return context_length_; }

  void train(bool mode = true) { training_ = mode; }
  void eval() { train(false); }
  bool is_training() const { return training_; }
  uint64_t dropout_seed() const { return dropout_seed_; }
  void set_dropout_seed(uint64_t seed) { dropout_seed_ = seed; }

  /// x [batch, seq, d_in] or [seq, d_in] → [batch, seq, d_out] or [seq, d_out].
  /// Saves for backward: Q, K, V as [batch, heads, seq, head_dim] views, the
  /// SDPA output and lse, the dropout seed/p used; the Linears save their inputs.
  /// Throws ShapeError on a wrong rank, last dim, or seq > context_length.
  Tensor<T> forward(const Tensor<T>& x);
  /// Returns dL/dx; accumulates into the parameters' grads.
  Tensor<T> backward(const Tensor<T>& grad_output);

  std::vector<NamedParameter<T>> named_parameters() override;

  Linear<T> W_query;   ///< [d_out, d_in]
  Linear<T> W_key;     ///< [d_out, d_in]
  Linear<T> W_value;   ///< [d_out, d_in]
  Linear<T> out_proj;  ///< [d_out, d_out], with bias (as in Raschka)

 private:
  int64_t d_in_, d_out_, context_length_, num_heads_, head_dim_;
  double dropout_;
  bool training_ = true;
  uint64_t dropout_seed_ = 0;
  // saved by forward for backward
  int64_t input_rank_ = 0;
  Shape output_shape_;
  Tensor<T> queries_, keys_, values_;  // [batch, heads, seq, head_dim] (views of [batch, seq, d_out])
  Tensor<T> context_, lse_;            // [batch, heads, seq, head_dim], [batch, heads, seq]
  uint64_t used_seed_ = 0;
  double used_dropout_p_ = 0.0;
};

}  // namespace attn
