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
#include <vector>

#include "cpu/parallel.hpp"
#include "cpu/thread_pool.hpp"

namespace attn {
namespace {

// 0 = not set: OMP_NUM_THREADS if set (as PyTorch reads it), else the cores.
std::atomic<int> g_num_threads{0};

int default_threads() {
  static const int n = [] {
    if (const char* env = std::getenv("OMP_NUM_THREADS")) {
      const int v = std::atoi(env);  // "4" or the first of a list "4,2"
      if (v > 0) return v;
    }
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }();
  return n;
}

cpu::ThreadPool& pool() {
  static cpu::ThreadPool p;
  return p;
}

}  // namespace

void set_num_threads(int n) { g_num_threads.store(n > 0 ? n : 0, std::memory_order_relaxed); }

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
  pool().run(n, threads, body, ctx);
}

}  // namespace cpu
}  // namespace attn
