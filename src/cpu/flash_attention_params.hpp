// cpu/flash_attention_params.hpp — what the dispatcher (flash_attention.cpp)
// hands to the per-target kernels (flash_attention-inl.h): raw pointers and
// strides in elements, so the SIMD code instantiates no library templates.
#pragma once

#include <cstdint>

namespace attn::cpu {

struct FlashForwardParams {
  int64_t B = 0, Hq = 0, Hkv = 0, Lq = 0, Lk = 0, Dk = 0, Dv = 0;
  int64_t group = 1;  // query heads per key/value head

  const float* q = nullptr;  int64_t q_stride[4] = {};
  const float* k = nullptr;  int64_t k_stride[4] = {};
  const float* v = nullptr;  int64_t v_stride[4] = {};
  float* out = nullptr;      int64_t out_stride[4] = {};
  float* lse = nullptr;      int64_t lse_stride[3] = {};
  // Returned attention weights [B, Hq, Lq, Lk], or null: written by a second
  // pass after the forward (FlashForward, WeightsItem).
  float* weights = nullptr;  int64_t weights_stride[4] = {};
  // Set by FlashForward when weights are asked for: each row's final max m
  // and sum l, [B, Hq, Lq][2] in the workspace (WeightsItem needs both: lse
  // = m + log l loses log l when |m| is huge).
  float* row_stats = nullptr;

  float scale = 1;
  float softcap = 0;                  // 0 = off
  const float* alibi = nullptr;       int64_t alibi_stride[2] = {};       // [B, Hq] view
  const float* float_mask = nullptr;  int64_t float_mask_stride[4] = {};  // [B, Hq, Lq, Lk] view
  const bool* bool_mask = nullptr;    int64_t bool_mask_stride[4] = {};   // [B, Hq, Lq, Lk] view
  // Set by the kernels, not the caller: a bool mask broadcast over query rows
  // summarised per key block (flash_attention-inl.h, SummariseBoolMask).
  const uint8_t* mask_blocks = nullptr;
  const float* sinks = nullptr;       int64_t sinks_stride = 0;           // [Hq]

  bool causal = false;
  int64_t diag = 0;  // query i's diagonal is key i + diag (0 top-left, Lk − Lq bottom-right)
  int64_t window_left = -1, window_right = -1;

  double dropout_p = 0;
  uint64_t dropout_seed = 0;
  int64_t dropout_batch_offset = 0;  // dropout hashes batch b as b + this (SdpaProblem's field)
  float dropout_scale = 1;  // 1 / (1 − dropout_p), as the reference rounds it

  int threads = 1;
  float* workspace = nullptr;  // 64-byte aligned, Flash*WorkspaceFloats() floats
};

/// The backward's extra buffers; `f` holds the inputs and options (its out
/// and lse are unused).
struct FlashBackwardParams {
  FlashForwardParams f;
  const float* dout = nullptr;  int64_t dout_stride[4] = {};  // [B, Hq, Lq, Dv] dL/d(output)
  const float* out = nullptr;   int64_t out_stride[4] = {};   // [B, Hq, Lq, Dv] the forward's output
  const float* lse = nullptr;   int64_t lse_stride[3] = {};   // [B, Hq, Lq] the forward's lse
  float* dq = nullptr;          int64_t dq_stride[4] = {};
  float* dk = nullptr;          int64_t dk_stride[4] = {};
  float* dv = nullptr;          int64_t dv_stride[4] = {};
  float* d_mask = nullptr;      int64_t d_mask_stride[4] = {};  // [B, Hq, Lq, Lk] view, or null
  float* d_sinks = nullptr;     int64_t d_sinks_stride = 0;     // [Hq], or null
};

}  // namespace attn::cpu
