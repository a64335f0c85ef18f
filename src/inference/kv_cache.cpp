// The KV cache: storage (float32, bfloat16, int8; contiguous or paged,
// sliding window), append and the views the decode step reads. The decode
// step itself is in attention_decode.cpp.
//
// Buffers, per layer (a Plane each for keys and values, in the configured storage):
//   f32 | bf16 | i8  [B, Hkv, capacity, D]   contiguous, zero-initialised
//                    [num_pages, Hkv, page_size, D]   paged: the page pool
//   scale   Int8: [B | num_pages, Hkv, groups, D]  one scale per group of G tokens and channel
//   shadow  Int8: [B, Hkv, G, D]  float rows of each sequence's newest (filling) group
//   lengths_[layer] [B]   tokens held by each sequence; positions >= length
//                         are never read by attention
//   page_tables_[layer][b]  paged: physical page of each page_size tokens of b
//   free_pages_[layer]      paged: pages nobody holds (a stack)
#include "attn/kv_cache.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string>

#include "attn/detail/size_math.hpp"
#include "inference/rope_row.hpp"

namespace attn {
namespace {

std::string prefix(const char* fn) { return std::string(fn) + ": "; }

std::string describe(const Tensor<float>& t) { return t.defined() ? shape_str(t.shape()) : "(undefined)"; }

// bfloat16: the top 16 bits of a float32, rounded to nearest even (what
// PyTorch's .to(torch.bfloat16) does); NaN stays a (quiet) NaN. Widening back
// is exact: the bits shifted up.
uint16_t to_bfloat16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if (std::isnan(x)) return static_cast<uint16_t>((u >> 16) | 0x40);  // keep the sign, stay NaN
  u += 0x7FFF + ((u >> 16) & 1);  // round half to even on bit 16
  return static_cast<uint16_t>(u >> 16);
}
float from_bfloat16_bits(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

}  // namespace

const char* to_string(KVStorage storage) {
  switch (storage) {
    case KVStorage::Float32: return "float32";
    case KVStorage::BFloat16: return "bfloat16";
    case KVStorage::Int8: return "int8";
  }
  return "?";
}

namespace {

// "config (num_layers 2, batch 1, num_kv_heads 8, capacity 4096, head_dim 128, ...)"
std::string describe(const KVCacheConfig& c) {
  std::string s = "config (num_layers " + std::to_string(c.num_layers) + ", batch " + std::to_string(c.batch) +
                  ", num_kv_heads " + std::to_string(c.num_kv_heads) + ", capacity " + std::to_string(c.capacity) +
                  ", head_dim " + std::to_string(c.head_dim) + ", value_dim " + std::to_string(c.value_dim);
  if (c.page_size > 0)
    s += ", page_size " + std::to_string(c.page_size) + ", num_pages " + std::to_string(c.num_pages) +
         ", window_tokens " + std::to_string(c.window_tokens);
  return s + ", storage " + to_string(c.storage) + ")";
}

// The bytes a KVCache of config `c` allocates (storage, int8 scales and
// shadow rows, lengths, page tables and free lists), each product checked:
// a config of huge sizes is refused here, naming them, rather than wrapping
// to a small buffer that the first append writes past. Fills in the default
// num_pages. The sizes are >= 0 (checked by the caller).
int64_t checked_storage_bytes(KVCacheConfig& c) {
  using detail::checked_add;
  using detail::checked_mul;
  const bool paged = c.page_size > 0;
  const auto too_large = [&] { return ValueError("KVCache: " + describe(c) + " needs more than 2^63 - 1 bytes"); };
  int64_t end;  // positions are counted up to capacity + a page in the page arithmetic
  if (!checked_add(c.capacity, std::max<int64_t>(c.page_size, 1), end)) throw too_large();
  if (paged && c.num_pages == 0) {
    const int64_t ps = c.page_size;
    const int64_t per_sequence = c.window_tokens > 0 ? c.window_tokens / ps + (c.window_tokens % ps != 0) + 1
                                                     : c.capacity / ps + (c.capacity % ps != 0);
    if (!checked_mul(c.batch, per_sequence, c.num_pages)) throw too_large();
  }
  const int64_t rows = paged ? c.num_pages : c.batch, tokens = paged ? c.page_size : c.capacity;
  const int64_t element = c.storage == KVStorage::Float32 ? 4 : c.storage == KVStorage::BFloat16 ? 2 : 1;
  // Bytes of a [n0, n1, n2, n3] buffer of `size`-byte elements, added to `total`.
  const auto add = [&](int64_t& total, int64_t n0, int64_t n1, int64_t n2, int64_t n3, int64_t size) {
    int64_t n = n0;
    if (!(checked_mul(n, n1, n) && checked_mul(n, n2, n) && checked_mul(n, n3, n) && checked_mul(n, size, n) &&
          checked_add(total, n, total)))
      throw too_large();
  };
  int64_t layer = 0;
  for (const int64_t D : {c.head_dim, c.value_dim < 0 ? c.head_dim : c.value_dim}) {
    add(layer, rows, c.num_kv_heads, tokens, D, element);
    if (c.storage == KVStorage::Int8) {  // a scale per group of G tokens, and the float rows of the filling group
      const int64_t G = c.quant_group;
      add(layer, rows, c.num_kv_heads, tokens / G + (tokens % G != 0), D, 4);
      add(layer, c.batch, c.num_kv_heads, G, D, 4);
    }
  }
  add(layer, c.batch, 1, 1, 1, 8);  // lengths
  if (paged) {
    add(layer, c.batch, 1, 1, 1, static_cast<int64_t>(sizeof(std::vector<int64_t>)));  // page tables
    add(layer, c.num_pages, 1, 1, 1, 8);                                               // free list
  }
  int64_t total = 0;
  add(total, layer, c.num_layers, 1, 1, 1);
  return total;
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
  if (config.storage == KVStorage::Int8 &&
      (config.quant_group <= 0 || (paged() && config.page_size % config.quant_group != 0)))
    throw ValueError(prefix(fn) + "config has quant_group " + std::to_string(config.quant_group) + " and page_size " +
                     std::to_string(config.page_size) +
                     "; an int8 cache needs quant_group > 0 that divides page_size when paged (a group never "
                     "crosses a page)");
  const int64_t bytes = checked_storage_bytes(config_);  // every size checked before anything is allocated
  try {
    for (int64_t layer = 0; layer < config.num_layers; ++layer) {
      keys_.push_back(make_plane(config.head_dim));
      values_.push_back(make_plane(value_dim()));
      if (paged()) {
        page_tables_.emplace_back(static_cast<size_t>(config.batch));
        std::vector<int64_t> free;
        free.reserve(static_cast<size_t>(config_.num_pages));
        for (int64_t p = config_.num_pages; p-- > 0;) free.push_back(p);  // page 0 is handed out first
        free_pages_.push_back(std::move(free));
      }
      lengths_.emplace_back(static_cast<size_t>(config.batch), 0);
    }
  } catch (const std::bad_alloc&) {
    throw ResourceError(prefix(fn) + "cannot allocate the " + std::to_string(bytes) + " bytes of " +
                        describe(config_) + ": out of memory");
  } catch (const ResourceError&) {
    throw ResourceError(prefix(fn) + "cannot allocate the " + std::to_string(bytes) + " bytes of " +
                        describe(config_) + ": out of memory");
  }
}


KVCache::Plane KVCache::make_plane(int64_t D) const {
  const KVCacheConfig& c = config_;
  const Shape shape = paged() ? Shape{c.num_pages, c.num_kv_heads, c.page_size, D}
                              : Shape{c.batch, c.num_kv_heads, c.capacity, D};
  Plane plane;
  switch (c.storage) {
    case KVStorage::Float32: plane.f32 = Tensor<float>(shape); break;
    case KVStorage::BFloat16: plane.bf16 = Tensor<uint16_t>(shape); break;
    case KVStorage::Int8: {
      const int64_t G = c.quant_group;
      plane.i8 = Tensor<int8_t>(shape);
      plane.scale = Tensor<float>({shape[0], shape[1], (shape[2] + G - 1) / G, D});
      plane.shadow = Tensor<float>({c.batch, c.num_kv_heads, G, D});
      break;
    }
  }
  return plane;
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

std::pair<int64_t, int64_t> KVCache::locate(int64_t layer, int64_t b, int64_t t) const {
  if (!paged()) return {b, t};
  const int64_t ps = config_.page_size;
  return {page_tables_[layer][b][static_cast<size_t>(t / ps)], t % ps};
}

void KVCache::write_tokens(const Tensor<float>& src, Plane& plane, int64_t layer, int64_t b, int64_t start,
                           const RopeOptions* rope) {
  const int64_t H = src.size(0), L = src.size(1), D = src.size(2), G = config_.quant_group;
  std::optional<detail::RopeTable> table;
  if (rope) table.emplace(*rope, D, "KVCache::append");
  std::vector<float> row(static_cast<size_t>(D)), c(static_cast<size_t>(D / 2 + 1)), s(c.size());
  for (int64_t t = 0; t < L; ++t) {
    const int64_t pos = start + t;
    const auto [i0, dst] = locate(layer, b, pos);
    if (table) table->angles(pos, +1.0, c.data(), s.data());
    for (int64_t h = 0; h < H; ++h) {
      // The row as it will be stored: src[h, t, :], rotated at pos if asked.
      const float* x = &src(h, t, 0);
      if (table)
        table->rotate(x, src.stride(2), c.data(), s.data(), row.data());
      else
        for (int64_t d = 0; d < D; ++d) row[static_cast<size_t>(d)] = x[d * src.stride(2)];
      switch (config_.storage) {
        case KVStorage::Float32:
          if (i0 >= 0) std::copy(row.begin(), row.end(), &plane.f32(i0, h, dst, 0));
          break;
        case KVStorage::BFloat16:
          if (i0 >= 0)
            for (int64_t d = 0; d < D; ++d) plane.bf16(i0, h, dst, d) = to_bfloat16_bits(row[static_cast<size_t>(d)]);
          break;
        case KVStorage::Int8:
          // The row joins its group's float shadow; the group is re-encoded
          // when it is full or the append ends (a token before the window,
          // on a dropped page, is never stored: its whole group is dropped).
          std::copy(row.begin(), row.end(), &plane.shadow(b, h, pos % G, 0));
          if ((pos % G == G - 1 || t == L - 1) && i0 >= 0) quantise_group(plane, layer, b, h, pos - pos % G, pos % G + 1);
          break;
      }
    }
  }
}

// Per channel d of the group's n rows: s_d = max_t |x_td| / 127 and
// q_td = round(x_td / s_d) in [−127, 127]; an all-zero channel keeps s_d = 0
// and q = 0. Positions gs..gs+n−1 share one page (quant_group divides
// page_size), so their rows and their scale row are found from gs alone.
void KVCache::quantise_group(Plane& plane, int64_t layer, int64_t b, int64_t h, int64_t gs, int64_t n) {
  const int64_t D = plane.shadow.size(3), G = config_.quant_group;
  const auto [i0, row0] = locate(layer, b, gs);
  for (int64_t x = 0; x < D; ++x) {
    float amax = 0.0f;
    for (int64_t t = 0; t < n; ++t) amax = std::max(amax, std::abs(plane.shadow(b, h, t, x)));
    const float scale = amax / 127.0f;
    plane.scale(i0, h, row0 / G, x) = scale;
    for (int64_t t = 0; t < n; ++t) {
      const float q = scale > 0.0f ? std::nearbyint(plane.shadow(b, h, t, x) / scale) : 0.0f;
      plane.i8(i0, h, row0 + t, x) = static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f));
    }
  }
}

void KVCache::read_row(const Plane& plane, int64_t i0, int64_t h, int64_t t, float* out) const {
  switch (config_.storage) {
    case KVStorage::Float32: {
      const int64_t D = plane.f32.size(3);
      for (int64_t x = 0; x < D; ++x) out[x] = plane.f32(i0, h, t, x);
      break;
    }
    case KVStorage::BFloat16: {
      const int64_t D = plane.bf16.size(3);
      for (int64_t x = 0; x < D; ++x) out[x] = from_bfloat16_bits(plane.bf16(i0, h, t, x));
      break;
    }
    case KVStorage::Int8: {
      const int64_t D = plane.i8.size(3), g = t / config_.quant_group;
      for (int64_t x = 0; x < D; ++x) out[x] = static_cast<float>(plane.i8(i0, h, t, x)) * plane.scale(i0, h, g, x);
      break;
    }
  }
}

Tensor<float> KVCache::gather(const Plane& plane, int64_t layer, int64_t b) const {
  const int64_t L = lengths_[layer][b], H = config_.num_kv_heads;
  const int64_t D = plane.f32.defined() ? plane.f32.size(3) : plane.bf16.defined() ? plane.bf16.size(3) : plane.i8.size(3);
  Tensor<float> out({1, H, L, D});
  for (int64_t h = 0; h < H; ++h)
    for (int64_t t = 0; t < L; ++t) {
      const auto [i0, row] = locate(layer, b, t);
      if (i0 >= 0)
        read_row(plane, i0, h, row, &out(0, h, t, 0));
      else
        for (int64_t x = 0; x < D; ++x) out(0, h, t, x) = std::numeric_limits<float>::quiet_NaN();
    }
  return out;
}

void KVCache::check_finite(const char* fn, const char* what, const Tensor<float>& t) const {
  if (config_.storage != KVStorage::Int8) return;
  for (int64_t n = 0; n < t.numel(); ++n)
    if (!std::isfinite(t.flat(n)))
      throw ValueError(prefix(fn) + what + " holds " + std::to_string(t.flat(n)) + " (element " + std::to_string(n) +
                       " of " + shape_str(t.shape()) + "); an int8 cache stores finite values only (a per-channel "
                       "scale cannot encode NaN or Inf): use a float32 or bfloat16 cache");
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
  append_all("KVCache::append", layer, key, value, nullptr);
}
void KVCache::append(int64_t layer, const Tensor<float>& key, const Tensor<float>& value, const RopeOptions& rope) {
  append_all("KVCache::append", layer, key, value, &rope);
}
void KVCache::append(int64_t layer, int64_t b, const Tensor<float>& key, const Tensor<float>& value) {
  append_one("KVCache::append", layer, b, key, value, nullptr);
}
void KVCache::append(int64_t layer, int64_t b, const Tensor<float>& key, const Tensor<float>& value,
                     const RopeOptions& rope) {
  append_one("KVCache::append", layer, b, key, value, &rope);
}

void KVCache::append_all(const char* fn, int64_t layer, const Tensor<float>& key, const Tensor<float>& value,
                         const RopeOptions* rope) {
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
  check_finite(fn, "key", key);
  check_finite(fn, "value", value);
  if (rope) (void)detail::RopeTable(*rope, config_.head_dim, fn);  // bad options: refused before any write
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
    write_tokens(key.select(0, b), keys_[layer], layer, b, lengths_[layer][b], rope);
    write_tokens(value.select(0, b), values_[layer], layer, b, lengths_[layer][b]);
    lengths_[layer][b] += L;
  }
}

