// torch.nn.MultiheadAttention semantics: gradients by finite differences for
// every option, properties of masks and weights, errors. (Parity with torch
// itself is in layers_golden_test.cpp.)
#include "attn/nn_multihead_attention.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <type_traits>

#include "layers/layer_test_util.hpp"

// The names before the rename still compile: deprecated aliases of the twin.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static_assert(std::is_same_v<attn::MultiheadAttention<float>, attn::TorchMultiheadAttention<float>>);
static_assert(std::is_same_v<attn::MultiheadAttentionOptions, attn::TorchMultiheadAttentionOptions>);
#pragma GCC diagnostic pop

namespace {

using namespace attn;
using namespace attn_layer_test;

struct MhaSetup {
  int64_t E = 4, H = 2, N = 2, L = 3, S = 3;
  TorchMultiheadAttentionOptions options;
  bool unbatched = false;
};

// The caller's layout of a [N, len, feat] tensor.
Shape layout(const MhaSetup& s, int64_t len, int64_t feat) {
  if (s.unbatched) return {len, feat};
  return s.options.batch_first ? Shape{s.N, len, feat} : Shape{len, s.N, feat};
}

// A layer with every parameter (biases included, which torch zero-initialises)
// set to random values, so that every gradient path carries signal.
TorchMultiheadAttention<double> random_mha(const MhaSetup& s, uint64_t seed) {
  Generator gen(seed);
  TorchMultiheadAttention<double> mha(s.E, s.H, s.options, gen);
  uint64_t k = seed;
  for (auto& np : mha.named_parameters()) np.param->value.copy_(uniform(np.param->value.shape(), ++k, 0.7));
  return mha;
}

// Finite-difference check of d_query, d_key, d_value and every parameter grad.
void check_grads(const MhaSetup& s, const TorchMultiheadAttentionForwardOptions<double>& f, const std::string& what,
                 bool training_dropout = false) {
  SCOPED_TRACE(what);
  TorchMultiheadAttention<double> mha = random_mha(s, 11);
  if (!training_dropout) mha.eval();
  const int64_t kd = s.options.kdim.value_or(s.E), vd = s.options.vdim.value_or(s.E);
  Tensor<double> query = uniform(layout(s, s.L, s.E), 1), key = uniform(layout(s, s.S, kd), 2),
                 value = uniform(layout(s, s.S, vd), 3);
  const Tensor<double> R = uniform(layout(s, s.L, s.E), 4);
  // The same dropout seed on every call, so finite differences see the same mask.
  auto loss = [&] {
    mha.set_dropout_seed(99);
    return dot(mha.forward(query, key, value, f).attn_output, R);
  };
  mha.zero_grad();
  mha.set_dropout_seed(99);
  mha.forward(query, key, value, f);
  TorchMultiheadAttentionGradients<double> g = mha.backward(R);
  expect_grad_matches(loss, query, g.d_query, what + " d_query");
  expect_grad_matches(loss, key, g.d_key, what + " d_key");
  expect_grad_matches(loss, value, g.d_value, what + " d_value");
  expect_param_grads_match(mha.named_parameters(), loss, what);
}

TEST(NnMultiheadAttention, GradientsSelfAttentionPacked) { check_grads({}, {}, "packed"); }

TEST(NnMultiheadAttention, GradientsCrossAttentionDifferentLengths) {
  MhaSetup s;
  s.L = 2;
  s.S = 5;
  check_grads(s, {}, "cross");
}

TEST(NnMultiheadAttention, GradientsNoBias) {
  MhaSetup s;
  s.options.bias = false;
  check_grads(s, {}, "no bias");
}

TEST(NnMultiheadAttention, GradientsAddBiasKvAndZeroAttn) {
  MhaSetup s;
  s.options.add_bias_kv = true;
  check_grads(s, {}, "add_bias_kv");
  s.options.add_bias_kv = false;
  s.options.add_zero_attn = true;
  check_grads(s, {}, "add_zero_attn");
  s.options.add_bias_kv = true;
  check_grads(s, {}, "add_bias_kv + add_zero_attn");
}

TEST(NnMultiheadAttention, GradientsKdimVdimBatchFirst) {
  MhaSetup s;
  s.options.kdim = 3;
  s.options.vdim = 5;
  s.S = 4;
  check_grads(s, {}, "kdim/vdim");
  s.options.batch_first = true;
  s.options.add_bias_kv = true;
  s.options.bias = false;
  check_grads(s, {}, "kdim/vdim batch_first bias_kv no bias");
}

TEST(NnMultiheadAttention, GradientsKeyPaddingMaskBoolAndFloat) {
  MhaSetup s;
  s.S = 4;
  TorchMultiheadAttentionForwardOptions<double> f;
  f.key_padding_mask = Tensor<bool>({2, 4}, {false, true, false, false, true, false, false, true});
  check_grads(s, f, "bool key_padding_mask");
  TorchMultiheadAttentionForwardOptions<double> g;
  g.float_key_padding_mask = uniform({2, 4}, 5, 2.0);
  s.options.batch_first = true;
  check_grads(s, g, "float key_padding_mask");
}

TEST(NnMultiheadAttention, GradientsAttnMask2dAnd3d) {
  MhaSetup s;
  s.S = 4;
  TorchMultiheadAttentionForwardOptions<double> f;
  f.attn_mask = Tensor<bool>({3, 4}, {false, true, false, false, false, false, false, true, true, false, false, false});
  check_grads(s, f, "bool 2-D attn_mask");
  TorchMultiheadAttentionForwardOptions<double> g;
  g.float_attn_mask = uniform({2 * 2, 3, 4}, 6, 2.0);
  g.average_attn_weights = false;
  check_grads(s, g, "float 3-D attn_mask");
  TorchMultiheadAttentionForwardOptions<double> both;
  both.attn_mask = f.attn_mask;
  both.key_padding_mask = Tensor<bool>({2, 4}, {false, false, false, true, true, false, false, false});
  s.options.add_zero_attn = true;
  s.options.add_bias_kv = true;
  check_grads(s, both, "both masks + bias_kv + zero_attn");
}

TEST(NnMultiheadAttention, GradientsUnbatchedAndCausal) {
  MhaSetup s;
  s.unbatched = true;
  s.S = 4;
  TorchMultiheadAttentionForwardOptions<double> f;
  f.key_padding_mask = Tensor<bool>({4}, {false, false, true, false});
  check_grads(s, f, "unbatched");
  MhaSetup c;
  c.L = c.S = 4;
  TorchMultiheadAttentionForwardOptions<double> causal;
  causal.is_causal = true;
  causal.need_weights = false;
  check_grads(c, causal, "is_causal");
}

TEST(NnMultiheadAttention, GradientsWithDropoutInTraining) {
  MhaSetup s;
  s.options.dropout = 0.3;
  s.S = 5;
  check_grads(s, {}, "dropout", /*training_dropout=*/true);
}

TEST(NnMultiheadAttention, SameTensorAsQueryKeyValueSumsTheThreeGradients) {
  MhaSetup s;
  TorchMultiheadAttention<double> mha = random_mha(s, 3);
  Tensor<double> x = uniform({3, 2, 4}, 1);
  const Tensor<double> R = uniform({3, 2, 4}, 2);
  mha.forward(x, x, x);
  auto g = mha.backward(R);
  Tensor<double> sum = g.d_query.clone();
  for (int64_t i = 0; i < sum.numel(); ++i) sum.flat(i) += g.d_key.flat(i) + g.d_value.flat(i);
  expect_grad_matches([&] { return dot(mha.forward(x, x, x).attn_output, R); }, x, sum, "x as q, k and v");
}

// ---- properties ---------------------------------------------------------------

TEST(NnMultiheadAttention, WeightsAreAProbabilityOverKeys) {
  MhaSetup s;
  s.S = 5;
  s.options.add_bias_kv = true;
  TorchMultiheadAttention<double> mha = random_mha(s, 5);
  auto out = mha.forward(uniform({3, 2, 4}, 1), uniform({5, 2, 4}, 2), uniform({5, 2, 4}, 3));
  ASSERT_EQ(out.attn_weights.shape(), (Shape{2, 3, 6}));  // [N, L, S + 1]: the bias_k column is a key
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t i = 0; i < 3; ++i) {
      double sum = 0;
      for (int64_t j = 0; j < 6; ++j) {
        EXPECT_GE(out.attn_weights(b, i, j), 0.0);
        sum += out.attn_weights(b, i, j);
      }
      EXPECT_NEAR(sum, 1.0, 1e-12);
    }
}

