// decode_bench — one decode step (1 new query token) against a long KV cache,
// the shapes of issue 8, each beside a plain multi-threaded streaming read of
// as many bytes measured just before it, so that "% of read" compares two
// measurements taken under the same machine load.
//
//   bytes of a step = K + V as stored = 2 · B · Hkv · L · d · (4 float32,
//   2 bfloat16, 1 int8 + 4/32 for its per-channel scales) (the queries,
//   outputs and partials are < 0.1% of it). GQA reads Hkv heads, not Hq: the
//   query heads of a group share each key row they read.
//
// Benchmarks, for each shape (Hq/Hkv = 32/32 and 32/8, L = 16384, d = 128):
//   BM_Decode/.../kv:f32|bf16|int8  attn::attention_decode (split-KV kernel,
//                     src/cpu/decode*) on a float32, bfloat16 or int8 cache
//   BM_FlashDecode    the prefill kernel's own few-rows path on the float32
//                     views (src/cpu/flash_attention*, parallel over KV heads only)
//   BM_RopeStep       a step with RoPE: apply_rope passes vs RoPE fused into
//                     KVCache::append and attention_decode (see below)
// Every iteration first reads a buffer of the step's byte count plainly — a
// sum of every float on --threads threads (the project's pool, 64 ranges,
// 8 vector accumulators) — then runs the kernel, each timed alone. Counters: GB/s (the kernel),
// read_GB/s (the reads), %read = Σ read time / Σ kernel time, tokens/s.
//   build/release/bench/decode_bench --benchmark_min_time=1 --benchmark_repetitions=5
//   ... --threads=1
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "attn/kv_cache.hpp"
#include "attn/rope.hpp"
#include "attn/sdpa.hpp"
#include "attn/threading.hpp"
#include "cpu/decode.hpp"
#include "cpu/flash_attention.hpp"
#include "cpu/parallel.hpp"

