// flash_bench — the fast CPU attention kernels (src/cpu/flash_attention.*)
// on the shapes of issue 4, each beside an OpenBLAS sgemm run made just
// before it, so that "% of sgemm" compares two measurements taken under the
// same machine load (this machine is often shared).
//
//   FLOPs: attention forward = 4·B·Hq·Lq·Lk·d (two products of 2·Lq·Lk·d),
//   half when causal; backward = 2.5 × forward (FlashAttention's convention:
//   five products instead of two); sgemm n×n×n = 2·n³.
//
// Every benchmark reports a GFLOP/s counter; at the end a table gives each
// attention run as a percentage of the sgemm run paired with it.
// Threads: attn::set_num_threads for attention, openblas_set_num_threads for
// sgemm — both from --threads (default 2). Run with OPENBLAS_CORETYPE unset so
// OpenBLAS picks its kernel for this CPU:
//   env -u OPENBLAS_CORETYPE build/release/bench/flash_bench --benchmark_min_time=0.5
//   ... --benchmark_filter='N:2048/d:64/causal:1'   one shape (and its sgemm runs)
//   ... --long                                       also N = 16384
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "attn/sdpa.hpp"
#include "attn/threading.hpp"
#include "cpu/flash_attention.hpp"

namespace {

int g_threads = 2;
constexpr int kSgemmN = 2048;

attn::Tensor<float> random_tensor(const attn::Shape& shape, uint32_t seed) {
  attn::Tensor<float> t(shape);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  float* p = t.data();
  for (int64_t n = 0; n < t.numel(); ++n) p[n] = dist(gen);
  return t;
}

struct Shape {
  int64_t B, Hq, Hkv, N, d;
  bool causal;
  std::string name() const {
    return "B:" + std::to_string(B) + "/Hq:" + std::to_string(Hq) + "/Hkv:" + std::to_string(Hkv) +
           "/N:" + std::to_string(N) + "/d:" + std::to_string(d) + "/causal:" + std::to_string(causal ? 1 : 0);
  }
  std::string label() const {
    return attn::cpu::current_simd_target() + (causal ? " causal" : "") +
           (Hq != Hkv ? " GQA " + std::to_string(Hq) + "/" + std::to_string(Hkv) : "");
  }
  double forward_flops() const { return 4.0 * B * Hq * N * N * d * (causal ? 0.5 : 1.0); }
};

attn::SdpaOptions<float> options_for(const Shape& s) {
  attn::SdpaOptions<float> o;
  o.is_causal = s.causal;
  o.enable_gqa = s.Hq != s.Hkv;
  return o;
}

void flash_forward(benchmark::State& state, Shape s) {
  attn::set_num_threads(g_threads);
  const auto q = random_tensor({s.B, s.Hq, s.N, s.d}, 1), k = random_tensor({s.B, s.Hkv, s.N, s.d}, 2),
             v = random_tensor({s.B, s.Hkv, s.N, s.d}, 3);
  const auto o = options_for(s);
  // Outputs allocated once and reused, like the workspace: the first touch of
  // fresh pages is slow on this machine and is not what is measured here.
  attn::Tensor<float> out({s.B, s.Hq, s.N, s.d}), lse({s.B, s.Hq, s.N});
  attn::cpu::flash_attention_forward(q, k, v, o, out, lse);  // warm-up: workspace, caches
  for (auto _ : state) {
    attn::cpu::flash_attention_forward(q, k, v, o, out, lse);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(s.forward_flops() * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(s.label());
}

void flash_backward(benchmark::State& state, Shape s) {
  attn::set_num_threads(g_threads);
  const auto q = random_tensor({s.B, s.Hq, s.N, s.d}, 1), k = random_tensor({s.B, s.Hkv, s.N, s.d}, 2),
             v = random_tensor({s.B, s.Hkv, s.N, s.d}, 3), dout = random_tensor({s.B, s.Hq, s.N, s.d}, 4);
  const auto o = options_for(s);
  attn::Tensor<float> out, lse;
  attn::cpu::flash_attention_forward(q, k, v, o, out, lse);
  benchmark::DoNotOptimize(attn::cpu::flash_attention_backward(dout, q, k, v, out, lse, o));  // warm-up
  for (auto _ : state) {
    auto g = attn::cpu::flash_attention_backward(dout, q, k, v, out, lse, o);
    benchmark::DoNotOptimize(g.d_query.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.5 * s.forward_flops() * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(s.label());
}

// Square n×n×n product, row-major, C = A·B: the machine's matmul yardstick.
void sgemm(benchmark::State& state, int n) {
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

std::vector<Shape> issue_shapes(bool long_runs) {
  std::vector<Shape> shapes;
  for (bool causal : {false, true}) {
    for (int64_t n : {512, 1024, 2048, 4096}) shapes.push_back({1, 16, 16, n, 64, causal});
    shapes.push_back({1, 8, 8, 2048, 128, causal});
    shapes.push_back({1, 32, 8, 2048, 64, causal});  // GQA: 32 query heads over 8 KV heads
    if (long_runs) shapes.push_back({1, 16, 16, 16384, 64, causal});
  }
  return shapes;
}

// Each attention benchmark is registered right after an sgemm run whose name
// carries the attention's, so a --benchmark_filter on the shape keeps the pair.
void register_benchmarks(bool long_runs) {
  for (const char* pass : {"Forward", "Backward"})
    for (const Shape& s : issue_shapes(long_runs)) {
      const std::string attn_name = std::string("BM_Flash") + pass + "/" + s.name();
      benchmark::RegisterBenchmark(("BM_Sgemm/n:" + std::to_string(kSgemmN) + "/for:" + attn_name).c_str(), sgemm,
                                   kSgemmN)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
      auto* b = pass[0] == 'F' ? benchmark::RegisterBenchmark(attn_name.c_str(), flash_forward, s)
                               : benchmark::RegisterBenchmark(attn_name.c_str(), flash_backward, s);
      b->Unit(benchmark::kMillisecond)->UseRealTime();
      if (s.N >= 16384) b->Iterations(1);  // seconds per iteration
    }
}

// Console output as usual, plus every GFLOP/s kept for the summary.
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
  // --threads=N and --long are ours; the rest goes to Google Benchmark.
  std::vector<char*> args;
  bool long_runs = false;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0)
      g_threads = std::max(1, std::atoi(argv[i] + 10));
    else if (std::strcmp(argv[i], "--long") == 0)
      long_runs = true;
    else
      args.push_back(argv[i]);
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;
  register_benchmarks(long_runs);
  std::printf("threads: %d   SIMD target: %s   OPENBLAS_CORETYPE: %s\n", g_threads,
              attn::cpu::current_simd_target().c_str(),
              std::getenv("OPENBLAS_CORETYPE") ? std::getenv("OPENBLAS_CORETYPE") : "(unset)");
  Collecting reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  std::printf("\n%-72s %9s %13s\n", "attention benchmark", "GFLOP/s", "% its sgemm");
  double paired_sgemm = 0;
  for (const auto& [name, g] : reporter.gflops) {
    if (name.rfind("BM_Sgemm", 0) == 0) {
      paired_sgemm = g;
      continue;
    }
    std::printf("%-72s %9.1f %12.0f%%\n", name.c_str(), g, paired_sgemm > 0 ? 100.0 * g / paired_sgemm : 0.0);
  }
  benchmark::Shutdown();
  return 0;
}
