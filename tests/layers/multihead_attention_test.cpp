// MultiHeadAttentionWrapper and MultiHeadAttention (Raschka's two forms):
// gradients, the equivalences between the forms, dropout, names, errors.
#include "attn/multihead_attention.hpp"

#include <gtest/gtest.h>

#include "layers/layer_test_util.hpp"

namespace {

using namespace attn;
using namespace attn_layer_test;

TEST(MultiHeadAttentionWrapper, Gradients) {
  Generator gen(1);
  MultiHeadAttentionWrapper<double> mw(3, 2, 6, 0.3, 3, true, gen);
  Tensor<double> x = uniform({2, 5, 3}, 1);
  const Tensor<double> R = uniform({2, 5, 6}, 2);
  auto loss = [&] {
    mw.set_dropout_seed(4);
    return dot(mw.forward(x), R);
  };
  mw.zero_grad();
  mw.set_dropout_seed(4);
  EXPECT_EQ(mw.forward(x).shape(), (Shape{2, 5, 6}));
  expect_grad_matches(loss, x, mw.backward(R), "dx");
  expect_param_grads_match(mw.named_parameters(), loss, "wrapper");
}

TEST(MultiHeadAttention, Gradients) {
  for (bool training : {false, true}) {
    SCOPED_TRACE(training ? "training with dropout" : "eval");
    Generator gen(2);
    MultiHeadAttention<double> mha(3, 4, 6, 0.3, 2, true, gen);
    mha.train(training);
    Tensor<double> x = uniform({2, 5, 3}, 1);
    const Tensor<double> R = uniform({2, 5, 4}, 2);
    auto loss = [&] {
      mha.set_dropout_seed(8);
      return dot(mha.forward(x), R);
    };
    mha.zero_grad();
    mha.set_dropout_seed(8);
    mha.forward(x);
    expect_grad_matches(loss, x, mha.backward(R), "dx");
    expect_param_grads_match(mha.named_parameters(), loss, "MultiHeadAttention");
  }
}

TEST(MultiHeadAttentionWrapper, OneHeadEqualsCausalAttention) {
  Generator gen(3);
  MultiHeadAttentionWrapper<double> mw(3, 4, 6, 0.0, 1, true, gen);
  CausalAttention<double> ca(3, 4, 6, 0.0, true, gen);
  std::map<std::string, Tensor<double>> sd;
  for (auto& [name, t] : mw.state_dict()) sd[name.substr(std::string("heads.0.").size())] = t;
  ca.load_state_dict(sd);
  const Tensor<double> x = uniform({2, 6, 3}, 1), R = uniform({2, 6, 4}, 2);
  expect_close(mw.forward(x), ca.forward(x), 0.0, "forward");
  expect_close(mw.backward(R), ca.backward(R), 0.0, "backward");
}

// The efficient form is the wrapper with the heads' projections stacked row-wise
// and an identity out_proj.
TEST(MultiHeadAttention, EqualsTheWrapperWithStackedWeights) {
  const int64_t d_in = 3, H = 3, hd = 2, L = 5;
  Generator gen(4);
  MultiHeadAttentionWrapper<double> mw(d_in, hd, 6, 0.0, H, true, gen);
  MultiHeadAttention<double> mha(d_in, H * hd, 6, 0.0, H, true, gen);
  for (int64_t h = 0; h < H; ++h) {
    CausalAttention<double>& head = mw.head(h);
    mha.W_query.weight.value.slice(0, h * hd, (h + 1) * hd).copy_(head.W_query.weight.value);
    mha.W_key.weight.value.slice(0, h * hd, (h + 1) * hd).copy_(head.W_key.weight.value);
    mha.W_value.weight.value.slice(0, h * hd, (h + 1) * hd).copy_(head.W_value.weight.value);
    mha.W_query.bias.value.slice(0, h * hd, (h + 1) * hd).copy_(head.W_query.bias.value);
    mha.W_key.bias.value.slice(0, h * hd, (h + 1) * hd).copy_(head.W_key.bias.value);
    mha.W_value.bias.value.slice(0, h * hd, (h + 1) * hd).copy_(head.W_value.bias.value);
  }
  mha.out_proj.weight.value.fill_(0.0);
  for (int64_t i = 0; i < H * hd; ++i) mha.out_proj.weight.value(i, i) = 1.0;
  mha.out_proj.bias.value.fill_(0.0);

  const Tensor<double> x = uniform({2, L, d_in}, 1), R = uniform({2, L, H * hd}, 2);
  expect_close(mha.forward(x), mw.forward(x), 1e-14, "forward");
  mha.zero_grad();
  mw.zero_grad();
  expect_close(mha.backward(R), mw.backward(R), 1e-14, "dx");
  for (int64_t h = 0; h < H; ++h)
    expect_close(mha.W_query.weight.grad.slice(0, h * hd, (h + 1) * hd).contiguous(),
                 mw.head(h).W_query.weight.grad, 1e-14, "dW_query of head " + std::to_string(h));
}

TEST(MultiHeadAttention, CausalAndDropoutOnlyInTraining) {
  Generator gen(5);
  MultiHeadAttention<double> mha(3, 4, 6, 0.5, 2, false, gen);
  Tensor<double> x = uniform({1, 6, 3}, 1);
  mha.eval();
  const Tensor<double> y = mha.forward(x);
  expect_close(mha.forward(x), y, 0.0, "eval is deterministic");
  for (int64_t d = 0; d < 3; ++d) x(0, 4, d) -= 3.0;
  const Tensor<double> y2 = mha.forward(x);
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t d = 0; d < 4; ++d) EXPECT_EQ(y2(0, i, d), y(0, i, d)) << "token " << i;
  mha.train();
  EXPECT_GT(relative_error(mha.forward(x), y2), 1e-3) << "dropout = 0.5 in training";
}

