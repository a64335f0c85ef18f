// The decode step against a KV cache (attn/kv_cache.hpp): attention_decode,
// which runs the split-KV kernel (src/cpu/decode*) on the cache's storage in
// place, and its readable twin attention_decode_reference, which runs the
// reference path of scaled_dot_product_attention on each sequence's filled
// keys and values. The cache itself (storage, append) is kv_cache.cpp.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "attn/errors.hpp"
#include "attn/kv_cache.hpp"
#include "cpu/decode.hpp"
#include "inference/rope_row.hpp"
#include "reference/sdpa.hpp"
#include "sdpa_problem.hpp"

namespace attn {
namespace {

std::string prefix(const char* fn) { return std::string(fn) + ": "; }

std::string describe(const Tensor<float>& t) { return t.defined() ? shape_str(t.shape()) : "(undefined)"; }

// Checks a decode step's arguments, once, and describes it: the cache's
// sizes (Hkv, Dk, Dv) stand for the key and value tensors. Lk and the
// causal diagonal are per sequence (Lk_b = length(layer, b)), so the
// problem's own Lk and diag are 0. The options are checked as
// scaled_dot_product_attention checks them, after the refusals of the
// decode step (masks, dropout, returned weights).
SdpaProblem<float> describe_decode(const char* fn, const Tensor<float>& query, const KVCache& cache, int64_t layer,
                                   const SdpaOptions<float>& o) {
  const KVCacheConfig& c = cache.config();
  (void)cache.lengths(layer);  // validates the layer
  if (!query.defined() || query.dim() != 4 || query.size(0) != c.batch || query.size(3) != c.head_dim)
    throw ShapeError(prefix(fn) + "query has shape " + describe(query) + ", expected [" + std::to_string(c.batch) +
                     ", Hq, Lq, " + std::to_string(c.head_dim) + "] to match the cache's batch and head_dim");
  const int64_t Hq = query.size(1), Hkv = c.num_kv_heads;
  if (Hkv == 0 || Hq % Hkv != 0)
    throw ShapeError(prefix(fn) + "query has " + std::to_string(Hq) + " heads and the cache " + std::to_string(Hkv) +
                     " kv heads; the query heads must be a multiple of the key/value heads");
  if (Hq != Hkv && !o.enable_gqa)
    throw ValueError(prefix(fn) + "query has " + std::to_string(Hq) + " heads but the cache has " +
                     std::to_string(Hkv) + " kv heads; set enable_gqa = true for grouped-query attention");
  if (o.bool_mask.defined() || o.float_mask.defined())
    throw ValueError(prefix(fn) + "bool_mask/float_mask are not taken by the decode step; the cache lengths, "
                     "is_causal and the window are its masks");
  if (o.dropout_p != 0.0)
    throw ValueError(prefix(fn) + "dropout_p is " + std::to_string(o.dropout_p) + ", expected 0 (inference)");
  if (o.return_weights) throw ValueError(prefix(fn) + "return_weights is not taken by the decode step");
  SdpaProblem<float> pb;
  pb.B = c.batch, pb.Hq = Hq, pb.Hkv = Hkv, pb.Lq = query.size(2), pb.Dk = c.head_dim, pb.Dv = cache.value_dim();
  pb.group = Hq / Hkv;
  describe_options(fn, o, pb);  // scale, softcap, window, ALiBi slopes, sinks
  pb.diag = 0;
  return pb;
}

SdpaResult<float> decode_step(const char* fn, const Tensor<float>& query, const KVCache& cache, int64_t layer,
                              const SdpaOptions<float>& options, const RopeOptions* rope, int64_t split_keys) {
  const SdpaProblem<float> pb = describe_decode(fn, query, cache, layer, options);
  // A sliding-window cache: the first query row must not see a dropped token.
  for (int64_t b = 0; b < cache.config().batch; ++b) {
    const int64_t kept = cache.first_kept(layer, b), Lk = cache.length(layer, b);
    if (kept == 0) continue;
    const int64_t diag = options.causal_alignment == CausalAlignment::BottomRight ? Lk - query.size(2) : 0;
    const int64_t lo = options.window_left >= 0 ? std::max<int64_t>(0, diag - options.window_left) : 0;
    if (lo < kept)
      throw ValueError(prefix(fn) + "window_left " + std::to_string(options.window_left) + " lets query row 0 of sequence " +
                       std::to_string(b) + " see key " + std::to_string(lo) + ", but the sliding-window cache keeps keys " +
                       std::to_string(kept) + ".." + std::to_string(Lk - 1) + " only; use a window_left within window_tokens");
  }
  if (split_keys < 0)
    throw ValueError(prefix(fn) + "split_keys is " + std::to_string(split_keys) + ", expected 0 (auto) or > 0");
  // Paged: the page tables as one [B, max_pages] array (−1 = no page yet).
  std::vector<int64_t> table;
  int64_t max_pages = 0;
  if (cache.paged()) {
    for (int64_t b = 0; b < cache.config().batch; ++b)
      max_pages = std::max<int64_t>(max_pages, static_cast<int64_t>(cache.page_table(layer, b).size()));
    table.assign(static_cast<size_t>(cache.config().batch * std::max<int64_t>(max_pages, 1)), -1);
    for (int64_t b = 0; b < cache.config().batch; ++b) {
      const std::vector<int64_t>& t = cache.page_table(layer, b);
      std::copy(t.begin(), t.end(), table.begin() + b * std::max<int64_t>(max_pages, 1));
    }
  }
  // RoPE: the query rows rotated at their positions into a reused buffer
  // (the kernel copies its rows from there as it would from `query`).
  Tensor<float> q = query;
  if (rope) {
    static thread_local std::vector<float> rotated;
    const int64_t B = query.size(0), H = query.size(1), Lq = query.size(2), D = query.size(3);
    const detail::RopeTable table(*rope, D, fn);
    rotated.resize(static_cast<size_t>(std::max<int64_t>(1, B * H * Lq * D)));
    q = Tensor<float>::from_blob(rotated.data(), {B, H, Lq, D});
    std::vector<float> c(static_cast<size_t>(D / 2 + 1)), s(c.size());
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < Lq; ++i) {
        const int64_t pos = cache.length(layer, b) - Lq + i;
        if (pos < 0)
          throw ValueError(prefix(fn) + "sequence " + std::to_string(b) + " holds " +
                           std::to_string(cache.length(layer, b)) + " tokens, fewer than the " + std::to_string(Lq) +
                           " query rows; append the new keys and values before the step");
        table.angles(pos, +1.0, c.data(), s.data());
        for (int64_t h = 0; h < H; ++h) table.rotate(&query(b, h, i, 0), query.stride(3), c.data(), s.data(), &q(b, h, i, 0));
      }
  }
  cpu::SplitKVResult r = cpu::split_kv_decode(pb, q, cache.raw_layer(layer), cache.lengths(layer), split_keys,
                                              /*keep_partials=*/false, cache.config().page_size,
                                              cache.paged() ? table.data() : nullptr, std::max<int64_t>(max_pages, 1));
  SdpaResult<float> out;
  out.output = r.output;
  out.lse = r.lse;
  return out;
}

}  // namespace

