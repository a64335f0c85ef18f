// attn/kv_cache.hpp — the key–value cache and fast decoding (issue 8).
//
// Generating text one token at a time, a transformer layer needs the keys and
// values of every past token again and again. Recomputing them costs the
// whole sequence each step; the KV cache keeps them (notes 000: "then the
// key–value cache"), so a step costs one new query against L cached keys.
// That step reads the whole cache and does 2 flops per float read: decoding
// is bound by memory bandwidth, not arithmetic.
//
//   KVCache cache({.num_layers = 2, .batch = 1, .num_kv_heads = 8, .capacity = 4096, .head_dim = 128});
//   cache.append(layer, k_new, v_new);              // [B, Hkv, Lnew, D] each, copied in place
//   auto r = attention_decode(q_new, cache, layer, opts);  // q_new [B, Hq, Lnew, D]
//   // r.output [B, Hq, Lnew, Dv] equals scaled_dot_product_attention over the
//   // whole sequence so far (bottom-right causal alignment), to float rounding.
//
// Storage, per layer, in the storage type below; each sequence b of the
// batch has its own length (varlen: sequences of different lengths share one cache):
//   contiguous (page_size = 0): keys [B, Hkv, capacity, Dk], values [B, Hkv, capacity, Dv];
//   paged (page_size > 0, as vLLM's PagedAttention and FlashAttention's
//   block_table): a pool of pages, keys [num_pages, Hkv, page_size, Dk] and
//   values [num_pages, Hkv, page_size, Dv], and per sequence a page table:
//   token t of sequence b lives in page page_table(layer, b)[t / page_size]
//   at row t % page_size. Pages are taken from a free list as sequences grow
//   and given back by clear(), so sequences of very different lengths share
//   the memory instead of each reserving `capacity`.
//   A sliding-window cache (paged, window_tokens = W > 0) keeps only what a
//   window can still see: after each append, pages holding only tokens
//   before length − W go back to the pool, so a sequence holds at most
//   ⌈W / page_size⌉ + 1 pages however long it grows. attention_decode then
//   checks that its window sees no dropped token (ValueError otherwise):
//   with bottom-right alignment and Lq new rows, W >= window_left + Lq suffices.
//
// Storage type (KVCacheConfig::storage): float32; bfloat16 (half the bytes,
// |error| <= max(2^-8·|x|, 2^-134): round to nearest even; the second term is
// half the spacing of bfloat16's subnormals, below 2^-126); int8 with per-channel scales
// (a quarter of the bytes plus one float per channel per group of
// quant_group tokens): keys and values alike, each group of G consecutive
// tokens of a head keeps one scale per channel d, s_d = max_t |x_td| / 127,
// and stores round(x_td / s_d), so |error| <= s_d / 2 (KIVI's per-channel
// layout, Liu et al. 2024: channels of keys differ in range by orders of
// magnitude, so one scale per token would waste most of the 8 bits on the
// outlier channels). The newest group is still filling: the cache keeps its
// float rows (a "shadow" of G rows per sequence and head) and re-quantises
// the whole group from them at every append, so the stored int8 is always a
// complete encoding of every token and appending token by token gives the
// same bytes as appending all at once. Decoding reads bf16/int8 directly
// (widened block by block in L1), so a step reads 1/2 or ~1/4 of the bytes.
// keys()/values() return the dequantised float32 rows, and
// attention_decode_reference (SDPA on them) stays the specification.
//
// Fast decoding (split-KV, "flash-decoding"): with few query rows there is
// too little work per head to keep every core busy, so the key axis is cut
// into chunks; each (sequence, KV head, chunk) is one work item that returns
// a partial output and its log-sum-exp, and merge_attention_partials combines
// them. The query heads that share a KV head (GQA/MQA) are processed together
// in one item, so each cached key and value is read from memory once, not
// once per query head.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "attn/rope.hpp"
#include "attn/sdpa.hpp"
#include "attn/tensor.hpp"

