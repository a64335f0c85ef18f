// Tests for the safetensors reader and writer.
//
// Independent expectations: files written by the reference implementation
// (tests/golden/*.safetensors, made by make_safetensors_fixtures.py with the
// `safetensors` package and torch), whose values are listed literally here;
// byte-for-byte equality with the reference writer; torch's float16/bfloat16
// rounding; and malformed files built byte by byte below.
#include "attn/safetensors.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numbers>
#include <random>
#include <string>
#include <unistd.h>

#include "attn/linear.hpp"
#include "resource_limits.hpp"

using attn::Shape;
using attn::Tensor;
namespace fs = std::filesystem;

namespace {

const std::string kFixture = std::string(ATTN_GOLDEN_DIR) + "/safetensors_fixture.safetensors";
const std::string kReference = std::string(ATTN_GOLDEN_DIR) + "/safetensors_reference_f32.safetensors";

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A scratch file name unique to this test and process (tests may run in parallel).
std::string temp_path(const std::string& tag) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return (fs::temp_directory_path() / ("attn_st_" + std::string(info->name()) + "_" + tag + "_" +
                                       std::to_string(::getpid()) + ".safetensors"))
      .string();
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// A file: 8-byte length, the header text (padded with spaces to 8 bytes
// unless told not to), then `data_size` bytes of data. `length` overrides N.
std::vector<uint8_t> make_file(const std::string& header, size_t data_size, std::optional<uint64_t> length = {}) {
  std::string text = header;
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t n = length.value_or(text.size());
  std::vector<uint8_t> bytes(8);
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(n >> (8 * i));
  bytes.insert(bytes.end(), text.begin(), text.end());
  bytes.resize(bytes.size() + data_size, 0);
  return bytes;
}

// Expects IOError whose message contains `fragment` and the source's name.
void expect_io_error(const std::vector<uint8_t>& bytes, const std::string& fragment) {
  try {
    attn::deserialize_safetensors<float>(bytes, "bad.safetensors");
    ADD_FAILURE() << "no exception; expected one mentioning '" << fragment << "'";
  } catch (const attn::IOError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find(fragment), std::string::npos) << "expected '" << fragment << "' in: " << msg;
  }
}

template <class T>
Tensor<T> pattern(const Shape& shape, double seed) {
  Tensor<T> t(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.flat(i) = static_cast<T>(std::sin(seed + 0.7 * i));
  return t;
}

template <class T>
void expect_same(const Tensor<T>& got, const Tensor<T>& want) {
  EXPECT_EQ(got.shape(), want.shape());
  EXPECT_EQ(got.to_vector(), want.to_vector());
}

// The bytes of tensor `name` in a file's data section.
std::vector<uint8_t> tensor_bytes(const std::vector<uint8_t>& file, const attn::SafetensorsHeader& h,
                                  const std::string& name) {
  const auto& info = h.tensors.at(name);
  const size_t start = 8 + h.header_size;
  return {file.begin() + static_cast<std::ptrdiff_t>(start + info.begin),
          file.begin() + static_cast<std::ptrdiff_t>(start + info.end)};
}

}  // namespace

// ---- round trips ---------------------------------------------------------------------

template <class T>
void round_trip() {
  std::map<std::string, Tensor<T>> tensors{
      {"layer.weight", pattern<T>({3, 4}, 0.1)},
      {"transposed", pattern<T>({4, 2}, 0.2).transpose(0, 1)},  // strided: written row-major
      {"scalar", Tensor<T>(Shape{}, {T(-7.5)})},
      {"empty", Tensor<T>({0, 5})},
      {"four_d", pattern<T>({2, 1, 3, 2}, 0.3)},
  };
  tensors["extremes"] = Tensor<T>({4}, {std::numeric_limits<T>::max(), std::numeric_limits<T>::denorm_min(),
                                        -std::numeric_limits<T>::infinity(), T(-0.0)});
  const std::map<std::string, std::string> meta{{"format", "pt"}, {"note", "ünïcödé ok"}};
  const std::string path = temp_path(sizeof(T) == 4 ? "f32" : "f64");
  attn::save_safetensors(path, tensors, meta);
  const auto loaded = attn::load_safetensors<T>(path);
  ASSERT_EQ(loaded.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    ASSERT_EQ(loaded.count(name), 1u);
    expect_same(loaded.at(name), t.contiguous());
  }
  EXPECT_TRUE(std::signbit(loaded.at("extremes")(3)));
  EXPECT_EQ(attn::load_safetensors_metadata(path), meta);
  const auto header = attn::read_safetensors_header(path);
  EXPECT_EQ(header.tensors.at("layer.weight").dtype, sizeof(T) == 4 ? "F32" : "F64");
  EXPECT_EQ((8 + header.header_size) % 8, 0u);
  fs::remove(path);
}

