// fuzz/kv_cache_fuzzer.cpp — libFuzzer harness for attn::KVCache and
// attention_decode (include/attn/kv_cache.hpp).
//
// The input bytes choose a cache configuration (layers, batch, kv heads,
// capacity, head and value dims; contiguous, paged or sliding-window;
// float32, bfloat16 or int8 storage; quant_group; invalid ones included,
// which must be refused with an attn::Error), then a sequence of up to 32
// operations: whole-batch appends, per-sequence appends, either with RoPE
// fused in, decode steps, clear() and clear(b), with out-of-range layers and
// batch indices, bad shapes and non-finite values sometimes. The harness keeps
// its own model of what every sequence holds and checks after each operation:
//   * a refused append (attn::Error) changes nothing: every length as before;
//   * an accepted one adds exactly its tokens: lengths, and the stored rows
//     (keys()/values()) equal what was appended — bit for bit in float32
//     (RoPE: bit for bit apply_rope at the cache position), within 2^-8·|x|
//     in bfloat16 (2^-134 for subnormals), within half a per-channel group scale in int8;
//   * a sliding-window cache keeps at most ⌈W / page_size⌉ + 1 pages per
//     sequence and returns NaN for the positions it dropped;
//   * a decode step that is accepted agrees with attention_decode_reference
//     and both are within tests/fuzz_check.hpp's bound (floor 2e-5, as
//     tests/inference/decode_fuzz_test.cpp) of scaled_dot_product_attention
//     in float64 on each sequence's stored tokens.
// Sizes stay small (capacity <= 80, head_dim <= 33) so an input runs in
// milliseconds.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "attn/errors.hpp"
#include "attn/kv_cache.hpp"
#include "attn/rope.hpp"
#include "attn/sdpa.hpp"
#include "attn/threading.hpp"
#include "fuzz_check.hpp"
#include "fuzz_util.hpp"