SdpaResult<float> attention_decode(const Tensor<float>& query, const KVCache& cache, int64_t layer,
                                   const SdpaOptions<float>& options, int64_t split_keys) {
  return decode_step("attention_decode", query, cache, layer, options, nullptr, split_keys);
}

SdpaResult<float> attention_decode(const Tensor<float>& query, const KVCache& cache, int64_t layer,
                                   const SdpaOptions<float>& options, const RopeOptions& rope, int64_t split_keys) {
  return decode_step("attention_decode", query, cache, layer, options, &rope, split_keys);
}

SdpaResult<float> attention_decode_reference(const Tensor<float>& query, const KVCache& cache, int64_t layer,
                                             const SdpaOptions<float>& options) {
  const char* fn = "attention_decode_reference";
  const SdpaProblem<float> pb = describe_decode(fn, query, cache, layer, options);
  SdpaResult<float> r;
  r.output = Tensor<float>({pb.B, pb.Hq, pb.Lq, pb.Dv});
  r.lse = Tensor<float>({pb.B, pb.Hq, pb.Lq});
  SdpaOptions<float> o = options;
  o.return_lse = true;  // the step returns lse, as attention_decode does
  for (int64_t b = 0; b < pb.B; ++b) {
    // Sequence b alone, its query rows against its own filled keys, on the
    // reference path (the specification, whatever the size or options.backend).
    SdpaProblem<float> one = pb;
    one.options = &o;
    one.B = 1;
    one.Lk = cache.length(layer, b);
    one.diag = o.causal_alignment == CausalAlignment::BottomRight ? one.Lk - one.Lq : 0;
    if (pb.alibi.defined()) one.alibi = pb.alibi.slice(0, b, b + 1);
    const SdpaResult<float> seq = reference::scaled_dot_product_attention(one, query.slice(0, b, b + 1),
                                                                        cache.keys(layer, b), cache.values(layer, b));
    for (int64_t h = 0; h < pb.Hq; ++h)
      for (int64_t i = 0; i < pb.Lq; ++i) {
        r.lse(b, h, i) = seq.lse(0, h, i);
        for (int64_t x = 0; x < pb.Dv; ++x) r.output(b, h, i, x) = seq.output(0, h, i, x);
      }
  }
  return r;
}

}  // namespace attn