void KVCache::append_one(const char* fn, int64_t layer, int64_t b, const Tensor<float>& key,
                         const Tensor<float>& value, const RopeOptions* rope) {
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
  check_finite(fn, "key", key);
  check_finite(fn, "value", value);
  if (rope) (void)detail::RopeTable(*rope, config_.head_dim, fn);  // bad options: refused before any write
  if (paged()) {
    int64_t freed = 0;
    const int64_t need = pages_needed(layer, b, lengths_[layer][b] + L, &freed);
    check_pages(fn, layer, need, freed);
    drop_pages(layer, b, lengths_[layer][b] + L);
    reserve_pages(layer, b, lengths_[layer][b] + L);
  }
  write_tokens(key, keys_[layer], layer, b, lengths_[layer][b], rope);
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

namespace {
void check_float32_storage(const char* fn, KVStorage storage) {
  if (storage != KVStorage::Float32)
    throw ValueError(prefix(fn) + "the cache stores " + std::string(to_string(storage)) +
                     "; key_storage()/value_storage() give float32 storage only: use keys()/values() for the "
                     "dequantised float32 rows");
}
}  // namespace

Tensor<float> KVCache::key_storage(int64_t layer) const {
  check_layer("KVCache::key_storage", layer);
  check_float32_storage("KVCache::key_storage", config_.storage);
  return keys_[layer].f32;
}

Tensor<float> KVCache::value_storage(int64_t layer) const {
  check_layer("KVCache::value_storage", layer);
  check_float32_storage("KVCache::value_storage", config_.storage);
  return values_[layer].f32;
}

Tensor<float> KVCache::keys(int64_t layer, int64_t b) const {
  const int64_t L = length(layer, b);
  if (paged() || config_.storage != KVStorage::Float32) return gather(keys_[layer], layer, b);
  return keys_[layer].f32.slice(0, b, b + 1).slice(2, 0, L);
}

Tensor<float> KVCache::values(int64_t layer, int64_t b) const {
  const int64_t L = length(layer, b);
  if (paged() || config_.storage != KVStorage::Float32) return gather(values_[layer], layer, b);
  return values_[layer].f32.slice(0, b, b + 1).slice(2, 0, L);
}

int64_t KVCache::bytes_per_token() const {
  const int64_t elements = config_.num_kv_heads * (config_.head_dim + value_dim());
  switch (config_.storage) {
    case KVStorage::Float32: return elements * 4;
    case KVStorage::BFloat16: return elements * 2;
    case KVStorage::Int8: return elements + (elements * 4 + config_.quant_group - 1) / config_.quant_group;
  }
  return 0;
}

KVCache::RawLayer KVCache::raw_layer(int64_t layer) const {
  check_layer("KVCache::raw_layer", layer);
  RawLayer r{};
  r.storage = config_.storage;
  r.quant_group = config_.quant_group;
  auto fill = [](const auto& t, const void** ptr, int64_t* stride) {
    *ptr = t.data();
    for (int i = 0; i < 3; ++i) stride[i] = t.stride(i);
  };
  const Plane &k = keys_[layer], &v = values_[layer];
  switch (config_.storage) {
    case KVStorage::Float32: fill(k.f32, &r.k, r.k_stride), fill(v.f32, &r.v, r.v_stride); break;
    case KVStorage::BFloat16: fill(k.bf16, &r.k, r.k_stride), fill(v.bf16, &r.v, r.v_stride); break;
    case KVStorage::Int8: {
      fill(k.i8, &r.k, r.k_stride), fill(v.i8, &r.v, r.v_stride);
      const void* ks = nullptr;
      const void* vs = nullptr;
      fill(k.scale, &ks, r.k_scale_stride), fill(v.scale, &vs, r.v_scale_stride);
      r.k_scale = static_cast<const float*>(ks), r.v_scale = static_cast<const float*>(vs);
      break;
    }
  }
  return r;
}

}  // namespace attn
