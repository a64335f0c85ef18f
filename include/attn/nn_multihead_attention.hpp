// attn/nn_multihead_attention.hpp — attn::TorchMultiheadAttention, the twin
// of torch.nn.MultiheadAttention: same options, same semantics, same
// state_dict, same initialisation.
//
// (Not to be confused with attn::MultiHeadAttention in multihead_attention.hpp,
// Raschka's causal teaching layer; this one is PyTorch's general layer, used
// for self- and cross-attention in nn.Transformer. It was called
// attn::MultiheadAttention, one letter from the notes' layer; the old names
// remain as deprecated aliases at the end of this file.)
//
// Shapes (E = embed_dim, H = num_heads, hd = E / H, L = target length,
// S = source length, N = batch):
//   query [L, N, E]     key [S, N, kdim]   value [S, N, vdim]   batch_first = false (torch's default!)
//   query [N, L, E]     key [N, S, kdim]   value [N, S, vdim]   batch_first = true
//   query [L, E]        key [S, kdim]      value [S, vdim]      unbatched (batch_first ignored)
//   attn_output         same layout as query
//   attn_weights        [N, L, S'] averaged over heads, [N, H, L, S'] if not
//                       average_attn_weights ([L, S'] / [H, L, S'] unbatched),
//                       S' = S + add_bias_kv + add_zero_attn
//
// What forward computes (F.multi_head_attention_forward, step by step):
//   q = query·W_qᵀ + b_q,  k = key·W_kᵀ + b_k,  v = value·W_vᵀ + b_v      [N, ·, E]
//       W_q, W_k, W_v are the three row blocks of in_proj_weight [3E, E]
//       when kdim == vdim == E, else q_proj_weight [E, E], k_proj_weight
//       [E, kdim], v_proj_weight [E, vdim]; b_* the blocks of in_proj_bias [3E].
//   add_bias_kv:   k, v get one more (learned) row bias_k, bias_v [1, 1, E]
//   heads:         [N, ·, E] → [N, H, ·, hd]
//   add_zero_attn: k, v get one more all-zero row per head (after the projection)
//   masks:         float mask = attn_mask + key_padding_mask (bools become −∞
//                  where they are True); the extra columns are never masked
//   attention:     SDPA per head, scale 1/√hd, dropout on the weights (training)
//   out            = merge heads [N, L, E] · out_projᵀ + out_proj.bias
//
// ┌─────────────────────────────────────────────────────────────────────────┐
// │ MASK POLARITY — THE OPPOSITE OF scaled_dot_product_attention:            │
// │   key_padding_mask (bool) True  = this key is PADDING: IGNORE it.        │
// │   attn_mask        (bool) True  = NOT allowed to attend.                 │
// │ SDPA's bool mask uses True = attend. This is torch's own inconsistency   │
// │ (checked against torch in tests/golden/make_layers_golden.py); we keep   │
// │ it so code ported from PyTorch means the same thing. Float masks are     │
// │ added to the scores in both (−inf hides a key).                          │
// └─────────────────────────────────────────────────────────────────────────┘
//
// Deliberate differences from torch (everything else matches):
//   * A query row that sees no key (every key masked, no add_zero_attn) gives
//     output 0 and zero gradient (the library's SDPA rule); torch gives NaN.
//   * is_causal without attn_mask applies the causal mask (query i sees keys
//     0..i; bias_kv / zero-attn columns stay visible, as when torch pads a
//     causal attn_mask); torch raises "Need attn_mask if specifying the
//     is_causal hint". With an attn_mask, is_causal is only a hint, as in
//     torch, and the attn_mask is what is applied.
//   * Dropout masks come from the library's counter-based generator, not
//     torch's RNG: same distribution, different draws.
//   * Errors are ShapeError / ValueError instead of AssertionError/RuntimeError.
//
// Initialisation as torch, in torch's draw order from `gen`: out_proj as
// nn.Linear (weight, then bias), then xavier_uniform_ for in_proj_weight (or
// q_proj_weight, k_proj_weight, v_proj_weight), in_proj_bias and out_proj.bias
// set to 0, then xavier_normal_ for bias_k and bias_v. So manual_seed(s)
// followed by the same constructor gives torch's float32 weights.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "attn/generator.hpp"
#include "attn/linear.hpp"
#include "attn/module.hpp"
#include "attn/sdpa.hpp"
#include "attn/tensor.hpp"

