// tools/attn/bench.cpp — `attn bench`: time scaled_dot_product_attention's
// forward and backward on one shape from the command line.
//
//   attn bench --batch 1 --heads 8 --len 1024 --dim 64 --causal --repeats 5
//
// FLOPs counted as FlashAttention's papers do: the two matrix products Q·Kᵀ
// and P·V are Lq·Lk·d multiply-adds each per head, 4·B·H·Lq·Lk·d FLOPs for the
// forward, half of that when causal (half the scores are masked), and 2.5× the
// forward for the backward (five products instead of two). GFLOP/s = FLOPs /
// the median time. Inputs are randn from Generator(--seed); the upstream
// gradient too.
//
// What a model passes can be timed too: --layout bshd gives q, k, v as
// [B, L, H, D] tensors viewed as [B, H, L, D] (q.view(B, L, H, D).transpose(1, 2),
// strided, no copy), and --mask key-padding:N a bool mask [B, 1, 1, Lk]
// (True = attend) whose last N keys are False, as a tokenizer pads a batch.
// FLOPs are counted for all keys either way, so a masked run's GFLOP/s
// compares directly with the unmasked one.
//
// Timings are for comparing shapes and paths on one machine; bench/ holds the
// Google Benchmark suite with the side-by-side comparisons.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <attn/errors.hpp>
#include <attn/generator.hpp>
#include <attn/sdpa.hpp>
#include <attn/threading.hpp>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "print.hpp"

namespace attn::cli {
namespace {

struct BenchOptions {
  int64_t batch = 1, heads = 8, kv_heads = 0, len = 512, q_len = 0, k_len = 0, dim = 64;
  bool causal = false;
  std::string dtype = "float";
  int threads = 0;  // 0: the library's default
  int repeats = 5, warmup = 1;
  uint64_t seed = 0;
  bool json = false;
  bool no_backward = false;
  std::string backend = "auto";  // auto | reference | fast (SdpaOptions::backend)
  std::string layout = "bhsd";   // bhsd: contiguous [B, H, L, D]; bshd: [B, L, H, D] viewed as [B, H, L, D]
  std::string mask = "none";     // none | key-padding:N
  int64_t padding = 0;           // N of key-padding:N
};

struct Timing {
  double min_ms = 0, median_ms = 0;
};

template <class F>
Timing time_it(F&& f, int warmup, int repeats) {
  for (int i = 0; i < warmup; ++i) f();
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return {ms.front(), ms[ms.size() / 2]};
}

// The path the public call takes, forward and backward (they can differ:
// tiny problems keep the backward on the reference path longer).
template <class T>
std::string selected_path(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v, const SdpaOptions<T>& opt,
                          bool backward) {
  return to_string(sdpa_selected_backend(q, k, v, opt, backward));
}

template <class T>
int run(const BenchOptions& o) {
  const int64_t B = o.batch, H = o.heads, Hkv = o.kv_heads ? o.kv_heads : o.heads, D = o.dim;
  const int64_t Lq = o.q_len ? o.q_len : o.len, Lk = o.k_len ? o.k_len : o.len;
  if (o.threads > 0) set_num_threads(o.threads);
  Generator gen(o.seed);
  // [B, H, L, D], contiguous or a transposed view of [B, L, H, D].
  const bool bshd = o.layout == "bshd";
  auto input = [&](int64_t heads, int64_t len) {
    return bshd ? randn<T>({B, len, heads, D}, gen).transpose(1, 2) : randn<T>({B, heads, len, D}, gen);
  };
  const Tensor<T> q = input(H, Lq);
  const Tensor<T> k = input(Hkv, Lk);
  const Tensor<T> v = input(Hkv, Lk);
  const Tensor<T> dout = randn<T>({B, H, Lq, D}, gen); // [B, H, Lq, D]
  SdpaOptions<T> opt;
  if (o.mask != "none") {  // key-padding:N: [B, 1, 1, Lk], the last N keys False
    opt.bool_mask = Tensor<bool>({B, 1, 1, Lk});
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < Lk; ++j) opt.bool_mask(b, 0, 0, j) = j < Lk - o.padding;
  }
  opt.is_causal = o.causal;
  opt.enable_gqa = Hkv != H;
  opt.backend = o.backend == "fast" ? SdpaBackend::Fast
                : o.backend == "reference" ? SdpaBackend::Reference : SdpaBackend::Auto;
  if constexpr (!std::is_same_v<T, float>) {
    if (opt.backend == SdpaBackend::Fast) {
      std::cerr << "attn bench: error: --backend fast computes float only (--dtype " << o.dtype << ")\n";
      return kExitUsage;
    }
  }
  const std::string path = selected_path(q, k, v, opt, false);
  const std::string bwd_path = selected_path(q, k, v, opt, true);

