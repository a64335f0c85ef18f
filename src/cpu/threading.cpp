// The thread-count setting (include/attn/threading.hpp) and the one parallel
// loop every fast CPU kernel uses: a small persistent pool.
//
// The pool itself, and why it is not OpenMP, is in cpu/thread_pool.hpp.
#include "attn/threading.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>
#include <string>
#include <vector>

#include "attn/errors.hpp"
#include "cpu/parallel.hpp"
#include "cpu/thread_pool.hpp"

namespace attn {
namespace {

// 0 = not set: OMP_NUM_THREADS if set (as PyTorch reads it), else the cores.
std::atomic<int> g_num_threads{0};

int default_threads() {
  static const int n = [] {
    if (const char* env = std::getenv("OMP_NUM_THREADS")) {
      const long v = std::strtol(env, nullptr, 10);  // "4" or the first of a list "4,2"
      if (v > 0) return static_cast<int>(std::min<long>(v, kMaxThreads));
    }
    return std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, kMaxThreads);
  }();
  return n;
}

cpu::ThreadPool& pool() {
  static cpu::ThreadPool p;
  return p;
}

}  // namespace

void set_num_threads(int n) {
  if (n > kMaxThreads)
    throw ValueError("set_num_threads: n = " + std::to_string(n) + ", expected at most " + std::to_string(kMaxThreads) +
                     " (or <= 0 for the default)");
  g_num_threads.store(n > 0 ? n : 0, std::memory_order_relaxed);
}

int get_num_threads() {
  const int n = g_num_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : default_threads();
}

namespace cpu {

void parallel_for(int64_t n, int threads, void (*body)(void* ctx, int64_t item, int thread), void* ctx) {
  if (n <= 0) return;
  threads = static_cast<int>(std::clamp<int64_t>(threads, 1, n));
  if (threads == 1) {
    for (int64_t i = 0; i < n; ++i) body(ctx, i, 0);
    return;
  }
  try {
    pool().run(n, threads, body, ctx);
  } catch (const ResourceError& e) {  // name the setting the count came from
    throw ResourceError(std::string(e.what()) + " (the fast kernels' thread count is " +
                        std::to_string(get_num_threads()) + ", see set_num_threads)");
  }
}

}  // namespace cpu
}  // namespace attn
