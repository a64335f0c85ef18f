// The KV cache (storage, append, views) and the decode step's entry points:
// attention_decode (the split-KV kernel, src/cpu/decode*) and its readable
// twin attention_decode_reference (scaled_dot_product_attention per sequence).
//
// Buffers, per layer:
//   keys_[layer]    [B, Hkv, capacity, Dk]   contiguous, zero-initialised
//                   [num_pages, Hkv, page_size, Dk]   paged: the page pool
//   values_[layer]  the same with Dv
//   lengths_[layer] [B]   tokens held by each sequence; positions >= length
//                         are never read by attention
//   page_tables_[layer][b]  paged: physical page of each page_size tokens of b
//   free_pages_[layer]      paged: pages nobody holds (a stack)
#include "attn/kv_cache.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "cpu/decode.hpp"

namespace attn {
namespace {

std::string prefix(const char* fn) { return std::string(fn) + ": "; }

std::string describe(const Tensor<float>& t) { return t.defined() ? shape_str(t.shape()) : "(undefined)"; }

// Copies src [Hkv, Lnew, D] (any strides) into dst [Hkv, capacity, D] at positions start.. .
void copy_tokens(const Tensor<float>& src, const Tensor<float>& dst, int64_t start) {
  const int64_t H = src.size(0), L = src.size(1), D = src.size(2);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t t = 0; t < L; ++t) {
      float* out = &dst(h, start + t, 0);
      for (int64_t x = 0; x < D; ++x) out[x] = src(h, t, x);
    }
}

}  // namespace

// ---- KVCache ---------------------------------------------------------------------

KVCache::KVCache(const KVCacheConfig& config) : config_(config) {
  const char* fn = "KVCache";
  if (config.num_layers < 0 || config.batch < 0 || config.num_kv_heads < 0 || config.capacity < 0 ||
      config.head_dim < 0 || config.value_dim < -1)
    throw ValueError(prefix(fn) + "config has num_layers " + std::to_string(config.num_layers) + ", batch " +
                     std::to_string(config.batch) + ", num_kv_heads " + std::to_string(config.num_kv_heads) +
                     ", capacity " + std::to_string(config.capacity) + ", head_dim " +
                     std::to_string(config.head_dim) + ", value_dim " + std::to_string(config.value_dim) +
                     "; expected every size >= 0 (value_dim −1 = head_dim)");
  if (config.page_size < 0 || config.num_pages < 0)
    throw ValueError(prefix(fn) + "config has page_size " + std::to_string(config.page_size) + " and num_pages " +
                     std::to_string(config.num_pages) + "; expected page_size >= 0 (0 = contiguous) and num_pages >= 0");
  if (config.window_tokens < 0 || (config.window_tokens > 0 && !paged()))
    throw ValueError(prefix(fn) + "config has window_tokens " + std::to_string(config.window_tokens) +
                     " and page_size " + std::to_string(config.page_size) +
                     "; a sliding-window cache (window_tokens > 0) needs page_size > 0");
  if (paged() && config_.num_pages == 0) {
    const int64_t ps = config.page_size;
    config_.num_pages = config.window_tokens > 0 ? config.batch * ((config.window_tokens + ps - 1) / ps + 1)
                                                 : config.batch * ((config.capacity + ps - 1) / ps);
  }
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    if (paged()) {
      keys_.emplace_back(Shape{config_.num_pages, config.num_kv_heads, config.page_size, config.head_dim});
      values_.emplace_back(Shape{config_.num_pages, config.num_kv_heads, config.page_size, value_dim()});
      page_tables_.emplace_back(static_cast<size_t>(config.batch));
      std::vector<int64_t> free;
      for (int64_t p = config_.num_pages; p-- > 0;) free.push_back(p);  // page 0 is handed out first
      free_pages_.push_back(std::move(free));
    } else {
      keys_.emplace_back(Shape{config.batch, config.num_kv_heads, config.capacity, config.head_dim});
      values_.emplace_back(Shape{config.batch, config.num_kv_heads, config.capacity, value_dim()});
    }
    lengths_.emplace_back(static_cast<size_t>(config.batch), 0);
  }
}

