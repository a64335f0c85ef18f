// Tests for attn::Generator: PyTorch's CPU draws reproduced bit for bit.
//
// Expected values come from outside the code under test: the mt19937 numbers
// of the C++ standard and of the design notes, and torch's own draws recorded
// by tests/golden/make_generator_golden.py in tests/golden/generator_golden.json.
#include "attn/generator.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

using attn::Generator;
using attn::Tensor;
using nlohmann::json;

namespace {

const json& golden() {
  static const json j = [] {
    std::ifstream in(std::string(ATTN_GOLDEN_DIR) + "/generator_golden.json");
    if (!in) throw std::runtime_error("cannot open generator_golden.json");
    return json::parse(in);
  }();
  return j;
}

// Exact equality, including the sign of zero: compares the bit patterns.
template <class T>
void expect_bitwise_equal(const Tensor<T>& got, const json& want, const std::string& what) {
  ASSERT_EQ(static_cast<size_t>(got.numel()), want.size()) << what;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const T g = got.flat(i);
    const T w = static_cast<T>(want[static_cast<size_t>(i)].get<double>());
    using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    EXPECT_EQ(std::bit_cast<Bits>(g), std::bit_cast<Bits>(w))
        << what << " element " << i << ": got " << g << ", torch drew " << w;
  }
}

template <class T>
void run_step(Generator& gen, const json& step, const std::string& where) {
  const std::string op = step["op"];
  const attn::Shape shape = step["shape"].get<attn::Shape>();
  Tensor<T> t;
  if (op == "rand") {
    t = attn::rand<T>(shape, gen);
  } else if (op == "randn") {
    t = attn::randn<T>(shape, gen);
  } else if (op == "uniform_" || op == "normal_") {
    t = Tensor<T>(shape);
    if (op == "uniform_") gen.uniform_(t, step["a"], step["b"]);
    else gen.normal_(t, step["a"], step["b"]);
  } else if (op == "uniform_t" || op == "normal_t") {
    // torch: zeros(shape[1], shape[0]).t() — a transposed, non-contiguous view
    Tensor<T> base({shape[1], shape[0]});
    t = base.transpose(0, 1);
    ASSERT_FALSE(t.is_contiguous());
    if (op == "uniform_t") gen.uniform_(t, step["a"], step["b"]);
    else gen.normal_(t, step["a"], step["b"]);
  } else {
    FAIL() << "unknown op " << op;
  }
  EXPECT_EQ(t.shape(), shape);
  expect_bitwise_equal(t, step["values"], where + " " + op + " " + attn::shape_str(shape));
}

// Runs every golden case whose name starts with `prefix`; returns how many.
int run_cases(const std::string& prefix) {
  int n = 0;
  for (const auto& c : golden()["cases"]) {
    const std::string name = c["name"];
    if (name.rfind(prefix, 0) != 0) continue;
    ++n;
    Generator gen(c["seed"].get<uint64_t>());
    for (const auto& s : c["steps"]) {
      if (s["dtype"] == "float32") run_step<float>(gen, s, name);
      else run_step<double>(gen, s, name);
    }
  }
  return n;
}

}  // namespace

// ---- the engine ----------------------------------------------------------------

TEST(Generator, Mt19937SelfCheckFromDesignNotes) {
  Generator gen(123);
  EXPECT_EQ(gen.random(), 2991312382u);
  EXPECT_EQ(gen.random(), 3062119789u);
}

TEST(Generator, Mt19937TenThousandthOutputFromCxxStandard) {
  // [rand.predef]: the 10000th consecutive invocation of a default-constructed
  // mt19937 (seed 5489) produces 4123659995.
  Generator gen(5489);
  uint32_t v = 0;
  for (int i = 0; i < 10000; ++i) v = gen.random();
  EXPECT_EQ(v, 4123659995u);
}

TEST(Generator, SeedKeepsLow32BitsLikeTorch) {
  Generator a(123), b(123 + (uint64_t{7} << 32));
  EXPECT_EQ(b.initial_seed(), 123 + (uint64_t{7} << 32));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(a.random(), b.random());
}

TEST(Generator, DefaultSeedIsTorchs) {
  EXPECT_EQ(Generator().initial_seed(), 67280421310721ULL);
}

TEST(Generator, Random64PutsFirstOutputInHighHalf) {
  Generator gen(123);
  EXPECT_EQ(gen.random64(), (uint64_t{2991312382u} << 32) | 3062119789u);
}

TEST(GeneratorGolden, Random64MatchesTorchInt64Random) {
  // int64 random_() returns random64() mod 2^63.
  const auto& g = golden()["random64_low63"];
  Generator gen(g["seed"].get<uint64_t>());
  for (const auto& v : g["values"]) {
    const uint64_t want = std::stoull(v.get<std::string>());
    EXPECT_EQ(gen.random64() & ~(uint64_t{1} << 63), want);
  }
}

TEST(Generator, ManualSeedRestartsTheStreamAndDropsTheNormalCache) {
  Generator gen(42);
  const auto first = attn::randn<double>({3}, gen).to_vector();  // leaves a cached sample
  gen.manual_seed(42);
  EXPECT_EQ(attn::randn<double>({3}, gen).to_vector(), first);
}

