// Several threads calling the fast path at once while another keeps changing
// the thread count (attn::set_num_threads): the situation of a server that
// runs requests side by side, or of a Python program whose threads call attn
// while one of them calls torch.set_num_threads-like code. What must hold:
//   * every call returns the very bits it returns when alone (the pool runs a
//     second caller's job on that caller alone; results never depend on the
//     thread count, DESIGN.md);
//   * no data race (this file is one of the `threaded` tests the tsan preset
//     runs under ThreadSanitizer), no deadlock, no crash.
// The forward, the backward and a KV-cache decode step each get a caller.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "attn/kv_cache.hpp"
#include "attn/sdpa.hpp"
#include "attn/threading.hpp"

namespace {

using attn::SdpaBackend;
using attn::SdpaOptions;
using attn::Tensor;

Tensor<float> random_tensor(const attn::Shape& shape, uint32_t seed) {
  Tensor<float> t(shape);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (int64_t i = 0; i < t.numel(); ++i) t.flat(i) = dist(gen);
  return t;
}

bool same_bits(const Tensor<float>& a, const Tensor<float>& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<size_t>(a.numel())) == 0;
}

// Restores the default thread count however the test ends.
struct DefaultThreadsAfter {
  ~DefaultThreadsAfter() { attn::set_num_threads(0); }
};

TEST(Concurrency, CallersAndThreadCountChangesGiveTheSameBits) {
  DefaultThreadsAfter restore;
  // Large enough that the kernels split the work over several threads
  // (several query blocks and heads; a decode cache above the split size).
  const Tensor<float> q = random_tensor({1, 4, 96, 32}, 1), k = random_tensor({1, 2, 160, 32}, 2),
                      v = random_tensor({1, 2, 160, 32}, 3), dout = random_tensor({1, 4, 96, 32}, 4);
  SdpaOptions<float> o;
  o.backend = SdpaBackend::Fast;
  o.enable_gqa = true;
  o.is_causal = true;
  o.causal_alignment = attn::CausalAlignment::BottomRight;
  o.dropout_p = 0.1;
  o.dropout_seed = 7;

  attn::KVCache cache({.batch = 1, .num_kv_heads = 2, .capacity = 2048, .head_dim = 32});
  cache.append(0, random_tensor({1, 2, 2048, 32}, 5), random_tensor({1, 2, 2048, 32}, 6));
  const Tensor<float> q_decode = random_tensor({1, 4, 1, 32}, 8);
  SdpaOptions<float> od;
  od.enable_gqa = true;
  od.is_causal = true;
  od.causal_alignment = attn::CausalAlignment::BottomRight;

  // What each call gives alone, on one thread.
  attn::set_num_threads(1);
  const auto fwd = attn::scaled_dot_product_attention(q, k, v, o);
  const auto bwd = attn::scaled_dot_product_attention_backward(dout, q, k, v, fwd.output, fwd.lse, o);
  const auto dec = attn::attention_decode(q_decode, cache, 0, od);

  constexpr int kRounds = 12;
  std::atomic<bool> done{false};
  std::atomic<int> mismatches{0};
  std::thread changer([&] {  // 1, 2, 3, 4, default, 1, ... until the callers finish
    for (int n = 0; !done.load(); n = (n + 1) % 5) {
      attn::set_num_threads(n == 4 ? 0 : n + 1);
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> callers;
  callers.emplace_back([&] {
    for (int r = 0; r < kRounds; ++r) {
      const auto got = attn::scaled_dot_product_attention(q, k, v, o);
      if (!same_bits(got.output, fwd.output) || !same_bits(got.lse, fwd.lse)) mismatches.fetch_add(1);
    }
  });
  callers.emplace_back([&] {
    for (int r = 0; r < kRounds; ++r) {
      const auto got = attn::scaled_dot_product_attention_backward(dout, q, k, v, fwd.output, fwd.lse, o);
      if (!same_bits(got.d_query, bwd.d_query) || !same_bits(got.d_key, bwd.d_key) ||
          !same_bits(got.d_value, bwd.d_value))
        mismatches.fetch_add(1);
    }
  });
  callers.emplace_back([&] {
    for (int r = 0; r < kRounds; ++r) {
      const auto got = attn::attention_decode(q_decode, cache, 0, od);
      if (!same_bits(got.output, dec.output) || !same_bits(got.lse, dec.lse)) mismatches.fetch_add(1);
    }
  });
  for (auto& t : callers) t.join();
  done.store(true);
  changer.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