namespace {

using attn::KVCache;
using attn::KVCacheConfig;
using attn::KVStorage;
using attn::SdpaOptions;
using attn::Tensor;
using attn_fuzz::fuzz_fail;

constexpr double kFloor = 2e-5;
attn_test::AccuracyStats g_stats;

// What the harness expects sequence b of a layer to hold: its rows as appended
// (after RoPE, when it was fused in), key rows [t][h][Dk], value rows [t][h][Dv].
struct Sequence {
  std::vector<std::vector<float>> keys, values;  // one vector of Hkv·D floats per token
};

struct Model {
  std::vector<std::vector<Sequence>> layers;  // [layer][b]
};

template <class F>
bool throws_attn_error(F&& f) {
  try {
    f();
  } catch (const attn::Error&) {
    return true;
  }
  return false;
}

KVCacheConfig draw_config(FuzzedDataProvider& in) {
  static constexpr int64_t kDims[] = {0, 1, 2, 3, 4, 8, 16, 17, 33};
  static constexpr int64_t kPages[] = {0, 0, 1, 2, 3, 4, 8, 16};
  static constexpr int64_t kGroups[] = {32, 1, 2, 4, 8, 16, 3, 0};
  KVCacheConfig c;
  c.num_layers = in.ConsumeIntegralInRange<int64_t>(0, 2);
  c.batch = in.ConsumeIntegralInRange<int64_t>(0, 3);
  c.num_kv_heads = in.ConsumeIntegralInRange<int64_t>(0, 3);
  c.capacity = in.ConsumeIntegralInRange<int64_t>(0, 80);
  c.head_dim = kDims[in.ConsumeIntegralInRange<size_t>(0, std::size(kDims) - 1)];
  c.value_dim = in.ConsumeBool() ? -1 : kDims[in.ConsumeIntegralInRange<size_t>(0, std::size(kDims) - 1)];
  c.page_size = kPages[in.ConsumeIntegralInRange<size_t>(0, std::size(kPages) - 1)];
  c.num_pages = in.ConsumeBool() ? 0 : in.ConsumeIntegralInRange<int64_t>(0, 40);
  c.window_tokens = in.ConsumeBool() ? 0 : in.ConsumeIntegralInRange<int64_t>(0, 40);
  c.storage = static_cast<KVStorage>(in.ConsumeIntegralInRange<int>(0, 2));
  c.quant_group = kGroups[in.ConsumeIntegralInRange<size_t>(0, std::size(kGroups) - 1)];
  switch (in.ConsumeIntegralInRange<int>(0, 15)) {
    case 0:  // a negative size: must be refused
      c.capacity = -in.ConsumeIntegralInRange<int64_t>(1, 5);
      break;
    case 1:  // sizes whose product overflows int64 / cannot be allocated
      // capacity × head_dim ≥ 2^64: a ShapeError naming the sizes. (Sizes
      // that fit int64 but not in memory are ResourceErrors, tested in
      // tests/inference: under AddressSanitizer a failed operator new aborts
      // instead of throwing, so this harness cannot draw them.)
      {
        const int a = in.ConsumeIntegralInRange<int>(31, 62);
        c.capacity = int64_t{1} << a;
        c.head_dim = int64_t{1} << in.ConsumeIntegralInRange<int>(64 - a, 40);
        c.page_size = c.num_pages = 0;  // pages would size the planes instead
      }
      break;
    default:
      break;
  }
  return c;
}

int64_t value_dim(const KVCacheConfig& c) { return c.value_dim < 0 ? c.head_dim : c.value_dim; }

// The stored row of token t of sequence b against what was appended, within
// the storage's stated bound (attn/kv_cache.hpp).
void check_storage(const KVCache& cache, const Model& model, int64_t layer, int64_t b) {
  const KVCacheConfig& c = cache.config();
  const Sequence& seq = model.layers[layer][b];
  const int64_t L = static_cast<int64_t>(seq.keys.size()), Hkv = c.num_kv_heads, G = c.quant_group;
  if (cache.length(layer, b) != L)
    fuzz_fail("layer " + std::to_string(layer) + " sequence " + std::to_string(b) + " holds " +
              std::to_string(cache.length(layer, b)) + " tokens, expected " + std::to_string(L));
  const int64_t first = cache.first_kept(layer, b);
  if (first < 0 || first > L || (first > 0 && (c.page_size == 0 || first % c.page_size != 0 ||
                                               first > std::max<int64_t>(0, L - c.window_tokens))))
    fuzz_fail("first_kept is " + std::to_string(first) + " for a sequence of " + std::to_string(L) + " tokens");
  if (c.window_tokens > 0) {
    const int64_t held = static_cast<int64_t>(std::count_if(cache.page_table(layer, b).begin(),
                                                            cache.page_table(layer, b).end(),
                                                            [](int64_t p) { return p >= 0; }));
    if (held > (c.window_tokens + c.page_size - 1) / c.page_size + 1)
      fuzz_fail("a sliding-window sequence holds " + std::to_string(held) + " pages");
  }
  for (int pass = 0; pass < 2; ++pass) {
    const Tensor<float> held = pass == 0 ? cache.keys(layer, b) : cache.values(layer, b);
    const auto& rows = pass == 0 ? seq.keys : seq.values;
    const int64_t D = pass == 0 ? c.head_dim : value_dim(c);
    if (held.shape() != attn::Shape{1, Hkv, L, D})
      fuzz_fail(std::string(pass == 0 ? "keys" : "values") + "() has shape " + attn::shape_str(held.shape()));
    for (int64_t h = 0; h < Hkv; ++h)
      for (int64_t t = 0; t < L; ++t)
        for (int64_t x = 0; x < D; ++x) {
          const float got = held(0, h, t, x), want = rows[t][h * D + x];
          if (t < first) {
            if (!std::isnan(got)) fuzz_fail("a dropped position does not read as NaN");
            continue;
          }
          bool ok;
          if (!std::isfinite(want)) {
            ok = c.storage != KVStorage::Int8 && (std::isnan(want) ? std::isnan(got) : got == want);
          } else if (c.storage == KVStorage::Float32) {
            ok = std::memcmp(&got, &want, sizeof got) == 0 || (got == 0 && want == 0);
          } else if (c.storage == KVStorage::BFloat16) {
            // attn/kv_cache.hpp: 2^-8·|x|, or half bfloat16's subnormal spacing below 2^-126.
            ok = std::abs(static_cast<double>(got) - want) <= std::max(0x1p-8 * std::abs(static_cast<double>(want)), 0x1p-134);
          } else {
            double amax = 0;  // the group's scale: max |x| over its tokens, this channel
            for (int64_t u = t / G * G; u < std::min((t / G + 1) * G, L); ++u)
              amax = std::max(amax, std::abs(static_cast<double>(rows[u][h * D + x])));
            ok = std::abs(static_cast<double>(got) - want) <= amax / 127 / 2 * (1 + 1e-6) + 1e-7 * std::abs(want);
          }
          if (!ok)
            fuzz_fail(std::string(attn::to_string(c.storage)) + (pass == 0 ? " key" : " value") + " layer " +
                      std::to_string(layer) + " b=" + std::to_string(b) + " h=" + std::to_string(h) + " t=" +
                      std::to_string(t) + " x=" + std::to_string(x) + ": stored " + std::to_string(got) +
                      ", appended " + std::to_string(want));
        }
  }
}

void check_lengths_unchanged(const KVCache& cache, const Model& model) {
  for (int64_t layer = 0; layer < cache.config().num_layers; ++layer)
    for (int64_t b = 0; b < cache.config().batch; ++b)
      if (cache.length(layer, b) != static_cast<int64_t>(model.layers[layer][b].keys.size()))
        fuzz_fail("a refused append changed the length of layer " + std::to_string(layer) + " sequence " +
                  std::to_string(b));
}

// Appends `n` tokens (key [Hkv, n, Dk], value [Hkv, n, Dv]) to the model of sequence b.
void model_append(Sequence& seq, const Tensor<float>& key, const Tensor<float>& value) {
  const int64_t H = key.size(0), n = key.size(1), Dk = key.size(2), Dv = value.size(2);
  for (int64_t t = 0; t < n; ++t) {
    std::vector<float> k(static_cast<size_t>(H * Dk)), v(static_cast<size_t>(H * Dv));
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t x = 0; x < Dk; ++x) k[h * Dk + x] = key(h, t, x);
      for (int64_t x = 0; x < Dv; ++x) v[h * Dv + x] = value(h, t, x);
    }
    seq.keys.push_back(std::move(k));
    seq.values.push_back(std::move(v));
  }
}

