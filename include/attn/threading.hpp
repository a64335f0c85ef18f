// attn/threading.hpp — how many threads the fast CPU kernels use.
//
// The fast path (src/cpu/) splits its work over batch × heads × query blocks
// and runs it on this many threads (the calling thread plus a small pool).
// The default follows OMP_NUM_THREADS, as PyTorch's torch.get_num_threads()
// does, else the number of cores; set_num_threads overrides it for the whole
// process, like torch.set_num_threads. Results do not depend on the thread
// count: every output element is computed by one thread in a fixed order,
// and no reduction crosses threads.
#pragma once

namespace attn {

/// The most threads set_num_threads accepts (twice the hardware threads of
/// the largest two-socket servers; more would only add scheduling).
inline constexpr int kMaxThreads = 1024;

/// Use `n` threads in the fast kernels from now on; n <= 0 restores the
/// default (OMP_NUM_THREADS, or the number of cores when it is unset; either
/// capped at kMaxThreads). Throws ValueError when n > kMaxThreads. The
/// threads are started by the first call that uses them: if the system
/// refuses one, that call throws ResourceError naming the count, the pool
/// keeps the threads it had, and later calls (with a count the system
/// allows) run as before.
void set_num_threads(int n);

/// The number of threads the fast kernels will use (always >= 1).
int get_num_threads();

}  // namespace attn
