// tests/resource_limits.hpp — running a piece of a test where the system
// refuses a resource: in a forked child with a resource limit (setrlimit),
// so the limit never touches the test process itself.
//
//   const int status = run_in_child([] { ...; return 0; });  // 0 = the child's checks passed
//   EXPECT_EQ(status, 0);
//
// Limits that work for root as well (this is what tests run as in CI, where
// RLIMIT_NPROC is not enforced): RLIMIT_FSIZE (a write past it fails with
// EFBIG; SIGXFSZ is ignored in the child) and RLIMIT_AS (an mmap past it, a
// thread's stack included, fails with ENOMEM/EAGAIN).
#pragma once

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>

namespace attn::testing {

// AddressSanitizer's operator new reports a failed allocation as a fatal
// error (it never throws std::bad_alloc), and its allocator cannot run under
// a tight RLIMIT_AS: tests of real allocation failures skip themselves there.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kUnderAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kUnderAddressSanitizer = true;
#else
inline constexpr bool kUnderAddressSanitizer = false;
#endif
#else
inline constexpr bool kUnderAddressSanitizer = false;
#endif

/// Runs `body` in a forked child and returns its exit status (body's return
/// value), 128 + n if it died of signal n, or -1 if fork failed. The child
/// leaves with _exit: no atexit handlers, no gtest output of its own.
inline int run_in_child(const std::function<int()>& body) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int rc = 99;
    try {
      rc = body();
    } catch (...) {
      rc = 98;  // an exception the body did not expect
    }
    std::fflush(nullptr);
    ::_exit(rc);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

/// In the child: writes past `bytes` in any one file fail with EFBIG.
inline bool limit_file_size(rlim_t bytes) {
  std::signal(SIGXFSZ, SIG_IGN);
  const rlimit lim{bytes, bytes};
  return ::setrlimit(RLIMIT_FSIZE, &lim) == 0;
}

/// In the child: the address space may grow by about `headroom` bytes more
/// (the current size read from /proc/self/statm).
inline bool limit_address_space_growth(rlim_t headroom) {
  std::ifstream statm("/proc/self/statm");
  unsigned long pages = 0;
  if (!(statm >> pages)) return false;
  const rlim_t limit = static_cast<rlim_t>(pages) * static_cast<rlim_t>(::sysconf(_SC_PAGESIZE)) + headroom;
  const rlimit lim{limit, limit};
  return ::setrlimit(RLIMIT_AS, &lim) == 0;
}

}  // namespace attn::testing