namespace attn {

/// The constructor options of torch.nn.MultiheadAttention after embed_dim and num_heads.
struct TorchMultiheadAttentionOptions {
  double dropout = 0.0;          ///< on the attention weights, training only; in [0, 1)
  bool bias = true;              ///< in_proj_bias and out_proj.bias
  bool add_bias_kv = false;      ///< learned extra key/value row bias_k, bias_v
  bool add_zero_attn = false;    ///< extra all-zero key/value row per head
  std::optional<int64_t> kdim;   ///< key features; default embed_dim
  std::optional<int64_t> vdim;   ///< value features; default embed_dim
  bool batch_first = false;      ///< [N, L, E] instead of torch's default [L, N, E]
};

/// The arguments of TorchMultiheadAttention.forward after query, key, value.
/// A mask is given either as bool or as float (not both).
template <class T>
struct TorchMultiheadAttentionForwardOptions {
  /// [N, S] ([S] unbatched). bool: True = key is PADDING, IGNORED (torch MHA polarity).
  Tensor<bool> key_padding_mask;
  /// [N, S] ([S] unbatched). Float: added to the scores of that key.
  Tensor<T> float_key_padding_mask;
  bool need_weights = true;
  /// [L, S] or [N·H, L, S] ([H, L, S] unbatched; row b·H + h is batch b, head h).
  /// bool: True = NOT allowed to attend (torch MHA polarity, opposite of SDPA).
  Tensor<bool> attn_mask;
  /// Same shapes; float: added to the scores.
  Tensor<T> float_attn_mask;
  bool average_attn_weights = true;
  bool is_causal = false;
};

template <class T>
struct TorchMultiheadAttentionOutput {
  Tensor<T> attn_output;   ///< layout of query, last dim E
  Tensor<T> attn_weights;  ///< undefined unless need_weights (after dropout, as torch)
};

template <class T>
struct TorchMultiheadAttentionGradients {
  Tensor<T> d_query;  ///< shape of query
  Tensor<T> d_key;    ///< shape of key
  Tensor<T> d_value;  ///< shape of value
};

template <class T>
class TorchMultiheadAttention : public Module<T> {
 public:
  /// Throws ValueError if embed_dim or num_heads is not positive, embed_dim is
  /// not divisible by num_heads, kdim/vdim is not positive, or dropout is not in [0, 1).
  TorchMultiheadAttention(int64_t embed_dim, int64_t num_heads, const TorchMultiheadAttentionOptions& options = {},
                          Generator& gen = default_generator());

  int64_t embed_dim() const { return embed_dim_; }
  int64_t num_heads() const { return num_heads_; }
  int64_t head_dim() const { return head_dim_; }
  int64_t kdim() const { return kdim_; }
  int64_t vdim() const { return vdim_; }
  /// kdim == vdim == embed_dim: one packed in_proj_weight (torch's _qkv_same_embed_dim).
  bool qkv_same_embed_dim() const { return packed_; }
  const TorchMultiheadAttentionOptions& options() const { return options_; }

  void train(bool mode = true) { training_ = mode; }
  void eval() { train(false); }
  bool is_training() const { return training_; }
  uint64_t dropout_seed() const { return dropout_seed_; }
  void set_dropout_seed(uint64_t seed) { dropout_seed_ = seed; }

