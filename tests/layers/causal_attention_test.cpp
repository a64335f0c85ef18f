// CausalAttention: gradients (with and without dropout), the causal property,
// dropout only in training, errors.
#include "attn/causal_attention.hpp"

#include <gtest/gtest.h>

#include "layers/layer_test_util.hpp"

namespace {

using namespace attn;
using namespace attn_layer_test;

TEST(CausalAttention, GradientsEval) {
  Generator gen(123);
  CausalAttention<double> ca(4, 3, 6, 0.5, true, gen);
  ca.eval();
  Tensor<double> x = uniform({2, 5, 4}, 1);
  const Tensor<double> R = uniform({2, 5, 3}, 2);
  auto loss = [&] { return dot(ca.forward(x), R); };
  ca.zero_grad();
  ca.forward(x);
  expect_grad_matches(loss, x, ca.backward(R), "dx");
  expect_param_grads_match(ca.named_parameters(), loss, "CausalAttention");
}

// Backward regenerates the forward's dropout mask: with the seed pinned, the
// loss is a smooth function of the inputs and finite differences apply.
TEST(CausalAttention, GradientsWithDropout) {
  Generator gen(7);
  CausalAttention<double> ca(3, 2, 6, 0.4, false, gen);
  Tensor<double> x = uniform({2, 6, 3}, 1);
  const Tensor<double> R = uniform({2, 6, 2}, 2);
  auto loss = [&] {
    ca.set_dropout_seed(5);
    return dot(ca.forward(x), R);
  };
  ca.zero_grad();
  ca.set_dropout_seed(5);
  ca.forward(x);
  EXPECT_EQ(ca.dropout_seed(), 6u) << "a training forward with dropout takes the next seed";
  expect_grad_matches(loss, x, ca.backward(R), "dx");
  expect_param_grads_match(ca.named_parameters(), loss, "CausalAttention dropout");
}

// Token i attends to tokens 0..i only: changing later tokens leaves it alone.
TEST(CausalAttention, OutputAtIDoesNotSeeLaterTokens) {
  Generator gen(1);
  CausalAttention<double> ca(3, 4, 8, 0.0, true, gen);
  Tensor<double> x = uniform({2, 6, 3}, 1);
  const Tensor<double> y = ca.forward(x);
  for (int64_t k = 0; k < 6; ++k) {
    Tensor<double> x2 = x.clone();
    for (int64_t j = k; j < 6; ++j)
      for (int64_t d = 0; d < 3; ++d) x2(1, j, d) += 5.0;
    const Tensor<double> y2 = ca.forward(x2);
    for (int64_t i = 0; i < k; ++i)
      for (int64_t d = 0; d < 4; ++d) {
        EXPECT_EQ(y2(1, i, d), y(1, i, d)) << "token " << i << " changed when tokens >= " << k << " did";
        EXPECT_EQ(y2(0, i, d), y(0, i, d));
      }
    if (k < 6) EXPECT_NE(y2(1, k, 0), y(1, k, 0)) << "token " << k << " should see itself";
  }
}

// The first token sees only itself: its context is exactly its value vector.
TEST(CausalAttention, FirstTokenContextIsItsValue) {
  Generator gen(2);
  CausalAttention<double> ca(3, 2, 4, 0.0, true, gen);
  const Tensor<double> x = uniform({1, 4, 3}, 1);
  const Tensor<double> y = ca.forward(x);
  for (int64_t o = 0; o < 2; ++o) {
    double v = ca.W_value.bias.value(o);
    for (int64_t d = 0; d < 3; ++d) v += x(0, 0, d) * ca.W_value.weight.value(o, d);
    EXPECT_NEAR(y(0, 0, o), v, 1e-15);
  }
}

TEST(CausalAttention, DropoutOnlyInTraining) {
  Generator gen(3), gen2(3);
  CausalAttention<double> ca(3, 2, 6, 0.5, false, gen);
  CausalAttention<double> plain(3, 2, 6, 0.0, false, gen2);  // same weights, no dropout
  const Tensor<double> x = uniform({2, 6, 3}, 1);
  const Tensor<double> reference = plain.forward(x);
  EXPECT_TRUE(ca.is_training()) << "layers start in training mode, as in torch";
  ca.eval();
  expect_close(ca.forward(x), reference, 0.0, "eval = no dropout");
  expect_close(ca.forward(x), reference, 0.0, "eval twice");
  EXPECT_EQ(ca.dropout_seed(), 0u) << "eval does not consume dropout seeds";
  ca.train();
  const Tensor<double> t1 = ca.forward(x), t2 = ca.forward(x);
  EXPECT_GT(relative_error(t1, reference), 1e-3);
  EXPECT_GT(relative_error(t1, t2), 1e-3) << "successive training calls draw new masks";
  ca.set_dropout_seed(0);
  expect_close(ca.forward(x), t1, 0.0, "the same seed gives the same mask");
}

TEST(CausalAttention, UnbatchedEqualsBatchOfOne) {
  Generator gen(4);
  CausalAttention<double> ca(3, 2, 6, 0.0, true, gen);
  const Tensor<double> x = uniform({5, 3}, 1);
  const Tensor<double> a = ca.forward(x);
  const Tensor<double> b = ca.forward(x.reshape({1, 5, 3}));
  expect_close(a, b.reshape({5, 2}), 0.0, "unbatched");
}

TEST(CausalAttention, Errors) {
  Generator gen(0);
  expect_error<ValueError>([&] { CausalAttention<double>(3, 2, 4, 1.0, false, gen); }, {"dropout"});
  expect_error<ValueError>([&] { CausalAttention<double>(3, 2, 0, 0.0, false, gen); }, {"context_length = 0"});
  CausalAttention<double> ca(3, 2, 4, 0.0, false, gen);
  expect_error<ShapeError>([&] { ca.forward(Tensor<double>({1, 5, 3})); }, {"5 tokens", "context_length = 4"});
  expect_error<ShapeError>([&] { ca.forward(Tensor<double>({1, 4, 2})); }, {"x", "[1, 4, 2]", "last dim 3"});
  expect_error<ValueError>([&] { ca.backward(Tensor<double>({1, 4, 2})); }, {"before forward"});
}

}  // namespace