std::optional<attn::RopeOptions> draw_rope(FuzzedDataProvider& in, int64_t D) {
  if (in.ConsumeIntegralInRange<int>(0, 3) != 0) return std::nullopt;
  attn::RopeOptions r;
  r.layout = in.ConsumeBool() ? attn::RopeLayout::Half : attn::RopeLayout::Interleaved;
  r.rotary_dim = in.ConsumeBool() ? -1 : in.ConsumeIntegralInRange<int64_t>(0, std::max<int64_t>(D, 0) + 1);
  r.theta = in.ConsumeBool() ? 10000.0 : in.ConsumeFloatingPointInRange<double>(-1.0, 1e6);
  return r;
}

// Key [Hkv, n, Dk] rotated at positions start.. (what the cache must store when RoPE is fused in).
Tensor<float> rotated(const Tensor<float>& key, int64_t start, const attn::RopeOptions& rope) {
  const Tensor<float> k4 = key.reshape({1, key.size(0), key.size(1), key.size(2)});
  return attn::apply_rope(k4, start, rope).select(0, 0);
}

void op_append(FuzzedDataProvider& in, KVCache& cache, Model& model, bool whole_batch) {
  const KVCacheConfig& c = cache.config();
  const int64_t layer = in.ConsumeIntegralInRange<int64_t>(-1, c.num_layers);  // out of range sometimes
  const int64_t b = whole_batch ? 0 : in.ConsumeIntegralInRange<int64_t>(-1, c.batch);
  const int64_t n = in.ConsumeIntegralInRange<int64_t>(0, in.ConsumeBool() ? 2 : 20);
  const bool bad_shape = in.ConsumeIntegralInRange<int>(0, 15) == 0;
  const bool finite_only = c.storage == KVStorage::Int8 ? in.ConsumeIntegralInRange<int>(0, 7) != 0 : in.ConsumeBool();
  const int64_t Dk = c.head_dim + (bad_shape ? 1 : 0), Dv = value_dim(c);
  const auto rope = draw_rope(in, c.head_dim);
  attn_fuzz::trace() += std::string("append(layer ") + std::to_string(layer) +
                        (whole_batch ? "" : ", b " + std::to_string(b)) + ", " + std::to_string(n) + " tokens" +
                        (rope ? ", RoPE rotary_dim " + std::to_string(rope->rotary_dim) + " theta " +
                                    std::to_string(rope->theta)
                              : std::string()) +
                        ")\n";
  Tensor<float> key, value;
  if (whole_batch) {
    key = attn_fuzz::draw_tensor(in, {c.batch, c.num_kv_heads, n, Dk}, !finite_only, "key");
    value = attn_fuzz::draw_tensor(in, {c.batch, c.num_kv_heads, n, Dv}, !finite_only, "value");
  } else {
    key = attn_fuzz::draw_tensor(in, {c.num_kv_heads, n, Dk}, !finite_only, "key");
    value = attn_fuzz::draw_tensor(in, {c.num_kv_heads, n, Dv}, !finite_only, "value");
  }
  const bool refused = throws_attn_error([&] {
    if (whole_batch)
      rope ? cache.append(layer, key, value, *rope) : cache.append(layer, key, value);
    else
      rope ? cache.append(layer, b, key, value, *rope) : cache.append(layer, b, key, value);
  });
  if (refused) {
    attn_fuzz::trace() += "  refused\n";
    check_lengths_unchanged(cache, model);
    return;
  }
  if (bad_shape || layer < 0 || layer >= c.num_layers || (!whole_batch && (b < 0 || b >= c.batch)))
    fuzz_fail("an append with a bad shape, layer or batch index was accepted");
  for (int64_t s = 0; s < (whole_batch ? c.batch : 1); ++s) {
    const int64_t seq = whole_batch ? s : b;
    Sequence& m = model.layers[layer][seq];
    Tensor<float> k = whole_batch ? key.select(0, s) : key, v = whole_batch ? value.select(0, s) : value;
    if (rope) k = rotated(k, static_cast<int64_t>(m.keys.size()), *rope);
    model_append(m, k, v);
  }
  for (int64_t s = 0; s < c.batch; ++s) check_storage(cache, model, layer, s);
}

