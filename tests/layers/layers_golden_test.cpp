// Parity with PyTorch: tests/golden/layers_golden.json, made by
// tests/golden/make_layers_golden.py (torch.nn.MultiheadAttention in 25 option
// combinations; Raschka's layers, CrossAttention and AdditiveAttention written
// in torch; initialisation from torch.manual_seed). Outputs must agree to 1e-5
// and gradients to 1e-4, relative to each tensor's largest entry, in double
// and in float; initial weights must be bit-identical.
#include <gtest/gtest.h>

#include <memory>
#include <optional>

#include "attn/additive_attention.hpp"
#include "attn/causal_attention.hpp"
#include "attn/cross_attention.hpp"
#include "attn/multihead_attention.hpp"
#include "attn/nn_multihead_attention.hpp"
#include "attn/self_attention.hpp"
#include "layers/layer_test_util.hpp"

namespace {

using namespace attn;
using namespace attn_layer_test;
using nlohmann::json;

constexpr double kOutputTol = 1e-5;
constexpr double kGradTol = 1e-4;

std::optional<int64_t> opt_int(const json& j) {
  return j.is_null() ? std::nullopt : std::optional<int64_t>(j.get<int64_t>());
}

TorchMultiheadAttentionOptions mha_options(const json& c) {
  TorchMultiheadAttentionOptions o;
  o.bias = c.at("bias").get<bool>();
  o.add_bias_kv = c.at("add_bias_kv").get<bool>();
  o.add_zero_attn = c.at("add_zero_attn").get<bool>();
  o.kdim = opt_int(c.at("kdim"));
  o.vdim = opt_int(c.at("vdim"));
  o.batch_first = c.at("batch_first").get<bool>();
  return o;
}

template <class T>
void set_mask(const json& j, Tensor<bool>& as_bool, Tensor<T>& as_float) {
  if (j.is_null()) return;
  if (j.at("dtype") == "bool") as_bool = json_bool_tensor(j);
  else as_float = json_tensor<T>(j);
}

template <class T>
void run_mha_case(const json& c, bool drop_causal_mask) {
  Generator gen(0);
  TorchMultiheadAttention<T> mha(c.at("embed_dim").get<int64_t>(), c.at("num_heads").get<int64_t>(), mha_options(c), gen);
  load_params(mha, c.at("params"));
  TorchMultiheadAttentionForwardOptions<T> f;
  set_mask(c.at("key_padding_mask"), f.key_padding_mask, f.float_key_padding_mask);
  set_mask(c.at("attn_mask"), f.attn_mask, f.float_attn_mask);
  f.need_weights = c.at("need_weights").get<bool>();
  f.average_attn_weights = c.at("average_attn_weights").get<bool>();
  f.is_causal = c.at("is_causal").get<bool>();
  if (drop_causal_mask) {  // our is_causal alone must equal torch's is_causal + causal attn_mask
    f.attn_mask = Tensor<bool>();
    f.float_attn_mask = Tensor<T>();
  }
  const auto out = mha.forward(json_tensor<T>(c.at("query")), json_tensor<T>(c.at("key")),
                               json_tensor<T>(c.at("value")), f);
  expect_close(out.attn_output, json_tensor<double>(c.at("attn_output")), kOutputTol, "attn_output");
  if (c.at("attn_weights").is_null()) EXPECT_FALSE(out.attn_weights.defined()) << "need_weights = false";
  else expect_close(out.attn_weights, json_tensor<double>(c.at("attn_weights")), kOutputTol, "attn_weights");

  mha.zero_grad();
  const auto g = mha.backward(json_tensor<T>(c.at("grad_output")));
  const json& want = c.at("grads");
  expect_close(g.d_query, json_tensor<double>(want.at("query")), kGradTol, "d_query");
  expect_close(g.d_key, json_tensor<double>(want.at("key")), kGradTol, "d_key");
  expect_close(g.d_value, json_tensor<double>(want.at("value")), kGradTol, "d_value");
  expect_param_grads_close(mha, want.at("params"), kGradTol, "param");
}

template <class T>
void run_all_mha_cases() {
  const json& cases = layers_golden().at("mha");
  ASSERT_GE(cases.size(), 20u);
  for (const json& c : cases) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    run_mha_case<T>(c, false);
    if (c.at("is_causal").get<bool>()) run_mha_case<T>(c, true);
  }
}