namespace attn {

/// How a KVCache stores keys and values (see the comment above).
enum class KVStorage {
  Float32,   ///< 4 bytes per element, exact
  BFloat16,  ///< 2 bytes per element, |error| <= max(2^-8·|x|, 2^-134) (subnormals: the second)
  Int8,      ///< 1 byte per element + a float scale per (group of quant_group tokens, head, channel)
};
const char* to_string(KVStorage storage);

struct KVCacheConfig {
  int64_t num_layers = 1;
  int64_t batch = 1;         ///< sequences held side by side (B)
  int64_t num_kv_heads = 1;  ///< Hkv
  int64_t capacity = 0;      ///< the most tokens one sequence can hold
  int64_t head_dim = 0;      ///< Dk
  int64_t value_dim = -1;    ///< Dv; −1 means head_dim
  int64_t page_size = 0;     ///< 0: contiguous storage; > 0: paged, tokens per page
  int64_t num_pages = 0;     ///< paged: pages per layer; 0: enough for every sequence at full length
                             ///< (batch · ⌈capacity / page_size⌉, or batch · (⌈W / page_size⌉ + 1) with a window)
  int64_t window_tokens = 0; ///< paged only: > 0 keeps just the last window_tokens tokens (sliding window)
  KVStorage storage = KVStorage::Float32;
  int64_t quant_group = 32;  ///< Int8: tokens sharing one scale per channel (paged: must divide page_size)
};

/// Keys and values of past tokens, per layer, appended in place (float32,
/// bfloat16 or int8, KVCacheConfig::storage).
/// Errors: ShapeError when an appended key/value does not fit
/// [B, Hkv, Lnew, Dk] / [B, Hkv, Lnew, Dv]; ValueError when a sequence would
/// grow past capacity or a paged cache runs out of pages, when an int8 cache
/// is given a NaN or infinite key/value (no finite scale encodes it) —
/// nothing is written then — or a layer or batch index is out of range.
class KVCache {
 public:
  /// Allocates, per layer, the key and value storage (B·Hkv·capacity·D elements, or
  /// the page pool, in config.storage), zeroed; all lengths 0.
  explicit KVCache(const KVCacheConfig& config);

  const KVCacheConfig& config() const { return config_; }
  int64_t value_dim() const { return config_.value_dim < 0 ? config_.head_dim : config_.value_dim; }

  /// Appends Lnew tokens to every sequence of the batch, each after its own
  /// current length: key [B, Hkv, Lnew, Dk], value [B, Hkv, Lnew, Dv] (any strides).
  void append(int64_t layer, const Tensor<float>& key, const Tensor<float>& value);
  /// Appends Lnew tokens to sequence `batch_index` only (varlen batches):
  /// key [Hkv, Lnew, Dk], value [Hkv, Lnew, Dv].
  void append(int64_t layer, int64_t batch_index, const Tensor<float>& key, const Tensor<float>& value);
  /// The same with RoPE fused in: each key is rotated at its cache position
  /// (the sequence's length before the append + t) as it is written — one
  /// pass, no rotated copy; values are stored as given. Bit-identical to
  /// appending apply_rope(key, length) (ValueError for bad rope options).
  void append(int64_t layer, const Tensor<float>& key, const Tensor<float>& value, const RopeOptions& rope);
  void append(int64_t layer, int64_t batch_index, const Tensor<float>& key, const Tensor<float>& value,
              const RopeOptions& rope);

  /// Tokens held by sequence b in `layer`.
  int64_t length(int64_t layer, int64_t b) const;
  /// The lengths of every sequence in `layer` ([B]).
  const std::vector<int64_t>& lengths(int64_t layer) const;
  /// Forgets every token (all layers, all sequences); the memory is kept.
  void clear();
  /// Forgets the tokens of sequence b in every layer (its slot can hold a new sequence).
  void clear(int64_t b);