TEST(MultiHeadAttentionWrapper, HeadsDrawDifferentDropoutMasks) {
  Generator gen(6);
  MultiHeadAttentionWrapper<double> mw(3, 2, 6, 0.5, 2, false, gen);
  mw.head(1).load_state_dict(mw.head(0).state_dict());  // identical heads
  const Tensor<double> x = uniform({1, 6, 3}, 1);
  mw.eval();
  Tensor<double> y = mw.forward(x);
  expect_close(y.slice(-1, 0, 2).contiguous(), y.slice(-1, 2, 4).contiguous(), 0.0, "identical heads in eval");
  mw.train();
  y = mw.forward(x);
  EXPECT_GT(relative_error(y.slice(-1, 0, 2).contiguous(), y.slice(-1, 2, 4).contiguous()), 1e-3);
}

TEST(MultiHeadAttention, Names) {
  Generator gen(0);
  MultiHeadAttention<float> mha(3, 4, 6, 0.0, 2, false, gen);
  std::vector<std::string> names;
  for (auto& np : mha.named_parameters()) names.push_back(np.name);
  EXPECT_EQ(names, (std::vector<std::string>{"W_query.weight", "W_key.weight", "W_value.weight", "out_proj.weight",
                                             "out_proj.bias"}));
  MultiHeadAttentionWrapper<float> mw(3, 2, 6, 0.0, 2, false, gen);
  names.clear();
  for (auto& np : mw.named_parameters()) names.push_back(np.name);
  EXPECT_EQ(names, (std::vector<std::string>{"heads.0.W_query.weight", "heads.0.W_key.weight", "heads.0.W_value.weight",
                                             "heads.1.W_query.weight", "heads.1.W_key.weight",
                                             "heads.1.W_value.weight"}));
}

TEST(MultiHeadAttention, Errors) {
  Generator gen(0);
  expect_error<ValueError>([&] { MultiHeadAttention<double>(3, 5, 6, 0.0, 2, false, gen); },
                           {"d_out = 5", "num_heads = 2", "divisible"});
  expect_error<ValueError>([&] { MultiHeadAttentionWrapper<double>(3, 2, 6, 0.0, 0, false, gen); }, {"num_heads"});
  MultiHeadAttention<double> mha(3, 4, 6, 0.0, 2, false, gen);
  expect_error<ShapeError>([&] { mha.forward(Tensor<double>({1, 7, 3})); }, {"7 tokens", "context_length = 6"});
  expect_error<ShapeError>([&] { mha.forward(Tensor<double>({2, 1, 7, 3})); }, {"x", "rank 4"});
  mha.forward(Tensor<double>({2, 3, 3}));
  expect_error<ShapeError>([&] { mha.backward(Tensor<double>({2, 3, 3})); }, {"grad_output", "[2, 3, 4]"});
}

}  // namespace