TEST(LayersGolden, TorchMultiheadAttentionDouble) { run_all_mha_cases<double>(); }
TEST(LayersGolden, TorchMultiheadAttentionFloat) { run_all_mha_cases<float>(); }

// ---- Raschka's layers, CrossAttention, AdditiveAttention ----------------------

template <class T>
struct LayerRun {
  Tensor<T> output;
  std::map<std::string, Tensor<T>> input_grads;
  Tensor<T> weights;  // AdditiveAttention only
};

// Builds the layer named in the case, loads its parameters, runs forward and
// backward; `check` compares with torch.
template <class T>
void run_layer_case(const json& c) {
  const json& cfg = c.at("config");
  const std::string layer = c.at("layer").get<std::string>();
  auto i = [&](const char* k) { return cfg.at(k).get<int64_t>(); };
  auto b = [&](const char* k) { return cfg.at(k).get<bool>(); };
  auto input = [&](const char* k) { return json_tensor<T>(c.at("inputs").at(k)); };
  const Tensor<T> grad_output = json_tensor<T>(c.at("grad_output"));
  Tensor<bool> kpm;
  if (c.at("masks").contains("key_padding_mask")) kpm = json_bool_tensor(c.at("masks").at("key_padding_mask"));
  Generator gen(0);
  LayerRun<T> run;

  auto finish = [&](Module<T>& m, auto&& fwd_bwd) {
    load_params(m, c.at("params"));
    m.zero_grad();
    fwd_bwd();
    expect_param_grads_close(m, c.at("grads").at("params"), kGradTol, "param");
  };
  if (layer == "SelfAttention") {
    SelfAttention<T> m(i("d_in"), i("d_out"), b("qkv_bias"), gen);
    finish(m, [&] {
      run.output = m.forward(input("x"));
      run.input_grads["x"] = m.backward(grad_output);
    });
  } else if (layer == "CausalAttention") {
    CausalAttention<T> m(i("d_in"), i("d_out"), i("context_length"), 0.0, b("qkv_bias"), gen);
    finish(m, [&] {
      run.output = m.forward(input("x"));
      run.input_grads["x"] = m.backward(grad_output);
    });
  } else if (layer == "MultiHeadAttentionWrapper") {
    MultiHeadAttentionWrapper<T> m(i("d_in"), i("d_out"), i("context_length"), 0.0, i("num_heads"), b("qkv_bias"),
                                   gen);
    finish(m, [&] {
      run.output = m.forward(input("x"));
      run.input_grads["x"] = m.backward(grad_output);
    });
  } else if (layer == "MultiHeadAttention") {
    MultiHeadAttention<T> m(i("d_in"), i("d_out"), i("context_length"), 0.0, i("num_heads"), b("qkv_bias"), gen);
    finish(m, [&] {
      run.output = m.forward(input("x"));
      run.input_grads["x"] = m.backward(grad_output);
    });
  } else if (layer == "CrossAttention") {
    CrossAttention<T> m(i("d_q"), i("d_kv"), i("d_out_kq"), i("d_out_v"), b("qkv_bias"), gen);
    finish(m, [&] {
      run.output = m.forward(input("x"), input("context"), kpm);
      auto g = m.backward(grad_output);
      run.input_grads["x"] = g.d_x;
      run.input_grads["context"] = g.d_context;
    });
  } else if (layer == "AdditiveAttention") {
    AdditiveAttention<T> m(i("query_dim"), i("key_dim"), i("hidden_dim"), gen);
    finish(m, [&] {
      run.output = m.forward(input("query"), input("keys"), kpm);
      run.weights = m.attention_weights();
      auto g = m.backward(grad_output);
      run.input_grads["query"] = g.d_query;
      run.input_grads["keys"] = g.d_keys;
    });
  } else {
    FAIL() << "unknown layer " << layer;
  }
  expect_close(run.output, json_tensor<double>(c.at("output")), kOutputTol, "output");
  if (c.contains("attention_weights"))
    expect_close(run.weights, json_tensor<double>(c.at("attention_weights")), kOutputTol, "attention_weights");
  for (auto& [name, want] : c.at("inputs").items()) {
    ASSERT_TRUE(run.input_grads.count(name)) << name;
    expect_close(run.input_grads[name], json_tensor<double>(c.at("grads").at(name)), kGradTol, "d_" + name);
  }
}