// Page index i holds positions [i·ps, (i+1)·ps). A window cache of W tokens
// at length n needs pages from (n − W) / ps on; the table keeps −1 for the
// pages before (dropped, or never taken by a long first append).
namespace {
int64_t first_page_needed(const KVCacheConfig& c, int64_t length) {
  return c.window_tokens > 0 ? std::max<int64_t>(0, length - c.window_tokens) / c.page_size : 0;
}
}  // namespace

int64_t KVCache::pages_needed(int64_t layer, int64_t b, int64_t length, int64_t* freed) const {
  const std::vector<int64_t>& table = page_tables_[layer][b];
  const int64_t have = static_cast<int64_t>(table.size());
  const int64_t total = (length + config_.page_size - 1) / config_.page_size;
  const int64_t first = first_page_needed(config_, length);
  *freed = 0;
  for (int64_t i = 0; i < std::min(first, have); ++i) *freed += table[static_cast<size_t>(i)] >= 0;
  return std::max<int64_t>(0, total - std::max(have, first));
}

void KVCache::check_pages(const char* fn, int64_t layer, int64_t need, int64_t freed) const {
  const int64_t free = static_cast<int64_t>(free_pages_[layer].size());
  if (need > free + freed)
    throw ValueError(prefix(fn) + "layer " + std::to_string(layer) + " needs " + std::to_string(need) +
                     " more pages of " + std::to_string(config_.page_size) + " tokens; only " +
                     std::to_string(free + freed) + " of " + std::to_string(config_.num_pages) + " are free");
}

void KVCache::drop_pages(int64_t layer, int64_t b, int64_t length) {
  std::vector<int64_t>& table = page_tables_[layer][b];
  const int64_t first = first_page_needed(config_, length);
  for (int64_t i = 0; i < std::min<int64_t>(first, static_cast<int64_t>(table.size())); ++i)
    if (table[static_cast<size_t>(i)] >= 0) {
      free_pages_[layer].push_back(table[static_cast<size_t>(i)]);
      table[static_cast<size_t>(i)] = -1;
    }
}

void KVCache::reserve_pages(int64_t layer, int64_t b, int64_t length) {
  std::vector<int64_t>& table = page_tables_[layer][b];
  const int64_t total = (length + config_.page_size - 1) / config_.page_size;
  const int64_t first = first_page_needed(config_, length);
  for (int64_t i = static_cast<int64_t>(table.size()); i < total; ++i) {
    if (i < first) {  // a token the window will never see: not stored
      table.push_back(-1);
      continue;
    }
    table.push_back(free_pages_[layer].back());
    free_pages_[layer].pop_back();
  }
}

int64_t KVCache::first_kept(int64_t layer, int64_t b) const {
  check_layer("KVCache::first_kept", layer);
  check_batch_index("KVCache::first_kept", b);
  if (!paged()) return 0;
  const std::vector<int64_t>& table = page_tables_[layer][b];
  int64_t i = 0;
  while (i < static_cast<int64_t>(table.size()) && table[static_cast<size_t>(i)] < 0) ++i;
  return std::min(i * config_.page_size, lengths_[layer][b]);
}

void KVCache::write_tokens(const Tensor<float>& src, const Tensor<float>& storage, int64_t layer, int64_t b,
                           int64_t start) const {
  if (!paged()) {
    copy_tokens(src, storage.select(0, b), start);
    return;
  }
  const int64_t H = src.size(0), L = src.size(1), D = src.size(2), ps = config_.page_size;
  const std::vector<int64_t>& table = page_tables_[layer][b];
  for (int64_t t = 0; t < L; ++t) {
    const int64_t pos = start + t, page = table[static_cast<size_t>(pos / ps)];
    if (page < 0) continue;  // before the window: not stored
    for (int64_t h = 0; h < H; ++h) {
      float* out = &storage(page, h, pos % ps, 0);
      for (int64_t x = 0; x < D; ++x) out[x] = src(h, t, x);
    }
  }
}