  SdpaResult<T> r;
  const Timing fwd = time_it([&] { r = scaled_dot_product_attention(q, k, v, opt); }, o.warmup, o.repeats);
  Timing bwd;
  if (!o.no_backward)
    bwd = time_it([&] { (void)scaled_dot_product_attention_backward(dout, q, k, v, r.output, r.lse, opt); }, o.warmup,
                  o.repeats);

  // 4·B·H·Lq·Lk·d, halved when causal; backward 2.5×.
  const double flops = 4.0 * static_cast<double>(B) * static_cast<double>(H) * static_cast<double>(Lq) *
                       static_cast<double>(Lk) * static_cast<double>(D) * (o.causal ? 0.5 : 1.0);
  const double bflops = 2.5 * flops;
  auto gflops = [](double f, double ms) { return ms > 0 ? f / (ms * 1e-3) / 1e9 : 0.0; };
  const int threads = get_num_threads();

  if (o.json) {
    nlohmann::ordered_json j;
    j["shape"] = {{"batch", B}, {"heads", H}, {"kv_heads", Hkv}, {"q_len", Lq}, {"k_len", Lk}, {"dim", D}};
    j["causal"] = o.causal;
    j["dtype"] = o.dtype;
    j["layout"] = o.layout;
    j["mask"] = o.mask;
    j["threads"] = threads;
    j["repeats"] = o.repeats;
    j["path"] = path;
    if (!o.no_backward) j["backward_path"] = bwd_path;
    j["forward"] = {{"flops", flops}, {"min_ms", fwd.min_ms}, {"median_ms", fwd.median_ms},
                    {"gflops_per_s", gflops(flops, fwd.median_ms)}};
    if (!o.no_backward)
      j["backward"] = {{"flops", bflops}, {"min_ms", bwd.min_ms}, {"median_ms", bwd.median_ms},
                       {"gflops_per_s", gflops(bflops, bwd.median_ms)}};
    std::cout << dump_json(j, 2) << "\n";
    return kExitOk;
  }
  std::cout << "scaled_dot_product_attention  B=" << B << " H=" << H << " Hkv=" << Hkv << " Lq=" << Lq << " Lk=" << Lk
            << " D=" << D << (o.causal ? " causal" : "") << (bshd ? " [B,L,H,D] views" : "")
            << (o.mask != "none" ? " mask " + o.mask : "") << "  " << o.dtype << ", " << threads
            << (threads == 1 ? " thread" : " threads") << ", path: " << path;
  if (!o.no_backward && bwd_path != path) std::cout << " (backward: " << bwd_path << ")";
  std::cout << "\n"
            << "  FLOPs: forward 4*B*H*Lq*Lk*D" << (o.causal ? "/2" : "") << " = " << num(flops / 1e9, 3)
            << " G, backward 2.5x\n"
            << "             median ms     min ms    GFLOP/s  (median of " << o.repeats << ")\n";
  std::cout << "  forward " << pad(num(fwd.median_ms, 3), 13) << pad(num(fwd.min_ms, 3), 11)
            << pad(num(gflops(flops, fwd.median_ms), 2), 11) << "\n";
  if (!o.no_backward)
    std::cout << "  backward" << pad(num(bwd.median_ms, 3), 13) << pad(num(bwd.min_ms, 3), 11)
              << pad(num(gflops(bflops, bwd.median_ms), 2), 11) << "\n";
  return kExitOk;
}

int usage(const std::string& what) {
  std::cerr << "attn bench: error: " << what << "\nusage: attn bench [--batch B] [--heads H] [--kv-heads K] "
            << "[--len L | --q-len LQ --k-len LK] [--dim D] [--causal] [--dtype float|double] [--threads N] "
            << "[--repeats R] [--layout bhsd|bshd] [--mask none|key-padding:N] [--backend auto|reference|fast] "
            << "[--json]; see `attn bench --help`\n";
  return kExitUsage;
}

Run setup_bench(CLI::App& sub) {
  auto o = std::make_shared<BenchOptions>();
  const auto pos = CLI::Range(int64_t{1}, int64_t{1} << 20);
  sub.add_option("--batch", o->batch, "batch size B")->capture_default_str()->check(pos);
  sub.add_option("--heads", o->heads, "query heads H")->capture_default_str()->check(pos);
  sub.add_option("--kv-heads", o->kv_heads, "key/value heads (GQA/MQA; must divide --heads; default = --heads)")
      ->check(pos);
  sub.add_option("--len", o->len, "sequence length of queries and keys")->capture_default_str()->check(pos);
  sub.add_option("--q-len", o->q_len, "query length (overrides --len)")->check(pos);
  sub.add_option("--k-len", o->k_len, "key/value length (overrides --len)")->check(pos);
  sub.add_option("--dim", o->dim, "head dimension D")->capture_default_str()->check(pos);
  sub.add_flag("--causal", o->causal, "causal mask (top-left)");
  sub.add_option("--dtype", o->dtype, "float or double")->capture_default_str()->check(CLI::IsMember({"float", "double"}));
  sub.add_option("--threads", o->threads, "threads for the fast path (default: the library's)")->check(CLI::Range(1, 1024));
  sub.add_option("--repeats", o->repeats, "timed runs (the median is reported)")->capture_default_str()->check(CLI::Range(1, 10000));
  sub.add_option("--warmup", o->warmup, "untimed runs first")->capture_default_str()->check(CLI::Range(0, 10000));
  sub.add_option("--seed", o->seed, "seed of the random inputs")->capture_default_str();
  sub.add_flag("--no-backward", o->no_backward, "time the forward only");
  sub.add_flag("--json", o->json, "print the results as JSON");
  sub.add_option("--layout", o->layout, "bhsd (contiguous [B, H, L, D]) or bshd ([B, L, H, D] viewed as [B, H, L, D])")
      ->capture_default_str()
      ->check(CLI::IsMember({"bhsd", "bshd"}));
  sub.add_option("--mask", o->mask, "none, or key-padding:N (bool [B, 1, 1, Lk], the last N keys False)")
      ->capture_default_str();
  sub.add_option("--backend", o->backend, "auto (fast where it applies and pays), reference or fast")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "reference", "fast"}));
  return [o]() {
    const int64_t H = o->heads, Hkv = o->kv_heads ? o->kv_heads : o->heads;
    if (H % Hkv != 0)
      return usage("--kv-heads " + std::to_string(Hkv) + " must divide --heads " + std::to_string(H));
    const int64_t Lq = o->q_len ? o->q_len : o->len, Lk = o->k_len ? o->k_len : o->len;
    if (o->mask != "none") {
      const std::string prefix = "key-padding:";
      const std::string n = o->mask.rfind(prefix, 0) == 0 ? o->mask.substr(prefix.size()) : "";
      if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos || n.size() > 9 ||
          std::stoll(n) > Lk)
        return usage("--mask " + o->mask + ": expected none or key-padding:N with 0 <= N <= Lk (" +
                     std::to_string(Lk) + ")");
      o->padding = std::stoll(n);
    }
    // Keep a typo from asking for terabytes: q, k, v, output and their gradients.
    const double elems = static_cast<double>(o->batch) * static_cast<double>(o->dim) *
                         (3.0 * static_cast<double>(H * Lq) + 3.0 * static_cast<double>(Hkv * Lk));
    if (elems > 2e9) return usage("the shape needs " + num(elems / 1e9, 1) + " G elements; at most 2 G");
    // ... or years: 4·B·H·Lq·Lk·D flops per forward, 2.5x that backward, per run.
    const double runs = static_cast<double>(o->warmup + o->repeats);
    const double flops = 4.0 * static_cast<double>(o->batch) * static_cast<double>(H) * static_cast<double>(Lq) *
                         static_cast<double>(Lk) * static_cast<double>(o->dim) * (o->no_backward ? 1.0 : 3.5) * runs;
    if (flops > 2e13)
      return usage("the runs need " + num(flops / 1e12, 1) + " TFLOP (" + std::to_string(o->warmup + o->repeats) +
                   " runs of this shape); at most 20 TFLOP: a smaller shape or fewer --repeats");
    return o->dtype == "double" ? run<double>(*o) : run<float>(*o);
  };
}

const Register kBench{{"bench", "Time SDPA forward and backward on a shape: ms, GFLOP/s and the path used", setup_bench}};

}  // namespace
}  // namespace attn::cli
