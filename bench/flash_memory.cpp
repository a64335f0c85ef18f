// flash_memory — how much the fast CPU path grows the process beyond its
// inputs, outputs and gradients (issue 4's memory targets):
//   flash_memory fwdbwd 32768 4 64   causal forward + backward, N = 32768, 4 heads, d = 64
//   flash_memory fwd 131072 1 64     causal forward only
// Prints the peak resident set (VmHWM) before and after, the bytes the
// tensors account for, and the rest: the kernels' own memory (workspace).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include "attn/sdpa.hpp"
#include "cpu/flash_attention.hpp"
#include "peak_rss.hpp"

namespace {

attn::Tensor<float> random_tensor(const attn::Shape& shape, uint32_t seed) {
  attn::Tensor<float> t(shape);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (int64_t n = 0; n < t.numel(); ++n) t.data()[n] = dist(gen);
  return t;
}

double mib(int64_t floats) { return static_cast<double>(floats) * 4.0 / (1 << 20); }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5 || (std::strcmp(argv[1], "fwd") != 0 && std::strcmp(argv[1], "fwdbwd") != 0)) {
    std::fprintf(stderr, "usage: flash_memory fwd|fwdbwd N heads d\n");
    return 2;
  }
  const bool backward = std::strcmp(argv[1], "fwdbwd") == 0;
  const int64_t N = std::atoll(argv[2]), H = std::atoll(argv[3]), d = std::atoll(argv[4]);
  const auto q = random_tensor({1, H, N, d}, 1), k = random_tensor({1, H, N, d}, 2), v = random_tensor({1, H, N, d}, 3);
  const double before = bench::peak_rss_mib();
  attn::SdpaOptions<float> o;
  o.is_causal = true;
  const auto t0 = std::chrono::steady_clock::now();
  attn::Tensor<float> out, lse;
  attn::cpu::flash_attention_forward(q, k, v, o, out, lse);
  int64_t accounted = out.numel() + lse.numel();
  const auto t1 = std::chrono::steady_clock::now();
  double t_bwd = 0;
  if (backward) {
    const auto dout = random_tensor({1, H, N, d}, 4);
    accounted += dout.numel();
    const auto t2 = std::chrono::steady_clock::now();
    const auto g = attn::cpu::flash_attention_backward(dout, q, k, v, out, lse, o);
    t_bwd = std::chrono::duration<double>(std::chrono::steady_clock::now() - t2).count();
    accounted += g.d_query.numel() + g.d_key.numel() + g.d_value.numel();
  }
  const double after = bench::peak_rss_mib();
  const double t_fwd = std::chrono::duration<double>(t1 - t0).count();
  std::printf("%s causal N=%lld heads=%lld d=%lld: forward %.2f s%s\n", backward ? "forward+backward" : "forward",
              static_cast<long long>(N), static_cast<long long>(H), static_cast<long long>(d), t_fwd,
              backward ? (", backward " + std::to_string(t_bwd) + " s").c_str() : "");
  std::printf("peak RSS: %.0f MiB with the inputs, %.0f MiB after; outputs%s %.0f MiB; "
              "growth beyond them (workspace): %.0f MiB\n",
              before, after, backward ? ", grad_output and gradients" : "", mib(accounted),
              after - before - mib(accounted));
  return 0;
}
