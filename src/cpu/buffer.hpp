// cpu/buffer.hpp — what every fast kernel's dispatcher (flash_attention.cpp,
// decode.cpp) needs around its SIMD code (internal): reused aligned memory,
// and tensor strides copied into the kernels' plain parameter structs.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "attn/detail/size_math.hpp"
#include "attn/errors.hpp"
#include "attn/tensor.hpp"

namespace attn::cpu {

/// A growing 64-byte aligned buffer of floats, kept for the life of its
/// owner (the kernels keep one per calling thread and purpose, thread_local):
/// on these machines the first touch of a fresh page costs microseconds, so
/// a buffer freed and reallocated on every call would cost more than the
/// packing or merging it holds. Sized by the largest call so far.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { std::free(data_); }

  /// At least n floats (their contents are whatever the last call left).
  /// `what` names the call in the ResourceError thrown when n is impossible
  /// or the system refuses the memory (the buffer is then empty, and later
  /// calls work).
  float* floats(int64_t n, const char* what) {
    int64_t checked;
    if (!detail::checked_bytes(std::max<int64_t>(n, 1), sizeof(float), checked) || checked > kMaxBytes)
      throw ResourceError(std::string(what) + ": cannot allocate a workspace of " + std::to_string(n) +
                          " floats (more than 2^62 bytes)");
    const size_t bytes = static_cast<size_t>(checked);
    if (bytes > capacity_) {
      std::free(data_);
      // A little headroom so a slightly larger call does not reallocate.
      capacity_ = (bytes + bytes / 8 + 4095) / 4096 * 4096;
      data_ = std::aligned_alloc(64, capacity_);
      if (!data_) {
        capacity_ = 0;
        throw ResourceError(std::string(what) + ": cannot allocate a workspace of " + std::to_string(bytes) +
                            " bytes: out of memory");
      }
    }
    return static_cast<float*>(data_);
  }

 private:
  // 2^62: the headroom added above must not overflow size_t.
  static constexpr int64_t kMaxBytes = int64_t{1} << 62;
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

/// The first N strides of `from` (in elements) into a parameter struct's array.
template <size_t N>
void copy_strides(const Shape& from, int64_t (&to)[N]) {
  assert(from.size() >= N);
  for (size_t i = 0; i < N; ++i) to[i] = from[i];
}

}  // namespace attn::cpu
