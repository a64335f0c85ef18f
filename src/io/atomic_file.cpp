// Writing a file through a temporary one beside it (attn/atomic_file.hpp).
//
//   open   "<dir>/.<name>.<pid>-<n>.tmp", O_CREAT | O_EXCL (never an existing file), mode 0666 & ~umask,
//          then the old file's permission bits if there is one
//   write  every byte (retrying short writes and EINTR)
//   commit fsync the file, close it, rename it over the target, fsync the directory
//          (so the rename itself survives a crash)
//   abort  (destructor without commit) close and unlink the temporary file
#include "attn/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "attn/errors.hpp"

namespace attn {
namespace {

namespace fs = std::filesystem;

std::string reason(int err) { return std::strerror(err); }

}  // namespace

AtomicFileWriter::AtomicFileWriter(const std::string& path) : path_(path), target_(path) {
  if (path.empty()) throw ValueError("AtomicFileWriter: the path is empty");
  if (path.find('\0') != std::string::npos)
    throw ValueError("AtomicFileWriter: the path contains a NUL character (it would name another file)");
  // Replace the file a link points to, not the link.
  std::error_code ec;
  if (fs::is_symlink(fs::symlink_status(path, ec))) {
    const fs::path resolved = fs::weakly_canonical(path, ec);
    if (!ec) target_ = resolved.string();
  }
  const fs::path target(target_);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string name = target.filename().string();
  if (name.empty() || name == "." || name == "..")
    throw IOError(path_ + ": not a file name (a directory?)");
  static std::atomic<uint64_t> counter{0};
  for (int attempt = 0; fd_ < 0; ++attempt) {
    temp_ = (dir / ("." + name + "." + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)) + ".tmp"))
                .string();
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && (errno != EEXIST || attempt >= 100))
      throw IOError(path_ + ": cannot create a file in " + dir.string() + " to write it: " + reason(errno));
  }
  // A replaced file keeps its permission bits (umask applies to new ones only).
  struct stat old;
  if (::stat(target_.c_str(), &old) == 0 && S_ISREG(old.st_mode)) (void)::fchmod(fd_, old.st_mode & 07777);
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFileWriter::write(const void* data, size_t n) {
  if (fd_ < 0) throw IOError(path_ + ": write after the file was committed or failed");
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int err = w < 0 ? errno : EIO;
      ::close(fd_);
      fd_ = -1;
      throw IOError(path_ + ": write failed (" + reason(err) + "); the previous file, if any, is unchanged");
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void AtomicFileWriter::commit() {
  if (fd_ < 0) throw IOError(path_ + ": commit after the file was committed or failed");
  const int fd = fd_;
  fd_ = -1;
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    throw IOError(path_ + ": cannot flush the file to disk (" + reason(err) + "); the previous file, if any, is unchanged");
  }
  if (::close(fd) != 0)
    throw IOError(path_ + ": closing the file failed (" + reason(errno) + "); the previous file, if any, is unchanged");
  if (::rename(temp_.c_str(), target_.c_str()) != 0)
    throw IOError(path_ + ": cannot replace the file (" + reason(errno) + "); the previous file, if any, is unchanged");
  committed_ = true;
  // The rename is in the directory: flush it too (some file systems refuse; the file is written either way).
  const fs::path dir = fs::path(target_).has_parent_path() ? fs::path(target_).parent_path() : fs::path(".");
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

void write_file_atomically(const std::string& path, std::string_view bytes) {
  AtomicFileWriter out(path);
  out.write(bytes.data(), bytes.size());
  out.commit();
}

}  // namespace attn
