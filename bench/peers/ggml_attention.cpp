// ggml_attention — a peer for bench/compare_torch.py and bench/compare_decode.py,
// not part of attn: one attention forward through ggml's CPU flash attention,
// ggml_flash_attn_ext, the operation llama.cpp runs for attention when flash
// attention is on. Batch 1, Hq query heads over Hkv KV heads (ggml
// broadcasts the KV heads: GQA), Lq queries against Lk keys, head size d,
// scale 1/sqrt(d), float32 precision, K/V stored as f32, f16 (llama.cpp's
// default cache type) or q8_0; the mask is
//   none    no mask tensor (every query sees every key)
//   zeros   an all-zero F16 mask (what llama.cpp passes to a decode step)
//   causal  an F16 mask with −∞ where key j > query i + (Lk − Lq): causal,
//           bottom-right aligned (top-left too when Lq = Lk)
// Timing: 2 warm-up runs, then runs of ggml_graph_compute (one plan, one
// work buffer) on `threads` threads until at least `min_reps` runs and
// `min_time` seconds.
//
// ggml is not a dependency of attn and nothing here builds it. With a ggml
// (github.com/ggml-org/ggml, or llama.cpp's ggml/) built by its own CMake
// (Release, GGML_NATIVE=ON) in $GGML with its build in $GGML/build, one line:
//   g++ -O2 -std=c++17 bench/peers/ggml_attention.cpp -I$GGML/include -L$GGML/build/src
//       -lggml -lggml-base -lggml-cpu -Wl,-rpath,$GGML/build/src -o build/ggml_attention
//   build/ggml_attention 32 8 1 16384 128 f16 zeros 2 20 1.0
// Prints one JSON line: median and min ms, bytes of K + V as stored, and how
// much the first run grew the peak resident set beyond the output (MiB).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../peak_rss.hpp"  // bench/peak_rss.hpp
#include "ggml-cpu.h"
#include "ggml.h"

namespace {

int usage(const char* why) {
  std::fprintf(stderr, "ggml_attention: %s\nusage: ggml_attention Hq Hkv Lq Lk d f32|f16|q8_0 none|zeros|causal "
               "threads min_reps min_time\n", why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 11) return usage("expected 10 arguments");
  const int64_t Hq = std::atoll(argv[1]), Hkv = std::atoll(argv[2]), Lq = std::atoll(argv[3]),
                Lk = std::atoll(argv[4]), d = std::atoll(argv[5]);
  const std::string type_name = argv[6], mask_kind = argv[7];
  const int threads = std::atoi(argv[8]), min_reps = std::atoi(argv[9]);
  const double min_time = std::atof(argv[10]);
  if (Hq < 1 || Hkv < 1 || Hq % Hkv != 0 || Lq < 1 || Lk < 1 || d < 1 || threads < 1 || min_reps < 1)
    return usage("sizes, threads and min_reps must be positive, Hq a multiple of Hkv");
  if (type_name != "f32" && type_name != "f16" && type_name != "q8_0") return usage("type must be f32, f16 or q8_0");
  if (mask_kind != "none" && mask_kind != "zeros" && mask_kind != "causal")
    return usage("mask must be none, zeros or causal");
  const ggml_type type = type_name == "f32" ? GGML_TYPE_F32 : type_name == "f16" ? GGML_TYPE_F16 : GGML_TYPE_Q8_0;
  if (type == GGML_TYPE_Q8_0 && d % 32 != 0) return usage("q8_0 needs d a multiple of 32 (its block size)");

  const size_t kv_bytes = ggml_row_size(type, d) * Lk * Hkv;
  const size_t q_bytes = sizeof(float) * d * Lq * Hq, mask_bytes = sizeof(ggml_fp16_t) * Lk * Lq;
  ggml_init_params ip = {2 * kv_bytes + 2 * q_bytes + mask_bytes + (size_t(64) << 20), nullptr, false};
  ggml_context* ctx = ggml_init(ip);
  ggml_tensor* q = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, d, Lq, Hq, 1);
  ggml_tensor* k = ggml_new_tensor_4d(ctx, type, d, Lk, Hkv, 1);
  ggml_tensor* v = ggml_new_tensor_4d(ctx, type, d, Lk, Hkv, 1);
  ggml_tensor* m = mask_kind == "none" ? nullptr : ggml_new_tensor_4d(ctx, GGML_TYPE_F16, Lk, Lq, 1, 1);

