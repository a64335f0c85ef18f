// The fast kernels' thread pool (src/cpu/thread_pool.hpp): every item runs
// exactly once whatever the thread count, nested and concurrent calls fall
// back to running alone, and a pool can be destroyed right after its first
// job. The last one is a regression test: a worker used to read the pool's
// job generation when its thread first ran, so a pool destroyed before the
// OS started that thread waited for it forever (CI hung at process exit).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "cpu/thread_pool.hpp"

namespace attn::cpu {
namespace {

struct Counts {
  std::vector<std::atomic<int>> runs;
  std::atomic<int> bad_thread{0};
  int threads = 1;
  explicit Counts(int64_t n, int t) : runs(n), threads(t) {}
};

void count_item(void* ctx, int64_t item, int thread) {
  auto* c = static_cast<Counts*>(ctx);
  c->runs[item].fetch_add(1);
  if (thread < 0 || thread >= c->threads) c->bad_thread.fetch_add(1);
}

TEST(ThreadPool, EveryItemRunsExactlyOnce) {
  ThreadPool pool;
  for (int threads : {2, 3, 5}) {
    for (int64_t n : {1, 2, 7, 1000}) {
      Counts c(n, threads);
      pool.run(n, threads, count_item, &c);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(c.runs[i].load(), 1) << "item " << i << " threads " << threads;
      EXPECT_EQ(c.bad_thread.load(), 0);
    }
  }
}

TEST(ThreadPool, DestroyedRightAfterFirstJobDoesNotHang) {
  // Each iteration starts a worker thread and tears the pool down at once;
  // before the fix one of these hung within a few hundred iterations.
  for (int round = 0; round < 500; ++round) {
    ThreadPool pool;
    Counts c(4, 2);
    pool.run(4, 2, count_item, &c);
    for (int64_t i = 0; i < 4; ++i) ASSERT_EQ(c.runs[i].load(), 1);
  }
}

TEST(ThreadPool, ConcurrentCallersEachGetAllTheirItems) {
  ThreadPool pool;
  constexpr int kCallers = 4;
  std::vector<Counts*> counts;
  for (int k = 0; k < kCallers; ++k) counts.push_back(new Counts(300, 2));
  std::vector<std::thread> callers;
  for (int k = 0; k < kCallers; ++k)
    callers.emplace_back([&, k] {
      for (int rep = 0; rep < 20; ++rep) pool.run(300, 2, count_item, counts[k]);
    });
  for (auto& t : callers) t.join();
  for (int k = 0; k < kCallers; ++k) {
    for (int64_t i = 0; i < 300; ++i) ASSERT_EQ(counts[k]->runs[i].load(), 20);
    delete counts[k];
  }
}

struct Nested {
  ThreadPool* pool;
  Counts inner{10, 2};
};

void nested_item(void* ctx, int64_t, int) {
  auto* n = static_cast<Nested*>(ctx);
  n->pool->run(10, 2, count_item, &n->inner);  // runs alone: the pool is busy
}

TEST(ThreadPool, NestedCallRunsAlone) {
  ThreadPool pool;
  Nested n{&pool};
  pool.run(3, 2, nested_item, &n);
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(n.inner.runs[i].load(), 3);
}

}  // namespace
}  // namespace attn::cpu