TEST(Safetensors, RoundTripFloat) { round_trip<float>(); }
TEST(Safetensors, RoundTripDouble) { round_trip<double>(); }

TEST(Safetensors, LoadConvertsBetweenFloatAndDouble) {
  const auto bytes = attn::serialize_safetensors<double>({{"x", Tensor<double>({2}, {0.1, 1e300})}});
  const auto as_float = attn::deserialize_safetensors<float>(bytes);
  EXPECT_EQ(as_float.at("x")(0), 0.1f);
  EXPECT_TRUE(std::isinf(as_float.at("x")(1)));
}

TEST(Safetensors, SaveAsHalfAndBfloat16) {
  // Values exact in both formats come back unchanged.
  const Tensor<float> t({4}, {1.0f, -2.5f, 0.09375f, 384.0f});
  for (const std::string dtype : {"F16", "BF16", "F64"}) {
    SCOPED_TRACE(dtype);
    const auto bytes = attn::serialize_safetensors<float>({{"t", t}}, {}, dtype);
    EXPECT_EQ(attn::deserialize_safetensors<float>(bytes).at("t").to_vector(), t.to_vector());
    const size_t elem = dtype == "F64" ? 8 : 2;
    const uint64_t n = bytes[0] | (uint64_t{bytes[1]} << 8);
    EXPECT_EQ(bytes.size(), 8 + n + 4 * elem);
  }
}

TEST(Safetensors, HeaderIsPaddedWithSpacesToEightBytes) {
  for (int len = 1; len <= 9; ++len) {
    const auto bytes = attn::serialize_safetensors<float>({{std::string(len, 'a'), Tensor<float>({1})}});
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= uint64_t{bytes[i]} << (8 * i);
    EXPECT_EQ(n % 8, 0u);
    EXPECT_EQ(bytes[8], '{');
    size_t last = 8 + n - 1;
    while (bytes[last] == ' ') --last;
    EXPECT_EQ(bytes[last], '}');
    EXPECT_LT(8 + n - 1 - last, 8u);
  }
}

// ---- files written by the reference implementation ---------------------------------

TEST(SafetensorsReference, ReadsEveryDtypeTheReferenceWrote) {
  const auto t = attn::load_safetensors<double>(kFixture);
  EXPECT_EQ(t.size(), 14u);
  EXPECT_EQ(t.at("f32").shape(), (Shape{2, 3}));
  EXPECT_EQ(t.at("f32").to_vector(), (std::vector<double>{-1, -0.5, 0, 0.5, 1, 1.5}));
  EXPECT_EQ(t.at("f64").to_vector(), (std::vector<double>{std::numbers::pi, -std::numbers::e, 1e-300}));
  EXPECT_EQ(t.at("f16").to_vector(), (std::vector<double>{1.0, -2.5, 65504.0, std::ldexp(1.0, -24)}));
  EXPECT_EQ(t.at("bf16").to_vector(), (std::vector<double>{1.5, -256.0, std::ldexp(1.0, -130)}));
  EXPECT_EQ(t.at("i64").shape(), (Shape{2, 2}));
  EXPECT_EQ(t.at("i64").to_vector(), (std::vector<double>{-3, 0, 7, std::ldexp(1.0, 40)}));
  EXPECT_EQ(t.at("i32").to_vector(), (std::vector<double>{-7, 2147483647}));
  EXPECT_EQ(t.at("i8").to_vector(), (std::vector<double>{-128, 127}));
  EXPECT_EQ(t.at("u8").to_vector(), (std::vector<double>{0, 200, 255}));
  EXPECT_EQ(t.at("bool").to_vector(), (std::vector<double>{1, 0, 1}));
  EXPECT_EQ(t.at("scalar").dim(), 0);
  EXPECT_EQ(t.at("scalar").to_vector(), (std::vector<double>{4.25}));
  EXPECT_EQ(t.at("empty").shape(), (Shape{0, 3}));
  const auto meta = attn::load_safetensors_metadata(kFixture);
  EXPECT_EQ(meta, (std::map<std::string, std::string>{{"format", "pt"}, {"source", "attn fixture"}}));
  const auto as_float = attn::load_safetensors<float>(kFixture);
  EXPECT_EQ(as_float.at("f64")(0), static_cast<float>(std::numbers::pi));
}