namespace {

int g_threads = 2;

struct Shape {
  int64_t Hq, Hkv, L, d;
  attn::KVStorage storage = attn::KVStorage::Float32;
  std::string name() const {
    static const char* kv[] = {"f32", "bf16", "int8"};
    return "Hq:" + std::to_string(Hq) + "/Hkv:" + std::to_string(Hkv) + "/L:" + std::to_string(L) +
           "/d:" + std::to_string(d) + "/kv:" + kv[static_cast<int>(storage)];
  }
  // What a step reads: the cache's bytes per token (scales included) × L.
  double bytes() const {
    attn::KVCache one({.num_kv_heads = Hkv, .capacity = 0, .head_dim = d, .storage = storage});
    return static_cast<double>(one.bytes_per_token()) * static_cast<double>(L);
  }
};

// One cache per shape, filled once (its contents do not change the timing),
// and a float buffer of the same byte count for the plain read.
struct Setup {
  attn::KVCache cache;
  attn::Tensor<float> query;  // [1, Hq, 1, d]
  std::vector<float> yardstick;
  explicit Setup(const Shape& s)
      : cache({.batch = 1, .num_kv_heads = s.Hkv, .capacity = s.L, .head_dim = s.d, .storage = s.storage}),
        query({1, s.Hq, 1, s.d}),
        yardstick(static_cast<size_t>(s.bytes() / 4 / 4096) * 4096, 1.0f) {
    std::mt19937 gen(1);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    const int64_t piece = 512;
    attn::Tensor<float> k({1, s.Hkv, piece, s.d}), v({1, s.Hkv, piece, s.d});
    for (int64_t n = 0; n < k.numel(); ++n) k.data()[n] = dist(gen), v.data()[n] = dist(gen);
    for (int64_t t = 0; t < s.L; t += piece) cache.append(0, k, v);
    for (int64_t n = 0; n < query.numel(); ++n) query.data()[n] = dist(gen);
  }
};

Setup& setup_for(const Shape& s) {
  static std::vector<std::pair<std::string, Setup*>> all;
  for (auto& [name, p] : all)
    if (name == s.name()) return *p;
  all.emplace_back(s.name(), new Setup(s));  // kept for the whole run
  return *all.back().second;
}

// ---- the yardstick: a plain streaming read --------------------------------------------
typedef float V8 __attribute__((vector_size(32)));  // 8 floats; 2 SSE registers without AVX

struct ReadCtx {
  const float* k;
  const float* v;
  int64_t floats;    // of K (= of V)
  int64_t pieces;    // per buffer
  float sums[128];   // one per item, so the reads cannot be optimised away
};

void read_piece(void* ctx_ptr, int64_t item, int) {
  ReadCtx& c = *static_cast<ReadCtx*>(ctx_ptr);
  const float* base = item < c.pieces ? c.k : c.v;
  const int64_t p = item % c.pieces, per = c.floats / c.pieces;
  const V8* x = reinterpret_cast<const V8*>(base + p * per);
  V8 a0 = {}, a1 = {}, a2 = {}, a3 = {}, a4 = {}, a5 = {}, a6 = {}, a7 = {};
  for (int64_t i = 0; i + 8 <= per / 8; i += 8) {
    a0 += x[i], a1 += x[i + 1], a2 += x[i + 2], a3 += x[i + 3];
    a4 += x[i + 4], a5 += x[i + 5], a6 += x[i + 6], a7 += x[i + 7];
  }
  const V8 s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
  c.sums[item] = s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

// Times one plain read of the cache's K and V on g_threads threads.
double timed_read(ReadCtx& c) {
  const auto t0 = std::chrono::steady_clock::now();
  attn::cpu::parallel_for(2 * c.pieces, g_threads, &read_piece, &c);
  benchmark::DoNotOptimize(c.sums);
  benchmark::ClobberMemory();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Every iteration: a plain read of the cache, then the kernel, each timed on
// its own; the iteration time Google Benchmark reports is the kernel's alone
// (manual time). The read just before each kernel run sees the same machine
// load, so the ratio of their sums is a fair comparison on a shared machine.
template <class Kernel>
void run_paired(benchmark::State& state, const Shape& s, Kernel kernel) {
  Setup& st = setup_for(s);
  const int64_t half = static_cast<int64_t>(st.yardstick.size()) / 2;
  ReadCtx c{st.yardstick.data(), st.yardstick.data() + half, half, 32, {}};
  timed_read(c);  // warm-up: pages, pool threads, workspaces
  kernel();
  double read_time = 0, kernel_time = 0;
  for (auto _ : state) {
    read_time += timed_read(c);
    const auto t0 = std::chrono::steady_clock::now();
    kernel();
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    kernel_time += t;
    state.SetIterationTime(t);
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["GB/s"] = s.bytes() * n / kernel_time * 1e-9;
  state.counters["read_GB/s"] = s.bytes() * n / read_time * 1e-9;
  state.counters["%read"] = 100.0 * read_time / kernel_time;
  state.counters["tokens/s"] = n / kernel_time;
}

attn::SdpaOptions<float> decode_options(const Shape& s) {
  attn::SdpaOptions<float> o;
  o.enable_gqa = s.Hq != s.Hkv;
  o.is_causal = true;
  o.causal_alignment = attn::CausalAlignment::BottomRight;
  return o;
}

void bm_decode(benchmark::State& state, Shape s) {
  attn::set_num_threads(g_threads);
  Setup& st = setup_for(s);
  const auto o = decode_options(s);
  run_paired(state, s, [&] {
    auto r = attn::attention_decode(st.query, st.cache, 0, o);
    benchmark::DoNotOptimize(r.output.data());
  });
  state.SetLabel(attn::cpu::decode_simd_target() + " chunk " +
                 std::to_string(attn::cpu::auto_split_keys(1, s.Hkv, s.L)));
}

void bm_flash_decode(benchmark::State& state, Shape s) {
  attn::set_num_threads(g_threads);
  Setup& st = setup_for(s);
  const auto o = decode_options(s);
  const auto k = st.cache.keys(0, 0), v = st.cache.values(0, 0);
  attn::Tensor<float> out({1, s.Hq, 1, s.d}), lse({1, s.Hq, 1});
  run_paired(state, s, [&] {
    attn::cpu::flash_attention_forward(st.query, k, v, o, out, lse);
    benchmark::DoNotOptimize(out.data());
  });
}

// ---- RoPE: separate passes vs fused into append and decode -----------------------------
// One generation step of Lq new tokens at L ≈ 4096, 32/8 heads, d = 128:
//   separate: q' = apply_rope(q), k' = apply_rope(k), cache.append(k', v), attention_decode(q')
//   fused:    cache.append(k, v, rope), attention_decode(q, ..., rope)
// The cache grows by Lq per iteration (a fixed iteration count keeps it in capacity).
constexpr int64_t kRopeIterations = 200;

void bm_rope_step(benchmark::State& state, int64_t Lq, bool fused) {
  attn::set_num_threads(g_threads);
  const int64_t Hq = 32, Hkv = 8, L = 4096, d = 128;
  attn::KVCache cache({.num_kv_heads = Hkv, .capacity = L + (kRopeIterations + 1) * Lq, .head_dim = d});
  std::mt19937 gen(2);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  auto random = [&](const attn::Shape& shape) {
    attn::Tensor<float> t(shape);
    for (int64_t n = 0; n < t.numel(); ++n) t.data()[n] = dist(gen);
    return t;
  };
  const attn::RopeOptions rope;
  cache.append(0, random({1, Hkv, L, d}), random({1, Hkv, L, d}), rope);
  const attn::Tensor<float> q = random({1, Hq, Lq, d}), k = random({1, Hkv, Lq, d}), v = random({1, Hkv, Lq, d});
  attn::SdpaOptions<float> o;
  o.enable_gqa = true;
  o.is_causal = true;
  o.causal_alignment = attn::CausalAlignment::BottomRight;
  for (auto _ : state) {
    if (fused) {
      cache.append(0, k, v, rope);
      auto r = attn::attention_decode(q, cache, 0, o, rope);
      benchmark::DoNotOptimize(r.output.data());
    } else {
      const int64_t start = cache.length(0, 0);
      cache.append(0, attn::apply_rope(k, start, rope), v);
      auto r = attn::attention_decode(attn::apply_rope(q, start, rope), cache, 0, o);
      benchmark::DoNotOptimize(r.output.data());
    }
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(Lq), benchmark::Counter::kIsIterationInvariantRate);
}

void register_benchmarks() {
  for (int64_t Lq : {1, 16})
    for (bool fused : {false, true})
      benchmark::RegisterBenchmark(("BM_RopeStep/Lq:" + std::to_string(Lq) + (fused ? "/fused" : "/separate")).c_str(),
                                   bm_rope_step, Lq, fused)
          ->Unit(benchmark::kMicrosecond)
          ->Iterations(kRopeIterations);
  for (const Shape& base : {Shape{32, 32, 16384, 128}, Shape{32, 8, 16384, 128}}) {
    for (attn::KVStorage storage : {attn::KVStorage::Float32, attn::KVStorage::BFloat16, attn::KVStorage::Int8}) {
      Shape s = base;
      s.storage = storage;
      benchmark::RegisterBenchmark(("BM_Decode/" + s.name()).c_str(), bm_decode, s)
          ->Unit(benchmark::kMillisecond)
          ->UseManualTime();
    }
    benchmark::RegisterBenchmark(("BM_FlashDecode/" + base.name()).c_str(), bm_flash_decode, base)
        ->Unit(benchmark::kMillisecond)
        ->UseManualTime();
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0)
      g_threads = std::max(1, std::atoi(argv[i] + 10));
    else
      args.push_back(argv[i]);
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;
  register_benchmarks();
  std::printf("threads: %d   SIMD target: %s\n", g_threads, attn::cpu::decode_simd_target().c_str());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
