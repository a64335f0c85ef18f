// Embedding and CrossEntropyLoss: parity with torch.nn.Embedding and
// F.cross_entropy (tests/golden/gru_golden.json, made by
// tests/golden/make_gru_golden.py), finite differences in double, typed errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "attn/embedding.hpp"
#include "attn/loss.hpp"
#include "layers/layer_test_util.hpp"

namespace {

using namespace attn;
using namespace attn_layer_test;
using nlohmann::json;

const json& golden() {
  static const json data = [] {
    std::ifstream f(std::string(ATTN_GOLDEN_DIR) + "/gru_golden.json");
    if (!f) throw std::runtime_error("cannot open gru_golden.json in " ATTN_GOLDEN_DIR);
    return json::parse(f);
  }();
  return data;
}

Tensor<int64_t> ids_of(const json& j) { return Tensor<int64_t>(j.at("shape").get<Shape>(), j.at("data").get<std::vector<int64_t>>()); }

TEST(EmbeddingGolden, MatchesTorch) {
  const json& c = golden().at("embedding");
  Embedding<double> emb(c.at("num_embeddings").get<int64_t>(), c.at("embedding_dim").get<int64_t>());
  load_params(emb, c.at("params"));
  const Tensor<double> out = emb.forward(ids_of(c.at("ids")));
  expect_close(out, json_tensor<double>(c.at("output")), 1e-12, "embedding output");
  emb.backward(json_tensor<double>(c.at("grad_output")));
  expect_param_grads_close(emb, c.at("grads"), 1e-12, "embedding");  // id 3 and 1 occur twice: their rows add up
}

TEST(EmbeddingGolden, InitialisationMatchesTorchManualSeed) {
  const json& c = golden().at("embedding").at("init");
  Generator gen(c.at("seed").get<uint64_t>());
  Embedding<float> emb(c.at("num_embeddings").get<int64_t>(), c.at("embedding_dim").get<int64_t>(), gen);
  const Tensor<double> want = json_tensor<double>(c.at("weight"));
  ASSERT_EQ(emb.weight.value.shape(), want.shape());
  for (int64_t i = 0; i < want.numel(); ++i) EXPECT_EQ(emb.weight.value.flat(i), static_cast<float>(want.flat(i))) << i;
}

TEST(Embedding, BadIdsAndShapesAreTypedErrors) {
  Embedding<float> emb(4, 2);
  expect_error<ValueError>([&] { emb.forward(Tensor<int64_t>({3}, {0, 4, 1})); }, {"ids", "4", "num_embeddings (4)"});
  expect_error<ValueError>([&] { emb.forward(Tensor<int64_t>({1}, {-1})); }, {"-1"});
  expect_error<ValueError>([&] { Embedding<float> e(0, 2); }, {"num_embeddings"});
  expect_error<ValueError>([&] { Embedding<float> e(4, 2); e.backward(Tensor<float>({1, 2})); }, {"before forward"});
  emb.forward(Tensor<int64_t>({2, 3}));
  expect_error<ShapeError>([&] { emb.backward(Tensor<float>({2, 3, 3})); }, {"grad_output", "[2, 3, 3]", "[2, 3, 2]"});
}

TEST(CrossEntropyGolden, MatchesTorch) {
  for (const auto& c : golden().at("cross_entropy")) {
    const std::string what = c.at("name").get<std::string>();
    const auto target_v = c.at("target").get<std::vector<int64_t>>();
    const Tensor<int64_t> target({static_cast<int64_t>(target_v.size())}, target_v);
    CrossEntropyLoss<double> ce;
    EXPECT_NEAR(ce.forward(json_tensor<double>(c.at("logits")), target), c.at("loss").get<double>(), 1e-10) << what;
    expect_close(ce.backward(), json_tensor<double>(c.at("d_logits")), 1e-10, what + " d_logits");
    CrossEntropyLoss<float> cf;
    EXPECT_NEAR(cf.forward(json_tensor<float>(c.at("logits")), target), c.at("loss").get<double>(), 1e-5) << what;
    expect_close(cf.backward(), json_tensor<double>(c.at("d_logits")), 1e-5, what + " d_logits (float)");
  }
}

TEST(CrossEntropy, MatchesFiniteDifferences) {
  Tensor<double> logits = uniform({4, 5}, 21, 3.0);
  const Tensor<int64_t> target({4}, {2, -100, 0, 4});
  CrossEntropyLoss<double> ce;
  ce.forward(logits, target);
  const Tensor<double> d = ce.backward(2.0);
  expect_grad_matches([&] { CrossEntropyLoss<double> p; return 2.0 * p.forward(logits, target); }, logits, d, "d logits");
  EXPECT_EQ(ce.counted(), 3);
}

TEST(CrossEntropy, AllIgnoredIsZeroNotNaN) {
  CrossEntropyLoss<float> ce;
  EXPECT_EQ(ce.forward(Tensor<float>({2, 3}), Tensor<int64_t>({2}, {-100, -100})), 0.0f);
  const Tensor<float> d = ce.backward();
  for (int64_t i = 0; i < d.numel(); ++i) EXPECT_EQ(d.flat(i), 0.0f);
}

TEST(CrossEntropy, BadShapesAndTargetsAreTypedErrors) {
  CrossEntropyLoss<float> ce;
  expect_error<ShapeError>([&] { ce.forward(Tensor<float>({2, 3, 4}), Tensor<int64_t>({2})); }, {"input", "[2, 3, 4]", "[N, C]"});
  expect_error<ShapeError>([&] { ce.forward(Tensor<float>({2, 3}), Tensor<int64_t>({3})); }, {"target", "[3]", "[2]"});
  expect_error<ValueError>([&] { ce.forward(Tensor<float>({2, 3}), Tensor<int64_t>({2}, {0, 3})); }, {"target", "3", "[0, 3)"});
  expect_error<ValueError>([&] { CrossEntropyLoss<float>().backward(); }, {"before forward"});
}

}  // namespace