TEST(SafetensorsReference, WriterReproducesTheReferenceBytes) {
  // weight = (n - 2.5) / 4 over a [2, 3] arange, bias the same over [2].
  Tensor<float> weight({2, 3}), bias({2});
  for (int i = 0; i < 6; ++i) weight.flat(i) = (static_cast<float>(i) - 2.5f) / 4;
  for (int i = 0; i < 2; ++i) bias.flat(i) = (static_cast<float>(i) - 2.5f) / 4;
  const auto ours = attn::serialize_safetensors<float>({{"weight", weight}, {"bias", bias}}, {{"format", "pt"}});
  EXPECT_EQ(ours, read_bytes(kReference));
}

TEST(SafetensorsReference, HalfAndBfloat16RoundingMatchesTorch) {
  const auto fixture = read_bytes(kFixture);
  const auto header = attn::read_safetensors_header(kFixture);
  const auto input = attn::load_safetensors<float>(kFixture).at("rounding_input");
  ASSERT_EQ(input.numel(), 41);
  for (const auto& [dtype, name] : {std::pair{"F16", "rounding_f16"}, std::pair{"BF16", "rounding_bf16"}}) {
    SCOPED_TRACE(dtype);
    const auto ours = attn::serialize_safetensors<float>({{"x", input}}, {}, dtype);
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= uint64_t{ours[i]} << (8 * i);
    const std::vector<uint8_t> our_data(ours.begin() + static_cast<std::ptrdiff_t>(8 + n), ours.end());
    const auto torch_data = tensor_bytes(fixture, header, name);
    ASSERT_EQ(our_data.size(), torch_data.size());
    for (size_t i = 0; i < our_data.size(); i += 2) {
      const int ours_bits = our_data[i] | (our_data[i + 1] << 8), torch_bits = torch_data[i] | (torch_data[i + 1] << 8);
      if (std::isnan(input.flat(static_cast<int64_t>(i / 2)))) {
        // Any NaN is right: torch itself writes 0xFFFF or 0x7FC0 for a bfloat16
        // NaN depending on whether its vector or scalar loop converted it.
        const int exp_mask = std::string(dtype) == "F16" ? 0x7c00 : 0x7f80;
        const int mant_mask = std::string(dtype) == "F16" ? 0x03ff : 0x007f;
        EXPECT_TRUE((ours_bits & exp_mask) == exp_mask && (ours_bits & mant_mask) != 0) << ours_bits;
        EXPECT_TRUE((torch_bits & exp_mask) == exp_mask && (torch_bits & mant_mask) != 0) << torch_bits;
        continue;
      }
      EXPECT_EQ(ours_bits, torch_bits) << "element " << i / 2 << " = " << input.flat(static_cast<int64_t>(i / 2));
    }
  }
}

TEST(SafetensorsReference, LoadsWeightsIntoALinear) {
  attn::Linear<float> lin(3, 2);
  lin.load_state_dict(attn::load_safetensors<float>(kReference));
  EXPECT_EQ(lin.weight.value.to_vector(), (std::vector<float>{-0.625f, -0.375f, -0.125f, 0.125f, 0.375f, 0.625f}));
  EXPECT_EQ(lin.bias.value.to_vector(), (std::vector<float>{-0.625f, -0.375f}));
  // y = W·[1, 2, 3] + b
  const auto y = lin.forward(Tensor<float>({3}, {1, 2, 3}));
  EXPECT_FLOAT_EQ(y(0), -0.625f - 0.75f - 0.375f - 0.625f);
  EXPECT_FLOAT_EQ(y(1), 0.125f + 0.75f + 1.875f - 0.375f);

  // and back out: a saved state_dict loads into a fresh layer
  const std::string path = temp_path("linear");
  attn::save_safetensors(path, lin.state_dict(), {{"format", "pt"}});
  attn::Linear<float> other(3, 2);
  other.load_state_dict(attn::load_safetensors<float>(path));
  EXPECT_EQ(other.weight.value.to_vector(), lin.weight.value.to_vector());
  EXPECT_EQ(read_bytes(path), read_bytes(kReference));
  fs::remove(path);
}

