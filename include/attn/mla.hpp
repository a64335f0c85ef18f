// attn/mla.hpp — multi-head latent attention (MLA), DeepSeek-V2 (2024), §2.1.
//
// MLA is multi-head attention whose keys and values are both made from one
// small latent vector per token, c_KV, so that an inference engine caches
// c_KV (plus one small RoPE key) instead of every head's keys and values —
// the "value down / value up" low-rank maps of the notes, shared by K and V.
//
// For a token h_t [d_model] (H heads, d_h = head_dim, d_R = rope_dim,
// d_c = kv_latent_dim, d_c' = q_latent_dim):
//
//   c_Q   = W_DQ·h_t                     [d_c']      query compression
//   q_C   = W_UQ·c_Q                     [H, d_h]    per-head "content" query
//   q_R   = RoPE(W_QR·c_Q)               [H, d_R]    per-head decoupled RoPE query
//   c_KV  = W_DKV·h_t                    [d_c]       the KV latent   ← cached
//   k_C   = W_UK·c_KV                    [H, d_h]
//   k_R   = RoPE(W_KR·h_t)               [d_R]       ONE RoPE key for all heads ← cached
//   v     = W_UV·c_KV                    [H, d_h]
//   q = [q_C ; q_R],  k = [k_C ; k_R]    [H, d_h + d_R]
//   o     = causal softmax(q·kᵀ / √(d_h + d_R))·v     [H, d_h]
//   u     = W_O·[o_1 ; … ; o_H]          [d_model]
//
// Why the RoPE part is decoupled: RoPE between q_C and k_C would put a
// position-dependent rotation between W_UQ and W_UK, so W_UK could no longer
// be absorbed into the query side. The content dims carry no position; the
// d_R extra dims carry it, with one key shared by every head (MQA-like).
//
// Absorption (inference): q_C,h·k_C,h = q_C,h·(W_UK,h·c_KV) = (W_UK,hᵀ·q_C,h)·c_KV,
// so each head's query is mapped into the latent space and scored directly
// against the cached c_KV; likewise Σ_j p_j·W_UV,h·c_KV,j = W_UV,h·(Σ_j p_j·c_KV,j),
// so W_UV is applied once, after attention, in front of W_O. The decode step
// is then MQA with one "KV head" of dim d_c + d_R (values: the first d_c dims
// of that same cache row), and the cache holds d_c + d_R numbers per token.
//
// Not included (DeepSeek-V2 has them; they do not change the attention):
// the RMSNorms on c_Q and c_KV, and YaRN scaling of the RoPE frequencies.
// Linear layers have no bias, as in DeepSeek-V2.
#pragma once

#include <cstdint>
#include <vector>

#include "attn/generator.hpp"
#include "attn/linear.hpp"
#include "attn/module.hpp"
#include "attn/rope.hpp"
#include "attn/tensor.hpp"

namespace attn {

struct MLAConfig {
  int64_t d_model = 0;        ///< width of the token stream h
  int64_t num_heads = 0;      ///< H
  int64_t head_dim = 0;       ///< d_h: per-head content dims of q/k, and of v
  int64_t rope_dim = 0;       ///< d_R: per-head decoupled RoPE dims (even; 0 = no position at all)
  int64_t kv_latent_dim = 0;  ///< d_c
  int64_t q_latent_dim = 0;   ///< d_c'
  double rope_theta = 10000.0;
  RopeLayout rope_layout = RopeLayout::Half;

  /// DeepSeek-V2's sizes (d_model 5120, 128 heads, d_h 128, d_R 64, d_c 512, d_c' 1536).
  static MLAConfig deepseek_v2() { return {5120, 128, 128, 64, 512, 1536, 10000.0, RopeLayout::Half}; }
};

/// The trainable layer. x [batch, seq, d_model] (or [seq, d_model]) → same shape.
/// Causal (top-left): token i attends to tokens 0..i at positions start_pos + i.
template <class T>
class MultiHeadLatentAttention : public Module<T> {
 public:
  /// Throws ValueError if a size is not positive (rope_dim may be 0) or rope_dim is odd.
  explicit MultiHeadLatentAttention(const MLAConfig& config, Generator& gen = default_generator());

