// The fast kernels' thread pool (src/cpu/thread_pool.hpp): every item runs
// exactly once whatever the thread count, nested and concurrent calls fall
// back to running alone, and a pool can be destroyed right after its first
// job. The last one is a regression test: a worker used to read the pool's
// job generation when its thread first ran, so a pool destroyed before the
// OS started that thread waited for it forever (CI hung at process exit).
#include <gtest/gtest.h>

#include <mutex>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "attn/errors.hpp"
#include "attn/sdpa.hpp"
#include "attn/threading.hpp"
#include "cpu/parallel.hpp"
#include "cpu/thread_pool.hpp"
#include "resource_limits.hpp"

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

// ---- threads the system refuses (issue 17) ------------------------------------------
// A failed thread creation used to escape run() with its "running" flag
// still set: every later call on that thread ran single-threaded, and the
// workers already started stayed up.

// Each item waits (up to 10 s) until `want` different threads have run an
// item, then records its thread: with fewer threads the items run one after
// another on the caller and the set stays small.
struct Gather {
  int want;
  std::mutex mutex;
  std::set<int> threads;
  explicit Gather(int w) : want(w) {}
};

void gather_item(void* ctx, int64_t, int thread) {
  auto* g = static_cast<Gather*>(ctx);
  {
    std::lock_guard<std::mutex> lock(g->mutex);
    g->threads.insert(thread);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard<std::mutex> lock(g->mutex);
      if (static_cast<int>(g->threads.size()) >= g->want) return;
    }
    std::this_thread::yield();
  }
}

TEST(ThreadPool, ARefusedThreadIsAResourceErrorAndThePoolKeepsWorking) {
  ThreadPool pool;
  Counts warm(8, 3);
  pool.run(8, 3, count_item, &warm);  // two workers started
  ASSERT_EQ(pool.workers(), 2u);
  pool.refuse_workers_from(5);  // as the system would with a process limit
  Counts c(100, 8);
  try {
    pool.run(100, 8, count_item, &c);
    FAIL() << "no exception";
  } catch (const attn::ResourceError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cannot start 8 threads"), std::string::npos) << msg;
    EXPECT_NE(msg.find("thread 6 refused"), std::string::npos) << msg;
  }
  for (int64_t i = 0; i < 100; ++i) EXPECT_EQ(c.runs[i].load(), 0);  // nothing of the job ran
  EXPECT_EQ(pool.workers(), 2u);  // the three started for it are stopped again
  // The same thread still uses the pool's workers: three threads take part.
  Gather g(3);
  pool.run(3, 3, gather_item, &g);
  EXPECT_EQ(g.threads, (std::set<int>{0, 1, 2}));
}

TEST(Threading, SetNumThreadsHasAnUpperBound) {
  EXPECT_THROW(attn::set_num_threads(1'000'000), attn::ValueError);
  EXPECT_THROW(attn::set_num_threads(attn::kMaxThreads + 1), attn::ValueError);
  const int before = attn::get_num_threads();
  try {
    attn::set_num_threads(1'000'000);
  } catch (const attn::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("1000000"), std::string::npos) << e.what();
  }
  EXPECT_EQ(attn::get_num_threads(), before);  // unchanged
  attn::set_num_threads(attn::kMaxThreads);
  EXPECT_EQ(attn::get_num_threads(), attn::kMaxThreads);
  attn::set_num_threads(0);
}

TEST(Threading, ThreadsTheSystemRefusesFailOneCallNotTheLaterOnes) {
  if (attn::testing::kUnderAddressSanitizer)
    GTEST_SKIP() << "AddressSanitizer's allocator cannot run under a tight RLIMIT_AS";
  // In a child whose address space may grow by 48 MiB: thread stacks are
  // 8 MiB each, so 64 threads are refused (RLIMIT_NPROC would not do:
  // tests run as root, which it does not apply to).
  const int status = attn::testing::run_in_child([] {
    // q, k, v, output first: large enough for the fast path's threads.
    Tensor<float> q({2, 4, 256, 64});
    for (int64_t i = 0; i < q.numel(); ++i) q.data()[i] = static_cast<float>(i % 7) * 0.1f;
    attn::SdpaOptions<float> o;
    o.backend = attn::SdpaBackend::Fast;
    const auto expected = attn::scaled_dot_product_attention(q, q, q, o).output;
    if (!attn::testing::limit_address_space_growth(48u << 20)) return 2;
    attn::set_num_threads(64);
    try {
      (void)attn::scaled_dot_product_attention(q, q, q, o);
      return 3;  // no error
    } catch (const attn::ResourceError& e) {
      // 32 work items (2 x 4 heads x 4 query blocks): the call asks for 32 threads of the 64 set.
      const std::string msg = e.what();
      if (msg.find("cannot start 32 threads") == std::string::npos || msg.find("thread count is 64") == std::string::npos)
        return 4;
    }
    attn::set_num_threads(2);
    const auto again = attn::scaled_dot_product_attention(q, q, q, o).output;
    for (int64_t i = 0; i < again.numel(); ++i)
      if (again.data()[i] != expected.data()[i]) return 5;
    // ... on two threads: the pool's worker still takes items.
    Gather g(2);
    parallel_for(2, 2, gather_item, &g);
    return g.threads == std::set<int>{0, 1} ? 0 : 6;
  });
  EXPECT_EQ(status, 0) << "2: setrlimit failed, 3: no error, 4: the message does not name the count, "
                          "5: a later call gave another result, 6: later calls ran on one thread";
}

}  // namespace
}  // namespace attn::cpu
