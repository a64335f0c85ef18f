// ggml_decode — a peer for bench/compare_decode.py, not part of attn: one
// decode step (1 query token against L cached keys) through ggml's CPU flash
// attention, ggml_flash_attn_ext, the operation llama.cpp runs for attention
// when flash attention is on, with its K/V cache in f32, f16 (llama.cpp's
// default cache type) or q8_0. Shapes and timing match attn's decode_bench:
// batch 1, d = head size, a zero F16 mask over all L keys (what llama.cpp
// passes), scale 1/sqrt(d), float32 precision; 2 warm-up runs, then `reps`
// timed runs of ggml_graph_compute_with_ctx on `threads` threads.
//
// ggml is not a dependency of attn and nothing here builds it. With a ggml
// (github.com/ggml-org/ggml, or llama.cpp's ggml/) built by its own CMake
// (Release, GGML_NATIVE=ON) in $GGML with its build in $GGML/build:
//   g++ -O2 -std=c++17 bench/peers/ggml_decode.cpp -I$GGML/include -L$GGML/build/src
//       -lggml -lggml-base -lggml-cpu -Wl,-rpath,$GGML/build/src -o build/ggml_decode   (one line)
//   build/ggml_decode 32 8 16384 128 f16 2 20
// Prints one JSON line: median and min ms, bytes of K + V as stored, GB/s.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ggml.h"
#include "ggml-cpu.h"

int main(int argc, char** argv) {
  if (argc < 8) {
    std::fprintf(stderr, "usage: ggml_decode Hq Hkv L d f32|f16|q8_0 threads reps\n");
    return 2;
  }
  const int64_t Hq = std::atoll(argv[1]), Hkv = std::atoll(argv[2]), L = std::atoll(argv[3]), d = std::atoll(argv[4]);
  const std::string ts = argv[5];
  const int threads = std::atoi(argv[6]), reps = std::atoi(argv[7]);
  if (ts != "f32" && ts != "f16" && ts != "q8_0") {
    std::fprintf(stderr, "ggml_decode: type must be f32, f16 or q8_0, got %s\n", ts.c_str());
    return 2;
  }
  const ggml_type type = ts == "f32" ? GGML_TYPE_F32 : ts == "f16" ? GGML_TYPE_F16 : GGML_TYPE_Q8_0;

  const size_t kv_bytes = ggml_row_size(type, d) * L * Hkv;
  ggml_init_params ip = {2 * kv_bytes + (size_t(64) << 20), nullptr, false};
  ggml_context* ctx = ggml_init(ip);
  ggml_tensor* q = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, d, 1, Hq, 1);
  ggml_tensor* k = ggml_new_tensor_4d(ctx, type, d, L, Hkv, 1);
  ggml_tensor* v = ggml_new_tensor_4d(ctx, type, d, L, Hkv, 1);
  ggml_tensor* m = ggml_new_tensor_4d(ctx, GGML_TYPE_F16, L, 1, 1, 1);  // all keys visible: zeros

  std::mt19937 gen(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> buf(static_cast<size_t>(d * L * Hkv));
  float* qd = static_cast<float*>(q->data);
  for (int64_t i = 0; i < d * Hq; ++i) qd[i] = nd(gen);
  for (ggml_tensor* t : {k, v}) {
    for (auto& x : buf) x = nd(gen);
    if (type == GGML_TYPE_F32) std::memcpy(t->data, buf.data(), buf.size() * 4);
    else if (type == GGML_TYPE_F16) ggml_fp32_to_fp16_row(buf.data(), static_cast<ggml_fp16_t*>(t->data), buf.size());
    else ggml_quantize_chunk(type, buf.data(), t->data, 0, L * Hkv, d, nullptr);
  }
  std::memset(m->data, 0, ggml_nbytes(m));

  ggml_tensor* out = ggml_flash_attn_ext(ctx, q, k, v, m, 1.0f / std::sqrt(float(d)), 0.0f, 0.0f);
  ggml_flash_attn_ext_set_prec(out, GGML_PREC_F32);
  ggml_cgraph* gf = ggml_new_graph(ctx);
  ggml_build_forward_expand(gf, out);

  std::vector<double> ms;
  for (int r = 0; r < reps + 2; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    ggml_graph_compute_with_ctx(ctx, gf, threads);
    auto t1 = std::chrono::steady_clock::now();
    if (r >= 2) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  const double med = ms[ms.size() / 2], best = ms[0];
  const double bytes = 2.0 * double(kv_bytes);
  std::printf("{\"Hq\": %lld, \"Hkv\": %lld, \"L\": %lld, \"d\": %lld, \"type\": \"%s\", \"threads\": %d, "
              "\"median_ms\": %.3f, \"min_ms\": %.3f, \"bytes\": %.0f, \"GBps_median\": %.2f, \"out0\": %.6f}\n",
              (long long)Hq, (long long)Hkv, (long long)L, (long long)d, ts.c_str(), threads, med, best, bytes,
              bytes / med / 1e6, static_cast<float*>(out->data)[0]);
  ggml_free(ctx);
}
