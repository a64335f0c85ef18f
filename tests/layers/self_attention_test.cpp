// SelfAttention (Raschka's SelfAttention_v2): gradients by finite differences,
// permutation equivariance, shapes, names, errors. Parity with torch is in
// layers_golden_test.cpp.
#include "attn/self_attention.hpp"

#include <gtest/gtest.h>

#include "layers/layer_test_util.hpp"

namespace {

using namespace attn;
using namespace attn_layer_test;

void check_grads(bool qkv_bias, const Shape& x_shape) {
  Generator gen(789);
  SelfAttention<double> sa(x_shape.back(), 3, qkv_bias, gen);
  Tensor<double> x = uniform(x_shape, 1);
  Shape y_shape = x_shape;
  y_shape.back() = 3;
  const Tensor<double> R = uniform(y_shape, 2);
  auto loss = [&] { return dot(sa.forward(x), R); };
  sa.zero_grad();
  EXPECT_EQ(sa.forward(x).shape(), y_shape);
  Tensor<double> dx = sa.backward(R);
  expect_grad_matches(loss, x, dx, "dx");
  expect_param_grads_match(sa.named_parameters(), loss, "SelfAttention");
}

TEST(SelfAttention, GradientsUnbatched) { check_grads(false, {6, 4}); }
TEST(SelfAttention, GradientsBatchedWithBias) { check_grads(true, {2, 5, 4}); }

TEST(SelfAttention, BackwardAccumulatesLikeTorch) {
  Generator gen(1);
  SelfAttention<double> sa(3, 2, false, gen);
  const Tensor<double> x = uniform({4, 3}, 1), R = uniform({4, 2}, 2);
  sa.zero_grad();
  sa.forward(x);
  sa.backward(R);
  const Tensor<double> once = sa.W_key.weight.grad.clone();
  sa.forward(x);
  sa.backward(R);
  for (int64_t i = 0; i < once.numel(); ++i) EXPECT_DOUBLE_EQ(sa.W_key.weight.grad.flat(i), 2 * once.flat(i));
}

// A key bias adds q_i·b_k to every score of row i; softmax ignores a shift
// shared by a whole row, so b_k cannot change the output: its gradient is 0.
TEST(SelfAttention, KeyBiasGetsZeroGradient) {
  Generator gen(3);
  SelfAttention<double> sa(3, 4, true, gen);
  sa.zero_grad();
  sa.forward(uniform({2, 5, 3}, 1));
  sa.backward(uniform({2, 5, 4}, 2));
  double largest_other = 0;
  for (double g : sa.W_query.bias.grad.to_vector()) largest_other = std::max(largest_other, std::abs(g));
  EXPECT_GT(largest_other, 1e-3);
  for (double g : sa.W_key.bias.grad.to_vector()) EXPECT_NEAR(g, 0.0, 1e-14);
}

// No mask, no position: permuting the tokens permutes the context vectors.
TEST(SelfAttention, PermutingTokensPermutesOutputs) {
  Generator gen(2);
  SelfAttention<double> sa(3, 2, true, gen);
  const Tensor<double> x = uniform({5, 3}, 1);
  const std::vector<int64_t> perm = {3, 0, 4, 1, 2};
  Tensor<double> xp({5, 3});
  for (int64_t i = 0; i < 5; ++i) xp.select(0, i).copy_(x.select(0, perm[static_cast<size_t>(i)]));
  const Tensor<double> y = sa.forward(x), yp = sa.forward(xp);
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t d = 0; d < 2; ++d) EXPECT_NEAR(yp(i, d), y(perm[static_cast<size_t>(i)], d), 1e-14);
}

TEST(SelfAttention, NamesAreRaschkas) {
  Generator gen(0);
  SelfAttention<float> sa(3, 2, true, gen);
  std::vector<std::string> names;
  for (auto& np : sa.named_parameters()) names.push_back(np.name);
  EXPECT_EQ(names, (std::vector<std::string>{"W_query.weight", "W_query.bias", "W_key.weight", "W_key.bias",
                                             "W_value.weight", "W_value.bias"}));
  EXPECT_EQ(sa.W_query.weight.value.shape(), (Shape{2, 3}));
  SelfAttention<float> nb(3, 2, false, gen);
  EXPECT_EQ(nb.named_parameters().size(), 3u);
}

TEST(SelfAttention, Errors) {
  Generator gen(0);
  expect_error<ValueError>([&] { SelfAttention<double>(0, 2, false, gen); }, {"d_in = 0"});
  SelfAttention<double> sa(3, 2, false, gen);
  expect_error<ShapeError>([&] { sa.forward(Tensor<double>({3})); }, {"x", "[3]", "rank 1"});
  expect_error<ShapeError>([&] { sa.forward(Tensor<double>({1, 2, 3, 3})); }, {"x", "[1, 2, 3, 3]"});
  expect_error<ShapeError>([&] { sa.forward(Tensor<double>({4, 5})); }, {"x", "[4, 5]", "last dim 3"});
  expect_error<ValueError>([&] { sa.backward(Tensor<double>({4, 2})); }, {"before forward"});
  sa.forward(Tensor<double>({4, 3}));
  expect_error<ShapeError>([&] { sa.backward(Tensor<double>({4, 3})); }, {"grad_output", "[4, 3]", "[4, 2]"});
}

}  // namespace