Tensor<float> KVCache::gather(const Tensor<float>& storage, int64_t layer, int64_t b) const {
  const int64_t L = lengths_[layer][b], H = storage.size(1), D = storage.size(3), ps = config_.page_size;
  Tensor<float> out({1, H, L, D});
  const std::vector<int64_t>& table = page_tables_[layer][b];
  for (int64_t h = 0; h < H; ++h)
    for (int64_t t = 0; t < L; ++t) {
      const int64_t page = table[static_cast<size_t>(t / ps)];
      for (int64_t x = 0; x < D; ++x)
        out(0, h, t, x) = page >= 0 ? storage(page, h, t % ps, x) : std::numeric_limits<float>::quiet_NaN();
    }
  return out;
}

const std::vector<int64_t>& KVCache::page_table(int64_t layer, int64_t b) const {
  check_layer("KVCache::page_table", layer);
  check_batch_index("KVCache::page_table", b);
  if (!paged()) throw ValueError("KVCache::page_table: the cache is contiguous (page_size 0)");
  return page_tables_[layer][b];
}

int64_t KVCache::free_pages(int64_t layer) const {
  check_layer("KVCache::free_pages", layer);
  return paged() ? static_cast<int64_t>(free_pages_[layer].size()) : 0;
}

void KVCache::check_layer(const char* fn, int64_t layer) const {
  if (layer < 0 || layer >= config_.num_layers)
    throw ValueError(prefix(fn) + "layer is " + std::to_string(layer) + ", expected 0 <= layer < " +
                     std::to_string(config_.num_layers));
}

void KVCache::check_batch_index(const char* fn, int64_t b) const {
  if (b < 0 || b >= config_.batch)
    throw ValueError(prefix(fn) + "batch_index is " + std::to_string(b) + ", expected 0 <= batch_index < " +
                     std::to_string(config_.batch));
}

void KVCache::append(int64_t layer, const Tensor<float>& key, const Tensor<float>& value) {
  const char* fn = "KVCache::append";
  check_layer(fn, layer);
  const int64_t B = config_.batch, H = config_.num_kv_heads;
  const bool key_ok = key.defined() && key.dim() == 4 && key.size(0) == B && key.size(1) == H &&
                      key.size(3) == config_.head_dim;
  if (!key_ok)
    throw ShapeError(prefix(fn) + "key has shape " + describe(key) + ", expected [" + std::to_string(B) + ", " +
                     std::to_string(H) + ", Lnew, " + std::to_string(config_.head_dim) + "] (batch, kv heads, new tokens, head_dim)");
  const int64_t L = key.size(2);
  const Shape want_value{B, H, L, value_dim()};
  if (!value.defined() || value.shape() != want_value)
    throw ShapeError(prefix(fn) + "value has shape " + describe(value) + ", expected " + shape_str(want_value) +
                     " to match key " + shape_str(key.shape()));
  // Check every sequence before writing any, so a failed append changes nothing.
  for (int64_t b = 0; b < B; ++b)
    if (lengths_[layer][b] + L > config_.capacity)
      throw ValueError(prefix(fn) + "sequence " + std::to_string(b) + " of layer " + std::to_string(layer) +
                       " holds " + std::to_string(lengths_[layer][b]) + " tokens; " + std::to_string(L) +
                       " more exceed the capacity " + std::to_string(config_.capacity));
  if (paged()) {  // enough pages for every sequence, or none taken; drop all before taking any
    int64_t need = 0, freed = 0;
    for (int64_t b = 0; b < B; ++b) {
      int64_t f = 0;
      need += pages_needed(layer, b, lengths_[layer][b] + L, &f);
      freed += f;
    }
    check_pages(fn, layer, need, freed);
    for (int64_t b = 0; b < B; ++b) drop_pages(layer, b, lengths_[layer][b] + L);
    for (int64_t b = 0; b < B; ++b) reserve_pages(layer, b, lengths_[layer][b] + L);
  }
  for (int64_t b = 0; b < B; ++b) {
    write_tokens(key.select(0, b), keys_[layer], layer, b, lengths_[layer][b]);
    write_tokens(value.select(0, b), values_[layer], layer, b, lengths_[layer][b]);
    lengths_[layer][b] += L;
  }
}

