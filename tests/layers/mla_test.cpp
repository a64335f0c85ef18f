// Multi-head latent attention: PyTorch golden outputs and gradients
// (tests/golden/make_mla_golden.py), finite differences in float64, causality,
// the cached decoder (absorbed and naive forms) against the full-sequence
// forward, and typed errors.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "attn/mla.hpp"
#include "layers/layer_test_util.hpp"

namespace {

using attn::MLACacheForm;
using attn::MLAConfig;
using attn::MLADecoder;
using attn::MultiHeadLatentAttention;
using attn::RopeLayout;
using attn::Tensor;
using namespace attn_layer_test;

MLAConfig small_config(RopeLayout layout = RopeLayout::Half) {
  MLAConfig c;
  c.d_model = 8;
  c.num_heads = 3;
  c.head_dim = 4;
  c.rope_dim = 4;
  c.kv_latent_dim = 5;
  c.q_latent_dim = 6;
  c.rope_layout = layout;
  return c;
}

const nlohmann::json& mla_golden() {
  static const nlohmann::json data = [] {
    std::ifstream f(std::string(ATTN_GOLDEN_DIR) + "/mla_golden.json");
    if (!f) throw std::runtime_error("cannot open mla_golden.json in " ATTN_GOLDEN_DIR);
    return nlohmann::json::parse(f);
  }();
  return data;
}

template <class T>
void run_golden(double out_tol, double grad_tol) {
  int n = 0;
  for (const auto& c : mla_golden().at("cases")) {
    const auto& j = c.at("config");
    MLAConfig cfg;
    cfg.d_model = j.at("d_model");
    cfg.num_heads = j.at("num_heads");
    cfg.head_dim = j.at("head_dim");
    cfg.rope_dim = j.at("rope_dim");
    cfg.kv_latent_dim = j.at("kv_latent_dim");
    cfg.q_latent_dim = j.at("q_latent_dim");
    cfg.rope_theta = j.at("rope_theta");
    cfg.rope_layout = j.at("layout") == "half" ? RopeLayout::Half : RopeLayout::Interleaved;
    MultiHeadLatentAttention<T> mla(cfg);
    load_params(mla, c.at("params"));
    const std::string what = "case " + std::to_string(n);
    const Tensor<T> y = mla.forward(json_tensor<T>(c.at("x")), j.at("start_pos").get<int64_t>());
    expect_close(y, json_tensor<double>(c.at("output")), out_tol, what + " output");
    const Tensor<T> dx = mla.backward(json_tensor<T>(c.at("grad_output")));
    expect_close(dx, json_tensor<double>(c.at("grads").at("x")), grad_tol, what + " dx");
    for (auto& np : mla.named_parameters())
      expect_close(np.param->grad, json_tensor<double>(c.at("grads").at(np.name)), grad_tol, what + " d" + np.name);
    ++n;
  }
  EXPECT_EQ(n, 3);
}

TEST(MLA, MatchesPytorchGoldenDouble) { run_golden<double>(1e-12, 1e-11); }
TEST(MLA, MatchesPytorchGoldenFloat) { run_golden<float>(2e-6, 1e-5); }

TEST(MLA, BackwardMatchesFiniteDifferences) {
  for (RopeLayout layout : {RopeLayout::Half, RopeLayout::Interleaved}) {
    attn::Generator gen(7);
    MultiHeadLatentAttention<double> mla(small_config(layout), gen);
    const Tensor<double> x = uniform({2, 4, 8}, 31), g = uniform({2, 4, 8}, 32);
    mla.zero_grad();
    mla.forward(x, 2);
    const Tensor<double> dx = mla.backward(g);
    auto loss = [&] { return dot(mla.forward(x, 2), g); };
    expect_grad_matches(loss, x, dx, "dx");
    expect_param_grads_match(mla.named_parameters(), loss, "MLA");
  }
}

TEST(MLA, UnbatchedEqualsBatchOfOne) {
  MultiHeadLatentAttention<double> mla(small_config());
  const Tensor<double> x = uniform({5, 8}, 41);
  const Tensor<double> y2 = mla.forward(x).clone();
  const Tensor<double> y3 = mla.forward(x.reshape({1, 5, 8}));
  ASSERT_EQ(y2.shape(), (attn::Shape{5, 8}));
  EXPECT_LE(relative_error(y3.reshape({5, 8}), y2, 1e-12), 0.0);
}

TEST(MLA, IsCausal) {
  MultiHeadLatentAttention<double> mla(small_config());
  Tensor<double> x = uniform({1, 6, 8}, 51);
  const Tensor<double> before = mla.forward(x).clone();
  for (int64_t d = 0; d < 8; ++d) x(0, 4, d) += 1.0;  // change token 4
  const Tensor<double> after = mla.forward(x);
  for (int64_t l = 0; l < 6; ++l) {
    double diff = 0;
    for (int64_t d = 0; d < 8; ++d) diff = std::max(diff, std::abs(after(0, l, d) - before(0, l, d)));
    if (l < 4) EXPECT_EQ(diff, 0.0) << "token " << l;
    else EXPECT_GT(diff, 1e-6) << "token " << l;
  }
}

// Decoding token by token (and in chunks) reproduces the full-sequence forward.
template <class T>
void check_decoder(MLACacheForm form, double tol) {
  for (RopeLayout layout : {RopeLayout::Half, RopeLayout::Interleaved}) {
    attn::Generator gen(3);
    MultiHeadLatentAttention<T> mla(small_config(layout), gen);
    const Tensor<T> x = uniform<T>({2, 7, 8}, 61);
    const Tensor<T> full = mla.forward(x).clone();  // [2, 7, 8]
    MLADecoder<T> dec(mla, 2, 16, form);
    // a prefill of 3 tokens, then one at a time
    Tensor<T> got({2, 7, 8});
    got.slice(1, 0, 3).copy_(dec.step(x.slice(1, 0, 3).contiguous()));
    for (int64_t t = 3; t < 7; ++t) got.slice(1, t, t + 1).copy_(dec.step(x.slice(1, t, t + 1).contiguous()));
    EXPECT_EQ(dec.length(), 7);
    EXPECT_LE(relative_error(got, full.template to<double>(), 1e-3), tol) << static_cast<int>(layout);
  }
}

TEST(MLADecoder, AbsorbedEqualsTrainableForwardFloat) { check_decoder<float>(MLACacheForm::Absorbed, 2e-6); }
TEST(MLADecoder, NaiveEqualsTrainableForwardFloat) { check_decoder<float>(MLACacheForm::Naive, 2e-6); }
TEST(MLADecoder, AbsorbedEqualsTrainableForwardDouble) { check_decoder<double>(MLACacheForm::Absorbed, 1e-13); }
TEST(MLADecoder, NaiveEqualsTrainableForwardDouble) { check_decoder<double>(MLACacheForm::Naive, 1e-13); }

TEST(MLADecoder, CacheBytesPerToken) {
  MultiHeadLatentAttention<float> mla(small_config());
  EXPECT_EQ(MLADecoder<float>(mla, 1, 4, MLACacheForm::Absorbed).cache_bytes_per_token(), (5 + 4) * 4);
  EXPECT_EQ(MLADecoder<float>(mla, 1, 4, MLACacheForm::Naive).cache_bytes_per_token(), 3 * (4 + 4 + 4) * 4);
}

TEST(MLADecoder, ResetStartsOver) {
  MultiHeadLatentAttention<double> mla(small_config());
  const Tensor<double> x = uniform({1, 2, 8}, 71);
  MLADecoder<double> dec(mla, 1, 4);
  const Tensor<double> a = dec.step(x);
  dec.reset();
  EXPECT_EQ(dec.length(), 0);
  EXPECT_LE(relative_error(dec.step(x), a, 1e-12), 0.0);
}

TEST(MLA, TypedErrors) {
  MLAConfig bad = small_config();
  bad.rope_dim = 3;
  EXPECT_THROW(MultiHeadLatentAttention<float>{bad}, attn::ValueError);
  bad = small_config();
  bad.kv_latent_dim = 0;
  EXPECT_THROW(MultiHeadLatentAttention<float>{bad}, attn::ValueError);
  MultiHeadLatentAttention<float> mla(small_config());
  EXPECT_THROW(mla.backward(Tensor<float>({1, 2, 8})), attn::ValueError);  // before forward
  EXPECT_THROW(mla.forward(Tensor<float>({1, 2, 7})), attn::ShapeError);
  EXPECT_THROW(mla.forward(Tensor<float>({1, 1, 2, 8})), attn::ShapeError);
  EXPECT_THROW(mla.forward(Tensor<float>({1, 2, 8}), -1), attn::ValueError);
  mla.forward(Tensor<float>({1, 2, 8}));
  EXPECT_THROW(mla.backward(Tensor<float>({1, 3, 8})), attn::ShapeError);
  EXPECT_THROW(MLADecoder<float>(mla, 0, 4), attn::ValueError);
  MLADecoder<float> dec(mla, 1, 2);
  EXPECT_THROW(dec.step(Tensor<float>({2, 1, 8})), attn::ShapeError);
  EXPECT_THROW(dec.step(Tensor<float>({1, 1, 7})), attn::ShapeError);
  EXPECT_THROW(dec.step(Tensor<float>({1, 3, 8})), attn::ValueError);  // exceeds max_len
  try {
    mla.forward(Tensor<float>({1, 2, 7}));
  } catch (const attn::ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("[1, 2, 7]"), std::string::npos) << e.what();
  }
}

}  // namespace
