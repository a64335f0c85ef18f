// GRU / GRUCell: parity with torch.nn.GRU / nn.GRUCell (tests/golden/gru_golden.json,
// made by tests/golden/make_gru_golden.py; outputs 1e-5, gradients 1e-4 relative
// to each tensor's largest entry, in float and double), torch's initialisation
// bit for bit, finite differences in double through time (with padding),
// padding semantics, and typed errors for bad shapes.
#include <gtest/gtest.h>

#include <fstream>

#include "attn/gru.hpp"
#include "attn/optim.hpp"
#include "layers/layer_test_util.hpp"

namespace {

using namespace attn;
using namespace attn_layer_test;
using nlohmann::json;

constexpr double kOutputTol = 1e-5;
constexpr double kGradTol = 1e-4;

const json& gru_golden() {
  static const json data = [] {
    std::ifstream f(std::string(ATTN_GOLDEN_DIR) + "/gru_golden.json");
    if (!f) throw std::runtime_error("cannot open gru_golden.json in " ATTN_GOLDEN_DIR);
    return json::parse(f);
  }();
  return data;
}

// ---- parity with torch ------------------------------------------------------------

template <class T>
void run_gru_case(const json& c) {
  const std::string what = c.at("name").get<std::string>() + (sizeof(T) == 4 ? " (float)" : " (double)");
  Generator gen(0);
  GRU<T> gru(c.at("input_size").get<int64_t>(), c.at("hidden_size").get<int64_t>(), c.at("bias").get<bool>(),
             c.at("batch_first").get<bool>(), gen);
  load_params(gru, c.at("params"));
  const Tensor<T> h0 = c.at("h0").is_null() ? Tensor<T>() : json_tensor<T>(c.at("h0"));
  const std::vector<int64_t> lengths = c.at("lengths").is_null() ? std::vector<int64_t>{} : c.at("lengths").get<std::vector<int64_t>>();
  const auto out = gru.forward(json_tensor<T>(c.at("input")), h0, lengths);
  expect_close(out.output, json_tensor<double>(c.at("output")), kOutputTol, what + " output");
  expect_close(out.h_n, json_tensor<double>(c.at("h_n")), kOutputTol, what + " h_n");
  const auto g = gru.backward(json_tensor<T>(c.at("grad_output")), json_tensor<T>(c.at("grad_h_n")));
  expect_close(g.d_input, json_tensor<double>(c.at("d_input")), kGradTol, what + " d_input");
  if (!c.at("d_h0").is_null()) expect_close(g.d_h0, json_tensor<double>(c.at("d_h0")), kGradTol, what + " d_h0");
  expect_param_grads_close(gru, c.at("grads"), kGradTol, what);
}

TEST(GRUGolden, MatchesTorchInFloatAndDouble) {
  ASSERT_GE(gru_golden().at("gru").size(), 7u);
  for (const auto& c : gru_golden().at("gru")) {
    run_gru_case<double>(c);
    run_gru_case<float>(c);
  }
}

template <class T>
void run_cell_case(const json& c) {
  const std::string what = c.at("name").get<std::string>() + (sizeof(T) == 4 ? " (float)" : " (double)");
  Generator gen(0);
  GRUCell<T> cell(c.at("input_size").get<int64_t>(), c.at("hidden_size").get<int64_t>(), c.at("bias").get<bool>(), gen);
  load_params(cell, c.at("params"));
  const Tensor<T> h1 = cell.forward(json_tensor<T>(c.at("input")), json_tensor<T>(c.at("h")));
  expect_close(h1, json_tensor<double>(c.at("output")), kOutputTol, what + " output");
  const auto g = cell.backward(json_tensor<T>(c.at("grad_output")));
  expect_close(g.d_input, json_tensor<double>(c.at("d_input")), kGradTol, what + " d_input");
  expect_close(g.d_h0, json_tensor<double>(c.at("d_h")), kGradTol, what + " d_h");
  expect_param_grads_close(cell, c.at("grads"), kGradTol, what);
}

TEST(GRUCellGolden, MatchesTorchInFloatAndDouble) {
  ASSERT_EQ(gru_golden().at("gru_cell").size(), 3u);
  for (const auto& c : gru_golden().at("gru_cell")) {
    run_cell_case<double>(c);
    run_cell_case<float>(c);
  }
}

TEST(GRUGolden, InitialisationMatchesTorchManualSeed) {
  for (const auto& c : gru_golden().at("init")) {
    if (c.at("kind") == "lstm") continue;  // lstm_test.cpp
    Generator gen(c.at("seed").get<uint64_t>());
    const int64_t I = c.at("input_size").get<int64_t>(), H = c.at("hidden_size").get<int64_t>();
    const bool bias = c.at("bias").get<bool>();
    std::map<std::string, Tensor<float>> got;
    if (c.at("kind") == "gru") got = GRU<float>(I, H, bias, false, gen).state_dict();
    else got = GRUCell<float>(I, H, bias, gen).state_dict();
    ASSERT_EQ(got.size(), c.at("params").size());
    for (const auto& [name, t] : c.at("params").items()) {
      const Tensor<double> want = json_tensor<double>(t);
      ASSERT_EQ(got.at(name).shape(), want.shape()) << name;
      for (int64_t i = 0; i < want.numel(); ++i)
        EXPECT_EQ(got.at(name).flat(i), static_cast<float>(want.flat(i))) << name << " element " << i;
    }
  }
}

// ---- finite differences in double ------------------------------------------------------

// loss = Σ output ⊙ g_out + Σ h_n ⊙ g_hn; checks d input, d h0 and every parameter.
void gradcheck(bool batch_first, bool bias, const std::vector<int64_t>& lengths, const std::string& what) {
  const int64_t L = 5, B = 3, I = 3, H = 4;
  Generator gen(11);
  GRU<double> gru(I, H, bias, batch_first, gen);
  const Tensor<double> x = uniform(batch_first ? Shape{B, L, I} : Shape{L, B, I}, 1);
  const Tensor<double> h0 = uniform({1, B, H}, 2);
  const Tensor<double> g_out = uniform(batch_first ? Shape{B, L, H} : Shape{L, B, H}, 3);
  const Tensor<double> g_hn = uniform({1, B, H}, 4);
  auto loss = [&] {
    GRU<double> probe(I, H, bias, batch_first, gen);
    probe.load_state_dict(gru.state_dict());
    const auto o = probe.forward(x, h0, lengths);
    return dot(o.output, g_out) + dot(o.h_n, g_hn);
  };
  gru.zero_grad();
  gru.forward(x, h0, lengths);
  const auto g = gru.backward(g_out, g_hn);
  expect_grad_matches(loss, x, g.d_input, what + " d_input");
  expect_grad_matches(loss, h0, g.d_h0, what + " d_h0");
  // parameters: perturb gru's own values; loss() copies them into the probe
  expect_param_grads_match(gru.named_parameters(), loss, what);
}

TEST(GRUGradcheck, SequenceFirst) { gradcheck(false, true, {}, "seq-first"); }
TEST(GRUGradcheck, BatchFirstNoBias) { gradcheck(true, false, {}, "batch_first, no bias"); }
TEST(GRUGradcheck, PaddedLengths) { gradcheck(true, true, {5, 2, 0}, "lengths 5, 2, 0"); }

TEST(GRUCellGradcheck, MatchesFiniteDifferences) {
  Generator gen(3);
  GRUCell<double> cell(3, 4, true, gen);
  const Tensor<double> x = uniform({2, 3}, 5), h = uniform({2, 4}, 6), g = uniform({2, 4}, 7);
  auto loss = [&] {
    GRUCell<double> probe(3, 4, true, gen);
    probe.load_state_dict(cell.state_dict());
    return dot(probe.forward(x, h), g);
  };
  cell.forward(x, h);
  const auto grads = cell.backward(g);
  expect_grad_matches(loss, x, grads.d_input, "cell d_input");
  expect_grad_matches(loss, h, grads.d_h0, "cell d_h");
  expect_param_grads_match(cell.named_parameters(), loss, "cell");
}

// ---- semantics ---------------------------------------------------------------------------

// The layer over a sequence is the cell applied step by step with the same weights.
TEST(GRU, EqualsTheCellUnrolled) {
  Generator gen(4);
  GRU<double> gru(3, 5, true, false, gen);
  GRUCell<double> cell(3, 5, true, gen);
  cell.weight_ih.value.copy_(gru.weight_ih_l0.value);
  cell.weight_hh.value.copy_(gru.weight_hh_l0.value);
  cell.bias_ih.value.copy_(gru.bias_ih_l0.value);
  cell.bias_hh.value.copy_(gru.bias_hh_l0.value);
  const Tensor<double> x = uniform({6, 2, 3}, 8);
  const auto out = gru.forward(x);
  Tensor<double> h({2, 5});
  for (int64_t t = 0; t < 6; ++t) {
    h = cell.forward(x.select(0, t), h);
    for (int64_t i = 0; i < h.numel(); ++i) EXPECT_DOUBLE_EQ(out.output.select(0, t).flat(i), h.flat(i)) << t;
  }
  for (int64_t i = 0; i < h.numel(); ++i) EXPECT_DOUBLE_EQ(out.h_n.flat(i), h.flat(i));
}

// A padded sequence gives the same output and final state as the same
// sequence run alone at its own length (what pack_padded_sequence promises),
// whatever garbage the padding steps hold.
TEST(GRU, PaddingStepsChangeNothing) {
  Generator gen(5);
  GRU<double> gru(2, 3, true, true, gen);
  Tensor<double> x = uniform({2, 6, 2}, 9);
  const auto padded = gru.forward(x, {}, {6, 3});
  const auto alone = gru.forward(x.slice(0, 1, 2).slice(1, 0, 3));
  for (int64_t t = 0; t < 3; ++t)
    for (int64_t j = 0; j < 3; ++j) EXPECT_DOUBLE_EQ(padded.output(1, t, j), alone.output(0, t, j));
  for (int64_t t = 3; t < 6; ++t)
    for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(padded.output(1, t, j), 0.0);
  for (int64_t j = 0; j < 3; ++j) EXPECT_DOUBLE_EQ(padded.h_n(0, 1, j), alone.h_n(0, 0, j));
  for (int64_t t = 3; t < 6; ++t) x(1, t, 0) = 1e30;  // garbage in the padding
  const auto again = gru.forward(x, {}, {6, 3});
  for (int64_t j = 0; j < 3; ++j) EXPECT_DOUBLE_EQ(again.h_n(0, 1, j), alone.h_n(0, 0, j));
}

// Adam, through Module::parameters(), learns to carry the first input to the end.
TEST(GRU, AdamLearnsToRememberTheFirstInput) {
  Generator gen(6);
  GRU<double> gru(1, 4, true, true, gen);
  Adam<double> opt(gru.parameters(), {.lr = 0.05});
  const Tensor<double> x = uniform({8, 5, 1}, 10);
  auto loss_and_grad = [&](bool step) {
    opt.zero_grad();
    const auto o = gru.forward(x);
    Tensor<double> d({1, 8, 4});
    double loss = 0;
    for (int64_t b = 0; b < 8; ++b) {  // h_n[b, 0] should equal x[b, 0] / 2
      const double e = o.h_n(0, b, 0) - x(b, 0, 0) / 2;
      loss += e * e;
      d(0, b, 0) = 2 * e;
    }
    if (step) {
      gru.backward({}, d);
      opt.step();
    }
    return loss;
  };
  const double before = loss_and_grad(false);
  for (int i = 0; i < 200; ++i) loss_and_grad(true);
  EXPECT_LT(loss_and_grad(false), before / 20);
}

// ---- errors ----------------------------------------------------------------------------

TEST(GRU, BadShapesAreTypedErrors) {
  GRU<float> gru(3, 4);
  expect_error<ShapeError>([&] { gru.forward(Tensor<float>({5, 2, 7})); }, {"input", "[5, 2, 7]", "3"});
  expect_error<ShapeError>([&] { gru.forward(Tensor<float>({5})); }, {"input", "[5]"});
  expect_error<ShapeError>([&] { gru.forward(Tensor<float>({5, 2, 3}), Tensor<float>({2, 4})); }, {"h0", "[2, 4]", "[1, 2, 4]"});
  expect_error<ShapeError>([&] { gru.forward(Tensor<float>({5, 2, 3}), {}, {5}); }, {"lengths", "1", "2"});
  expect_error<ValueError>([&] { gru.forward(Tensor<float>({5, 2, 3}), {}, {5, 6}); }, {"lengths", "6"});
  expect_error<ValueError>([&] { GRU<float> bad(0, 4); }, {"input_size"});
  expect_error<ValueError>([&] { GRU<float> fresh(3, 4); fresh.backward(Tensor<float>({1, 1, 4})); }, {"before forward"});
  gru.forward(Tensor<float>({5, 2, 3}));
  expect_error<ShapeError>([&] { gru.backward(Tensor<float>({5, 2, 3})); }, {"grad_output", "[5, 2, 3]", "[5, 2, 4]"});
  expect_error<ShapeError>([&] { gru.backward({}, Tensor<float>({2, 4})); }, {"grad_h_n", "[2, 4]", "[1, 2, 4]"});
  GRUCell<float> cell(3, 4);
  expect_error<ShapeError>([&] { cell.forward(Tensor<float>({2, 5})); }, {"input", "[2, 5]"});
  expect_error<ShapeError>([&] { cell.forward(Tensor<float>({2, 3}), Tensor<float>({3, 4})); }, {"hx", "[3, 4]", "[2, 4]"});
}

TEST(GRU, EmptySequenceReturnsH0) {
  GRU<double> gru(2, 3);
  const Tensor<double> h0 = uniform({1, 2, 3}, 12);
  const auto o = gru.forward(Tensor<double>({0, 2, 2}), h0);
  EXPECT_EQ(o.output.shape(), (Shape{0, 2, 3}));
  for (int64_t i = 0; i < h0.numel(); ++i) EXPECT_EQ(o.h_n.flat(i), h0.flat(i));
  const auto g = gru.backward(Tensor<double>({0, 2, 3}), uniform({1, 2, 3}, 13));
  EXPECT_EQ(g.d_input.shape(), (Shape{0, 2, 2}));
  EXPECT_EQ(g.d_h0.flat(0), uniform({1, 2, 3}, 13).flat(0));
}

}  // namespace