void KVCache::append(int64_t layer, int64_t b, const Tensor<float>& key, const Tensor<float>& value) {
  const char* fn = "KVCache::append";
  check_layer(fn, layer);
  check_batch_index(fn, b);
  const int64_t H = config_.num_kv_heads;
  if (!key.defined() || key.dim() != 3 || key.size(0) != H || key.size(2) != config_.head_dim)
    throw ShapeError(prefix(fn) + "key has shape " + describe(key) + ", expected [" + std::to_string(H) +
                     ", Lnew, " + std::to_string(config_.head_dim) + "] (kv heads, new tokens, head_dim) for sequence " +
                     std::to_string(b));
  const int64_t L = key.size(1);
  const Shape want_value{H, L, value_dim()};
  if (!value.defined() || value.shape() != want_value)
    throw ShapeError(prefix(fn) + "value has shape " + describe(value) + ", expected " + shape_str(want_value) +
                     " to match key " + shape_str(key.shape()));
  if (lengths_[layer][b] + L > config_.capacity)
    throw ValueError(prefix(fn) + "sequence " + std::to_string(b) + " of layer " + std::to_string(layer) +
                     " holds " + std::to_string(lengths_[layer][b]) + " tokens; " + std::to_string(L) +
                     " more exceed the capacity " + std::to_string(config_.capacity));
  if (paged()) {
    int64_t freed = 0;
    const int64_t need = pages_needed(layer, b, lengths_[layer][b] + L, &freed);
    check_pages(fn, layer, need, freed);
    drop_pages(layer, b, lengths_[layer][b] + L);
    reserve_pages(layer, b, lengths_[layer][b] + L);
  }
  write_tokens(key, keys_[layer], layer, b, lengths_[layer][b]);
  write_tokens(value, values_[layer], layer, b, lengths_[layer][b]);
  lengths_[layer][b] += L;
}

int64_t KVCache::length(int64_t layer, int64_t b) const {
  check_layer("KVCache::length", layer);
  check_batch_index("KVCache::length", b);
  return lengths_[layer][b];
}

const std::vector<int64_t>& KVCache::lengths(int64_t layer) const {
  check_layer("KVCache::lengths", layer);
  return lengths_[layer];
}

void KVCache::clear() {
  for (int64_t b = 0; b < config_.batch; ++b) clear(b);
}

void KVCache::clear(int64_t b) {
  check_batch_index("KVCache::clear", b);
  for (int64_t layer = 0; layer < config_.num_layers; ++layer) {
    lengths_[layer][b] = 0;
    if (!paged()) continue;
    std::vector<int64_t>& table = page_tables_[layer][b];
    for (size_t i = table.size(); i-- > 0;)
      if (table[i] >= 0) free_pages_[layer].push_back(table[i]);  // reused first-out
    table.clear();
  }
}

Tensor<float> KVCache::key_storage(int64_t layer) const {
  check_layer("KVCache::key_storage", layer);
  return keys_[layer];
}

Tensor<float> KVCache::value_storage(int64_t layer) const {
  check_layer("KVCache::value_storage", layer);
  return values_[layer];
}

Tensor<float> KVCache::keys(int64_t layer, int64_t b) const {
  const int64_t L = length(layer, b);
  if (paged()) return gather(keys_[layer], layer, b);
  return keys_[layer].slice(0, b, b + 1).slice(2, 0, L);
}

Tensor<float> KVCache::values(int64_t layer, int64_t b) const {
  const int64_t L = length(layer, b);
  if (paged()) return gather(values_[layer], layer, b);
  return values_[layer].slice(0, b, b + 1).slice(2, 0, L);
}

