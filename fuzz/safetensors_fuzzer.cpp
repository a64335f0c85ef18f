// fuzz/safetensors_fuzzer.cpp — libFuzzer harness for the safetensors reader
// (include/attn/safetensors.hpp): the input is a whole file.
//
// For every input:
//   * deserialize_safetensors<float> and <double> (from memory) either return
//     or throw attn::IOError; nothing else (no other exception, no crash,
//     no sanitizer report, nothing read out of bounds);
//   * the file readers agree with the memory reader: load_safetensors and
//     read_safetensors_header on the same bytes in a file accept exactly what
//     deserialize_safetensors accepts, with the same values;
//   * what loads survives a round trip: serialize_safetensors (F32, and the
//     header's metadata) and deserialize again give the same names, shapes,
//     bits and metadata; written as BF16 it reads back as attn::bfloat16's own
//     rounding of each value (two roundings in the library that must agree).
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <span>
#include <string>

#include "attn/bfloat16.hpp"
#include "attn/errors.hpp"
#include "attn/safetensors.hpp"
#include "fuzz_util.hpp"

namespace {

using attn::Tensor;
using attn_fuzz::fuzz_fail;
using TensorMap = std::map<std::string, Tensor<float>>;

// Returns the IOError's message, or nullopt when f returned.
template <class F>
std::optional<std::string> io_error(F&& f) {
  try {
    f();
  } catch (const attn::IOError& e) {
    return std::string(e.what());
  }
  return std::nullopt;
}

bool same(const TensorMap& a, const TensorMap& b) {
  if (a.size() != b.size()) return false;
  for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib)
    if (ia->first != ib->first || !attn_fuzz::same_bits(ia->second, ib->second)) return false;
  return true;
}

// The file the path-based readers read: one per process, rewritten for each
// input, removed at exit.
struct ScratchFile {
  std::string path = (std::filesystem::temp_directory_path() /
                      ("attn-safetensors-fuzz-" + std::to_string(::getpid()) + ".safetensors"))
                         .string();
  ~ScratchFile() { std::remove(path.c_str()); }
};
const std::string& scratch_path() {
  static const ScratchFile file;
  return file.path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);

  TensorMap loaded;
  const auto memory_error = io_error([&] { loaded = attn::deserialize_safetensors<float>(bytes, "<fuzz>"); });
  std::map<std::string, Tensor<double>> loaded64;
  const auto memory_error64 = io_error([&] { loaded64 = attn::deserialize_safetensors<double>(bytes, "<fuzz>"); });
  if (memory_error.has_value() != memory_error64.has_value())
    fuzz_fail("deserialize_safetensors<float> and <double> disagree on whether the bytes are valid");
  // The same bytes through a file.
  {
    std::ofstream f(scratch_path(), std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  TensorMap from_file;
  const auto file_error = io_error([&] { from_file = attn::load_safetensors<float>(scratch_path()); });
  attn::SafetensorsHeader header;
  const auto header_error = io_error([&] { header = attn::read_safetensors_header(scratch_path()); });
  if (memory_error.has_value() != file_error.has_value() || memory_error.has_value() != header_error.has_value())
    fuzz_fail("the memory and file readers disagree:\n  memory: " + memory_error.value_or("ok") +
              "\n  file: " + file_error.value_or("ok") + "\n  header: " + header_error.value_or("ok"));
  if (memory_error) return 0;
  if (!same(loaded, from_file)) fuzz_fail("load_safetensors and deserialize_safetensors read different tensors");
  if (header.tensors.size() != loaded.size()) fuzz_fail("read_safetensors_header lists a different set of tensors");
  for (const auto& [name, info] : header.tensors)
    if (!loaded.count(name) || loaded.at(name).shape() != info.shape)
      fuzz_fail("read_safetensors_header disagrees on tensor '" + name + "'");

  // The double reader: the same tensors, each value the one the float reader
  // rounds (64-bit integers excepted: int64 → double → float rounds twice).
  if (loaded.size() != loaded64.size()) fuzz_fail("float and double loads have different tensors");
  for (const auto& [name, t] : loaded) {
    const Tensor<double>& d = loaded64.at(name);
    if (d.shape() != t.shape()) fuzz_fail("float and double loads disagree on the shape of '" + name + "'");
    const std::string& dtype = header.tensors.at(name).dtype;
    if (dtype == "I64" || dtype == "U64") continue;
    for (int64_t i = 0; i < t.numel(); ++i) {
      const float want = static_cast<float>(d.flat(i));
      if (!(std::isnan(want) ? std::isnan(t.flat(i)) : want == t.flat(i)))
        fuzz_fail("'" + name + "' (" + dtype + ") element " + std::to_string(i) + " reads as " +
                  std::to_string(t.flat(i)) + " (float) but " + std::to_string(d.flat(i)) + " (double)");
    }
  }

  // Round trip through F32 with the metadata.
  TensorMap again;
  try {
    const std::vector<uint8_t> written = attn::serialize_safetensors(loaded, header.metadata);
    again = attn::deserialize_safetensors<float>(written, "<round trip>");
    std::ofstream f(scratch_path(), std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(written.data()), static_cast<std::streamsize>(written.size()));
    f.close();
    if (attn::load_safetensors_metadata(scratch_path()) != header.metadata)
      fuzz_fail("the metadata did not survive a round trip");
  } catch (const attn::Error& e) {
    fuzz_fail(std::string("what was read cannot be written and read back: ") + e.what());
  }
  if (!same(loaded, again)) fuzz_fail("the tensors did not survive an F32 round trip");

  // BF16: the writer's rounding against attn::bfloat16's.
  const TensorMap bf16 = attn::deserialize_safetensors<float>(attn::serialize_safetensors(loaded, {}, "BF16"));
  for (const auto& [name, t] : loaded) {
    const Tensor<float>& r = bf16.at(name);
    for (int64_t i = 0; i < t.numel(); ++i) {
      const float want = static_cast<float>(attn::bfloat16(t.flat(i)));
      if (!(std::isnan(want) ? std::isnan(r.flat(i)) : want == r.flat(i)))
        fuzz_fail("'" + name + "' element " + std::to_string(i) + " = " + std::to_string(t.flat(i)) +
                  " is written as BF16 " + std::to_string(r.flat(i)) + ", attn::bfloat16 rounds it to " +
                  std::to_string(want));
    }
  }
  return 0;
}
