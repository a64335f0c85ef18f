// Simplified self-attention (notes 004): the lecture's own numbers, the three
// normalisations, and a finite-difference check of the backward.
//
// Every expected number below was printed by tests/golden/notes_numbers.py
// (PyTorch); the notes print 4 decimals, so we compare to 1e-4 there.
#include "attn/simplified_attention.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

using attn::Normalization;
using attn::Tensor;

namespace {

// "Your journey starts with one step", one 3-d embedding per word.
template <class T>
Tensor<T> journey() {
  return Tensor<T>({6, 3}, {0.43, 0.15, 0.89,    // Your
                            0.55, 0.87, 0.66,    // journey
                            0.57, 0.85, 0.64,    // starts
                            0.22, 0.58, 0.33,    // with
                            0.77, 0.25, 0.10,    // one
                            0.05, 0.80, 0.55});  // step
}

template <class T>
void expect_row_near(const Tensor<T>& t, int64_t row, const std::vector<double>& want, double tol) {
  ASSERT_EQ(t.dim(), 2);
  ASSERT_EQ(t.size(1), static_cast<int64_t>(want.size()));
  for (size_t j = 0; j < want.size(); ++j)
    EXPECT_NEAR(t(row, static_cast<int64_t>(j)), want[j], tol) << "row " << row << " col " << j;
}

template <class T>
class SimplifiedAttentionNotes : public ::testing::Test {};
using Precisions = ::testing::Types<float, double>;
TYPED_TEST_SUITE(SimplifiedAttentionNotes, Precisions);

TYPED_TEST(SimplifiedAttentionNotes, ScoresOfQueryJourney) {
  const auto s = attn::simplified_attention_scores(journey<TypeParam>());
  expect_row_near(s, 1, {0.9544, 1.4950, 1.4754, 0.8434, 0.7070, 1.0865}, 1e-4);
  // S = X·Xᵀ is symmetric, and S[0][0] = |x¹|² = 0.43² + 0.15² + 0.89².
  EXPECT_NEAR(s(0, 0), 0.9995, 1e-6);
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t j = 0; j < 6; ++j) EXPECT_EQ(s(i, j), s(j, i));
}

TYPED_TEST(SimplifiedAttentionNotes, DivideBySumWeights) {
  const auto r = attn::simplified_self_attention(journey<TypeParam>(), Normalization::DivideBySum);
  expect_row_near(r.weights, 1, {0.1455, 0.2278, 0.2249, 0.1285, 0.1077, 0.1656}, 1e-4);
}

TYPED_TEST(SimplifiedAttentionNotes, SoftmaxWeightsRowTwoAsPrinted) {
  // The row the notes sum by hand: [0.1385, 0.2379, 0.2333, 0.1240, 0.1082, 0.1581].
  for (auto how : {Normalization::Softmax, Normalization::NaiveSoftmax}) {
    const auto r = attn::simplified_self_attention(journey<TypeParam>(), how);
    expect_row_near(r.weights, 1, {0.1385, 0.2379, 0.2333, 0.1240, 0.1082, 0.1581}, 1e-4);
  }
}

TYPED_TEST(SimplifiedAttentionNotes, ContextVectors) {
  const auto r = attn::simplified_self_attention(journey<TypeParam>());
  expect_row_near(r.context, 1, {0.4419, 0.6515, 0.5683}, 1e-4);  // z²
  expect_row_near(r.context, 0, {0.4421, 0.5931, 0.5790}, 1e-4);
  expect_row_near(r.context, 5, {0.4177, 0.6503, 0.5645}, 1e-4);
}

TYPED_TEST(SimplifiedAttentionNotes, EveryWeightRowSumsToOne) {
  for (auto how : {Normalization::DivideBySum, Normalization::NaiveSoftmax, Normalization::Softmax}) {
    const auto w = attn::simplified_self_attention(journey<TypeParam>(), how).weights;
    for (int64_t i = 0; i < 6; ++i) {
      double sum = 0;
      for (int64_t j = 0; j < 6; ++j) sum += w(i, j);
      EXPECT_NEAR(sum, 1.0, 1e-6) << "row " << i;
    }
  }
}

// ---- the notes' point: the three normalisations on extreme scores ---------

TEST(NormalizeRows, NaiveSoftmaxOverflowsWhereSoftmaxDoesNot) {
  // e^400 overflows double (max ~1.8e308 = e^709.8) only past 709; use 800.
  Tensor<double> s({1, 3}, {800.0, 1.0, 2.0});
  const auto naive = attn::normalize_rows(s, Normalization::NaiveSoftmax);
  EXPECT_TRUE(std::isnan(naive(0, 0)));  // inf / inf
  const auto safe = attn::normalize_rows(s, Normalization::Softmax);
  EXPECT_DOUBLE_EQ(safe(0, 0), 1.0);
  EXPECT_GE(safe(0, 1), 0.0);
  EXPECT_LT(safe(0, 1), 1e-300);
  // float overflows much earlier (e^88.7).
  Tensor<float> sf({1, 2}, {100.0f, 0.0f});
  EXPECT_TRUE(std::isnan(attn::normalize_rows(sf, Normalization::NaiveSoftmax)(0, 0)));
  EXPECT_FLOAT_EQ(attn::normalize_rows(sf, Normalization::Softmax)(0, 0), 1.0f);
}