  /// See the top of this file. Throws ShapeError for ranks or sizes that do
  /// not fit (query/key/value, masks), ValueError for a mask given both as
  /// bool and float.
  /// Saves for backward: query/key/value (batch-first views), q/k/v per head
  /// [N, H, ·, hd], the SDPA output and lse, the SdpaOptions (mask, dropout
  /// seed), and out_proj saves the merged heads.
  TorchMultiheadAttentionOutput<T> forward(const Tensor<T>& query, const Tensor<T>& key, const Tensor<T>& value,
                                           const TorchMultiheadAttentionForwardOptions<T>& options = {});
  /// grad_output: dL/d(attn_output), shape of attn_output. Returns the input
  /// gradients; accumulates into every parameter's grad (in_proj_*, bias_k,
  /// bias_v, out_proj.*). The attention weights output is not differentiated.
  TorchMultiheadAttentionGradients<T> backward(const Tensor<T>& grad_output);

  /// torch's order: in_proj_weight | q_proj_weight, k_proj_weight,
  /// v_proj_weight; in_proj_bias; bias_k; bias_v; out_proj.weight; out_proj.bias.
  std::vector<NamedParameter<T>> named_parameters() override;

  Parameter<T> in_proj_weight;  ///< [3E, E] when qkv_same_embed_dim(), else unused
  Parameter<T> q_proj_weight;   ///< [E, E] when !qkv_same_embed_dim(), else unused
  Parameter<T> k_proj_weight;   ///< [E, kdim]
  Parameter<T> v_proj_weight;   ///< [E, vdim]
  Parameter<T> in_proj_bias;    ///< [3E] when bias
  Parameter<T> bias_k;          ///< [1, 1, E] when add_bias_kv
  Parameter<T> bias_v;          ///< [1, 1, E] when add_bias_kv
  Linear<T> out_proj;           ///< E → E, with bias when bias

 private:
  // The weight and bias views (and their gradient views) of projection i = 0 (q), 1 (k), 2 (v).
  Tensor<T> proj_weight(int i) const;
  Tensor<T> proj_weight_grad(int i) const;
  Tensor<T> proj_bias(int i) const;
  Tensor<T> proj_bias_grad(int i) const;

  int64_t embed_dim_, num_heads_, head_dim_, kdim_, vdim_;
  bool packed_;
  TorchMultiheadAttentionOptions options_;
  bool training_ = true;
  uint64_t dropout_seed_ = 0;

  // saved by forward for backward
  bool batched_ = true;
  Shape query_shape_, key_shape_, value_shape_, output_shape_;
  Tensor<T> query_, key_, value_;  // batch-first views [N, L, E], [N, S, kdim], [N, S, vdim]
  Tensor<T> q_, k_, v_;            // [N, H, L, hd], [N, H, S', hd], [N, H, S', hd]
  Tensor<T> context_, lse_;        // [N, H, L, hd], [N, H, L]
  SdpaOptions<T> sdpa_options_;
};

// The names before the rename (one letter from the notes' MultiHeadAttention): deprecated.
#define ATTN_RENAMED_ "renamed attn::TorchMultiheadAttention* (the notes' layer is attn::MultiHeadAttention)"
template <class T>
using MultiheadAttention [[deprecated(ATTN_RENAMED_)]] = TorchMultiheadAttention<T>;
using MultiheadAttentionOptions [[deprecated(ATTN_RENAMED_)]] = TorchMultiheadAttentionOptions;
template <class T>
using MultiheadAttentionForwardOptions [[deprecated(ATTN_RENAMED_)]] = TorchMultiheadAttentionForwardOptions<T>;
template <class T>
using MultiheadAttentionOutput [[deprecated(ATTN_RENAMED_)]] = TorchMultiheadAttentionOutput<T>;
template <class T>
using MultiheadAttentionGradients [[deprecated(ATTN_RENAMED_)]] = TorchMultiheadAttentionGradients<T>;
#undef ATTN_RENAMED_

}  // namespace attn
