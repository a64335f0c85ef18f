// safetensors.cpp — Hugging Face's safetensors format: reader and writer.
//
// Reading, in order (every step validates before the next one trusts it):
//   1. file size >= 8; N = u64 little-endian; N <= 100 MB and 8 + N <= size
//   2. the N header bytes start with '{' and parse as a JSON object (no
//      duplicate keys, nesting kept shallow)
//   3. each entry: dtype (a known name), shape (non-negative integers),
//      data_offsets [begin, end] with begin <= end and
//      end - begin == numel(shape) * sizeof(dtype), computed without overflow
//   4. sorted by offset the entries tile the data section exactly: the first
//      starts at 0, each starts where the previous ended, the last ends at the
//      end of the file
//   5. only then the data is read, tensor by tensor, and converted to T.
// Writing follows the reference implementation: "__metadata__" first, tensors
// laid out in name order (one dtype per file, so alignment is already
// uniform), the header padded with spaces so the data starts at a multiple
// of 8 bytes.
#include "attn/safetensors.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string_view>

#include "attn/atomic_file.hpp"
#include "attn/detail/size_math.hpp"
#include "attn/errors.hpp"

namespace attn {

namespace {

constexpr uint64_t kMaxHeaderSize = 100'000'000;  // the reference implementation's limit
constexpr int kMaxJsonDepth = 16;                 // a valid header needs 3

// ---- dtypes ------------------------------------------------------------------------

enum class Kind { Float, Signed, Unsigned, Bool };

struct DtypeInfo {
  std::string_view name;
  uint64_t size;  // bytes per element
  Kind kind;
};

// What we can read. The format also has F8_E4M3, F8_E5M2, C64, ...: those are
// reported as unsupported.
constexpr std::array<DtypeInfo, 13> kDtypes{{
    {"F64", 8, Kind::Float},    {"F32", 4, Kind::Float},      {"F16", 2, Kind::Float},
    {"BF16", 2, Kind::Float},   {"I64", 8, Kind::Signed},     {"I32", 4, Kind::Signed},
    {"I16", 2, Kind::Signed},   {"I8", 1, Kind::Signed},      {"U64", 8, Kind::Unsigned},
    {"U32", 4, Kind::Unsigned}, {"U16", 2, Kind::Unsigned},   {"U8", 1, Kind::Unsigned},
    {"BOOL", 1, Kind::Bool},
}};

const DtypeInfo* find_dtype(std::string_view name) {
  for (const auto& d : kDtypes)
    if (d.name == name) return &d;
  return nullptr;
}

// ---- float16 / bfloat16 ---------------------------------------------------------------

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: mant · 2^-24, exact in float
    const float v = static_cast<float>(mant) * 0x1p-24f;
    return std::bit_cast<float>(std::bit_cast<uint32_t>(v) | sign);
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));  // inf / NaN
  return std::bit_cast<float>(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

// Round to nearest, ties to even (torch's c10::Half); NaN -> quiet NaN, overflow -> inf.
uint16_t float_to_half(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u;  // NaN
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 (and inf) -> inf
  if (a < 0x38800000u) {                        // below 2^-14: a subnormal half, m · 2^-24
    const float m = std::nearbyint(std::bit_cast<float>(a) * 0x1p24f);  // exact scaling, then RNE
    return sign | static_cast<uint16_t>(m);                              // m = 1024 is 2^-14, also right
  }
  const uint32_t mant = a & 0x7fffffu;
  uint32_t h = ((((a >> 23) - 127 + 15) << 10) | (mant >> 13));
  const uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // may carry into the exponent: fine
  return sign | static_cast<uint16_t>(h);
}

float bf16_to_float(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

// torch's c10::BFloat16 round_to_nearest_even.
uint16_t float_to_bf16(float f) {
  if (std::isnan(f)) return 0x7fc0u;
  const uint32_t x = std::bit_cast<uint32_t>(f);
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

// ---- little-endian bytes -------------------------------------------------------------

uint64_t read_le(const uint8_t* p, uint64_t n) {
  uint64_t v = 0;
  for (uint64_t i = n; i-- > 0;) v = (v << 8) | p[i];
  return v;
}

void write_le(uint8_t* p, uint64_t v, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// One element of dtype `d` at `p`, as T.
template <class T>
T decode(const DtypeInfo& d, const uint8_t* p) {
  const uint64_t raw = read_le(p, d.size);
  switch (d.kind) {
    case Kind::Float:
      if (d.name == "F64") return static_cast<T>(std::bit_cast<double>(raw));
      if (d.name == "F32") return static_cast<T>(std::bit_cast<float>(static_cast<uint32_t>(raw)));
      if (d.name == "F16") return static_cast<T>(half_to_float(static_cast<uint16_t>(raw)));
      return static_cast<T>(bf16_to_float(static_cast<uint16_t>(raw)));
    case Kind::Signed: {
      const uint64_t sign_bit = uint64_t{1} << (8 * d.size - 1);
      // sign-extend from d.size bytes
      const int64_t v = d.size == 8 ? std::bit_cast<int64_t>(raw)
                                    : static_cast<int64_t>(raw ^ sign_bit) - static_cast<int64_t>(sign_bit);
      return static_cast<T>(v);
    }
    case Kind::Unsigned:
      return static_cast<T>(raw);
    case Kind::Bool:
      return raw != 0 ? T(1) : T(0);
  }
  return T(0);
}

// One element as dtype `d` (F64, F32, F16 or BF16) at `p`. F16 and BF16 go
// through float, like torch's .to(torch.float16) from float64.
template <class T>
void encode(const DtypeInfo& d, T v, uint8_t* p) {
  if (d.name == "F64") write_le(p, std::bit_cast<uint64_t>(static_cast<double>(v)), 8);
  else if (d.name == "F32") write_le(p, std::bit_cast<uint32_t>(static_cast<float>(v)), 4);
  else if (d.name == "F16") write_le(p, float_to_half(static_cast<float>(v)), 2);
  else write_le(p, float_to_bf16(static_cast<float>(v)), 2);
}

// ---- where the bytes come from ---------------------------------------------------------

class ByteSource {
 public:
  explicit ByteSource(std::string name) : name_(std::move(name)) {}
  virtual ~ByteSource() = default;
  virtual uint64_t size() const = 0;
  /// Exactly n bytes at `offset` into dst; the caller has checked the range.
  virtual void read(uint64_t offset, uint64_t n, uint8_t* dst) = 0;

  [[noreturn]] void fail(const std::string& problem) const {
    throw IOError("safetensors: " + name_ + ": " + problem);
  }

 private:
  std::string name_;
};

class FileSource : public ByteSource {
 public:
  explicit FileSource(const std::string& path) : ByteSource(path) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (ec || !std::filesystem::exists(status)) fail("file not found");
    if (!std::filesystem::is_regular_file(status)) fail("not a regular file");
    in_.open(path, std::ios::binary);
    if (!in_) fail("cannot open the file for reading");
    in_.seekg(0, std::ios::end);
    const std::streamoff end = in_.tellg();
    if (end < 0) fail("cannot determine the file size");
    size_ = static_cast<uint64_t>(end);
  }
  uint64_t size() const override { return size_; }
  void read(uint64_t offset, uint64_t n, uint8_t* dst) override {
    in_.clear();
    in_.seekg(static_cast<std::streamoff>(offset));
    in_.read(reinterpret_cast<char*>(dst), static_cast<std::streamsize>(n));
    if (!in_ || static_cast<uint64_t>(in_.gcount()) != n)
      fail("could not read " + std::to_string(n) + " bytes at offset " + std::to_string(offset) +
           " (the file changed while being read?)");
  }

 private:
  std::ifstream in_;
  uint64_t size_ = 0;
};

class MemorySource : public ByteSource {
 public:
  MemorySource(std::span<const uint8_t> bytes, std::string name) : ByteSource(std::move(name)), bytes_(bytes) {}
  uint64_t size() const override { return bytes_.size(); }
  void read(uint64_t offset, uint64_t n, uint8_t* dst) override {
    std::copy_n(bytes_.data() + offset, n, dst);
  }

 private:
  std::span<const uint8_t> bytes_;
};

// ---- the header --------------------------------------------------------------------------

using nlohmann::json;

// A non-negative JSON integer, or a failure naming `what`.
uint64_t as_count(const ByteSource& src, const json& j, const std::string& what) {
  if (!j.is_number_integer()) src.fail(what + " is " + j.dump() + ", expected a non-negative integer");
  if (j.is_number_unsigned()) return j.get<uint64_t>();
  const int64_t v = j.get<int64_t>();
  if (v < 0) src.fail(what + " is " + std::to_string(v) + ", expected a non-negative integer");
  return static_cast<uint64_t>(v);
}

SafetensorsTensorInfo parse_entry(const ByteSource& src, const std::string& name, const json& e) {
  const std::string where = "tensor '" + name + "'";
  if (!e.is_object()) src.fail(where + ": entry is " + std::string(e.type_name()) + ", expected an object");
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!e.contains(field)) src.fail(where + ": missing field '" + field + "'");

  SafetensorsTensorInfo info;
  const json& dtype = e["dtype"];
  if (!dtype.is_string()) src.fail(where + ": dtype is " + dtype.dump() + ", expected a string");
  info.dtype = dtype.get<std::string>();
  const DtypeInfo* d = find_dtype(info.dtype);
  if (d == nullptr)
    src.fail(where + ": unknown or unsupported dtype '" + info.dtype +
             "' (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL)");

  const json& shape = e["shape"];
  if (!shape.is_array()) src.fail(where + ": shape is " + shape.dump() + ", expected an array");
  uint64_t numel = 1;
  bool overflow = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    const uint64_t s = as_count(src, shape[i], where + ": shape[" + std::to_string(i) + "]");
    if (s > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      src.fail(where + ": shape[" + std::to_string(i) + "] = " + std::to_string(s) + " is too large");
    info.shape.push_back(static_cast<int64_t>(s));
    if (s != 0 && numel > std::numeric_limits<uint64_t>::max() / s) overflow = true;
    numel *= s;
  }

  const json& offsets = e["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    src.fail(where + ": data_offsets is " + offsets.dump() + ", expected [begin, end]");
  info.begin = as_count(src, offsets[0], where + ": data_offsets[0]");
  info.end = as_count(src, offsets[1], where + ": data_offsets[1]");
  if (info.begin > info.end)
    src.fail(where + ": data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) +
             "] end before they begin");

  // numel · element size must be exactly the byte range (any zero dim: 0 bytes)
  const bool has_zero = std::find(info.shape.begin(), info.shape.end(), 0) != info.shape.end();
  if (has_zero) numel = 0, overflow = false;
  if (overflow || numel > std::numeric_limits<uint64_t>::max() / d->size ||
      numel * d->size != info.end - info.begin)
    src.fail(where + ": shape " + shape_str(info.shape) + " of " + info.dtype + " needs " +
             (overflow ? std::string("more than 2^64") : std::to_string(numel) + " x " + std::to_string(d->size)) +
             " bytes, but data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) +
             "] hold " + std::to_string(info.end - info.begin));
  // A zero size makes the tensor empty (0 bytes: the check above passes),
  // but its other sizes still define strides, which must fit in int64_t
  // (Tensor's rule): [0, 2^40, 2^40] is refused here, naming the tensor,
  // rather than when the tensor is built.
  int64_t extent = 1;
  for (int64_t s : info.shape)
    if (!detail::checked_mul(extent, std::max<int64_t>(s, 1), extent))
      src.fail(where + ": shape " + shape_str(info.shape) + " is too large: its sizes multiply to more than 2^63 - 1");
  return info;
}

// Step 2's checks as a SAX handler: no key twice in one object (kept per
// open object, log n per key) and no nesting deeper than kMaxJsonDepth.
// Syntax errors are left to the parse that follows, which reports them.
class HeaderChecker : public nlohmann::json_sax<json> {
 public:
  explicit HeaderChecker(const ByteSource& src) : src_(src) {}
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    open(true);
    return true;
  }
  bool key(string_t& key) override {
    if (!keys_.back().insert(key).second) src_.fail("the header has the key '" + key + "' twice");
    return true;
  }
  bool end_object() override {
    keys_.pop_back();
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override {
    open(false);
    return true;
  }
  bool end_array() override {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;  // json::parse reports it
  }

 private:
  void open(bool object) {
    if (++depth_ > kMaxJsonDepth) src_.fail("the header nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    if (object) keys_.emplace_back();
  }
  const ByteSource& src_;
  int depth_ = 0;
  std::vector<std::set<std::string>> keys_;  // one per open object
};

// Steps 1-4 above. Returns the header; the data section starts at 8 + header_size.
SafetensorsHeader parse_header(ByteSource& src) {
  const uint64_t file_size = src.size();
  if (file_size < 8)
    src.fail("the file is " + std::to_string(file_size) + " bytes long, too short for the 8-byte header length");
  uint8_t len_bytes[8];
  src.read(0, 8, len_bytes);
  const uint64_t n = read_le(len_bytes, 8);
  if (n > kMaxHeaderSize)
    src.fail("header length " + std::to_string(n) + " exceeds the 100 MB limit (not a safetensors file?)");
  if (n > file_size - 8)
    src.fail("header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(file_size) +
             " bytes): truncated, or not a safetensors file");

  std::string text(n, '\0');
  src.read(8, n, reinterpret_cast<uint8_t*>(text.data()));
  if (n == 0 || text[0] != '{') src.fail("the header does not start with '{': not a safetensors file");

  // Parse, rejecting duplicate keys (which JSON readers resolve differently)
  // and needless nesting: first a SAX pass that only checks those, then the
  // plain parse. (nlohmann's parse with a callback, which did both in one
  // pass, rescans the whole enclosing object each time an inner object ends:
  // quadratic in the number of tensors, over a minute for 200k entries.)
  json header;
  try {
    HeaderChecker checker(src);
    json::sax_parse(text, &checker);
    header = json::parse(text);
  } catch (const json::exception& e) {
    src.fail(std::string("the header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) src.fail("the header is not a JSON object");

  SafetensorsHeader out;
  out.header_size = n;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) src.fail("__metadata__ is " + entry.dump() + ", expected an object of strings");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string())
          src.fail("__metadata__['" + key + "'] is " + value.dump() + ", expected a string");
        out.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    out.tensors[name] = parse_entry(src, name, entry);
  }

  // Step 4: the byte ranges must tile the data section.
  const uint64_t data_size = file_size - 8 - n;
  std::vector<std::pair<const std::string*, const SafetensorsTensorInfo*>> order;
  for (const auto& [name, info] : out.tensors) order.push_back({&name, &info});
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return std::tie(a.second->begin, a.second->end) < std::tie(b.second->begin, b.second->end);
  });
  uint64_t expected_begin = 0;
  const std::string* previous = nullptr;
  for (const auto& [name, info] : order) {
    if (info->begin < expected_begin)
      src.fail("tensor '" + *name + "' at bytes [" + std::to_string(info->begin) + ", " + std::to_string(info->end) +
               ") overlaps tensor '" + *previous + "', which ends at " + std::to_string(expected_begin));
    if (info->begin > expected_begin)
      src.fail("tensor '" + *name + "' begins at byte " + std::to_string(info->begin) + ", leaving a gap after " +
               (previous ? "tensor '" + *previous + "'" : std::string("the header")) + " (expected " +
               std::to_string(expected_begin) + ")");
    expected_begin = info->end;
    previous = name;
  }
  if (expected_begin > data_size)
    src.fail("truncated: the tensors need " + std::to_string(expected_begin) + " bytes of data, the file has " +
             std::to_string(data_size) + " after the header");
  if (expected_begin < data_size)
    src.fail(std::to_string(data_size - expected_begin) + " bytes after the last tensor belong to no tensor");
  return out;
}

template <class T>
std::map<std::string, Tensor<T>> load_all(ByteSource& src) {
  const SafetensorsHeader header = parse_header(src);
  const uint64_t data_start = 8 + header.header_size;
  std::map<std::string, Tensor<T>> out;
  std::vector<uint8_t> bytes;
  for (const auto& [name, info] : header.tensors) {
    const DtypeInfo& d = *find_dtype(info.dtype);
    Tensor<T> t(info.shape);
    bytes.resize(static_cast<size_t>(info.end - info.begin));
    if (!bytes.empty()) src.read(data_start + info.begin, bytes.size(), bytes.data());
    T* dst = t.data();
    for (int64_t i = 0; i < t.numel(); ++i) dst[i] = decode<T>(d, bytes.data() + static_cast<uint64_t>(i) * d.size);
    out.emplace(name, std::move(t));
  }
  return out;
}

// ---- writing ------------------------------------------------------------------------------

template <class T>
void write_all(const std::map<std::string, Tensor<T>>& tensors, const std::map<std::string, std::string>& metadata,
               const std::string& dtype, const std::function<void(const uint8_t*, size_t)>& sink) {
  const std::string dtype_name = !dtype.empty() ? dtype : (std::is_same_v<T, float> ? "F32" : "F64");
  const DtypeInfo* d = find_dtype(dtype_name);
  if (d == nullptr || d->kind != Kind::Float)
    throw ValueError("save_safetensors: dtype '" + dtype + "' cannot be written; expected F32, F64, F16 or BF16");

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__")
      throw ValueError("save_safetensors: '__metadata__' is reserved and cannot name a tensor");
    if (!t.defined()) throw ValueError("save_safetensors: tensor '" + name + "' is undefined");
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * d->size;
    header[name] = {{"dtype", dtype_name}, {"shape", t.shape()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::ordered_json::exception& e) {
    throw ValueError(std::string("save_safetensors: a tensor name or metadata string is not valid UTF-8: ") +
                     e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned

  uint8_t len_bytes[8];
  write_le(len_bytes, text.size(), 8);
  sink(len_bytes, 8);
  sink(reinterpret_cast<const uint8_t*>(text.data()), text.size());

  std::vector<uint8_t> chunk;
  constexpr int64_t kChunk = 1 << 14;  // elements per write
  for (const auto& [name, t] : tensors) {
    for (int64_t start = 0; start < t.numel(); start += kChunk) {
      const int64_t count = std::min(kChunk, t.numel() - start);
      chunk.resize(static_cast<size_t>(count) * d->size);
      for (int64_t i = 0; i < count; ++i) encode(*d, t.flat(start + i), chunk.data() + i * d->size);
      sink(chunk.data(), chunk.size());
    }
  }
}

}  // namespace

// ---- public API -----------------------------------------------------------------------------

template <class T>
std::vector<uint8_t> serialize_safetensors(const std::map<std::string, Tensor<T>>& tensors,
                                           const std::map<std::string, std::string>& metadata,
                                           const std::string& dtype) {
  std::vector<uint8_t> out;
  write_all(tensors, metadata, dtype, [&](const uint8_t* p, size_t n) { out.insert(out.end(), p, p + n); });
  return out;
}

template <class T>
void save_safetensors(const std::string& path, const std::map<std::string, Tensor<T>>& tensors,
                      const std::map<std::string, std::string>& metadata, const std::string& dtype) {
  // Through a temporary file, renamed over `path` only once every byte is
  // on disk: a failure (full disk, an exception halfway) keeps the old file.
  std::optional<AtomicFileWriter> file;
  try {
    write_all(tensors, metadata, dtype, [&](const uint8_t* p, size_t n) {
      if (!file) file.emplace(path);  // created only once the arguments have been validated
      file->write(p, n);
    });
    file->commit();  // (write_all always writes the 8-byte length, so the file exists)
  } catch (const IOError& e) {
    throw IOError(std::string("safetensors: ") + e.what());
  }
}

template <class T>
std::map<std::string, Tensor<T>> load_safetensors(const std::string& path) {
  FileSource src(path);
  return load_all<T>(src);
}

template <class T>
std::map<std::string, Tensor<T>> deserialize_safetensors(std::span<const uint8_t> bytes, const std::string& source) {
  MemorySource src(bytes, source);
  return load_all<T>(src);
}

SafetensorsHeader read_safetensors_header(const std::string& path) {
  FileSource src(path);
  return parse_header(src);
}

std::map<std::string, std::string> load_safetensors_metadata(const std::string& path) {
  return read_safetensors_header(path).metadata;
}

template void save_safetensors<float>(const std::string&, const std::map<std::string, Tensor<float>>&,
                                      const std::map<std::string, std::string>&, const std::string&);
template void save_safetensors<double>(const std::string&, const std::map<std::string, Tensor<double>>&,
                                       const std::map<std::string, std::string>&, const std::string&);
template std::vector<uint8_t> serialize_safetensors<float>(const std::map<std::string, Tensor<float>>&,
                                                           const std::map<std::string, std::string>&,
                                                           const std::string&);
template std::vector<uint8_t> serialize_safetensors<double>(const std::map<std::string, Tensor<double>>&,
                                                            const std::map<std::string, std::string>&,
                                                            const std::string&);
template std::map<std::string, Tensor<float>> load_safetensors<float>(const std::string&);
template std::map<std::string, Tensor<double>> load_safetensors<double>(const std::string&);
template std::map<std::string, Tensor<float>> deserialize_safetensors<float>(std::span<const uint8_t>,
                                                                             const std::string&);
template std::map<std::string, Tensor<double>> deserialize_safetensors<double>(std::span<const uint8_t>,
                                                                               const std::string&);

}  // namespace attn