TEST(NormalizeRows, DivideBySumBreaksOnSigns) {
  // Exact: [1, −1, 2] / 2 = [0.5, −0.5, 1] — a "weight" outside [0, 1].
  Tensor<double> s({3}, {1.0, -1.0, 2.0});
  EXPECT_EQ(attn::normalize_rows(s, Normalization::DivideBySum).to_vector(), (std::vector<double>{0.5, -0.5, 1.0}));
}

TEST(NormalizeRows, SoftmaxExactValuesAnyRankAndStrides) {
  // softmax([0, ln 3]) = [1/4, 3/4]; rows along the last dim of a rank-3,
  // transposed (non-contiguous) tensor.
  Tensor<double> base({2, 2, 1}, {0.0, 0.0, std::log(3.0), std::log(3.0)});
  const auto s = base.transpose(0, 2);  // [1, 2, 2]: rows (0, ln 3), (0, ln 3)
  const auto w = attn::normalize_rows(s);
  ASSERT_EQ(w.shape(), (attn::Shape{1, 2, 2}));
  for (int64_t r = 0; r < 2; ++r) {
    EXPECT_NEAR(w(0, r, 0), 0.25, 1e-15);
    EXPECT_NEAR(w(0, r, 1), 0.75, 1e-15);
  }
}

TEST(NormalizeRows, SoftmaxRowOfMinusInfinityGivesZeros) {
  const double inf = std::numeric_limits<double>::infinity();
  Tensor<double> s({2, 2}, {-inf, -inf, 0.0, -inf});
  const auto w = attn::normalize_rows(s);
  EXPECT_EQ(w.to_vector(), (std::vector<double>{0.0, 0.0, 1.0, 0.0}));
}

TEST(SimplifiedAttentionErrors, ShapesAreChecked) {
  Tensor<double> x3({2, 3, 4});
  try {
    attn::simplified_attention_scores(x3);
    FAIL() << "expected ShapeError";
  } catch (const attn::ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("inputs"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[2, 3, 4]"), std::string::npos) << e.what();
  }
  try {
    attn::context_vectors(Tensor<double>({2, 3}), Tensor<double>({4, 5}));
    FAIL() << "expected ShapeError";
  } catch (const attn::ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("weights"), std::string::npos) << e.what();
  }
  EXPECT_THROW(attn::normalize_rows(Tensor<double>(attn::Shape{})), attn::ShapeError);
  const auto fwd = attn::simplified_self_attention(journey<double>());
  try {
    attn::simplified_self_attention_backward(Tensor<double>({6, 2}), journey<double>(), fwd);
    FAIL() << "expected ShapeError";
  } catch (const attn::ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("grad_context"), std::string::npos) << e.what();
  }
}

// ---- backward: finite differences in double ---------------------------------

// L(X) = Σ G∘Z(X) for a fixed G, so dL/dZ = G.
double loss(const Tensor<double>& x, const Tensor<double>& g, Normalization how) {
  const auto z = attn::simplified_self_attention(x, how).context;
  double l = 0;
  for (int64_t n = 0; n < z.numel(); ++n) l += z.flat(n) * g.flat(n);
  return l;
}

void check_gradient(Normalization how) {
  auto x = journey<double>().clone();
  Tensor<double> g({6, 3});
  for (int64_t n = 0; n < g.numel(); ++n) g.flat(n) = std::sin(0.3 + 0.7 * static_cast<double>(n));
  const auto fwd = attn::simplified_self_attention(x, how);
  const auto dx = attn::simplified_self_attention_backward(g, x, fwd);
  ASSERT_EQ(dx.shape(), x.shape());
  const double h = 1e-6;
  for (int64_t n = 0; n < x.numel(); ++n) {
    const double keep = x.flat(n);
    x.flat(n) = keep + h;
    const double up = loss(x, g, how);
    x.flat(n) = keep - h;
    const double down = loss(x, g, how);
    x.flat(n) = keep;
    EXPECT_NEAR(dx.flat(n), (up - down) / (2 * h), 1e-7) << "element " << n;
  }
}

TEST(SimplifiedAttentionBackward, SoftmaxMatchesFiniteDifferences) { check_gradient(Normalization::Softmax); }
TEST(SimplifiedAttentionBackward, NaiveSoftmaxMatchesFiniteDifferences) {
  check_gradient(Normalization::NaiveSoftmax);
}
TEST(SimplifiedAttentionBackward, DivideBySumMatchesFiniteDifferences) {
  check_gradient(Normalization::DivideBySum);
}

TEST(SimplifiedAttentionBackward, StridedInputsGiveTheSameGradient) {
  const auto x = journey<double>();
  const auto xt = x.transpose(0, 1).contiguous().transpose(0, 1);  // same values, column-major
  ASSERT_FALSE(xt.is_contiguous());
  Tensor<double> g({6, 3});
  for (int64_t n = 0; n < g.numel(); ++n) g.flat(n) = std::cos(0.1 * static_cast<double>(n));
  const auto a = attn::simplified_self_attention_backward(g, x, attn::simplified_self_attention(x));
  const auto b = attn::simplified_self_attention_backward(g, xt, attn::simplified_self_attention(xt));
  EXPECT_EQ(a.to_vector(), b.to_vector());
}

}  // namespace
