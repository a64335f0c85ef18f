// tools/attn/params_calc.hpp — the arithmetic behind `attn params` (notes 003):
// how many weights attention has, and how many bytes its KV cache needs per
// token. Pure integer arithmetic, header-only, so the gtest in
// tests/tools/params_calc_test.cpp checks it without running the command.
//
// Symbols (DeepSeek-V2 paper's names):
//   d      d_model, the embedding width
//   n_h    query heads           d_h   head dim (query/key/value per head)
//   n_kv   key/value heads (GQA: n_h/n_kv query heads share one K/V head;
//          MQA: n_kv = 1; MHA: n_kv = n_h)
//   d_c    MLA's KV latent width (keys and values are rebuilt from it)
//   d_R    MLA's decoupled RoPE key width (one key shared by all heads)
//   d_cq   MLA's query latent width (0: queries are not compressed)
//   L      layers
//
// Counting follows the notes: weights only (no biases, no layer norms), one
// head = query + key + value-down + value-up = 4·d·d_h. The value-up maps of
// all heads, side by side, are the output projection W_O [n_h·d_h, d].
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include <attn/detail/size_math.hpp>

namespace attn::cli::params {

/// a·b, or std::overflow_error: custom configurations can be absurd, and a
/// wrapped count would be a silently wrong answer.
inline int64_t mul(int64_t a, int64_t b) {
  int64_t r = 0;
  if (!attn::detail::checked_mul(a, b, r)) throw std::overflow_error("parameter count does not fit in 64 bits");
  return r;
}
inline int64_t add(int64_t a, int64_t b) {
  int64_t r = 0;
  if (!attn::detail::checked_add(a, b, r)) throw std::overflow_error("parameter count does not fit in 64 bits");
  return r;
}

struct Config {
  std::string name;         ///< "GPT-3 175B", "custom", ...
  int64_t d_model = 0;      ///< d
  int64_t heads = 0;        ///< n_h
  int64_t head_dim = 0;     ///< d_h
  int64_t layers = 0;       ///< L
  int64_t kv_heads = 0;     ///< n_kv (== heads: MHA)
  int64_t latent_dim = 0;   ///< d_c; > 0 means the model itself uses MLA
  int64_t rope_dim = 0;     ///< d_R (MLA only)
  int64_t q_latent_dim = 0; ///< d_cq (MLA only; 0 = no query compression)
  bool mla() const { return latent_dim > 0; }
};

// Presets. Sources: GPT-2 small (124M) config; GPT-3 paper table 2.1 (175B);
// DeepSeek-V2 paper §3.1.2 and appendix; DeepSeek LLM paper table 2 (67B).
inline Config gpt2() { return {"GPT-2 small (124M)", 768, 12, 64, 12, 12, 0, 0, 0}; }
inline Config gpt3() { return {"GPT-3 175B", 12288, 96, 128, 96, 96, 0, 0, 0}; }
inline Config deepseek_v2() { return {"DeepSeek-V2 (MLA)", 5120, 128, 128, 60, 128, 512, 64, 1536}; }
inline Config deepseek_67b() { return {"DeepSeek LLM 67B (GQA)", 8192, 64, 128, 95, 8, 0, 0, 0}; }

// ---- parameters ---------------------------------------------------------------

/// One head of multi-head attention, as the notes count it.
struct HeadParams {
  int64_t query = 0;       ///< W_Q of the head: d × d_h
  int64_t key = 0;         ///< W_K: d × d_h
  int64_t value_down = 0;  ///< d × d_h (the low-rank value map's first half)
  int64_t value_up = 0;    ///< d_h × d (its second half; a slice of W_O)
  int64_t total() const { return add(add(query, key), add(value_down, value_up)); }
};

inline HeadParams head_params(const Config& c) {
  const int64_t m = mul(c.d_model, c.head_dim);
  return {m, m, m, m};
}

/// One layer, split by weight matrix; covers MHA, GQA/MQA (fewer K/V heads)
/// and MLA (keys and values decompressed from a shared latent).
struct LayerParams {
  int64_t query = 0;   ///< MHA/GQA: d × n_h·d_h. MLA: d×d_cq + d_cq×n_h·(d_h+d_R) (or d × n_h·(d_h+d_R))
  int64_t key = 0;     ///< MHA/GQA: d × n_kv·d_h. MLA: W_UK d_c × n_h·d_h + W_KR d × d_R
  int64_t value = 0;   ///< MHA/GQA: d × n_kv·d_h (value-down). MLA: W_UV d_c × n_h·d_h
  int64_t kv_down = 0; ///< MLA only: W_DKV d × d_c (the shared compression)
  int64_t output = 0;  ///< W_O: n_h·d_h × d (all heads' value-up maps)
  int64_t total() const { return add(add(add(query, key), add(value, kv_down)), output); }
};

inline LayerParams layer_params(const Config& c) {
  LayerParams p;
  const int64_t hd = mul(c.heads, c.head_dim);
  p.output = mul(hd, c.d_model);
  if (!c.mla()) {
    p.query = mul(c.d_model, hd);
    p.key = mul(c.d_model, mul(c.kv_heads, c.head_dim));
    p.value = p.key;
    return p;
  }
  const int64_t q_out = mul(c.heads, add(c.head_dim, c.rope_dim));  // content + RoPE part of every query head
  p.query = c.q_latent_dim > 0 ? add(mul(c.d_model, c.q_latent_dim), mul(c.q_latent_dim, q_out)) : mul(c.d_model, q_out);
  p.kv_down = mul(c.d_model, c.latent_dim);
  p.key = add(mul(c.latent_dim, hd), mul(c.d_model, c.rope_dim));
  p.value = mul(c.latent_dim, hd);
  return p;
}

inline int64_t total_params(const Config& c) { return mul(layer_params(c).total(), c.layers); }

// ---- KV cache -----------------------------------------------------------------

/// Numbers cached per token per layer. MHA/GQA/MQA keep a key and a value of
/// d_h for each K/V head; MLA keeps the latent c_KV (d_c) and the shared RoPE
/// key (d_R), and rebuilds keys and values from them.
inline int64_t kv_elements_gqa(int64_t kv_heads, int64_t head_dim) { return mul(2, mul(kv_heads, head_dim)); }
inline int64_t kv_elements_mla(int64_t latent_dim, int64_t rope_dim) { return add(latent_dim, rope_dim); }

}  // namespace attn::cli::params
