// attn/safetensors.hpp — read and write Hugging Face's safetensors files.
//
// The format (https://huggingface.co/docs/safetensors):
//   8 bytes    N, the header length, unsigned little-endian
//   N bytes    a JSON object, padded with spaces so that 8 + N is a multiple of 8:
//                { "<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
//                  ...,
//                  "__metadata__": {"<key>": "<value>", ...} }        (optional)
//   the rest   the data: each tensor's elements, row-major, little-endian, at
//              [begin, end) counted from the end of the header. Tensors are
//              packed: sorted by offset they start at 0, each begins where the
//              previous ends, and the last one ends at the end of the file.
//
// Weights move between attn and PyTorch with it:
//   save_safetensors("lin.safetensors", linear.state_dict(), {{"format", "pt"}});
//   linear.load_state_dict(load_safetensors<float>("model.safetensors"));
// and in Python: safetensors.torch.load_file("lin.safetensors").
//
// Loading converts every supported dtype to T (F64, F32, F16, BF16 and the
// integer types; BOOL becomes 0 / 1). Saving writes F32 for float and F64 for
// double unless `dtype` asks for F32, F64, F16 or BF16 (rounded to nearest,
// ties to even, as torch's .to() does).
//
// Everything read from a file is checked before it is used: a missing or short
// file, an absurd header length (beyond the file or over 100 MB), a header that
// is not a JSON object, a tensor entry with a missing or ill-typed field, an
// unknown dtype, a shape whose size does not match its byte range, offsets that
// overlap, leave gaps or run past the data, trailing bytes, duplicate names —
// each throws attn::IOError naming the file and the problem. Nothing is read
// out of bounds.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "attn/tensor.hpp"

namespace attn {

/// One tensor's entry in a safetensors header.
struct SafetensorsTensorInfo {
  std::string dtype;  ///< "F32", "BF16", "I64", ... as spelled in the file
  Shape shape;
  uint64_t begin = 0, end = 0;  ///< byte range in the data section
};

/// A parsed, validated header.
struct SafetensorsHeader {
  std::map<std::string, SafetensorsTensorInfo> tensors;
  std::map<std::string, std::string> metadata;  ///< "__metadata__", empty if absent
  uint64_t header_size = 0;                     ///< N, the JSON's length in bytes
};

/// Writes `tensors` (any strides; names must be non-empty and not "__metadata__")
/// and `metadata` to `path`. dtype "" writes F32 for float, F64 for double;
/// "F32", "F64", "F16" or "BF16" converts. Throws ValueError for bad arguments,
/// IOError (naming the path) if the file cannot be written. The bytes go to
/// a temporary file beside `path`, renamed over it once complete and on disk
/// (attn/atomic_file.hpp): a failed save leaves an existing file as it was.
template <class T>
void save_safetensors(const std::string& path, const std::map<std::string, Tensor<T>>& tensors,
                      const std::map<std::string, std::string>& metadata = {}, const std::string& dtype = "");

/// The same file as bytes in memory.
template <class T>
std::vector<uint8_t> serialize_safetensors(const std::map<std::string, Tensor<T>>& tensors,
                                           const std::map<std::string, std::string>& metadata = {},
                                           const std::string& dtype = "");

/// Every tensor of the file at `path`, converted to T. Throws IOError.
template <class T>
std::map<std::string, Tensor<T>> load_safetensors(const std::string& path);

/// The same from bytes in memory; `source` names them in error messages.
template <class T>
std::map<std::string, Tensor<T>> deserialize_safetensors(std::span<const uint8_t> bytes,
                                                         const std::string& source = "<memory>");

/// The header alone (names, dtypes, shapes, offsets, metadata), validated
/// against the file's size; the data is not read. Throws IOError.
SafetensorsHeader read_safetensors_header(const std::string& path);

/// The "__metadata__" map of the file at `path` (empty if it has none).
std::map<std::string, std::string> load_safetensors_metadata(const std::string& path);

}  // namespace attn
