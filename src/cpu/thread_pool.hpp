// cpu/thread_pool.hpp — the small persistent pool behind parallel_for
// (internal; its own header so a test can create and destroy pools).
//
// Why not OpenMP's parallel for: its end-of-loop barrier waits for every
// thread of the team, including one the OS has not scheduled yet. On a
// machine busy with other work (this one often is) that wait is a scheduler
// time slice, and it was measured at 2-13 ms per call on problems that take
// 1-4 ms. Here the caller works too, items are claimed from an atomic
// counter, and the caller waits only for workers that are running an item —
// a worker that wakes up late finds nothing left and goes back to sleep.
// Which thread runs an item never changes what the item computes.
#pragma once

#include <atomic>
#include <climits>
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "attn/errors.hpp"

namespace attn::cpu {

class ThreadPool {
 public:
  ~ThreadPool() { stop_all(); }

  // Runs body(ctx, i, thread) for i < n on the caller (thread 0) and up to
  // `threads` − 1 workers (threads 1..).
  void run(int64_t n, int threads, void (*body)(void*, int64_t, int), void* ctx) {
    // Another caller is using the pool, or this is a nested call: run alone.
    static thread_local bool inside = false;
    std::unique_lock<std::mutex> busy(run_mutex_, std::defer_lock);
    if (inside || !busy.try_lock()) {
      for (int64_t i = 0; i < n; ++i) body(ctx, i, 0);
      return;
    }
    grow(threads - 1);  // may throw: nothing of this job has started yet
    inside = true;
    limit_ = threads;
    body_ = body;
    ctx_ = ctx;
    n_ = n;
    next_.store(0);
    open_.store(true);
    generation_.fetch_add(1);
    generation_.notify_all();
    work(0);
    // Close the job, then wait for the workers that saw it open (they are
    // counted in active_ before they look at open_) to finish their items.
    open_.store(false);
    while (active_.load() != 0) std::this_thread::yield();
    inside = false;
  }

  /// Test hook: starting worker number `workers` (0-based) and beyond fails
  /// as std::thread does when the system refuses a thread.
  void refuse_workers_from(int workers) { refuse_from_ = workers; }
  /// Worker threads started so far (the caller is not counted).
  size_t workers() const { return threads_.size(); }

 private:
  // Claims and runs items until none is left.
  void work(int thread) {
    for (int64_t i = next_.fetch_add(1); i < n_; i = next_.fetch_add(1)) body_(ctx_, i, thread);
  }

  // `seen` is the generation when the worker was created, not when its
  // thread first runs: a thread the OS starts late must still notice every
  // later change, the stop request included (reading it here once made
  // shutdown hang when the pool was created and destroyed within one slice).
  void worker(int thread, uint64_t seen) {
    for (;;) {
      // Spin briefly (a new job often follows at once: a kernel runs
      // several loops in a row), then sleep until the generation changes.
      for (int spin = 0; spin < 2000 && generation_.load() == seen; ++spin) std::this_thread::yield();
      generation_.wait(seen);
      seen = generation_.load();
      if (stop_.load() || thread > keep_.load()) return;
      active_.fetch_add(1);
      if (open_.load() && thread < limit_) work(thread);
      active_.fetch_sub(1);
    }
  }

  // Workers are only ever added (a job with fewer threads leaves the rest
  // asleep), so changing the thread count does not churn threads. If the
  // system refuses a thread (EAGAIN: a process or memory limit), the workers
  // this call started are stopped and joined again, so the pool is as it was
  // (every later call can still use the workers it had), and the call gets a
  // ResourceError naming the count asked for.
  void grow(int workers) {
    const size_t before = threads_.size();
    try {
      for (int w = static_cast<int>(before); w < workers; ++w) {
        if (w >= refuse_from_) throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again));
        threads_.emplace_back([this, w, seen = generation_.load()] { worker(w + 1, seen); });
      }
    } catch (const std::exception& e) {  // std::system_error (EAGAIN), or std::bad_alloc for the vector
      const size_t started = threads_.size();
      keep_.store(static_cast<int>(before));  // workers numbered above `before` leave when woken
      generation_.fetch_add(1);
      generation_.notify_all();
      for (size_t t = before; t < threads_.size(); ++t) threads_[t].join();
      threads_.resize(before);
      keep_.store(INT_MAX);
      throw ResourceError("the thread pool: cannot start " + std::to_string(workers + 1) + " threads (" +
                          std::to_string(before + 1) + " running, thread " + std::to_string(started + 1) +
                          " refused by the system: " + e.what() + ")");
    }
  }

  void stop_all() {
    stop_.store(true);
    generation_.fetch_add(1);
    generation_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  std::mutex run_mutex_;
  std::vector<std::thread> threads_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false}, open_{false};
  std::atomic<int> active_{0};
  std::atomic<int64_t> next_{0};
  std::atomic<int> limit_{1};  // threads 0..limit_−1 take part in the current job
  std::atomic<int> keep_{INT_MAX};  // workers numbered above it leave (a failed grow undoing itself)
  int refuse_from_ = INT_MAX;       // refuse_workers_from
  int64_t n_ = 0;
  void (*body_)(void*, int64_t, int) = nullptr;
  void* ctx_ = nullptr;
};

}  // namespace attn::cpu
