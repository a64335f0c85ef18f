// flash_bench — the fast CPU attention forward (src/cpu/flash_attention.*)
// on the shapes of issue 4, beside OpenBLAS sgemm measured in the same run.
//
//   FLOPs of attention forward = 4·B·Hq·Lq·Lk·d (two matrix products of
//   2·Lq·Lk·d each), half of that when causal; sgemm n×n×n = 2·n³.
//
// Every benchmark reports a GFLOP/s counter; at the end a table gives each
// attention shape as a percentage of the best sgemm GFLOP/s of this run.
// Threads: attn::set_num_threads / OMP_NUM_THREADS for attention,
// openblas_set_num_threads for sgemm — both from --threads (default 2).
// Run with OPENBLAS_CORETYPE unset so OpenBLAS picks its kernel for this CPU:
//   env -u OPENBLAS_CORETYPE build/bench/flash_bench --benchmark_min_time=0.5
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "attn/sdpa.hpp"
#include "attn/threading.hpp"
#include "cpu/flash_attention.hpp"

namespace {

int g_threads = 2;

attn::Tensor<float> random_tensor(const attn::Shape& shape, uint32_t seed) {
  attn::Tensor<float> t(shape);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  float* p = t.data();
  for (int64_t n = 0; n < t.numel(); ++n) p[n] = dist(gen);
  return t;
}

// Args: B, Hq, Hkv, N, d, causal.
void BM_FlashForward(benchmark::State& state) {
  const int64_t B = state.range(0), Hq = state.range(1), Hkv = state.range(2), N = state.range(3),
                d = state.range(4);
  const bool causal = state.range(5) != 0;
  attn::set_num_threads(g_threads);
  const auto q = random_tensor({B, Hq, N, d}, 1), k = random_tensor({B, Hkv, N, d}, 2),
             v = random_tensor({B, Hkv, N, d}, 3);
  attn::SdpaOptions<float> o;
  o.is_causal = causal;
  o.enable_gqa = Hq != Hkv;
  // Outputs allocated once and reused, like the workspace: the first touch of
  // fresh pages is slow on this machine and is not what is measured here.
  attn::Tensor<float> out({B, Hq, N, d}), lse({B, Hq, N});
  attn::cpu::flash_attention_forward(q, k, v, o, out, lse);  // warm-up: workspace, caches
  for (auto _ : state) {
    attn::cpu::flash_attention_forward(q, k, v, o, out, lse);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double flops = 4.0 * B * Hq * N * N * d * (causal ? 0.5 : 1.0);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(attn::cpu::current_simd_target() + (causal ? " causal" : "") +
                 (Hq != Hkv ? " GQA " + std::to_string(Hq) + "/" + std::to_string(Hkv) : ""));
}

// Args: B, Hq, Hkv, N, d, causal. Backward FLOPs: 2.5 × forward (the
// convention of FlashAttention's papers: five products of 2·N²·d instead of two).
void BM_FlashBackward(benchmark::State& state) {
  const int64_t B = state.range(0), Hq = state.range(1), Hkv = state.range(2), N = state.range(3),
                d = state.range(4);
  const bool causal = state.range(5) != 0;
  attn::set_num_threads(g_threads);
  const auto q = random_tensor({B, Hq, N, d}, 1), k = random_tensor({B, Hkv, N, d}, 2),
             v = random_tensor({B, Hkv, N, d}, 3), dout = random_tensor({B, Hq, N, d}, 4);
  attn::SdpaOptions<float> o;
  o.is_causal = causal;
  o.enable_gqa = Hq != Hkv;
  attn::Tensor<float> out, lse;
  attn::cpu::flash_attention_forward(q, k, v, o, out, lse);
  benchmark::DoNotOptimize(attn::cpu::flash_attention_backward(dout, q, k, v, out, lse, o));  // warm-up
  for (auto _ : state) {
    auto g = attn::cpu::flash_attention_backward(dout, q, k, v, out, lse, o);
    benchmark::DoNotOptimize(g.d_query.data());
  }
  const double flops = 2.5 * 4.0 * B * Hq * N * N * d * (causal ? 0.5 : 1.0);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(attn::cpu::current_simd_target() + (causal ? " causal" : "") +
                 (Hq != Hkv ? " GQA " + std::to_string(Hq) + "/" + std::to_string(Hkv) : ""));
}

// Args: n (square n×n×n product, row-major, C = A·B).
void BM_Sgemm(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  openblas_set_num_threads(g_threads);
  const auto a = random_tensor({n, n}, 4), b = random_tensor({n, n}, 5);
  attn::Tensor<float> c({n, n});
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f,
                c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * n * n * n * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void attention_shapes(benchmark::internal::Benchmark* bm) {
  bm->ArgNames({"B", "Hq", "Hkv", "N", "d", "causal"});
  for (int causal : {0, 1}) {
    for (int64_t n : {512, 1024, 2048, 4096}) bm->Args({1, 16, 16, n, 64, causal});
    bm->Args({1, 8, 8, 2048, 128, causal});
    bm->Args({1, 32, 8, 2048, 64, causal});  // GQA: 32 query heads over 8 KV heads
  }
}

BENCHMARK(BM_Sgemm)->ArgName("n")->Arg(1024)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_FlashForward)->Apply(attention_shapes)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_FlashBackward)->Apply(attention_shapes)->Unit(benchmark::kMillisecond)->UseRealTime();
// N = 16384 takes seconds per iteration; run it with --benchmark_filter=N:16384.
BENCHMARK(BM_FlashForward)
    ->ArgNames({"B", "Hq", "Hkv", "N", "d", "causal"})
    ->Args({1, 16, 16, 16384, 64, 0})
    ->Args({1, 16, 16, 16384, 64, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(1);

// Console output as usual, plus the GFLOP/s of every run kept for the summary.
class Collecting : public benchmark::ConsoleReporter {
 public:
  std::vector<std::pair<std::string, double>> gflops;
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.run_type != Run::RT_Iteration || r.error_occurred) continue;
      const auto it = r.counters.find("GFLOP/s");
      if (it != r.counters.end()) gflops.emplace_back(r.benchmark_name() + " " + r.report_label, it->second.value);
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  // --threads=N (ours), the rest goes to Google Benchmark.
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
  std::printf("threads: %d   SIMD target: %s   OPENBLAS_CORETYPE: %s\n", g_threads,
              attn::cpu::current_simd_target().c_str(),
              std::getenv("OPENBLAS_CORETYPE") ? std::getenv("OPENBLAS_CORETYPE") : "(unset)");
  Collecting reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  double sgemm = 0;
  for (const auto& [name, g] : reporter.gflops)
    if (name.rfind("BM_Sgemm", 0) == 0) sgemm = std::max(sgemm, g);
  if (sgemm > 0) {
    std::printf("\n%-60s %10s %10s\n", "benchmark", "GFLOP/s", "% sgemm");
    for (const auto& [name, g] : reporter.gflops)
      std::printf("%-60s %10.1f %9.0f%%\n", name.c_str(), g, 100.0 * g / sgemm);
  }
  benchmark::Shutdown();
  return 0;
}
