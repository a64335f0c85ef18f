// sdpa_small_bench — the public scaled_dot_product_attention on small shapes,
// reference path against fast path (issue 4: "small shapes must not get
// slower: dispatch picks the faster path"). Forward and forward + backward,
// from the lecture's 6 tokens × 3 dims up to a GPT-2-small head block.
//
//   build/release/bench/sdpa_small_bench --benchmark_min_time=0.2s
// Each pair of lines (…/reference, …/fast) is one shape; the summary at the
// end prints fast/reference time ratios.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <random>
#include <string>

#include "attn/sdpa.hpp"
#include "attn/threading.hpp"

namespace {

attn::Tensor<float> random_tensor(const attn::Shape& shape, uint32_t seed) {
  attn::Tensor<float> t(shape);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (int64_t n = 0; n < t.numel(); ++n) t.data()[n] = dist(gen);
  return t;
}

struct Small {
  int64_t B, H, L, d;
  bool causal;
};

void run(benchmark::State& state, Small s, attn::SdpaBackend backend, bool backward) {
  attn::set_num_threads(2);
  const auto q = random_tensor({s.B, s.H, s.L, s.d}, 1), k = random_tensor({s.B, s.H, s.L, s.d}, 2),
             v = random_tensor({s.B, s.H, s.L, s.d}, 3), dout = random_tensor({s.B, s.H, s.L, s.d}, 4);
  attn::SdpaOptions<float> o;
  o.is_causal = s.causal;
  o.backend = backend;
  for (auto _ : state) {
    auto r = attn::scaled_dot_product_attention(q, k, v, o);
    benchmark::DoNotOptimize(r.output.data());
    if (backward) {
      auto g = attn::scaled_dot_product_attention_backward(dout, q, k, v, r.output, r.lse, o);
      benchmark::DoNotOptimize(g.d_query.data());
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  // B·H·L²·2d multiply-adds: 216, 288, 1024, 2048, 4096, 32768, ...
  const Small shapes[] = {{1, 1, 6, 3, false},  {1, 2, 6, 2, true},    {1, 1, 8, 8, false},
                          {1, 1, 8, 16, false}, {1, 2, 8, 16, false},  {1, 4, 16, 16, false},
                          {2, 8, 32, 32, true}, {1, 8, 64, 64, false}, {1, 12, 128, 64, true}};
  for (const Small& s : shapes)
    for (bool backward : {false, true})
      for (auto backend : {attn::SdpaBackend::Reference, attn::SdpaBackend::Fast}) {
        const std::string name = std::string(backward ? "fwd+bwd" : "fwd") + "/B:" + std::to_string(s.B) +
                                 "/H:" + std::to_string(s.H) + "/L:" + std::to_string(s.L) +
                                 "/d:" + std::to_string(s.d) + (s.causal ? "/causal" : "") + "/" +
                                 attn::to_string(backend);
        benchmark::RegisterBenchmark(name.c_str(), run, s, backend, backward)->Unit(benchmark::kMicrosecond);
      }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