TEST(NnMultiheadAttention, AveragedWeightsAreTheMeanOverHeads) {
  MhaSetup s;
  s.options.batch_first = true;
  TorchMultiheadAttention<double> mha = random_mha(s, 6);
  const Tensor<double> q = uniform({2, 3, 4}, 1), k = uniform({2, 3, 4}, 2), v = uniform({2, 3, 4}, 3);
  TorchMultiheadAttentionForwardOptions<double> per_head;
  per_head.average_attn_weights = false;
  auto heads = mha.forward(q, k, v, per_head).attn_weights;
  auto avg = mha.forward(q, k, v).attn_weights;
  ASSERT_EQ(heads.shape(), (Shape{2, 2, 3, 3}));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 3; ++j) EXPECT_NEAR(avg(b, i, j), (heads(b, 0, i, j) + heads(b, 1, i, j)) / 2, 1e-15);
}

// torch MHA polarity: True = IGNORE. A True key gets weight 0, and its value
// cannot influence the output (even if it is NaN).
TEST(NnMultiheadAttention, BoolMasksTrueMeansIgnore) {
  MhaSetup s;
  s.S = 4;
  s.options.batch_first = true;
  TorchMultiheadAttention<double> mha = random_mha(s, 7);
  Tensor<double> q = uniform({2, 3, 4}, 1), k = uniform({2, 4, 4}, 2), v = uniform({2, 4, 4}, 3);
  TorchMultiheadAttentionForwardOptions<double> f;
  f.key_padding_mask = Tensor<bool>({2, 4}, {false, false, false, true, true, false, false, false});
  f.attn_mask = Tensor<bool>({3, 4});
  f.attn_mask(0, 1) = true;  // query 0 may not look at key 1
  auto out = mha.forward(q, k, v, f);
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(out.attn_weights(0, i, 3), 0.0);
    EXPECT_EQ(out.attn_weights(1, i, 0), 0.0);
  }
  EXPECT_EQ(out.attn_weights(0, 0, 1), 0.0);
  EXPECT_EQ(out.attn_weights(1, 0, 1), 0.0);
  EXPECT_GT(out.attn_weights(0, 1, 1), 0.0);
  // Poison the padded key and value: the output must not change.
  for (int64_t e = 0; e < 4; ++e) k(0, 3, e) = v(0, 3, e) = std::numeric_limits<double>::quiet_NaN();
  auto poisoned = mha.forward(q, k, v, f);
  expect_close(poisoned.attn_output, out.attn_output, 0.0, "padded key poisoned");
}

