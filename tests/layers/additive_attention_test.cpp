// AdditiveAttention (Bahdanau 2014): gradients, weights form a distribution
// over the unpadded steps, a hand-computed case, errors.
#include "attn/additive_attention.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "layers/layer_test_util.hpp"

namespace {

using namespace attn;
using namespace attn_layer_test;

void check_grads(bool batched, bool with_mask) {
  SCOPED_TRACE(std::string(batched ? "batched" : "unbatched") + (with_mask ? " masked" : ""));
  Generator gen(20);
  AdditiveAttention<double> aa(3, 4, 5, gen);
  Tensor<double> query = uniform(batched ? Shape{2, 3, 3} : Shape{3, 3}, 1);
  Tensor<double> keys = uniform(batched ? Shape{2, 6, 4} : Shape{6, 4}, 2);
  const Tensor<double> R = uniform(batched ? Shape{2, 3, 4} : Shape{3, 4}, 3);
  Tensor<bool> kpm;
  if (with_mask) {
    kpm = Tensor<bool>(batched ? Shape{2, 6} : Shape{6});
    kpm.flat(0) = kpm.flat(4) = true;
    if (batched) kpm.flat(11) = true;
  }
  auto loss = [&] { return dot(aa.forward(query, keys, kpm), R); };
  aa.zero_grad();
  aa.forward(query, keys, kpm);
  AdditiveAttentionGradients<double> g = aa.backward(R);
  expect_grad_matches(loss, query, g.d_query, "d_query");
  expect_grad_matches(loss, keys, g.d_keys, "d_keys");
  expect_param_grads_match(aa.named_parameters(), loss, "AdditiveAttention");
}

TEST(AdditiveAttention, Gradients) {
  check_grads(true, false);
  check_grads(true, true);
  check_grads(false, true);
}

TEST(AdditiveAttention, WeightsSumToOneAndPaddingGetsZero) {
  Generator gen(21);
  AdditiveAttention<double> aa(3, 2, 4, gen);
  const Tensor<double> s = uniform({2, 3, 3}, 1), h = uniform({2, 5, 2}, 2);
  const Tensor<bool> kpm({2, 5}, {false, false, true, false, true, true, false, false, false, false});
  aa.forward(s, h, kpm);
  const Tensor<double> w = aa.attention_weights();
  ASSERT_EQ(w.shape(), (Shape{2, 3, 5}));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t i = 0; i < 3; ++i) {
      double sum = 0;
      for (int64_t j = 0; j < 5; ++j) {
        if (kpm(b, j)) EXPECT_EQ(w(b, i, j), 0.0) << "padded step " << j;
        else EXPECT_GT(w(b, i, j), 0.0);
        sum += w(b, i, j);
      }
      EXPECT_NEAR(sum, 1.0, 1e-14);
    }
}

TEST(AdditiveAttention, FullyPaddedRowGivesZeroWeightsAndContext) {
  Generator gen(22);
  AdditiveAttention<double> aa(3, 2, 4, gen);
  const Tensor<double> s = uniform({2, 3}, 1), h = uniform({4, 2}, 2);
  const Tensor<double> c = aa.forward(s, h, Tensor<bool>::full({4}, true));
  for (double v : c.to_vector()) EXPECT_EQ(v, 0.0);
  for (double v : aa.attention_weights().to_vector()) EXPECT_EQ(v, 0.0);
  const auto g = aa.backward(uniform({2, 2}, 3));
  for (double v : g.d_query.to_vector()) EXPECT_EQ(v, 0.0);
}

// One-dimensional everything, worked by hand: W_s = 0.5, W_h = −1, v = 2, so
// score_j = 2·tanh(0.5·s − h_j), α = softmax(score), context = Σ α_j h_j.
TEST(AdditiveAttention, HandComputedScalarCase) {
  Generator gen(0);
  AdditiveAttention<double> aa(1, 1, 1, gen);
  aa.W_s.weight.value(0, 0) = 0.5;
  aa.W_h.weight.value(0, 0) = -1.0;
  aa.v.weight.value(0, 0) = 2.0;
  const double s = 0.8, h[3] = {0.1, -0.4, 0.7};
  double e[3], sum = 0;
  for (int j = 0; j < 3; ++j) sum += e[j] = std::exp(2.0 * std::tanh(0.5 * s - h[j]));
  double expected = 0;
  for (int j = 0; j < 3; ++j) expected += e[j] / sum * h[j];
  const Tensor<double> c = aa.forward(Tensor<double>({1, 1}, {s}), Tensor<double>({3, 1}, {h[0], h[1], h[2]}));
  EXPECT_NEAR(c(0, 0), expected, 1e-15);
  EXPECT_NEAR(aa.attention_weights()(0, 1), e[1] / sum, 1e-15);
}

TEST(AdditiveAttention, NamesAndErrors) {
  Generator gen(0);
  AdditiveAttention<float> aa(3, 4, 5, gen);
  std::vector<std::string> names;
  for (auto& np : aa.named_parameters()) names.push_back(np.name);
  EXPECT_EQ(names, (std::vector<std::string>{"W_s.weight", "W_h.weight", "v.weight"}));
  EXPECT_EQ(aa.v.weight.value.shape(), (Shape{1, 5}));
  expect_error<ShapeError>([&] { aa.forward(Tensor<float>({2, 3, 3}), Tensor<float>({2, 4, 3})); },
                           {"keys", "[2, 4, 3]", "last dim 4"});
  expect_error<ShapeError>(
      [&] { aa.forward(Tensor<float>({2, 3, 3}), Tensor<float>({2, 4, 4}), Tensor<bool>({4})); },
      {"key_padding_mask", "[4]", "[2, 4]"});
  expect_error<ValueError>([&] { aa.backward(Tensor<float>({2, 3, 4})); }, {"before forward"});
  expect_error<ValueError>([&] { AdditiveAttention<float>(3, 4, 0, gen); }, {"hidden_dim = 0"});
}

}  // namespace
