// Seq2Seq (GRU encoder–decoder, bottleneck and attention): finite differences
// in double through the whole model (embeddings, both GRUs, the additive
// attention with padded source steps, the output layer, cross-entropy),
// padding that cannot change the answer, attention weights that sum to 1 and
// give padded steps exactly 0, typed errors, and a short Adam run that learns.
#include <gtest/gtest.h>

#include <cmath>

#include "attn/loss.hpp"
#include "attn/optim.hpp"
#include "attn/seq2seq.hpp"
#include "layers/layer_test_util.hpp"

namespace {

using namespace attn;
using namespace attn_layer_test;

Seq2SeqConfig small(bool attention) {
  return {.src_vocab = 5, .tgt_vocab = 6, .embed_dim = 3, .hidden_dim = 4, .attention_dim = 3, .attention = attention};
}

// Batch of 3: source lengths 4, 2, 3 (padding ids 9 and -1: ignored), targets of 3 steps.
const Tensor<int64_t> kSrc({3, 4}, {1, 4, 0, 2, 3, 3, 9, -1, 2, 0, 1, 9});
const std::vector<int64_t> kLengths = {4, 2, 3};
const Tensor<int64_t> kTgtIn({3, 3}, {5, 1, 2, 5, 0, 0, 5, 4, 3});
const Tensor<int64_t> kTarget({9}, {1, 2, 3, 0, 0, -100, 4, 3, 2});

void gradcheck(bool attention) {
  Generator gen(1);
  Seq2Seq<double> model(small(attention), gen);
  auto loss = [&] {
    CrossEntropyLoss<double> ce;
    return ce.forward(model.forward(kSrc, kLengths, kTgtIn).reshape({9, 6}), kTarget);
  };
  model.zero_grad();
  CrossEntropyLoss<double> ce;
  ce.forward(model.forward(kSrc, kLengths, kTgtIn).reshape({9, 6}), kTarget);
  model.backward(ce.backward().reshape({3, 3, 6}));
  expect_param_grads_match(model.named_parameters(), loss, attention ? "attention" : "bottleneck");
}

TEST(Seq2Seq, BottleneckMatchesFiniteDifferences) { gradcheck(false); }
TEST(Seq2Seq, AttentionMatchesFiniteDifferences) { gradcheck(true); }

TEST(Seq2Seq, ParameterNamesAndCounts) {
  Seq2Seq<float> plain(small(false)), attn(small(true));
  std::vector<std::string> names;
  for (auto& np : attn.named_parameters()) names.push_back(np.name);
  EXPECT_EQ(names, (std::vector<std::string>{"src_embed.weight", "tgt_embed.weight", "encoder.weight_ih_l0",
                                             "encoder.weight_hh_l0", "encoder.bias_ih_l0", "encoder.bias_hh_l0",
                                             "decoder.weight_ih_l0", "decoder.weight_hh_l0", "decoder.bias_ih_l0",
                                             "decoder.bias_hh_l0", "attention.W_s.weight", "attention.W_h.weight",
                                             "attention.v.weight", "out.weight", "out.bias"}));
  // 15 + 18 embeddings, 2 × (36 + 48 + 12 + 12) GRUs, out 6 × 4 + 6; attention adds 12 + 12 + 3 and 6 × 4 in out
  EXPECT_EQ(plain.num_parameters(), 15 + 18 + 2 * 108 + 30);
  EXPECT_EQ(attn.num_parameters(), 15 + 18 + 2 * 108 + 27 + 54);
}

// What sits beyond a source's length changes neither the logits nor the decoding.
TEST(Seq2Seq, SourcePaddingIsIgnored) {
  for (bool attention : {false, true}) {
    Generator gen(2);
    Seq2Seq<double> model(small(attention), gen);
    const Tensor<double> a = model.forward(kSrc, kLengths, kTgtIn);
    Tensor<int64_t> other = kSrc.clone();
    other(1, 2) = 4;
    other(1, 3) = 1;
    other(2, 3) = 0;
    const Tensor<double> b = model.forward(other, kLengths, kTgtIn);
    for (int64_t i = 0; i < a.numel(); ++i) EXPECT_EQ(a.flat(i), b.flat(i)) << attention;
  }
}

TEST(Seq2Seq, GreedyAttentionWeightsSumToOneAndSkipPadding) {
  Generator gen(3);
  Seq2Seq<double> model(small(true), gen);
  Tensor<double> w;
  const Tensor<int64_t> ids = model.greedy_decode(kSrc, kLengths, 5, 4, &w);
  ASSERT_EQ(ids.shape(), (Shape{3, 4}));
  ASSERT_EQ(w.shape(), (Shape{3, 4, 4}));
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t i = 0; i < 4; ++i) {
      double sum = 0;
      for (int64_t j = 0; j < 4; ++j) {
        if (j >= kLengths[static_cast<size_t>(b)]) EXPECT_EQ(w(b, i, j), 0.0);
        EXPECT_GE(w(b, i, j), 0.0);
        sum += w(b, i, j);
      }
      EXPECT_NEAR(sum, 1.0, 1e-12);
      EXPECT_GE(ids(b, i), 0);
      EXPECT_LT(ids(b, i), 6);
    }
  // greedy decoding agrees with teacher forcing fed its own outputs
  Tensor<int64_t> tgt_in({3, 4});
  for (int64_t b = 0; b < 3; ++b) {
    tgt_in(b, 0) = 5;
    for (int64_t i = 1; i < 4; ++i) tgt_in(b, i) = ids(b, i - 1);
  }
  const Tensor<double> logits = model.forward(kSrc, kLengths, tgt_in);
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t i = 0; i < 4; ++i) {
      int64_t best = 0;
      for (int64_t v = 1; v < 6; ++v)
        if (logits(b, i, v) > logits(b, i, best)) best = v;
      EXPECT_EQ(best, ids(b, i));
    }
}