TEST(NnMultiheadAttention, BoolMaskEqualsMinusInfinityFloatMask) {
  MhaSetup s;
  TorchMultiheadAttention<double> mha = random_mha(s, 8);
  const Tensor<double> q = uniform({3, 2, 4}, 1);
  TorchMultiheadAttentionForwardOptions<double> b, fl;
  b.attn_mask = Tensor<bool>({3, 3}, {false, true, true, false, false, true, false, false, false});
  fl.float_attn_mask = Tensor<double>({3, 3});
  for (int64_t i = 0; i < 9; ++i) fl.float_attn_mask.flat(i) = b.attn_mask.flat(i) ? -INFINITY : 0.0;
  auto x = mha.forward(q, q, q, b), y = mha.forward(q, q, q, fl);
  expect_close(x.attn_output, y.attn_output, 0.0, "bool vs float mask");
}

TEST(NnMultiheadAttention, IsCausalWithoutMaskEqualsTheCausalMaskAndIgnoresTheFuture) {
  MhaSetup s;
  s.L = s.S = 4;
  s.options.batch_first = true;
  TorchMultiheadAttention<double> mha = random_mha(s, 9);
  Tensor<double> x = uniform({2, 4, 4}, 1);
  TorchMultiheadAttentionForwardOptions<double> causal, masked;
  causal.is_causal = true;
  masked.attn_mask = Tensor<bool>({4, 4});
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = i + 1; j < 4; ++j) masked.attn_mask(i, j) = true;
  auto a = mha.forward(x, x, x, causal), b = mha.forward(x, x, x, masked);
  expect_close(a.attn_output, b.attn_output, 0.0, "is_causal vs mask");
  expect_close(a.attn_weights, b.attn_weights, 0.0, "is_causal vs mask weights");
  // Changing the last token changes nothing before it.
  for (int64_t e = 0; e < 4; ++e) x(1, 3, e) += 10.0;
  auto c = mha.forward(x, x, x, causal);
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t e = 0; e < 4; ++e) EXPECT_EQ(c.attn_output(1, i, e), a.attn_output(1, i, e));
}

