// cpu/decode.hpp — the split-KV decode kernel (internal; the public entry
// point is attn::attention_decode in attn/kv_cache.hpp). See decode-inl.h
// for the algorithm and its memory traffic.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "attn/kv_cache.hpp"
#include "attn/sdpa.hpp"
#include "sdpa_problem.hpp"

namespace attn::cpu {

struct SplitKVResult {
  Tensor<float> output;  // [B, Hq, Lq, Dv]
  Tensor<float> lse;     // [B, Hq, Lq]
  // Only when asked (tests): the chunks' results before the merge,
  // [S, B, Hq, Lq, Dv] and [S, B, Hq, Lq] — merge_attention_partials' input.
  Tensor<float> partial_output, partial_lse;
};

/// Keys per chunk when split_keys = 0: a function of the shape only.
int64_t auto_split_keys(int64_t batch, int64_t kv_heads, int64_t max_length);

/// Attention of query [B, Hq, Lq, Dk] (any strides) over sequence b's first
/// lengths[b] keys and values of a cache layer in any storage (float32,
/// bfloat16, int8): `storage` as KVCache::raw_layer gives it. `problem`
/// describes the step (attention_decode has checked it: B, Hq, Hkv, Lq, Dk,
/// Dv, scale, ALiBi view and the options; its Lk and diag are per sequence
/// here, Lk_b = lengths[b]). Nothing is checked again.
/// Paged (page_size > 0): the storages are page pools [num_pages, Hkv,
/// page_size, D] and token t of sequence b is row t % page_size of page
/// page_table[b · page_table_stride + t / page_size].
/// Threads: attn::get_num_threads(); results do not depend on it.
SplitKVResult split_kv_decode(const SdpaProblem<float>& problem, const Tensor<float>& query,
                              const KVCache::RawLayer& storage, const std::vector<int64_t>& lengths,
                              int64_t split_keys, bool keep_partials, int64_t page_size, const int64_t* page_table,
                              int64_t page_table_stride);

/// The same over float32 tensors (tests): key_storage [B, Hkv, capacity, Dk]
/// and value_storage [B, Hkv, capacity, Dv] (unit stride along D), options
/// as attention_decode takes them (checked here).
SplitKVResult split_kv_decode(const Tensor<float>& query, const Tensor<float>& key_storage,
                              const Tensor<float>& value_storage, const std::vector<int64_t>& lengths,
                              const SdpaOptions<float>& options, int64_t split_keys, bool keep_partials = false,
                              int64_t page_size = 0, const int64_t* page_table = nullptr,
                              int64_t page_table_stride = 0);

/// The SIMD target the decode kernel runs on: current_simd_target(), the
/// choice every fast kernel shares (cpu/simd_target.hpp).
std::string decode_simd_target();

}  // namespace attn::cpu
