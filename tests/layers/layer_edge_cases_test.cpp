// Edge cases shared by the attention layers: empty sequences and batches give
// empty (or zero) results and gradients of the right shapes, never a crash.
#include <gtest/gtest.h>

#include "attn/additive_attention.hpp"
#include "attn/gru.hpp"
#include "attn/lstm.hpp"
#include "attn/mla.hpp"
#include "attn/causal_attention.hpp"
#include "attn/cross_attention.hpp"
#include "attn/multihead_attention.hpp"
#include "attn/nn_multihead_attention.hpp"
#include "attn/self_attention.hpp"
#include "layers/layer_test_util.hpp"

namespace {

using namespace attn;
using namespace attn_layer_test;

TEST(LayerEdgeCases, EmptySequenceThroughTheSelfAttentionLayers) {
  Generator gen(0);
  SelfAttention<double> sa(3, 2, true, gen);
  EXPECT_EQ(sa.forward(Tensor<double>({2, 0, 3})).shape(), (Shape{2, 0, 2}));
  EXPECT_EQ(sa.backward(Tensor<double>({2, 0, 2})).shape(), (Shape{2, 0, 3}));
  CausalAttention<double> ca(3, 2, 4, 0.5, false, gen);
  EXPECT_EQ(ca.forward(Tensor<double>({0, 3})).shape(), (Shape{0, 2}));
  EXPECT_EQ(ca.backward(Tensor<double>({0, 2})).shape(), (Shape{0, 3}));
  MultiHeadAttention<double> mha(3, 4, 4, 0.0, 2, false, gen);
  EXPECT_EQ(mha.forward(Tensor<double>({0, 2, 3})).shape(), (Shape{0, 2, 4}));
  EXPECT_EQ(mha.backward(Tensor<double>({0, 2, 4})).shape(), (Shape{0, 2, 3}));
  MultiHeadAttentionWrapper<double> mw(3, 2, 4, 0.0, 2, false, gen);
  EXPECT_EQ(mw.forward(Tensor<double>({1, 0, 3})).shape(), (Shape{1, 0, 4}));
  EXPECT_EQ(mw.backward(Tensor<double>({1, 0, 4})).shape(), (Shape{1, 0, 3}));
}

// No keys at all: every query sees nothing, so context 0 (the library's rule).
TEST(LayerEdgeCases, EmptyContextGivesZeroOutput) {
  Generator gen(1);
  CrossAttention<double> ca(3, 2, 4, 3, false, gen);
  const Tensor<double> y = ca.forward(uniform({2, 3}, 1), Tensor<double>({0, 2}));
  ASSERT_EQ(y.shape(), (Shape{2, 3}));
  for (double v : y.to_vector()) EXPECT_EQ(v, 0.0);
  const auto g = ca.backward(uniform({2, 3}, 2));
  EXPECT_EQ(g.d_context.shape(), (Shape{0, 2}));
  for (double v : g.d_x.to_vector()) EXPECT_EQ(v, 0.0);

  AdditiveAttention<double> aa(3, 2, 4, gen);
  const Tensor<double> c = aa.forward(uniform({1, 2, 3}, 3), Tensor<double>({1, 0, 2}));
  ASSERT_EQ(c.shape(), (Shape{1, 2, 2}));
  for (double v : c.to_vector()) EXPECT_EQ(v, 0.0);
  EXPECT_EQ(aa.backward(uniform({1, 2, 2}, 4)).d_keys.shape(), (Shape{1, 0, 2}));

  TorchMultiheadAttention<double> mha(4, 2, {.batch_first = true}, gen);
  const auto out = mha.forward(uniform({2, 3, 4}, 5), Tensor<double>({2, 0, 4}), Tensor<double>({2, 0, 4}));
  ASSERT_EQ(out.attn_output.shape(), (Shape{2, 3, 4}));
  for (int64_t i = 0; i < out.attn_output.numel(); ++i)  // context 0 → output = out_proj.bias (0 at init)
    EXPECT_EQ(out.attn_output.flat(i), mha.out_proj.bias.value(i % 4));
  EXPECT_EQ(out.attn_weights.shape(), (Shape{2, 3, 0}));
  EXPECT_EQ(mha.backward(uniform({2, 3, 4}, 6)).d_key.shape(), (Shape{2, 0, 4}));
}

// add_zero_attn leaves one key even when the source is empty: weight 1 on it.
TEST(LayerEdgeCases, ZeroAttnWithEmptySource) {
  Generator gen(2);
  TorchMultiheadAttention<double> mha(4, 2, {.add_zero_attn = true}, gen);
  const auto out = mha.forward(uniform({3, 1, 4}, 1), Tensor<double>({0, 1, 4}), Tensor<double>({0, 1, 4}));
  ASSERT_EQ(out.attn_weights.shape(), (Shape{1, 3, 1}));
  for (double w : out.attn_weights.to_vector()) EXPECT_EQ(w, 1.0);
}

// ---- sizes a layer derives (issue 17) --------------------------------------------------
// 3·hidden_size (GRU), 4·hidden_size (LSTM), num_heads·(head_dim + rope_dim)
// (MLA) were computed unchecked: a huge argument wrapped to a small or
// negative size before any tensor saw it.

template <class F>
void expect_value_error(F&& f, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one with '" << fragment << "'";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(LayerSizes, DerivedSizesThatDoNotFitAreValueErrorsNamingThem) {
  Generator gen(0);
  const int64_t huge = int64_t{1} << 62;
  expect_value_error([&] { GRU<float> m(4, huge, true, false, gen); }, "GRU: 3 x hidden_size = 3 x 4611686018427387904");
  expect_value_error([&] { GRUCell<float> m(4, huge, true, gen); }, "GRUCell: 3 x hidden_size");
  expect_value_error([&] { LSTM<float> m(4, huge, true, false, gen); }, "LSTM: 4 x hidden_size");
  // (torch's MultiheadAttention: its [embed_dim, embed_dim] out_proj is refused first, as a tensor.)
  EXPECT_THROW(attn::MultiheadAttention<float>(huge, 1, {}, gen), ShapeError);
  MLAConfig c{.d_model = 8, .num_heads = huge, .head_dim = 2, .rope_dim = 2, .kv_latent_dim = 4, .q_latent_dim = 4};
  expect_value_error([&] { MultiHeadLatentAttention<float> m(c, gen); }, "num_heads x (head_dim + rope_dim)");
  c.num_heads = 1;
  c.rope_dim = huge;
  c.kv_latent_dim = huge;
  expect_value_error([&] { MultiHeadLatentAttention<float> m(c, gen); }, "kv_latent_dim + rope_dim");
}

}  // namespace
