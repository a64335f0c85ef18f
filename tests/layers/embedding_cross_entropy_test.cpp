// Embedding and the function form of cross-entropy (cross_entropy, over
// CrossEntropyLoss): torch's
// numbers (tests/golden/embedding_loss_numbers.py prints them), finite
// differences in double for both backwards, and the typed errors.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "attn/embedding.hpp"
#include "attn/errors.hpp"
#include "attn/generator.hpp"
#include "attn/loss.hpp"
#include "layer_test_util.hpp"

namespace {

using attn::Embedding;
using attn::Tensor;
using attn_layer_test::expect_grad_matches;
using attn_layer_test::uniform;

TEST(Embedding, InitEqualsTorchManualSeed) {
  attn::Generator gen(0);
  Embedding<float> e(5, 4, gen);
  const float want[5][4] = {{-1.12583983f, -1.15236020f, -0.25057858f, -0.43387881f},
                            {0.59883946f, -1.55509508f, -0.34136039f, 1.85300612f},
                            {0.46809641f, -0.15771244f, 1.44366014f, 0.26604941f},
                            {1.38936615f, 1.58633423f, 0.94629836f, -0.84367675f},
                            {0.93182659f, 1.25900924f, 2.00498056f, 0.05373690f}};
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 4; ++j) EXPECT_NEAR(e.weight.value(i, j), want[i][j], 1e-7) << i << "," << j;
  attn::Generator gen1(1);
  Embedding<float> big(10, 3, gen1);  // 30 normals: torch's vectorised path
  EXPECT_NEAR(big.weight.value(9, 0), -0.02878714f, 1e-7);
  EXPECT_NEAR(big.weight.value(9, 1), 2.35711098f, 1e-6);
  EXPECT_NEAR(big.weight.value(9, 2), -1.03733873f, 1e-6);
}

TEST(Embedding, ForwardLooksUpRowsForAnyIdShape) {
  attn::Generator gen(3);
  Embedding<double> e(6, 2, gen);
  Tensor<int64_t> ids({2, 3}, {5, 0, 5, 1, 2, 3});
  const Tensor<double> out = e.forward(ids);
  ASSERT_EQ(out.shape(), (attn::Shape{2, 3, 2}));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 3; ++t)
      for (int64_t d = 0; d < 2; ++d) EXPECT_EQ(out(b, t, d), e.weight.value(ids(b, t), d));
}

TEST(Embedding, BackwardScatterAddsRepeatedIdsAndMatchesFiniteDifferences) {
  attn::Generator gen(4);
  Embedding<double> e(5, 3, gen);
  Tensor<int64_t> ids({4}, {2, 0, 2, 4});  // id 2 twice: both gradients add up
  const Tensor<double> g = uniform({4, 3}, 11);
  e.zero_grad();
  e.forward(ids);
  e.backward(g);
  for (int64_t d = 0; d < 3; ++d) {
    EXPECT_DOUBLE_EQ(e.weight.grad(2, d), g(0, d) + g(2, d));
    EXPECT_EQ(e.weight.grad(1, d), 0.0);  // never looked up
  }
  const Tensor<double> analytic = e.weight.grad.clone();
  auto loss = [&] { return attn_layer_test::dot(e.forward(ids), g); };
  expect_grad_matches(loss, e.weight.value, analytic, "Embedding weight");
}

TEST(Embedding, Errors) {
  Embedding<float> e(3, 2);
  EXPECT_THROW(e.backward(Tensor<float>({1, 2})), attn::ValueError);  // no forward yet
  EXPECT_THROW(e.forward(Tensor<int64_t>({2}, {0, 3})), attn::ValueError);
  EXPECT_THROW(e.forward(Tensor<int64_t>({1}, {-1})), attn::ValueError);
  e.forward(Tensor<int64_t>({2}, {0, 1}));
  try {
    e.backward(Tensor<float>({2, 3}));
    FAIL() << "expected ShapeError";
  } catch (const attn::ShapeError& err) {
    EXPECT_NE(std::string(err.what()).find("[2, 2]"), std::string::npos) << err.what();
  }
  EXPECT_THROW(Embedding<float>(-1, 2), attn::ValueError);
}

TEST(CrossEntropy, EqualsTorch) {
  Tensor<double> logits({3, 3}, {1.0, 2.0, 3.0, 1.0, -1.0, 0.5, 100.0, 0.0, -100.0});
  Tensor<int64_t> targets({3}, {2, 0, 1});
  EXPECT_NEAR(attn::cross_entropy(logits, targets), 33.654187628028794, 1e-12);
  const Tensor<double> d = attn::cross_entropy_backward(logits, targets);
  const double want[3][3] = {{3.00101911e-02, 8.15761570e-02, -1.11586348e-01},
                             {-1.41967669e-01, 2.58985264e-02, 1.16069143e-01},
                             {3.33333333e-01, -3.33333333e-01, 0.0}};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_NEAR(d(i, j), want[i][j], 1e-9) << i << "," << j;
}

TEST(CrossEntropy, UniformLogitsGiveLogC) {  // by hand: softmax is 1/C everywhere
  Tensor<float> logits({2, 4});
  Tensor<int64_t> targets({2}, {0, 3});
  EXPECT_NEAR(attn::cross_entropy(logits, targets), std::log(4.0f), 1e-6f);
}

TEST(CrossEntropy, LargeLogitsDoNotOverflowInFloat) {
  Tensor<float> logits({1, 2}, {1000.0f, 0.0f});
  Tensor<int64_t> targets({1}, {1});
  EXPECT_NEAR(attn::cross_entropy(logits, targets), 1000.0f, 1e-3f);
  const Tensor<float> d = attn::cross_entropy_backward(logits, targets);
  EXPECT_NEAR(d(0, 0), 1.0f, 1e-6f);
  EXPECT_NEAR(d(0, 1), -1.0f, 1e-6f);
}

TEST(CrossEntropy, BackwardMatchesFiniteDifferencesInDouble) {
  Tensor<double> logits = uniform({5, 7}, 21, 3.0);
  Tensor<int64_t> targets({5}, {0, 6, 3, 3, 1});
  const Tensor<double> analytic = attn::cross_entropy_backward(logits, targets, 2.5);
  auto loss = [&] { return 2.5 * attn::cross_entropy(logits, targets); };
  expect_grad_matches(loss, logits, analytic, "d logits");
}

TEST(CrossEntropy, Errors) {
  Tensor<float> logits({2, 3});
  EXPECT_THROW(attn::cross_entropy(logits, Tensor<int64_t>({3})), attn::ShapeError);
  EXPECT_THROW(attn::cross_entropy(Tensor<float>({6}), Tensor<int64_t>({6})), attn::ShapeError);
  EXPECT_THROW(attn::cross_entropy(logits, Tensor<int64_t>({2}, {0, 3})), attn::ValueError);
  EXPECT_THROW(attn::cross_entropy_backward(logits, Tensor<int64_t>({2}, {-1, 0})), attn::ValueError);
  EXPECT_EQ(attn::cross_entropy(Tensor<float>({0, 3}), Tensor<int64_t>({0})), 0.0f);
}

}  // namespace
