// cpu/parallel.hpp — the one parallel loop of the fast CPU kernels (internal).
#pragma once

#include <cstdint>

namespace attn::cpu {

/// Runs body(ctx, item, thread) for item in [0, n) on up to `threads` threads;
/// `thread` is in [0, threads) and indexes per-thread scratch. A plain function
/// pointer, not a template, so SIMD code compiled per target (Highway) can
/// pass its own functions without instantiating OpenMP code per target.
void parallel_for(int64_t n, int threads, void (*body)(void* ctx, int64_t item, int thread), void* ctx);

}  // namespace attn::cpu