int64_t KVCache::bytes_per_token() const {
  return config_.num_kv_heads * (config_.head_dim + value_dim()) * static_cast<int64_t>(sizeof(float));
}

// ---- the decode step -------------------------------------------------------------

namespace {

// The checks attention_decode makes beyond those scaled_dot_product_attention
// would make on each sequence (which attention_decode_reference relies on).
void check_decode_arguments(const char* fn, const Tensor<float>& query, const KVCache& cache, int64_t layer,
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
  if (o.scale && !(std::isfinite(*o.scale) && *o.scale > 0.0))
    throw ValueError(prefix(fn) + "scale is " + std::to_string(*o.scale) + ", expected a finite value > 0");
  if (!(std::isfinite(o.softcap) && o.softcap >= 0.0))
    throw ValueError(prefix(fn) + "softcap is " + std::to_string(o.softcap) +
                     ", expected 0 (off) or a finite value > 0");
  if (o.window_left < -1 || o.window_right < -1)
    throw ValueError(prefix(fn) + "window_left is " + std::to_string(o.window_left) + " and window_right " +
                     std::to_string(o.window_right) + ", expected each >= 0 or -1 (unbounded)");
  if (o.alibi_slopes.defined()) {
    const Shape& s = o.alibi_slopes.shape();
    if (s != Shape{Hq} && s != Shape{c.batch, Hq})
      throw ShapeError(prefix(fn) + "alibi_slopes has shape " + shape_str(s) + ", expected [" + std::to_string(Hq) +
                       "] or [" + std::to_string(c.batch) + ", " + std::to_string(Hq) + "] (one slope per query head)");
  }
  if (o.sinks.defined() && o.sinks.shape() != Shape{Hq})
    throw ShapeError(prefix(fn) + "sinks has shape " + shape_str(o.sinks.shape()) + ", expected [" +
                     std::to_string(Hq) + "] (one logit per query head)");
}

}  // namespace

SdpaResult<float> attention_decode(const Tensor<float>& query, const KVCache& cache, int64_t layer,
                                   const SdpaOptions<float>& options, int64_t split_keys) {
  const char* fn = "attention_decode";
  check_decode_arguments(fn, query, cache, layer, options);
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
  cpu::SplitKVResult r = cpu::split_kv_decode(query, cache.key_storage(layer), cache.value_storage(layer),
                                              cache.lengths(layer), options, split_keys, /*keep_partials=*/false,
                                              cache.config().page_size, cache.paged() ? table.data() : nullptr,
                                              std::max<int64_t>(max_pages, 1));
  SdpaResult<float> out;
  out.output = r.output;
  out.lse = r.lse;
  return out;
}

SdpaResult<float> attention_decode_reference(const Tensor<float>& query, const KVCache& cache, int64_t layer,
                                             const SdpaOptions<float>& options) {
  const char* fn = "attention_decode_reference";
  check_decode_arguments(fn, query, cache, layer, options);
  const int64_t B = query.size(0), Hq = query.size(1), Lq = query.size(2), Dv = cache.value_dim();
  SdpaResult<float> r;
  r.output = Tensor<float>({B, Hq, Lq, Dv});
  r.lse = Tensor<float>({B, Hq, Lq});
  for (int64_t b = 0; b < B; ++b) {
    // Sequence b alone: its query rows against its own filled keys.
    SdpaOptions<float> o = options;
    if (o.alibi_slopes.defined() && o.alibi_slopes.dim() == 2) o.alibi_slopes = o.alibi_slopes.slice(0, b, b + 1);
    const SdpaResult<float> one =
        scaled_dot_product_attention(query.slice(0, b, b + 1), cache.keys(layer, b), cache.values(layer, b), o);
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t i = 0; i < Lq; ++i) {
        r.lse(b, h, i) = one.lse(0, h, i);
        for (int64_t x = 0; x < Dv; ++x) r.output(b, h, i, x) = one.output(0, h, i, x);
      }
  }
  return r;
}

}  // namespace attn