  /// The whole storage of a layer of a float32 cache: contiguous [B, Hkv,
  /// capacity, D], paged the page pool [num_pages, Hkv, page_size, D] (rows
  /// past a sequence's length hold stale or zero data). ValueError for a
  /// bfloat16/int8 cache (use keys()/values(), which dequantise).
  Tensor<float> key_storage(int64_t layer) const;
  Tensor<float> value_storage(int64_t layer) const;
  /// The filled part of sequence b, [1, Hkv, length(layer, b), D], float32:
  /// a view (no copy) of a contiguous float32 cache, else a gathered
  /// (paged) and dequantised (bfloat16/int8) copy.
  Tensor<float> keys(int64_t layer, int64_t b) const;
  Tensor<float> values(int64_t layer, int64_t b) const;
  bool paged() const { return config_.page_size > 0; }
  /// Paged: the physical pages of sequence b in `layer`, in token order.
  const std::vector<int64_t>& page_table(int64_t layer, int64_t b) const;
  /// Paged: pages not held by any sequence of `layer`.
  int64_t free_pages(int64_t layer) const;
  /// The first position of sequence b still stored (0 unless a sliding-window
  /// cache dropped older pages; a multiple of page_size). keys()/values()
  /// give NaN for positions before it.
  int64_t first_kept(int64_t layer, int64_t b) const;

  /// Bytes one token occupies in one layer: Hkv · (Dk + Dv) · 4 (float32),
  /// · 2 (bfloat16), · (1 + 4 / quant_group) rounded up (int8: the scales
  /// shared by a group of tokens counted per token).
  int64_t bytes_per_token() const;

  /// One layer's storage as the decode kernel reads it (internal: raw
  /// pointers, element strides [b or page, head, position], D unit stride).
  struct RawLayer {
    KVStorage storage;
    const void* k;  int64_t k_stride[3];
    const void* v;  int64_t v_stride[3];
    const float* k_scale;  int64_t k_scale_stride[3];  // Int8: [b or page, head, group]
    const float* v_scale;  int64_t v_scale_stride[3];
    int64_t quant_group;
  };
  RawLayer raw_layer(int64_t layer) const;

 private:
  // One of keys or values of one layer, in the configured storage.
  //   f32 / bf16 (bits) / i8   [B, Hkv, capacity, D]  or the page pool [P, Hkv, page_size, D]
  //   scale  Int8: [B, Hkv, ⌈capacity/G⌉, D]  or [P, Hkv, page_size/G, D]
  //   shadow Int8: [B, Hkv, G, D]  float rows of each sequence's newest group
  struct Plane {
    Tensor<float> f32;
    Tensor<uint16_t> bf16;
    Tensor<int8_t> i8;
    Tensor<float> scale, shadow;
  };
  Plane make_plane(int64_t D) const;
  // Dequantised row (storage index i0 = b or page, head h, row t) into out[0..D).
  void read_row(const Plane& plane, int64_t i0, int64_t h, int64_t t, float* out) const;

  void check_layer(const char* fn, int64_t layer) const;
  void check_batch_index(const char* fn, int64_t b) const;
  // Paged: pages sequence b of `layer` must take (*freed: give back) to hold
  // `length` tokens; then the giving back (window) and the taking (pool
  // checked by the caller).
  int64_t pages_needed(int64_t layer, int64_t b, int64_t length, int64_t* freed) const;
  void drop_pages(int64_t layer, int64_t b, int64_t length);
  void reserve_pages(int64_t layer, int64_t b, int64_t length);
  void check_pages(const char* fn, int64_t layer, int64_t need, int64_t freed) const;
  // Stores src [Hkv, Lnew, D] at sequence b's positions start.. of `plane`,
  // each row rotated at its position first when `rope` is given.
  void write_tokens(const Tensor<float>& src, Plane& plane, int64_t layer, int64_t b, int64_t start,
                    const RopeOptions* rope = nullptr);
  void append_all(const char* fn, int64_t layer, const Tensor<float>& key, const Tensor<float>& value,
                  const RopeOptions* rope);
  void append_one(const char* fn, int64_t layer, int64_t b, const Tensor<float>& key, const Tensor<float>& value,
                  const RopeOptions* rope);
  // Int8: re-quantises the group of sequence b holding positions [gs, gs + n) from the shadow.
  void quantise_group(Plane& plane, int64_t layer, int64_t b, int64_t h, int64_t gs, int64_t n);
  // Where position t of sequence b lives: {b or page, row}; page −1 = dropped.
  std::pair<int64_t, int64_t> locate(int64_t layer, int64_t b, int64_t t) const;
  Tensor<float> gather(const Plane& plane, int64_t layer, int64_t b) const;
  void check_finite(const char* fn, const char* what, const Tensor<float>& t) const;