// The library's rule (torch gives NaN): a query that sees no key has context 0,
// so its output is out_proj.bias, and gradients stay finite.
TEST(NnMultiheadAttention, FullyMaskedRowGivesOutProjBiasNotNaN) {
  MhaSetup s;
  s.options.batch_first = true;
  TorchMultiheadAttention<double> mha = random_mha(s, 10);
  const Tensor<double> x = uniform({2, 3, 4}, 1);
  TorchMultiheadAttentionForwardOptions<double> f;
  f.key_padding_mask = Tensor<bool>({2, 3}, {true, true, true, false, false, false});
  auto out = mha.forward(x, x, x, f);
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t e = 0; e < 4; ++e) EXPECT_EQ(out.attn_output(0, i, e), mha.out_proj.bias.value(e));
  auto g = mha.backward(uniform({2, 3, 4}, 2));
  for (int64_t i = 0; i < g.d_query.numel(); ++i) EXPECT_TRUE(std::isfinite(g.d_query.flat(i)));
}

TEST(NnMultiheadAttention, BatchFirstAndUnbatchedAgreeWithSequenceFirst) {
  MhaSetup s;
  TorchMultiheadAttention<double> seq_first = random_mha(s, 12);
  MhaSetup sb = s;
  sb.options.batch_first = true;
  TorchMultiheadAttention<double> batch_first = random_mha(sb, 12);
  const Tensor<double> x = uniform({3, 2, 4}, 1);  // [L, N, E]
  auto a = seq_first.forward(x, x, x).attn_output;
  auto b = batch_first.forward(x.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1)).attn_output;
  expect_close(b.transpose(0, 1).contiguous(), a, 1e-15, "batch_first");
  const Tensor<double> x1 = x.select(1, 1).contiguous();  // batch entry 1, unbatched [L, E]
  auto c = seq_first.forward(x1, x1, x1).attn_output;
  expect_close(c, a.select(1, 1).contiguous(), 1e-15, "unbatched");
}

TEST(NnMultiheadAttention, DropoutOnlyInTrainingAndFreshEachCall) {
  MhaSetup s;
  s.options.dropout = 0.5;
  TorchMultiheadAttention<double> mha = random_mha(s, 13);
  const Tensor<double> x = uniform({3, 2, 4}, 1);
  mha.eval();
  auto e1 = mha.forward(x, x, x).attn_output, e2 = mha.forward(x, x, x).attn_output;
  expect_close(e1, e2, 0.0, "eval is deterministic");
  mha.train();
  auto t1 = mha.forward(x, x, x).attn_output, t2 = mha.forward(x, x, x).attn_output;
  EXPECT_GT(relative_error(t1, e1), 1e-3) << "training with dropout = 0.5 should differ from eval";
  EXPECT_GT(relative_error(t1, t2), 1e-3) << "each training call should draw a new mask";
}

