// mla_bench — one decode step of multi-head latent attention (MLA) with
// DeepSeek-V2's sizes (128 heads, head dim 128, KV latent 512, RoPE dim 64,
// query latent 1536, d_model 5120; one layer), beside MHA, GQA and MQA of the
// same width, all at a context of --context tokens (default 4096), batch 1.
//
// Two groups of rows:
//   BM_DecodeAttention/<form>   the attention of one new token over the cache,
//       through the public scaled_dot_product_attention on the cached tensors:
//         mha          q [1,128,1,128]  K, V [1,128,T,128]
//         gqa8         q [1,128,1,128]  K, V [1,8,T,128]        (enable_gqa)
//         mqa          q [1,128,1,128]  K, V [1,1,T,128]
//         mla_naive    q [1,128,1,192]  K [1,128,T,192], V [1,128,T,128]   (expanded cache)
//         mla_absorbed q [1,128,1,576]  K [1,1,T,576],  V = K[..., :512]   (latent cache: c_KV ; k_R)
//       Counters: tokens/s, cache bytes per token (per layer, float32) and the
//       cache bytes read per second.
//   BM_MLADecoderStep/<form>    attn::MLADecoder::step for one token, the whole
//       layer (projections included: the library's Linear, on OpenBLAS at
//       these sizes), at a short context (--step-context, default 16; 8 steps,
//       the cache growing by one each), so that the row is about the
//       projections. At T = 4096 a step costs about this row plus the
//       BM_DecodeAttention row of the same form.
//
//   build/release/bench/mla_bench --benchmark_min_time=1x [--threads 2] [--context 4096]
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>

#include "attn/mla.hpp"
#include "attn/sdpa.hpp"
#include "attn/threading.hpp"

namespace {

int g_threads = 2;
int64_t g_context = 4096;
int64_t g_step_context = 16;

attn::Tensor<float> random_tensor(const attn::Shape& shape, uint32_t seed) {
  attn::Tensor<float> t(shape);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  float* p = t.data();
  for (int64_t n = 0; n < t.numel(); ++n) p[n] = dist(gen);
  return t;
}

struct Form {
  const char* name;
  int64_t Hkv, Dk, Dv;
  bool shared_kv;  // V is a view of K's first Dv dims (the MLA latent cache)
  bool heads_as_rows = false;  // q [1, 128, 1, Dk] viewed as [1, 1, 128, Dk], as MLADecoder does for one token
  int64_t cache_floats_per_token() const { return shared_kv ? Dk : Hkv * (Dk + Dv); }
};

constexpr int64_t kHeads = 128;
const Form kForms[] = {
    {"mha", 128, 128, 128, false},      {"gqa8", 8, 128, 128, false},
    {"mqa", 1, 128, 128, false},        {"mla_naive", 128, 192, 128, false},
    {"mla_absorbed", 1, 576, 512, true},
    {"mla_absorbed_rows", 1, 576, 512, true, true},
};

void BM_DecodeAttention(benchmark::State& state, Form f) {
  attn::set_num_threads(g_threads);
  const int64_t T = g_context;
  const auto q = f.heads_as_rows ? random_tensor({1, 1, kHeads, f.Dk}, 1) : random_tensor({1, kHeads, 1, f.Dk}, 1);
  const auto k = random_tensor({1, f.Hkv, T, f.Dk}, 2);
  const auto v = f.shared_kv ? k.slice(3, 0, f.Dv) : random_tensor({1, f.Hkv, T, f.Dv}, 3);
  attn::SdpaOptions<float> o;
  o.enable_gqa = !f.heads_as_rows && f.Hkv != kHeads;
  o.return_lse = false;
  // MLA's scale is 1/√(d_h + d_R) in both forms.
  if (std::string(f.name).rfind("mla", 0) == 0) o.scale = 1.0 / std::sqrt(192.0);
  for (auto _ : state) {
    auto r = attn::scaled_dot_product_attention(q, k, v, o);
    benchmark::DoNotOptimize(r.output.data());
  }
  const double bytes_per_token = static_cast<double>(f.cache_floats_per_token() * 4);
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["cache_B/token"] = bytes_per_token;
  state.counters["read_B/s"] =
      benchmark::Counter(bytes_per_token * T * state.iterations(), benchmark::Counter::kIsRate, benchmark::Counter::kIs1024);
  state.SetLabel("T=" + std::to_string(T) + " threads=" + std::to_string(g_threads));
}

attn::MultiHeadLatentAttention<float>& deepseek_layer() {
  static auto layer = [] {
    attn::Generator gen(0);
    return std::make_unique<attn::MultiHeadLatentAttention<float>>(attn::MLAConfig::deepseek_v2(), gen);
  }();
  return *layer;
}

void BM_MLADecoderStep(benchmark::State& state, attn::MLACacheForm form) {
  attn::set_num_threads(g_threads);
  auto& layer = deepseek_layer();
  const int64_t d = layer.config().d_model, T0 = g_step_context;
  constexpr int64_t kSteps = 8;  // the cache grows by one token per iteration (fixed count below)
  attn::MLADecoder<float> dec(layer, 1, T0 + kSteps, form);
  dec.step(random_tensor({1, T0, d}, 4));  // prefill T0 tokens
  const auto h = random_tensor({1, 1, d}, 5);
  for (auto _ : state) benchmark::DoNotOptimize(dec.step(h).data());
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["cache_B/token"] = static_cast<double>(dec.cache_bytes_per_token());
  state.SetLabel("T=" + std::to_string(T0 + 1) + ".." + std::to_string(dec.length()) + " threads=" + std::to_string(g_threads));
}

}  // namespace

int main(int argc, char** argv) {
  // Our own flags first (removed before Google Benchmark sees argv).
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) g_threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--context") && i + 1 < argc) g_context = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--step-context") && i + 1 < argc) g_step_context = std::atoll(argv[++i]);
    else argv[out++] = argv[i];
  }
  argc = out;
  for (const Form& f : kForms)
    benchmark::RegisterBenchmark((std::string("BM_DecodeAttention/") + f.name).c_str(), BM_DecodeAttention, f)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  benchmark::RegisterBenchmark("BM_MLADecoderStep/absorbed", BM_MLADecoderStep, attn::MLACacheForm::Absorbed)
      ->Iterations(8)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("BM_MLADecoderStep/naive", BM_MLADecoderStep, attn::MLACacheForm::Naive)
      ->Iterations(8)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