void op_decode(FuzzedDataProvider& in, const KVCache& cache) {
  const KVCacheConfig& c = cache.config();
  const int64_t layer = in.ConsumeIntegralInRange<int64_t>(0, std::max<int64_t>(c.num_layers - 1, 0));
  const int64_t group = in.ConsumeIntegralInRange<int64_t>(1, 3), Hq = c.num_kv_heads * group;
  const int64_t Lq = in.ConsumeIntegralInRange<int64_t>(in.ConsumeBool() ? 1 : 0, 4);
  SdpaOptions<float> o;
  o.enable_gqa = Hq != c.num_kv_heads || in.ConsumeBool();
  o.is_causal = in.ConsumeBool();
  o.causal_alignment = in.ConsumeIntegralInRange<int>(0, 3) != 0 ? attn::CausalAlignment::BottomRight
                                                                  : attn::CausalAlignment::TopLeft;
  if (in.ConsumeBool()) o.window_left = in.ConsumeIntegralInRange<int64_t>(-1, 60);
  if (in.ConsumeBool()) o.window_right = in.ConsumeIntegralInRange<int64_t>(-1, 10);
  if (in.ConsumeBool()) {
    o.alibi_slopes = in.ConsumeBool() ? Tensor<float>({Hq}) : Tensor<float>({c.batch, Hq});
    for (int64_t n = 0; n < o.alibi_slopes.numel(); ++n)
      o.alibi_slopes.flat(n) = static_cast<float>(in.ConsumeIntegralInRange<int>(0, 100)) * 3e-3f;
  }
  if (in.ConsumeBool()) o.softcap = in.ConsumeFloatingPointInRange<double>(0.5, 20.0);
  if (in.ConsumeBool()) o.sinks = attn_fuzz::draw_tensor(in, {Hq}, false);
  if (in.ConsumeBool()) o.scale = in.ConsumeFloatingPointInRange<double>(0.01, 2.0);
  switch (in.ConsumeIntegralInRange<int>(0, 15)) {  // options the decode step refuses, sometimes
    case 1: o.dropout_p = 0.1; break;
    case 2: o.return_weights = true; break;
    case 3: o.bool_mask = Tensor<bool>({Lq, 1}); break;
    case 4: o.window_left = -3; break;
    default: break;
  }
  static constexpr int64_t kSplits[] = {0, 0, 1, 3, 8, 64, -1};
  const int64_t split = kSplits[in.ConsumeIntegralInRange<size_t>(0, std::size(kSplits) - 1)];
  const auto rope = draw_rope(in, c.head_dim);
  attn::set_num_threads(in.ConsumeIntegralInRange<int>(1, 3));
  attn_fuzz::trace() += "decode(layer " + std::to_string(layer) + ", Hq " + std::to_string(Hq) + ", Lq " +
                        std::to_string(Lq) + (o.is_causal ? ", causal" : "") +
                        (o.causal_alignment == attn::CausalAlignment::TopLeft ? " top-left" : " bottom-right") +
                        ", window (" + std::to_string(o.window_left) + ", " + std::to_string(o.window_right) + ")" +
                        (o.alibi_slopes.defined() ? ", ALiBi" : "") +
                        (o.softcap > 0 ? ", softcap " + std::to_string(o.softcap) : std::string()) +
                        (o.sinks.defined() ? ", sinks" : "") +
                        (o.scale ? ", scale " + std::to_string(*o.scale) : std::string()) + ", split " +
                        std::to_string(split) + (rope ? ", RoPE" : "") + ")\n";
  const Tensor<float> q = attn_fuzz::draw_tensor(in, {c.batch, Hq, Lq, c.head_dim}, true, "query");

  attn::SdpaResult<float> got;
  if (throws_attn_error([&] { got = rope ? attn::attention_decode(q, cache, layer, o, *rope, split)
                                         : attn::attention_decode(q, cache, layer, o, split); }))
    return;
  // The query rows as the step rotates them (the newest Lq positions).
  Tensor<float> q_used = q;
  if (rope) {
    q_used = Tensor<float>(q.shape());
    for (int64_t b = 0; b < c.batch; ++b) {
      const Tensor<float> r = attn::apply_rope(q.slice(0, b, b + 1), cache.length(layer, b) - Lq, *rope);
      q_used.slice(0, b, b + 1).copy_(r);
    }
  }
  attn::SdpaResult<float> ref;
  try {
    ref = attn::attention_decode_reference(q_used, cache, layer, o);
  } catch (const attn::Error& e) {
    fuzz_fail(std::string("attention_decode accepted what attention_decode_reference refuses: ") + e.what());
  }
  const int64_t Dv = value_dim(c);
  Tensor<double> exact_out({c.batch, Hq, Lq, Dv}), exact_lse({c.batch, Hq, Lq});
  const SdpaOptions<double> o64 = attn_test::to_double(o);
  for (int64_t b = 0; b < c.batch; ++b) {
    SdpaOptions<double> ob = o64;
    if (ob.alibi_slopes.defined() && ob.alibi_slopes.dim() == 2) ob.alibi_slopes = ob.alibi_slopes.slice(0, b, b + 1);
    const auto e = attn::scaled_dot_product_attention(attn_test::to_double(q_used.slice(0, b, b + 1)),
                                                      attn_test::to_double(cache.keys(layer, b)),
                                                      attn_test::to_double(cache.values(layer, b)), ob);
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t i = 0; i < Lq; ++i) {
        exact_lse(b, h, i) = e.lse(0, h, i);
        for (int64_t x = 0; x < Dv; ++x) exact_out(b, h, i, x) = e.output(0, h, i, x);
      }
  }
  // NaN/∞ among the inputs: compared only where no weight can underflow
  // (attn_fuzz::comparable_with_non_finite); the rest of the step is checked anyway.
  bool non_finite = attn_fuzz::has_non_finite(q);
  double max_key = 0;
  for (int64_t b = 0; b < c.batch; ++b) {
    non_finite = non_finite || attn_fuzz::has_non_finite(cache.keys(layer, b)) ||
                 attn_fuzz::has_non_finite(cache.values(layer, b));
    max_key = std::max(max_key, attn_fuzz::max_abs_finite(cache.keys(layer, b)));
  }
  const double scale = o.scale ? *o.scale : c.head_dim == 0 ? 1.0 : 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  double bound = o.softcap > 0 ? o.softcap : attn_fuzz::max_abs_finite(q) * max_key * c.head_dim * scale;
  bound += attn_fuzz::max_abs_finite(o.alibi_slopes) * c.capacity + attn_fuzz::max_abs_finite(o.sinks);
  if (attn_fuzz::large_values() || (non_finite && !attn_fuzz::comparable_with_non_finite(bound))) return;
  std::string failures = attn_test::check_accurate(got.output, ref.output, exact_out, kFloor, "output", g_stats);
  failures += attn_test::check_accurate(got.lse, ref.lse, exact_lse, kFloor, "lse", g_stats);
  if (!failures.empty()) fuzz_fail("attention_decode (layer " + std::to_string(layer) + "):\n" + failures);
}

