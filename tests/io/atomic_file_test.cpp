// AtomicFileWriter (src/io/atomic_file.cpp): the target is replaced only by
// commit(); a writer that fails or is abandoned halfway leaves the old file
// byte for byte and no temporary file behind.
#include "attn/atomic_file.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "attn/errors.hpp"
#include "resource_limits.hpp"

namespace {

namespace fs = std::filesystem;

// A fresh directory for one test (tests may run in parallel).
struct TempDir {
  fs::path dir;
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir = fs::temp_directory_path() / ("attn_atomic_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~TempDir() { fs::remove_all(dir); }
  std::string file(const std::string& name) const { return (dir / name).string(); }
  size_t entries() const { return static_cast<size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator())); }
};

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_plain(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

TEST(AtomicFile, CommitReplacesTheFile) {
  TempDir d;
  const std::string path = d.file("out.bin");
  write_plain(path, "old contents");
  {
    attn::AtomicFileWriter w(path);
    w.write("new ", 4);
    EXPECT_EQ(read(path), "old contents");  // nothing visible before commit
    w.write("contents!", 9);
    w.commit();
  }
  EXPECT_EQ(read(path), "new contents!");
  EXPECT_EQ(d.entries(), 1u);
  attn::write_file_atomically(d.file("fresh.txt"), "abc");  // a new file too
  EXPECT_EQ(read(d.file("fresh.txt")), "abc");
}

TEST(AtomicFile, AWriterAbandonedByAnExceptionKeepsTheOldFile) {
  TempDir d;
  const std::string path = d.file("out.bin");
  write_plain(path, "old contents");
  try {
    attn::AtomicFileWriter w(path);
    w.write("half of the new", 15);
    throw std::runtime_error("the producer failed halfway");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(read(path), "old contents");
  EXPECT_EQ(d.entries(), 1u);  // the temporary file is gone
}

TEST(AtomicFile, AWriteTheSystemRefusesIsAnIOErrorAndKeepsTheOldFile) {
  TempDir d;
  const std::string path = d.file("out.bin");
  const std::string old(10000, 'o');
  write_plain(path, old);
  // A child whose files may not grow past 4 KiB: the write fails with EFBIG.
  const int status = attn::testing::run_in_child([&] {
    if (!attn::testing::limit_file_size(4096)) return 2;
    try {
      attn::AtomicFileWriter w(path);
      const std::string chunk(3000, 'n');
      for (int i = 0; i < 4; ++i) w.write(chunk.data(), chunk.size());
      w.commit();
    } catch (const attn::IOError& e) {
      const std::string msg = e.what();
      return msg.find(path) != std::string::npos && msg.find("write failed") != std::string::npos ? 0 : 3;
    }
    return 4;
  });
  EXPECT_EQ(status, 0) << "2: setrlimit failed, 3: the message does not name the path, 4: no IOError";
  EXPECT_EQ(read(path), old);
  EXPECT_EQ(d.entries(), 1u);
}

TEST(AtomicFile, KeepsPermissionsAndFollowsSymbolicLinks) {
  TempDir d;
  const std::string path = d.file("script.sh");
  write_plain(path, "old");
  ASSERT_EQ(::chmod(path.c_str(), 0750), 0);
  attn::write_file_atomically(path, "new");
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  // Writing through a link replaces the file it points to; the link stays a link.
  const std::string link = d.file("link.sh");
  fs::create_symlink(path, link);
  attn::write_file_atomically(link, "through the link");
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(read(path), "through the link");
}

TEST(AtomicFile, BadPathsAreTypedErrorsNamingThem) {
  EXPECT_THROW(attn::AtomicFileWriter(""), attn::ValueError);
  EXPECT_THROW(attn::AtomicFileWriter(std::string("a\0b", 3)), attn::ValueError);
  const std::string missing = (fs::temp_directory_path() / "attn_no_such_dir" / "x.bin").string();
  try {
    attn::write_file_atomically(missing, "x");
    FAIL() << "no exception";
  } catch (const attn::IOError& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  TempDir d;  // a directory cannot be replaced by a file
  fs::create_directories(d.dir / "sub");
  EXPECT_THROW(attn::write_file_atomically(d.file("sub"), "x"), attn::IOError);
  EXPECT_TRUE(fs::is_directory(d.dir / "sub"));
  EXPECT_EQ(d.entries(), 1u);
}

}  // namespace
