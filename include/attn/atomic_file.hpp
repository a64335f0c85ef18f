// attn/atomic_file.hpp — write a file so that a failed write never destroys
// the file it was meant to replace.
//
// Truncating a file and writing it in place loses the old contents the moment
// the write starts: a full disk, a file-size limit or an exception halfway
// leaves a truncated file and no old one. Instead the bytes go to a new file
// beside the target (same directory, so the final rename never crosses file
// systems), which commit() flushes to disk (fsync) and renames over the
// target: POSIX rename is atomic, so a reader sees the old file or the new
// one, never a mix. A writer destroyed without commit() (an exception on the
// way) removes its file and leaves the target exactly as it was.
//
//   AtomicFileWriter out("model.safetensors");
//   out.write(header.data(), header.size());
//   out.write(data.data(), data.size());
//   out.commit();   // only now is model.safetensors replaced
//
// Every writer of the library and of the `attn` command (safetensors, the
// pictures) goes through it. The new file gets the old one's permissions
// (or the usual 0666 & ~umask for a new file); a symbolic link is followed,
// and the file it points to is replaced.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace attn {

class AtomicFileWriter {
 public:
  /// Creates the temporary file beside `path`. Throws ValueError for an empty
  /// path or one with a NUL character, IOError (naming `path`) when the
  /// directory cannot take a new file.
  explicit AtomicFileWriter(const std::string& path);
  /// Without commit(): closes and removes the temporary file; `path` is untouched.
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  /// Appends n bytes. Throws IOError naming the path and the system's reason
  /// (no space left, file too large, ...); the writer is then failed, and
  /// destroying it keeps the old file.
  void write(const void* data, size_t n);
  /// Flushes the bytes to disk and renames the file over `path`. Throws
  /// IOError naming the path (the old file is then still in place).
  void commit();

  const std::string& path() const { return path_; }

 private:
  std::string path_;    // as given (for messages)
  std::string target_;  // what is replaced: path_, or the file a symbolic link points to
  std::string temp_;
  int fd_ = -1;
  bool committed_ = false;
};

/// `bytes` written to `path` through an AtomicFileWriter. Errors as above.
void write_file_atomically(const std::string& path, std::string_view bytes);

}  // namespace attn