void op_clear(FuzzedDataProvider& in, KVCache& cache, Model& model) {
  const KVCacheConfig& c = cache.config();
  if (in.ConsumeBool()) {
    attn_fuzz::trace() += "clear()\n";
    cache.clear();
    for (auto& layer : model.layers)
      for (auto& seq : layer) seq = {};
  } else {
    const int64_t b = in.ConsumeIntegralInRange<int64_t>(-1, c.batch);
    attn_fuzz::trace() += "clear(" + std::to_string(b) + ")\n";
    if (throws_attn_error([&] { cache.clear(b); })) {
      if (b >= 0 && b < c.batch) fuzz_fail("clear(" + std::to_string(b) + ") refused a valid index");
      return;
    }
    if (b < 0 || b >= c.batch) fuzz_fail("clear(" + std::to_string(b) + ") accepted a bad index");
    for (auto& layer : model.layers) layer[b] = {};
  }
  for (int64_t layer = 0; layer < c.num_layers; ++layer)
    for (int64_t b = 0; b < c.batch; ++b) check_storage(cache, model, layer, b);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  attn_fuzz::trace().clear();
  attn_fuzz::large_values() = in.ConsumeIntegralInRange<int>(0, 3) == 3;  // see attn_fuzz::large_values
  const auto config = draw_config(in);
  attn_fuzz::trace() += std::string(attn_fuzz::large_values() ? "large values; " : "unit values; ") + "KVCache(num_layers " + std::to_string(config.num_layers) + ", batch " +
                        std::to_string(config.batch) + ", num_kv_heads " + std::to_string(config.num_kv_heads) +
                        ", capacity " + std::to_string(config.capacity) + ", head_dim " +
                        std::to_string(config.head_dim) + ", value_dim " + std::to_string(config.value_dim) +
                        ", page_size " + std::to_string(config.page_size) + ", num_pages " +
                        std::to_string(config.num_pages) + ", window_tokens " + std::to_string(config.window_tokens) +
                        ", " + attn::to_string(config.storage) + ", quant_group " +
                        std::to_string(config.quant_group) + ")\n";
  std::optional<KVCache> cache;
  if (throws_attn_error([&] { cache.emplace(config); })) return 0;
  const KVCacheConfig& c = cache->config();
  if (c.capacity < 0 || c.num_layers < 0 || c.batch < 0 || c.num_kv_heads < 0)
    fuzz_fail("a configuration with a negative size was accepted");
  // A huge head_dim is accepted when the cache holds nothing (no layers,
  // batch or heads). Its appends and decodes would need this harness to
  // allocate inputs that wide, so the input ends at the construction, which
  // is what the huge sizes test.
  if (c.head_dim > 4096 || value_dim(c) > 4096) return 0;
  Model model;
  model.layers.assign(static_cast<size_t>(c.num_layers), std::vector<Sequence>(static_cast<size_t>(c.batch)));
  for (int op = 0; op < 32 && in.remaining_bytes() > 0; ++op) {
    switch (in.ConsumeIntegralInRange<int>(0, 5)) {
      case 0: case 1: op_append(in, *cache, model, true); break;
      case 2: op_append(in, *cache, model, false); break;
      case 3: case 4: op_decode(in, *cache); break;
      default: op_clear(in, *cache, model); break;
    }
  }
  attn::set_num_threads(0);
  return 0;
}
