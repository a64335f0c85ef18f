// cpu/decode_params.hpp — what the split-KV decode dispatcher (decode.cpp)
// hands to its per-target kernels (decode-inl.h): raw pointers and strides
// in elements, so the SIMD code instantiates no library templates.
#pragma once

#include <cstdint>

namespace attn::cpu {

struct DecodeParams {
  int64_t B = 0, Hq = 0, Hkv = 0, Lq = 0, Dk = 0, Dv = 0;
  int64_t group = 1;  // query heads per key/value head

  const float* q = nullptr;  int64_t q_stride[4] = {};  // [B, Hq, Lq, Dk]
  // The cache of one layer, [B, Hkv, capacity, D]; unit stride along D.
  // Elements: float (kv_type 0), bfloat16 bits as uint16_t (1), or int8 (2)
  // with float scales [B | page, Hkv, group, D], one per quant_group positions.
  int kv_type = 0;
  const void* k = nullptr;  int64_t k_stride[3] = {};  // strides of b, head, position
  const void* v = nullptr;  int64_t v_stride[3] = {};
  const float* k_scale = nullptr;  int64_t k_scale_stride[3] = {};
  const float* v_scale = nullptr;  int64_t v_scale_stride[3] = {};
  int64_t quant_group = 1;
  const int64_t* lengths = nullptr;  // [B]: keys held by sequence b (its Lk)
  // Paged: k and v are page pools [num_pages, Hkv, page_size, D] (k_stride[0]
  // then steps pages), token t of sequence b is row t % page_size of page
  // page_table[b · page_table_stride + t / page_size]. page_size 0: contiguous.
  int64_t page_size = 0;
  const int64_t* page_table = nullptr;
  int64_t page_table_stride = 0;

  float* out = nullptr;  int64_t out_stride[4] = {};  // [B, Hq, Lq, Dv]
  float* lse = nullptr;  int64_t lse_stride[3] = {};  // [B, Hq, Lq]

  float scale = 1;
  float softcap = 0;                   // 0 = off
  const float* alibi = nullptr;        int64_t alibi_stride[2] = {};  // [B, Hq] view, or null
  const float* sinks = nullptr;        int64_t sinks_stride = 0;      // [Hq], or null
  bool causal = false;
  bool bottom_right = true;            // diag = Lk_b − Lq (else 0)
  int64_t window_left = -1, window_right = -1;

  // Split-KV: chunk c of sequence b covers keys [c·chunk, (c+1)·chunk) ∩ [0, Lk_b).
  int64_t chunk = 0;    // keys per chunk (> 0)
  int64_t nsplit = 1;   // chunks of the longest sequence
  // Partial results, [B, Hq, Lq, nsplit, Dv] and [B, Hq, Lq, nsplit], contiguous.
  float* part_out = nullptr;
  float* part_lse = nullptr;

  int threads = 1;
};

/// One row of merge_attention_partials (src/inference/merge.cpp), compiled
/// once for the baseline target so that the public merge and the decode
/// kernel's merge run the very same instructions (bit-identical results):
///   out_s = out[s·out_split_stride + d],  lse_s = lse[s·lse_split_stride]
///   weights: scratch [S].  Writes result[d·result_stride] for d < Dv and *result_lse.
template <class T>
void merge_partial_row(int64_t S, int64_t Dv, const T* out, int64_t out_split_stride, int64_t out_d_stride,
                       const T* lse, int64_t lse_split_stride, T* weights, T* result, int64_t result_stride,
                       T* result_lse);

}  // namespace attn::cpu