  const MLAConfig& config() const { return config_; }

  /// Saves for backward: q, k, v ([B, H, L, d_h + d_R] / [B, H, L, d_h]), the
  /// SDPA output and lse; the Linears save their inputs. Throws ShapeError on
  /// a wrong rank or last dim.
  Tensor<T> forward(const Tensor<T>& x, int64_t start_pos = 0);
  /// Returns dL/dx; accumulates into every parameter's grad.
  Tensor<T> backward(const Tensor<T>& grad_output);

  /// State-dict names: W_DQ.weight, W_UQ.weight, W_QR.weight, W_DKV.weight,
  /// W_UK.weight, W_UV.weight, W_KR.weight, W_O.weight.
  std::vector<NamedParameter<T>> named_parameters() override;

  Linear<T> W_DQ;   ///< [d_c', d_model]
  Linear<T> W_UQ;   ///< [H·d_h, d_c']
  Linear<T> W_QR;   ///< [H·d_R, d_c']
  Linear<T> W_DKV;  ///< [d_c, d_model]
  Linear<T> W_UK;   ///< [H·d_h, d_c]
  Linear<T> W_UV;   ///< [H·d_h, d_c]
  Linear<T> W_KR;   ///< [d_R, d_model]
  Linear<T> W_O;    ///< [d_model, H·d_h]

 private:
  MLAConfig config_;
  // saved by forward for backward
  int64_t input_rank_ = 0, start_pos_ = 0;
  Shape output_shape_;
  Tensor<T> q_, k_, v_;     // [B, H, L, d_h + d_R], [B, H, L, d_h + d_R], [B, H, L, d_h]
  Tensor<T> attn_, lse_;    // [B, H, L, d_h], [B, H, L]
};

/// How MLADecoder keeps its cache.
enum class MLACacheForm {
  Absorbed,  ///< the latent c_KV and k_R per token (d_c + d_R numbers); W_UK, W_UV absorbed
  Naive,     ///< every head's k = [k_C; k_R] and v (H·(2·d_h + d_R) numbers), as MHA would
};

/// Token-by-token inference with a cache, from a trainable layer's weights
/// (read at each step, so training in between is seen). Both forms give the
/// layer's forward output to float rounding.
template <class T>
class MLADecoder {
 public:
  /// Throws ValueError if batch or max_len is not positive.
  MLADecoder(const MultiHeadLatentAttention<T>& layer, int64_t batch, int64_t max_len,
             MLACacheForm form = MLACacheForm::Absorbed);

  /// h [batch, n, d_model]: n new tokens at positions length() .. length()+n−1,
  /// each seeing every cached token and the new ones up to itself
  /// (bottom-right causal). Returns [batch, n, d_model]. Throws ShapeError on
  /// a wrong shape, ValueError when the cache would exceed max_len.
  Tensor<T> step(const Tensor<T>& h);

  int64_t length() const { return length_; }
  int64_t max_len() const { return max_len_; }
  MLACacheForm form() const { return form_; }
  void reset() { length_ = 0; }
  /// Numbers of type T cached per token per sequence, times sizeof(T).
  int64_t cache_bytes_per_token() const;

 private:
  const MultiHeadLatentAttention<T>& layer_;
  int64_t batch_, max_len_, length_ = 0;
  MLACacheForm form_;
  Tensor<T> latent_;  // Absorbed: [B, max_len, d_c + d_R]  (c_KV then k_R)
  Tensor<T> k_, v_;   // Naive: [B, H, max_len, d_h + d_R], [B, H, max_len, d_h]
};

}  // namespace attn
