// varlen_bench — a packed variable-length batch (attn::varlen_attention)
// against the same batch padded to its longest sequence and run through one
// scaled_dot_product_attention call with a key-padding mask, forward and
// forward + backward, in one run (so both see the same machine load).
//
// The batch: 8 sequences of lengths drawn uniformly from 64..1024 (fixed
// seed), Hq = Hkv = 8, d = 64, float32, not causal. The padded call computes
// every padded query row and reads every padded key's mask entry; the packed
// call does neither, so the expected ratio is about Σ L_b² / (B · Lmax²).
//   build/release/bench/varlen_bench --benchmark_min_time=1 [--threads=N]
// Public API only.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "attn/sdpa.hpp"
#include "attn/threading.hpp"
#include "attn/varlen.hpp"

namespace {

using attn::Tensor;

constexpr int64_t kBatch = 8, kHeads = 8, kDim = 64;

Tensor<float> random_tensor(const attn::Shape& shape, uint32_t seed) {
  Tensor<float> t(shape);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (int64_t n = 0; n < t.numel(); ++n) t.data()[n] = dist(gen);
  return t;
}

struct Workload {
  std::vector<int64_t> lengths;
  int64_t total = 0, max_len = 0;
  Tensor<int32_t> cu;
  Tensor<float> q, k, v, dout;          // packed [total, H, D]
  Tensor<float> pq, pk, pv, pdout;      // padded [B, H, Lmax, D]
  Tensor<bool> key_padding;             // [B, 1, 1, Lmax], True = a real key (attend)

  Workload() {
    std::mt19937 gen(2026);
    std::uniform_int_distribution<int64_t> len(64, 1024);
    for (int64_t b = 0; b < kBatch; ++b) lengths.push_back(len(gen));
    max_len = *std::max_element(lengths.begin(), lengths.end());
    cu = Tensor<int32_t>({kBatch + 1});
    for (int64_t b = 0; b < kBatch; ++b) cu(b + 1) = static_cast<int32_t>(cu(b) + lengths[b]);
    total = cu(kBatch);
    q = random_tensor({total, kHeads, kDim}, 1), k = random_tensor({total, kHeads, kDim}, 2);
    v = random_tensor({total, kHeads, kDim}, 3), dout = random_tensor({total, kHeads, kDim}, 4);
    pq = Tensor<float>({kBatch, kHeads, max_len, kDim}), pk = Tensor<float>({kBatch, kHeads, max_len, kDim});
    pv = Tensor<float>({kBatch, kHeads, max_len, kDim}), pdout = Tensor<float>({kBatch, kHeads, max_len, kDim});
    key_padding = Tensor<bool>({kBatch, 1, 1, max_len});
    for (int64_t b = 0; b < kBatch; ++b) {
      const int64_t s = cu(b), L = lengths[b];
      auto pad = [&](const Tensor<float>& packed, const Tensor<float>& padded) {
        padded.slice(0, b, b + 1).slice(2, 0, L).copy_(
            packed.slice(0, s, s + L).transpose(0, 1).expand({1, kHeads, L, kDim}));
      };
      pad(q, pq), pad(k, pk), pad(v, pv), pad(dout, pdout);
      for (int64_t j = 0; j < L; ++j) key_padding(b, 0, 0, j) = true;
    }
  }
  double packed_flops() const {  // 4·H·L²·d per sequence (forward)
    double f = 0;
    for (int64_t L : lengths) f += 4.0 * kHeads * static_cast<double>(L) * static_cast<double>(L) * kDim;
    return f;
  }
  double padded_flops() const { return 4.0 * kBatch * kHeads * static_cast<double>(max_len * max_len) * kDim; }
};

const Workload& workload() {
  static const Workload w;
  return w;
}

attn::SdpaOptions<float> padded_options() {
  attn::SdpaOptions<float> o;
  o.bool_mask = workload().key_padding;
  return o;
}

void BM_Varlen(benchmark::State& state) {
  const Workload& w = workload();
  const bool backward = state.range(0) != 0;
  const attn::VarlenOptions<float> o;
  for (auto _ : state) {
    auto r = attn::varlen_attention(w.q, w.k, w.v, w.cu, w.cu, w.max_len, w.max_len, o);
    if (backward) {
      auto g = attn::varlen_attention_backward(w.dout, w.q, w.k, w.v, r.output, r.lse, w.cu, w.cu, w.max_len,
                                               w.max_len, o);
      benchmark::DoNotOptimize(g.d_query.data());
    }
    benchmark::DoNotOptimize(r.output.data());
  }
  // Useful work only (the padded run's counter counts the same, so the two compare).
  state.counters["GFLOP/s"] = benchmark::Counter(w.packed_flops() * (backward ? 3.5 : 1.0) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Padded(benchmark::State& state) {
  const Workload& w = workload();
  const bool backward = state.range(0) != 0;
  const attn::SdpaOptions<float> o = padded_options();
  for (auto _ : state) {
    auto r = attn::scaled_dot_product_attention(w.pq, w.pk, w.pv, o);
    if (backward) {
      auto g = attn::scaled_dot_product_attention_backward(w.pdout, w.pq, w.pk, w.pv, r.output, r.lse, o);
      benchmark::DoNotOptimize(g.d_query.data());
    }
    benchmark::DoNotOptimize(r.output.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(w.packed_flops() * (backward ? 3.5 : 1.0) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK(BM_Varlen)->ArgName("fwd_bwd")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Padded)->ArgName("fwd_bwd")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0)
      threads = std::atoi(argv[i] + 10);
    else
      rest.push_back(argv[i]);
  }
  attn::set_num_threads(threads);
  const Workload& w = workload();
  std::printf("varlen batch: %lld sequences, lengths", static_cast<long long>(kBatch));
  for (int64_t L : w.lengths) std::printf(" %lld", static_cast<long long>(L));
  std::printf(" (total %lld, max %lld); H=%lld d=%lld float32, %d threads\n", static_cast<long long>(w.total),
              static_cast<long long>(w.max_len), static_cast<long long>(kHeads), static_cast<long long>(kDim),
              threads);
  std::printf("useful fraction of the padded work: sum L^2 / (B Lmax^2) = %.3f\n", w.packed_flops() / w.padded_flops());
  int rest_argc = static_cast<int>(rest.size());
  benchmark::Initialize(&rest_argc, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