// ---- malformed files -----------------------------------------------------------------

TEST(SafetensorsMalformed, MissingFileOrDirectory) {
  const std::string missing = temp_path("does_not_exist");
  try {
    attn::load_safetensors<float>(missing);
    FAIL();
  } catch (const attn::IOError& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not found"), std::string::npos) << e.what();
  }
  EXPECT_THROW(attn::load_safetensors<float>(fs::temp_directory_path().string()), attn::IOError);
  EXPECT_THROW(attn::load_safetensors_metadata(missing), attn::IOError);
}

TEST(SafetensorsMalformed, TooShortForTheLength) {
  expect_io_error({}, "0 bytes long");
  expect_io_error({1, 0, 0, 0, 0, 0, 0}, "7 bytes long");
  const std::string path = temp_path("short");
  write_bytes(path, {1, 2, 3});
  try {
    attn::load_safetensors<float>(path);
    FAIL();
  } catch (const attn::IOError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  fs::remove(path);
}

TEST(SafetensorsMalformed, AbsurdHeaderLength) {
  expect_io_error(make_file("{}", 0, uint64_t{200'000'000}), "100 MB");
  expect_io_error(make_file("{}", 0, ~uint64_t{0}), "100 MB");
  expect_io_error(make_file("{}", 0, uint64_t{64}), "runs past the end of the file");
  expect_io_error(make_file("", 0), "does not start with '{'");
}

TEST(SafetensorsMalformed, HeaderIsNotAJsonObject) {
  expect_io_error(make_file("[1, 2]", 0), "does not start with '{'");
  expect_io_error(make_file("{\"a\": ", 0), "not valid JSON");
  expect_io_error(make_file("{\"a\": {}} trailing", 0), "not valid JSON");
  expect_io_error(make_file("{\"a\xff\": 1}", 0), "not valid JSON");  // not UTF-8
  expect_io_error(make_file("{\"a\": 1, \"a\": 2}", 0), "twice");
  std::string deep = "{\"x\":";
  for (int i = 0; i < 100; ++i) deep += "[";
  expect_io_error(make_file(deep, 0), "nests deeper");
}

TEST(SafetensorsMalformed, EntriesWithMissingOrIllTypedFields) {
  const std::string ok_rest = R"("shape": [2], "data_offsets": [0, 8])";
  expect_io_error(make_file(R"({"t": 5})", 8), "expected an object");
  expect_io_error(make_file(R"({"t": {"shape": [2], "data_offsets": [0, 8]}})", 8), "missing field 'dtype'");
  expect_io_error(make_file(R"({"t": {"dtype": "F32", "data_offsets": [0, 8]}})", 8), "missing field 'shape'");
  expect_io_error(make_file(R"({"t": {"dtype": "F32", "shape": [2]}})", 8), "missing field 'data_offsets'");
  expect_io_error(make_file(R"({"t": {"dtype": 32, )" + ok_rest + "}}", 8), "expected a string");
  expect_io_error(make_file(R"({"t": {"dtype": "F8_E4M3", )" + ok_rest + "}}", 8), "unsupported dtype 'F8_E4M3'");
  expect_io_error(make_file(R"({"t": {"dtype": "float32", )" + ok_rest + "}}", 8), "unknown");
  expect_io_error(make_file(R"({"t": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}})", 8),
                  "expected an array");
  expect_io_error(make_file(R"({"t": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8),
                  "non-negative integer");
  expect_io_error(make_file(R"({"t": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}})", 8),
                  "non-negative integer");
  expect_io_error(make_file(R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})", 8), "[begin, end]");
  expect_io_error(make_file(R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", 8),
                  "end before they begin");
  expect_io_error(make_file(R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}})", 8),
                  "non-negative integer");
  expect_io_error(make_file(R"({"__metadata__": [1], "t": {"dtype": "F32", )" + ok_rest + "}}", 8),
                  "__metadata__");
  expect_io_error(make_file(R"({"__metadata__": {"k": 1}, "t": {"dtype": "F32", )" + ok_rest + "}}", 8),
                  "expected a string");
}

TEST(SafetensorsMalformed, ShapeDoesNotMatchOffsets) {
  expect_io_error(make_file(R"({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8), "hold 8");
  expect_io_error(make_file(R"({"t": {"dtype": "F64", "shape": [2], "data_offsets": [0, 8]}})", 8), "hold 8");
  // 2^40 · 2^40 · 2^40 elements overflows 64 bits
  expect_io_error(
      make_file(R"({"t": {"dtype": "F32", "shape": [1099511627776, 1099511627776, 1099511627776], "data_offsets": [0, 8]}})", 8),
      "more than 2^64");
}

TEST(SafetensorsMalformed, EmptyTensorWithHugeSizesIsRefusedNamingIt) {
  // 0 bytes of data, but sizes whose strides overflow: this used to reach
  // Tensor's element count as a signed overflow (UBSan) before any check.
  expect_io_error(
      make_file(R"({"t": {"dtype": "F32", "shape": [0, 1099511627776, 1099511627776], "data_offsets": [0, 0]}})", 0),
      "tensor 't': shape [0, 1099511627776, 1099511627776] is too large");
  // An empty tensor whose strides fit loads as such.
  const auto ok = attn::deserialize_safetensors<float>(
      make_file(R"({"t": {"dtype": "F32", "shape": [0, 1048576, 1048576], "data_offsets": [0, 0]}})", 0));
  EXPECT_EQ(ok.at("t").shape(), (Shape{0, 1048576, 1048576}));
}

TEST(Safetensors, AHeaderOfManyEntriesParsesAndFindsEveryName) {
  // 50k one-element tensors. (The callback parse used before was quadratic
  // in the entries: 16k took 2 s, 200k over a minute; the timing is in the
  // commit message, not a timed test.)
  constexpr int kEntries = 50'000;
  std::string header = "{";
  for (int i = 0; i < kEntries; ++i)
    header += (i ? ",\"t" : "\"t") + std::to_string(i) + R"(":{"dtype":"F32","shape":[1],"data_offsets":[)" +
              std::to_string(4 * i) + "," + std::to_string(4 * i + 4) + "]}";
  header += ",\"__metadata__\":{\"k\":\"v\"}}";
  const auto tensors = attn::deserialize_safetensors<float>(make_file(header, 4 * kEntries));
  ASSERT_EQ(tensors.size(), static_cast<size_t>(kEntries));
  for (int i = 0; i < kEntries; i += 997) EXPECT_TRUE(tensors.count("t" + std::to_string(i))) << i;
  EXPECT_TRUE(tensors.count("t49999"));
  // A duplicate among them is still found (the check now runs in its own pass).
  std::string dup = header;
  dup.replace(dup.find("\"t12345\""), 8, "\"t12346\"");
  expect_io_error(make_file(dup, 4 * kEntries), "the key 't12346' twice");
}

TEST(SafetensorsMalformed, OffsetsOverlapLeaveGapsOrRunOut) {
  const std::string a = R"("a": {"dtype": "F32", "shape": [2], "data_offsets": )";
  const std::string b = R"("b": {"dtype": "F32", "shape": [2], "data_offsets": )";
  expect_io_error(make_file("{" + a + "[0, 8]}, " + b + "[4, 12]}}", 12), "overlaps tensor 'a'");
  expect_io_error(make_file("{" + a + "[0, 8]}, " + b + "[12, 20]}}", 20), "gap");
  expect_io_error(make_file("{" + a + "[4, 12]}}", 12), "gap after the header");
  expect_io_error(make_file("{" + a + "[0, 8]}, " + b + "[8, 16]}}", 12), "truncated");
  expect_io_error(make_file("{" + a + "[0, 8]}}", 0), "truncated");
  expect_io_error(make_file("{" + a + "[0, 8]}}", 9), "1 bytes after the last tensor");
  expect_io_error(make_file("{" + a + "[0, 8]}, " + b + "[0, 8]}}", 8), "overlaps");
}

TEST(SafetensorsMalformed, TruncatedAtEveryLengthThrowsIOError) {
  const auto good = read_bytes(kFixture);
  ASSERT_GT(good.size(), 100u);
  EXPECT_NO_THROW(attn::deserialize_safetensors<float>(good));
  for (size_t len = 0; len < good.size(); ++len) {
    const std::vector<uint8_t> cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(len));
    EXPECT_THROW(attn::deserialize_safetensors<float>(cut), attn::IOError) << "length " << len;
  }
}

TEST(SafetensorsMalformed, CorruptedBytesNeverCrash) {
  // Random single-byte changes: each file either loads or throws IOError.
  const auto good = read_bytes(kFixture);
  std::mt19937 rng(7);
  int thrown = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    auto bad = good;
    const size_t where = rng() % std::min<size_t>(good.size(), 600);  // mostly the length and header
    bad[where] = static_cast<uint8_t>(rng());
    try {
      attn::deserialize_safetensors<double>(bad);
    } catch (const attn::IOError&) {
      ++thrown;
    }
  }
  EXPECT_GT(thrown, 0);
}

// ---- writing errors -----------------------------------------------------------------------

TEST(Safetensors, SaveRejectsBadArguments) {
  const std::string path = temp_path("bad_args");
  EXPECT_THROW(attn::save_safetensors<float>(path, {{"__metadata__", Tensor<float>({1})}}), attn::ValueError);
  EXPECT_THROW(attn::save_safetensors<float>(path, {{"t", Tensor<float>()}}), attn::ValueError);
  EXPECT_THROW(attn::save_safetensors<float>(path, {{"t", Tensor<float>({1})}}, {}, "I64"), attn::ValueError);
  EXPECT_THROW(attn::save_safetensors<float>(path, {{"t", Tensor<float>({1})}}, {}, "F8_E4M3"), attn::ValueError);
  EXPECT_THROW(attn::serialize_safetensors<float>({{"bad\xff", Tensor<float>({1})}}), attn::ValueError);
  EXPECT_FALSE(fs::exists(path));  // nothing written for rejected arguments
  const std::string unwritable = (fs::temp_directory_path() / "attn_no_such_dir" / "x.safetensors").string();
  try {
    attn::save_safetensors<float>(unwritable, {{"t", Tensor<float>({1})}});
    FAIL();
  } catch (const attn::IOError& e) {
    EXPECT_NE(std::string(e.what()).find(unwritable), std::string::npos) << e.what();
  }
}

// ---- a failed save keeps the old file (issue 17) ------------------------------------------

TEST(Safetensors, ASaveThatFailsMidwayLeavesTheOldFileByteForByte) {
  // The old file, then a save of ~64 KiB in a child whose files may not
  // grow past 4 KiB (RLIMIT_FSIZE: the write fails with EFBIG halfway).
  // save_safetensors used to truncate the file first and write in place.
  const std::string path = temp_path("atomic");
  attn::save_safetensors<float>(path, {{"old", pattern<float>({3, 5}, 0.5)}}, {{"v", "1"}});
  const std::vector<uint8_t> before = read_bytes(path);
  const int status = attn::testing::run_in_child([&] {
    if (!attn::testing::limit_file_size(4096)) return 2;
    try {
      attn::save_safetensors<float>(path, {{"new", pattern<float>({128, 128}, 1.5)}});
    } catch (const attn::IOError& e) {
      return std::string(e.what()).find(path) != std::string::npos ? 0 : 3;  // names the path
    }
    return 4;  // no error
  });
  EXPECT_EQ(status, 0) << "2: setrlimit failed, 3: the message does not name the path, 4: no IOError";
  EXPECT_EQ(read_bytes(path), before);
  // No temporary file is left beside it.
  for (const auto& entry : fs::directory_iterator(fs::path(path).parent_path()))
    EXPECT_EQ(entry.path().filename().string().find("." + fs::path(path).filename().string()), std::string::npos)
        << entry.path();
  // And a save that succeeds replaces it.
  attn::save_safetensors<float>(path, {{"new", pattern<float>({2, 2}, 1.5)}});
  EXPECT_EQ(attn::load_safetensors<float>(path).count("new"), 1u);
  fs::remove(path);
}