TEST(Generator, DefaultGeneratorFollowsManualSeed) {
  attn::manual_seed(123);
  const auto a = attn::rand<float>({2, 3}).to_vector();
  Generator gen(123);
  EXPECT_EQ(a, attn::rand<float>({2, 3}, gen).to_vector());
  EXPECT_EQ(attn::default_generator().initial_seed(), 123u);
}

// ---- torch's draws ----------------------------------------------------------------

TEST(GeneratorGolden, WasMadeWithTorchsAvx2Kernels) {
  EXPECT_EQ(golden()["cpu_capability"], "AVX2");
}

TEST(GeneratorGolden, RandMatchesTorchBitForBit) { EXPECT_EQ(run_cases("rand_"), 29); }

TEST(GeneratorGolden, RandnMatchesTorchBitForBit) {
  // sizes 1 and 5: scalar Box–Muller in double; 16, 17, 33, 40: blocks of 16
  // (float through torch's AVX2 polynomials), with the last 16 redrawn.
  EXPECT_EQ(run_cases("randn_"), 29);
}

TEST(GeneratorGolden, SeveralDrawsShareTheNormalCacheLikeTorch) { EXPECT_EQ(run_cases("sequence_"), 2); }

TEST(GeneratorGolden, UniformAndNormalWithParametersMatchTorch) { EXPECT_EQ(run_cases("params_"), 2); }

TEST(GeneratorGolden, NonContiguousTensorsFillInMemoryOrderLikeTorch) { EXPECT_EQ(run_cases("transposed_"), 2); }

// A million draws per op, compared through the checksum the golden script
// computed from torch's output: Σ (i + 1) · bits(value_i) mod 2^64.
template <class T>
void check_large(const json& c) {
  const std::string what = c["op"].get<std::string>() + " " + c["dtype"].get<std::string>();
  Generator gen(c["seed"].get<uint64_t>());
  Tensor<T> t({c["n"].get<int64_t>()});
  const std::string op = c["op"];
  if (op == "rand" || op == "uniform_") gen.uniform_(t, c["a"], c["b"]);
  else gen.normal_(t, c["a"], c["b"]);
  expect_bitwise_equal(t.slice(0, 0, 4), c["first"], what + " first values");
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  uint64_t sum = 0;
  for (int64_t i = 0; i < t.numel(); ++i) sum += static_cast<uint64_t>(i + 1) * std::bit_cast<Bits>(t.data()[i]);
  EXPECT_EQ(std::to_string(sum), c["checksum"].get<std::string>()) << what << ": some of the " << t.numel()
                                                                    << " values differ from torch's";
}

TEST(GeneratorGolden, AMillionDrawsMatchTorchChecksums) {
  int n = 0;
  for (const auto& c : golden()["large"]) {
    if (c["dtype"] == "float32") check_large<float>(c);
    else check_large<double>(c);
    ++n;
  }
  EXPECT_EQ(n, 8);
}

// ---- properties and errors ----------------------------------------------------------

TEST(Generator, UniformStaysInsideHalfOpenRange) {
  Generator gen(1);
  Tensor<float> t({4096});
  gen.uniform_(t, -2.0, 3.0);
  for (float v : t.to_vector()) {
    EXPECT_GE(v, -2.0f);
    EXPECT_LT(v, 3.0f);
  }
}

TEST(Generator, RandnHasRoughlyUnitMoments) {
  Generator gen(3);
  const auto v = attn::randn<double>({20000}, gen).to_vector();
  double mean = 0, sq = 0;
  for (double x : v) mean += x, sq += x * x;
  mean /= v.size();
  sq /= v.size();
  EXPECT_NEAR(mean, 0.0, 0.03);
  EXPECT_NEAR(sq, 1.0, 0.05);
}

TEST(Generator, EmptyTensorDrawsNothing) {
  Generator a(9), b(9);
  Tensor<float> t({0, 3});
  a.uniform_(t);
  a.normal_(t);
  EXPECT_EQ(a.random(), b.random());
}

TEST(Generator, BadParametersThrowValueError) {
  Generator gen;
  Tensor<float> t({3});
  EXPECT_THROW(gen.uniform_(t, 1.0, 0.0), attn::ValueError);
  EXPECT_THROW(gen.uniform_(t, std::nan(""), 1.0), attn::ValueError);
  EXPECT_THROW(gen.uniform_(t, 0.0, 1e300), attn::ValueError);  // not a float
  EXPECT_THROW(gen.normal_(t, 0.0, -1.0), attn::ValueError);
  EXPECT_THROW(gen.normal_(t, 0.0, std::nan("")), attn::ValueError);
  try {
    gen.uniform_(t, 2.0, 1.0);
    FAIL();
  } catch (const attn::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("from"), std::string::npos) << e.what();
  }
}

TEST(Generator, ExpandedViewCannotBeFilled) {
  Generator gen;
  Tensor<double> row({1, 4});
  auto t = row.expand({3, 4});
  EXPECT_THROW(gen.uniform_(t), attn::ValueError);
  EXPECT_THROW(gen.normal_(t), attn::ValueError);
}