TEST(NnMultiheadAttention, StateDictNamesAndShapesAreTorchs) {
  Generator gen(0);
  TorchMultiheadAttention<float> packed(6, 3, {.add_bias_kv = true}, gen);
  std::vector<std::string> names;
  for (auto& np : packed.named_parameters()) names.push_back(np.name);
  EXPECT_EQ(names, (std::vector<std::string>{"in_proj_weight", "in_proj_bias", "bias_k", "bias_v", "out_proj.weight",
                                             "out_proj.bias"}));
  auto sd = packed.state_dict();
  EXPECT_EQ(sd["in_proj_weight"].shape(), (Shape{18, 6}));
  EXPECT_EQ(sd["bias_k"].shape(), (Shape{1, 1, 6}));
  TorchMultiheadAttention<float> separate(6, 2, {.bias = false, .kdim = 3, .vdim = 5}, gen);
  names.clear();
  for (auto& np : separate.named_parameters()) names.push_back(np.name);
  EXPECT_EQ(names, (std::vector<std::string>{"q_proj_weight", "k_proj_weight", "v_proj_weight", "out_proj.weight"}));
  EXPECT_EQ(separate.k_proj_weight.value.shape(), (Shape{6, 3}));
  EXPECT_EQ(separate.v_proj_weight.value.shape(), (Shape{6, 5}));
  // torch zero-initialises both biases.
  for (float b : packed.in_proj_bias.value.to_vector()) EXPECT_EQ(b, 0.0f);
  for (float b : packed.out_proj.bias.value.to_vector()) EXPECT_EQ(b, 0.0f);
}

// ---- errors ---------------------------------------------------------------------

TEST(NnMultiheadAttention, ConstructorErrors) {
  expect_error<ValueError>([] { TorchMultiheadAttention<double>(10, 3); }, {"embed_dim = 10", "num_heads = 3", "divisible"});
  expect_error<ValueError>([] { TorchMultiheadAttention<double>(0, 1); }, {"embed_dim", "greater than 0"});
  expect_error<ValueError>([] { TorchMultiheadAttention<double>(4, 2, {.dropout = 1.0}); }, {"dropout"});
  expect_error<ValueError>([] { TorchMultiheadAttention<double>(4, 2, {.kdim = 0}); }, {"kdim"});
}

TEST(NnMultiheadAttention, ForwardShapeErrorsNameTheArgument) {
  Generator gen(0);
  TorchMultiheadAttention<double> mha(4, 2, {.kdim = 3}, gen);
  const Tensor<double> q({3, 2, 4}), k({5, 2, 3}), v({5, 2, 4});
  expect_error<ShapeError>([&] { mha.forward(Tensor<double>({4}), k, v); }, {"query", "[4]"});
  expect_error<ShapeError>([&] { mha.forward(q, Tensor<double>({5, 3}), v); }, {"key", "3-D", "[5, 3]"});
  expect_error<ShapeError>([&] { mha.forward(Tensor<double>({3, 2, 5}), k, v); }, {"query", "[3, 2, 5]"});
  expect_error<ShapeError>([&] { mha.forward(q, Tensor<double>({5, 2, 4}), v); }, {"key", "[5, 2, 4]", "kdim = 3"});
  expect_error<ShapeError>([&] { mha.forward(q, k, Tensor<double>({4, 2, 4})); }, {"value", "[4, 2, 4]"});
  expect_error<ShapeError>([&] { mha.forward(q, Tensor<double>({5, 1, 3}), v); }, {"key", "N = 2"});
  TorchMultiheadAttentionForwardOptions<double> f;
  f.key_padding_mask = Tensor<bool>({2, 4});
  expect_error<ShapeError>([&] { mha.forward(q, k, v, f); }, {"key_padding_mask", "[2, 4]", "[2, 5]"});
  TorchMultiheadAttentionForwardOptions<double> a;
  a.attn_mask = Tensor<bool>({2, 3, 5});
  expect_error<ShapeError>([&] { mha.forward(q, k, v, a); }, {"attn_mask", "[2, 3, 5]", "[4, 3, 5]"});
  TorchMultiheadAttentionForwardOptions<double> both;
  both.attn_mask = Tensor<bool>({3, 5});
  both.float_attn_mask = Tensor<double>({3, 5});
  expect_error<ValueError>([&] { mha.forward(q, k, v, both); }, {"attn_mask", "both"});
}

TEST(NnMultiheadAttention, BackwardErrors) {
  Generator gen(0);
  TorchMultiheadAttention<double> mha(4, 2, {}, gen);
  expect_error<ValueError>([&] { mha.backward(Tensor<double>({3, 2, 4})); }, {"before forward"});
  const Tensor<double> x = uniform({3, 2, 4}, 1);
  mha.forward(x, x, x);
  expect_error<ShapeError>([&] { mha.backward(Tensor<double>({2, 3, 4})); }, {"grad_output", "[2, 3, 4]", "[3, 2, 4]"});
}

}  // namespace