TEST(Seq2Seq, AdamLearnsToCopyOneToken) {
  Generator gen(4);
  Seq2Seq<float> model({.src_vocab = 4, .tgt_vocab = 5, .embed_dim = 4, .hidden_dim = 8, .attention_dim = 8, .attention = true}, gen);
  Adam<float> opt(model.parameters(), {.lr = 0.02});
  const Tensor<int64_t> src({4, 1}, {0, 1, 2, 3}), tgt_in({4, 1}, {4, 4, 4, 4}), target({4}, {0, 1, 2, 3});
  float first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    opt.zero_grad();
    CrossEntropyLoss<float> ce;
    last = ce.forward(model.forward(src, {1, 1, 1, 1}, tgt_in).reshape({4, 5}), target);
    if (step == 0) first = last;
    model.backward(ce.backward().reshape({4, 1, 5}));
    opt.step();
  }
  EXPECT_LT(last, first / 10);
  EXPECT_EQ(model.greedy_decode(src, {1, 1, 1, 1}, 4, 1).to_vector(), (std::vector<int64_t>{0, 1, 2, 3}));
}

TEST(Seq2Seq, BadInputsAreTypedErrors) {
  Seq2Seq<float> model(small(true));
  expect_error<ShapeError>([&] { model.forward(kSrc, {4, 2}, kTgtIn); }, {"src_lengths", "2"});
  expect_error<ShapeError>([&] { model.forward(kSrc, kLengths, Tensor<int64_t>({2, 3})); }, {"tgt_in", "[2, 3]", "[3, 4]"});
  expect_error<ValueError>([&] { model.forward(kSrc, {4, 2, 5}, kTgtIn); }, {"src_lengths", "5", "Ls (4)"});
  expect_error<ValueError>([&] { model.forward(kSrc, kLengths, Tensor<int64_t>({3, 1}, {0, 6, 1})); }, {"ids", "6"});
  expect_error<ValueError>([&] { model.greedy_decode(kSrc, kLengths, 6, 2); }, {"bos = 6"});
  expect_error<ValueError>([&] { Seq2Seq<float> bad({.src_vocab = 0, .tgt_vocab = 3}); }, {"num_embeddings"});
}

}  // namespace
