// LSTM: parity with torch.nn.LSTM (tests/golden/gru_golden.json "lstm", made
// by tests/golden/make_gru_golden.py; outputs 1e-5, gradients 1e-4, in float
// and double), torch's initialisation bit for bit, finite differences in
// double through time (with padding), and typed errors.
#include <gtest/gtest.h>

#include <fstream>

#include "attn/lstm.hpp"
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

template <class T>
void run_case(const json& c) {
  const std::string what = c.at("name").get<std::string>() + (sizeof(T) == 4 ? " (float)" : " (double)");
  Generator gen(0);
  LSTM<T> lstm(c.at("input_size").get<int64_t>(), c.at("hidden_size").get<int64_t>(), c.at("bias").get<bool>(),
               c.at("batch_first").get<bool>(), gen);
  load_params(lstm, c.at("params"));
  const bool state = !c.at("h0").is_null();
  const Tensor<T> h0 = state ? json_tensor<T>(c.at("h0")) : Tensor<T>(), c0 = state ? json_tensor<T>(c.at("c0")) : Tensor<T>();
  const std::vector<int64_t> lengths = c.at("lengths").is_null() ? std::vector<int64_t>{} : c.at("lengths").get<std::vector<int64_t>>();
  const auto out = lstm.forward(json_tensor<T>(c.at("input")), h0, c0, lengths);
  expect_close(out.output, json_tensor<double>(c.at("output")), 1e-5, what + " output");
  expect_close(out.h_n, json_tensor<double>(c.at("h_n")), 1e-5, what + " h_n");
  expect_close(out.c_n, json_tensor<double>(c.at("c_n")), 1e-5, what + " c_n");
  const auto g = lstm.backward(json_tensor<T>(c.at("grad_output")), json_tensor<T>(c.at("grad_h_n")),
                               json_tensor<T>(c.at("grad_c_n")));
  expect_close(g.d_input, json_tensor<double>(c.at("d_input")), 1e-4, what + " d_input");
  if (state) {
    expect_close(g.d_h0, json_tensor<double>(c.at("d_h0")), 1e-4, what + " d_h0");
    expect_close(g.d_c0, json_tensor<double>(c.at("d_c0")), 1e-4, what + " d_c0");
  }
  expect_param_grads_close(lstm, c.at("grads"), 1e-4, what);
}

TEST(LSTMGolden, MatchesTorchInFloatAndDouble) {
  ASSERT_EQ(golden().at("lstm").size(), 6u);
  for (const auto& c : golden().at("lstm")) {
    run_case<double>(c);
    run_case<float>(c);
  }
}

TEST(LSTMGolden, InitialisationMatchesTorchManualSeed) {
  int seen = 0;
  for (const auto& c : golden().at("init")) {
    if (c.at("kind") != "lstm") continue;
    ++seen;
    Generator gen(c.at("seed").get<uint64_t>());
    auto got = LSTM<float>(c.at("input_size").get<int64_t>(), c.at("hidden_size").get<int64_t>(), c.at("bias").get<bool>(),
                           false, gen).state_dict();
    ASSERT_EQ(got.size(), c.at("params").size());
    for (const auto& [name, t] : c.at("params").items()) {
      const Tensor<double> want = json_tensor<double>(t);
      ASSERT_EQ(got.at(name).shape(), want.shape()) << name;
      for (int64_t i = 0; i < want.numel(); ++i) EXPECT_EQ(got.at(name).flat(i), static_cast<float>(want.flat(i))) << name;
    }
  }
  EXPECT_EQ(seen, 1);
}

void gradcheck(bool batch_first, const std::vector<int64_t>& lengths, const std::string& what) {
  const int64_t L = 5, B = 3, I = 3, H = 4;
  Generator gen(21);
  LSTM<double> lstm(I, H, true, batch_first, gen);
  const Tensor<double> x = uniform(batch_first ? Shape{B, L, I} : Shape{L, B, I}, 1);
  const Tensor<double> h0 = uniform({1, B, H}, 2), c0 = uniform({1, B, H}, 3);
  const Tensor<double> g_out = uniform(batch_first ? Shape{B, L, H} : Shape{L, B, H}, 4);
  const Tensor<double> g_hn = uniform({1, B, H}, 5), g_cn = uniform({1, B, H}, 6);
  auto loss = [&] {
    LSTM<double> probe(I, H, true, batch_first, gen);
    probe.load_state_dict(lstm.state_dict());
    const auto o = probe.forward(x, h0, c0, lengths);
    return dot(o.output, g_out) + dot(o.h_n, g_hn) + dot(o.c_n, g_cn);
  };
  lstm.forward(x, h0, c0, lengths);
  const auto g = lstm.backward(g_out, g_hn, g_cn);
  expect_grad_matches(loss, x, g.d_input, what + " d_input");
  expect_grad_matches(loss, h0, g.d_h0, what + " d_h0");
  expect_grad_matches(loss, c0, g.d_c0, what + " d_c0");
  expect_param_grads_match(lstm.named_parameters(), loss, what);
}

TEST(LSTMGradcheck, SequenceFirst) { gradcheck(false, {}, "seq-first"); }
TEST(LSTMGradcheck, PaddedLengths) { gradcheck(true, {5, 2, 0}, "lengths 5, 2, 0"); }

TEST(LSTM, BadShapesAreTypedErrors) {
  LSTM<float> lstm(3, 4);
  expect_error<ShapeError>([&] { lstm.forward(Tensor<float>({5, 2, 7})); }, {"input", "[5, 2, 7]"});
  expect_error<ValueError>([&] { lstm.forward(Tensor<float>({5, 2, 3}), Tensor<float>({1, 2, 4})); }, {"h0 and c0"});
  expect_error<ShapeError>([&] { lstm.forward(Tensor<float>({5, 2, 3}), Tensor<float>({1, 2, 4}), Tensor<float>({1, 3, 4})); },
                           {"c0", "[1, 3, 4]", "[1, 2, 4]"});
  expect_error<ValueError>([&] { lstm.forward(Tensor<float>({5, 2, 3}), {}, {}, {1, 9}); }, {"lengths", "9"});
  lstm.forward(Tensor<float>({5, 2, 3}));
  expect_error<ShapeError>([&] { lstm.backward({}, {}, Tensor<float>({2, 4})); }, {"grad_c_n", "[2, 4]"});
}

}  // namespace