  std::mt19937 gen(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  float* qd = static_cast<float*>(q->data);
  for (int64_t i = 0; i < d * Lq * Hq; ++i) qd[i] = nd(gen);
  std::vector<float> buf(static_cast<size_t>(d * Lk * Hkv));
  for (ggml_tensor* t : {k, v}) {
    for (auto& x : buf) x = nd(gen);
    if (type == GGML_TYPE_F32) std::memcpy(t->data, buf.data(), buf.size() * sizeof(float));
    else if (type == GGML_TYPE_F16) ggml_fp32_to_fp16_row(buf.data(), static_cast<ggml_fp16_t*>(t->data), buf.size());
    else ggml_quantize_chunk(type, buf.data(), t->data, 0, Lk * Hkv, d, nullptr);
  }
  if (m) {
    auto* md = static_cast<ggml_fp16_t*>(m->data);
    const ggml_fp16_t zero = ggml_fp32_to_fp16(0.0f), hidden = ggml_fp32_to_fp16(-INFINITY);
    for (int64_t i = 0; i < Lq; ++i)
      for (int64_t j = 0; j < Lk; ++j)
        md[i * Lk + j] = (mask_kind == "causal" && j > i + (Lk - Lq)) ? hidden : zero;
  }

  ggml_tensor* out = ggml_flash_attn_ext(ctx, q, k, v, m, 1.0f / std::sqrt(float(d)), 0.0f, 0.0f);
  ggml_flash_attn_ext_set_prec(out, GGML_PREC_F32);
  ggml_cgraph* gf = ggml_new_graph(ctx);
  ggml_build_forward_expand(gf, out);

  // The first run's growth of the peak resident set beyond the output: the
  // memory the operation needs besides its inputs and output.
  // One plan and one work buffer for every run (ggml_graph_compute_with_ctx
  // would take a new work buffer from the context on each call). The work
  // buffer counts in the first run's memory.
  bench::reset_peak_rss();
  const double hwm_before = bench::peak_rss_mib();
  ggml_cplan plan = ggml_graph_plan(gf, threads, nullptr);
  std::vector<uint8_t> work(plan.work_size);
  plan.work_data = work.data();
  ggml_graph_compute(gf, &plan);
  const double peak_growth = bench::peak_rss_mib() - hwm_before - static_cast<double>(ggml_nbytes(out)) / (1 << 20);
  ggml_graph_compute(gf, &plan);
  std::vector<double> ms;
  const auto start = std::chrono::steady_clock::now();
  while (static_cast<int>(ms.size()) < min_reps ||
         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < min_time) {
    const auto t0 = std::chrono::steady_clock::now();
    ggml_graph_compute(gf, &plan);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("{\"Hq\": %lld, \"Hkv\": %lld, \"Lq\": %lld, \"Lk\": %lld, \"d\": %lld, \"type\": \"%s\", "
              "\"mask\": \"%s\", "
              "\"threads\": %d, \"runs\": %zu, \"median_ms\": %.4f, \"min_ms\": %.4f, \"kv_bytes\": %.0f, "
              "\"peak_growth_mib\": %.1f}\n",
              (long long)Hq, (long long)Hkv, (long long)Lq, (long long)Lk, (long long)d, type_name.c_str(),
              mask_kind.c_str(), threads, ms.size(), ms[ms.size() / 2], ms[0], 2.0 * double(kv_bytes), peak_growth);
  ggml_free(ctx);
  return 0;
}
