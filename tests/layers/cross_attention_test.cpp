// CrossAttention: gradients for x and context (different lengths and widths),
// the padding mask, the self-attention special case, errors.
#include "attn/cross_attention.hpp"

#include <gtest/gtest.h>

#include <limits>

#include "attn/self_attention.hpp"
#include "layers/layer_test_util.hpp"

namespace {

using namespace attn;
using namespace attn_layer_test;

void check_grads(bool batched, bool with_mask, bool qkv_bias) {
  SCOPED_TRACE(std::string(batched ? "batched" : "unbatched") + (with_mask ? " masked" : "") +
               (qkv_bias ? " bias" : ""));
  Generator gen(10);
  CrossAttention<double> ca(3, 5, 4, 2, qkv_bias, gen);
  Tensor<double> x = uniform(batched ? Shape{2, 3, 3} : Shape{3, 3}, 1);
  Tensor<double> context = uniform(batched ? Shape{2, 6, 5} : Shape{6, 5}, 2);
  const Tensor<double> R = uniform(batched ? Shape{2, 3, 2} : Shape{3, 2}, 3);
  Tensor<bool> kpm;
  if (with_mask) {
    kpm = Tensor<bool>(batched ? Shape{2, 6} : Shape{6});
    kpm.flat(1) = kpm.flat(5) = true;
    if (batched) kpm.flat(6) = true;
  }
  auto loss = [&] { return dot(ca.forward(x, context, kpm), R); };
  ca.zero_grad();
  ca.forward(x, context, kpm);
  CrossAttentionGradients<double> g = ca.backward(R);
  expect_grad_matches(loss, x, g.d_x, "d_x");
  expect_grad_matches(loss, context, g.d_context, "d_context");
  expect_param_grads_match(ca.named_parameters(), loss, "CrossAttention");
}

TEST(CrossAttention, Gradients) {
  check_grads(true, false, false);
  check_grads(true, true, true);
  check_grads(false, true, false);
}

// Cross-attention of a sequence with itself is self-attention.
TEST(CrossAttention, WithItselfIsSelfAttention) {
  Generator gen(11);
  CrossAttention<double> ca(4, 4, 3, 3, true, gen);
  SelfAttention<double> sa(4, 3, true, gen);
  sa.load_state_dict(ca.state_dict());
  const Tensor<double> x = uniform({2, 5, 4}, 1);
  expect_close(ca.forward(x, x), sa.forward(x), 0.0, "forward");
}

// key_padding_mask True = padding: that context position has no influence.
TEST(CrossAttention, PaddedContextIsIgnored) {
  Generator gen(12);
  CrossAttention<double> ca(3, 2, 4, 3, false, gen);
  const Tensor<double> x = uniform({1, 2, 3}, 1);
  Tensor<double> context = uniform({1, 4, 2}, 2);
  const Tensor<bool> kpm({1, 4}, {false, true, false, false});
  const Tensor<double> y = ca.forward(x, context, kpm);
  context(0, 1, 0) = std::numeric_limits<double>::quiet_NaN();
  expect_close(ca.forward(x, context, kpm), y, 0.0, "padded position poisoned");
  // Without position 1 at all: the same result.
  Tensor<double> shorter({1, 3, 2});
  shorter.select(1, 0).copy_(context.select(1, 0));
  shorter.slice(1, 1, 3).copy_(context.slice(1, 2, 4));
  expect_close(ca.forward(x, shorter), y, 1e-15, "padding = removing the position");
}

TEST(CrossAttention, FullyPaddedContextGivesZero) {
  Generator gen(13);
  CrossAttention<double> ca(3, 2, 4, 3, true, gen);
  const Tensor<double> x = uniform({2, 3}, 1), context = uniform({4, 2}, 2);
  const Tensor<double> y = ca.forward(x, context, Tensor<bool>::full({4}, true));
  for (double v : y.to_vector()) EXPECT_EQ(v, 0.0);
  const auto g = ca.backward(uniform({2, 3}, 3));
  for (double v : g.d_x.to_vector()) EXPECT_EQ(v, 0.0);
}

TEST(CrossAttention, Errors) {
  Generator gen(0);
  CrossAttention<double> ca(3, 5, 4, 2, false, gen);
  expect_error<ShapeError>([&] { ca.forward(Tensor<double>({2, 3, 3}), Tensor<double>({2, 4, 3})); },
                           {"context", "[2, 4, 3]", "last dim 5"});
  expect_error<ShapeError>([&] { ca.forward(Tensor<double>({2, 3, 3}), Tensor<double>({1, 4, 5})); },
                           {"[2, 3, 3]", "[1, 4, 5]", "same batch"});
  expect_error<ShapeError>([&] { ca.forward(Tensor<double>({2, 3, 3}), Tensor<double>({4, 5})); },
                           {"both batched"});
  expect_error<ShapeError>(
      [&] { ca.forward(Tensor<double>({2, 3, 3}), Tensor<double>({2, 4, 5}), Tensor<bool>({2, 3})); },
      {"key_padding_mask", "[2, 3]", "[2, 4]"});
  expect_error<ValueError>([&] { CrossAttention<double>(3, 5, 0, 2, false, gen); }, {"d_out_kq = 0"});
}

}  // namespace
