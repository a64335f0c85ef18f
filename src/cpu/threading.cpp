// The thread-count setting (include/attn/threading.hpp) and the one parallel
// loop every fast CPU kernel uses. OpenMP is optional: without it the loop
// runs serially, which gives the same results (nothing depends on threads).
#include "attn/threading.hpp"

#include <algorithm>
#include <atomic>

#include "cpu/parallel.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace attn {
namespace {
// 0 = not set: follow OpenMP's default, which reads OMP_NUM_THREADS.
std::atomic<int> g_num_threads{0};
}  // namespace

void set_num_threads(int n) { g_num_threads.store(n > 0 ? n : 0, std::memory_order_relaxed); }

int get_num_threads() {
  const int n = g_num_threads.load(std::memory_order_relaxed);
  if (n > 0) return n;
#ifdef _OPENMP
  return std::max(1, omp_get_max_threads());
#else
  return 1;
#endif
}

namespace cpu {

void parallel_for(int64_t n, int threads, void (*body)(void* ctx, int64_t item, int thread), void* ctx) {
  if (n <= 0) return;
  threads = static_cast<int>(std::clamp<int64_t>(threads, 1, n));
#ifdef _OPENMP
  if (threads > 1) {
    // Dynamic: items differ in cost (causal rows see different numbers of
    // keys); which thread runs an item never changes what the item computes.
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t i = 0; i < n; ++i) body(ctx, i, omp_get_thread_num());
    return;
  }
#endif
  for (int64_t i = 0; i < n; ++i) body(ctx, i, 0);
}

}  // namespace cpu
}  // namespace attn