  KVCacheConfig config_;
  std::vector<Plane> keys_, values_;           // per layer
  std::vector<std::vector<int64_t>> lengths_;  // per layer [B]
  std::vector<std::vector<std::vector<int64_t>>> page_tables_;  // paged: per layer, per sequence
  std::vector<std::vector<int64_t>> free_pages_;                // paged: per layer, a stack
};

/// One decode step of attention against the cache of `layer`:
///   query [B, Hq, Lq, Dk] (any strides): the Lq newest tokens of each
///   sequence, whose keys and values are already appended.
/// Returns output [B, Hq, Lq, Dv] and lse [B, Hq, Lq], equal (to float
/// rounding) to scaled_dot_product_attention(query[b], keys(layer, b),
/// values(layer, b), options) for every sequence b: sequence b has its own
/// Lk = length(layer, b), and its diagonal is diag = Lk − Lq with
/// CausalAlignment::BottomRight (what decoding needs: the new rows are the
/// last ones), 0 with TopLeft.
/// Options taken: is_causal, causal_alignment, window_left/right, scale,
/// enable_gqa, alibi_slopes ([Hq] or [B, Hq]), softcap, sinks. Not taken
/// (ValueError): bool_mask, float_mask (lengths, causality and the window
/// are the masks a cache needs), dropout_p > 0 (inference), return_weights.
/// `split_keys`: keys per split-KV chunk; 0 picks it from the shape (never
/// from the thread count, so results are bit-identical for any thread count).
SdpaResult<float> attention_decode(const Tensor<float>& query, const KVCache& cache, int64_t layer,
                                   const SdpaOptions<float>& options = {}, int64_t split_keys = 0);

/// The same with RoPE fused in: query row i of sequence b is rotated at its
/// position length(layer, b) − Lq + i (the newest tokens, whatever the
/// causal alignment) as the step copies the query into its working buffer,
/// so a decode loop needs no apply_rope pass and no rotated tensor:
///   cache.append(layer, k_new, v_new, rope);   // keys rotated as written
///   attention_decode(q_new, cache, layer, opts, rope);
/// equals attention_decode(apply_rope(q_new, positions), ...) on a cache
/// filled with apply_rope(k) bit for bit.
SdpaResult<float> attention_decode(const Tensor<float>& query, const KVCache& cache, int64_t layer,
                                   const SdpaOptions<float>& options, const RopeOptions& rope,
                                   int64_t split_keys = 0);

/// The readable twin of attention_decode (the specification it is tested
/// against): scaled_dot_product_attention on each sequence's filled views,
/// always on the reference path (options.backend is ignored).
SdpaResult<float> attention_decode_reference(const Tensor<float>& query, const KVCache& cache, int64_t layer,
                                             const SdpaOptions<float>& options = {});

/// Merges attention computed over S disjoint parts of the key axis into
/// attention over their union (FlashAttention's split-KV combine):
///   partial_outputs [S, B, H, L, Dv], partial_lse [S, B, H, L]
///   (output s normalised by its own softmax; lse −∞ for a part that saw no key)
///   lse = log Σ_s e^{lse_s}          (max-subtracted, so nothing overflows)
///   out = Σ_s e^{lse_s − lse} · out_s
/// returns output [B, H, L, Dv], lse [B, H, L]; a row whose parts are all −∞
/// gives output 0 and lse −∞.
/// Determinism: the sums run over s = 0, 1, …, S−1 in that order, in T,
/// every time; attention_decode merges its chunks with this very function,
/// so its output is bit-identical to merging its partials here. S = 1
/// returns the part unchanged (e^0 = 1 exactly). A split changes the result
/// only by rounding: merged ≈ unsplit to a few ulp per part (not bit for bit;
/// floating-point addition is not associative).
/// Errors: ShapeError when the shapes do not fit together.
template <class T>
SdpaResult<T> merge_attention_partials(const Tensor<T>& partial_outputs, const Tensor<T>& partial_lse);

}  // namespace attn