template <class T>
void run_all_layer_cases() {
  const json& cases = layers_golden().at("layers");
  ASSERT_GE(cases.size(), 15u);
  for (const json& c : cases) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    run_layer_case<T>(c);
  }
}

TEST(LayersGolden, RaschkaCrossAdditiveDouble) { run_all_layer_cases<double>(); }
TEST(LayersGolden, RaschkaCrossAdditiveFloat) { run_all_layer_cases<float>(); }

// ---- initialisation from the same seed as torch.manual_seed ----------------------

// Every parameter bit-identical to torch's float32 draws.
void expect_same_weights(Module<float>& m, const json& params) {
  auto named = m.named_parameters();
  EXPECT_EQ(named.size(), params.size());
  for (auto& np : named) {
    ASSERT_TRUE(params.contains(np.name)) << np.name;
    const Tensor<float> want = json_tensor<float>(params.at(np.name));
    ASSERT_EQ(np.param->value.shape(), want.shape()) << np.name;
    for (int64_t k = 0; k < want.numel(); ++k)
      EXPECT_EQ(np.param->value.flat(k), want.flat(k)) << np.name << " element " << k;
  }
}

const json& init_case(const std::string& name) {
  for (const json& c : layers_golden().at("init"))
    if (c.at("name") == name) return c;
  throw std::runtime_error("no init case " + name);
}

// The book's printed outputs come back too (the script asserts them against
// the printed 4 decimals).
template <class Layer>
void check_raschka_init(const std::string& name, Layer& m) {
  const json& c = init_case(name);
  SCOPED_TRACE(name);
  expect_same_weights(m, c.at("params"));
  m.eval();
  const Tensor<float> y = m.forward(json_tensor<float>(c.at("input")));
  expect_close(y, json_tensor<double>(c.at("output")), kOutputTol, "output");
}

TEST(LayersGolden, RaschkaLayersInitialiseLikeTorchManualSeed) {
  {
    Generator gen(789);
    SelfAttention<float> sa(3, 2, false, gen);
    const json& c = init_case("self_attention_v2_seed789");
    expect_same_weights(sa, c.at("params"));
    expect_close(sa.forward(json_tensor<float>(c.at("input"))), json_tensor<double>(c.at("output")), kOutputTol,
                 "SelfAttention_v2 output");
  }
  Generator g1(123), g2(123), g3(123);
  CausalAttention<float> ca(3, 2, 6, 0.0, false, g1);
  check_raschka_init("causal_attention_seed123", ca);
  MultiHeadAttentionWrapper<float> mw(3, 2, 6, 0.0, 2, false, g2);
  check_raschka_init("mha_wrapper_seed123", mw);
  MultiHeadAttention<float> mha(3, 2, 6, 0.0, 2, false, g3);
  check_raschka_init("mha_seed123", mha);
}

TEST(LayersGolden, TorchMultiheadAttentionInitialisesLikeTorchManualSeed) {
  for (const json& c : layers_golden().at("init")) {
    if (c.at("layer") != "MultiheadAttention") continue;
    SCOPED_TRACE(c.at("name").get<std::string>());
    const json& cfg = c.at("config");
    Generator gen(c.at("seed").get<uint64_t>());
    TorchMultiheadAttention<float> mha(cfg.at("embed_dim").get<int64_t>(), cfg.at("num_heads").get<int64_t>(),
                                  mha_options(cfg), gen);
    expect_same_weights(mha, c.at("params"));
  }
}

}  // namespace
