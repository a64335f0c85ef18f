// Tests for attn::Linear (nn.Linear): initialisation equal to torch's bit for
// bit, forward/backward equal to torch autograd's, a finite-difference check in
// double, strided inputs and the errors.
//
// Expected values: tests/golden/generator_golden.json (torch's nn.Linear init,
// from make_generator_golden.py) and tests/golden/linear_optim_golden.json
// (forward/backward, from make_linear_optim_golden.py).
#include "attn/linear.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

using attn::Linear;
using attn::Shape;
using attn::Tensor;
using nlohmann::json;

namespace {

json load_json(const std::string& file) {
  std::ifstream in(std::string(ATTN_GOLDEN_DIR) + "/" + file);
  if (!in) throw std::runtime_error("cannot open " + file);
  return json::parse(in);
}

const json& generator_golden() {
  static const json j = load_json("generator_golden.json");
  return j;
}
const json& linear_golden() {
  static const json j = load_json("linear_optim_golden.json");
  return j;
}

template <class T>
Tensor<T> tensor_from(const json& values, Shape shape) {
  return Tensor<T>(std::move(shape), values.get<std::vector<T>>());
}

template <class T>
void expect_bitwise(const Tensor<T>& got, const json& want, const std::string& what) {
  ASSERT_EQ(static_cast<size_t>(got.numel()), want.size()) << what;
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const T w = static_cast<T>(want[static_cast<size_t>(i)].get<double>());
    EXPECT_EQ(std::bit_cast<Bits>(got.flat(i)), std::bit_cast<Bits>(w))
        << what << "[" << i << "]: got " << got.flat(i) << ", torch " << w;
  }
}

template <class T>
void expect_close(const Tensor<T>& got, const json& want, double tol, const std::string& what) {
  ASSERT_EQ(static_cast<size_t>(got.numel()), want.size()) << what;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double w = want[static_cast<size_t>(i)].get<double>();
    EXPECT_NEAR(got.flat(i), w, tol * (1 + std::abs(w))) << what << "[" << i << "]";
  }
}

// sin(seed + 0.7 n), like the golden scripts' pattern().
template <class T>
Tensor<T> pattern(const Shape& shape, double seed) {
  Tensor<T> t(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.flat(i) = static_cast<T>(std::sin(seed + 0.7 * i));
  return t;
}

template <class T>
void check_init_case(const json& c) {
  attn::Generator gen(c["seed"].get<uint64_t>());
  Linear<T> lin(c["in"], c["out"], c["bias"], gen);
  const std::string what = "Linear(" + std::to_string(c["in"].get<int>()) + ", " +
                           std::to_string(c["out"].get<int>()) + ") seed " + std::to_string(c["seed"].get<int>());
  expect_bitwise(lin.weight.value, c["weight"], what + " weight");
  if (c["bias"]) expect_bitwise(lin.bias.value, c["bias_values"], what + " bias");
}

template <class T>
void check_forward_backward_case(const json& c, double tol) {
  Linear<T> lin(c["in"], c["out"], c["bias"]);
  std::map<std::string, Tensor<T>> state{{"weight", tensor_from<T>(c["weight"], {c["out"], c["in"]})}};
  if (c["bias"]) state["bias"] = tensor_from<T>(c["bias_values"], {c["out"]});
  lin.load_state_dict(state);

  const Shape x_shape = c["x_shape"].get<Shape>(), y_shape = c["y_shape"].get<Shape>();
  const auto x = tensor_from<T>(c["x"], x_shape);
  const auto y = lin.forward(x);
  EXPECT_EQ(y.shape(), y_shape);
  expect_close(y, c["y"], tol, c["name"].get<std::string>() + " y");

  const auto dx = lin.backward(tensor_from<T>(c["dy"], y_shape));
  EXPECT_EQ(dx.shape(), x_shape);
  expect_close(dx, c["dx"], tol, c["name"].get<std::string>() + " dx");
  expect_close(lin.weight.grad, c["dW"], tol, c["name"].get<std::string>() + " dW");
  if (c["bias"]) expect_close(lin.bias.grad, c["db"], tol, c["name"].get<std::string>() + " db");
}

}  // namespace

// ---- torch's numbers ----------------------------------------------------------------

TEST(LinearGolden, Seed123Linear3x2WeightsEqualTorchs) {
  // torch.manual_seed(123); nn.Linear(3, 2) — through the global generator.
  const auto& c = generator_golden()["linear_init"][0];
  ASSERT_EQ(c["seed"], 123);
  ASSERT_EQ(c["in"], 3);
  attn::manual_seed(123);
  Linear<float> lin(3, 2);
  expect_bitwise(lin.weight.value, c["weight"], "weight");
  expect_bitwise(lin.bias.value, c["bias_values"], "bias");
}

TEST(LinearGolden, InitMatchesTorchBitForBit) {
  int n = 0;
  for (const auto& c : generator_golden()["linear_init"]) {
    if (c["dtype"] == "float32") check_init_case<float>(c);
    else check_init_case<double>(c);
    ++n;
  }
  EXPECT_EQ(n, 6);
}

TEST(LinearGolden, ConsecutiveLayersConsumeOneStream) {
  const auto& c = generator_golden()["linear_chain"];
  attn::Generator gen(c["seed"].get<uint64_t>());
  Linear<float> a(4, 3, true, gen), b(3, 2, true, gen);
  expect_bitwise(a.weight.value, c["first"]["weight"], "first weight");
  expect_bitwise(a.bias.value, c["first"]["bias"], "first bias");
  expect_bitwise(b.weight.value, c["second"]["weight"], "second weight");
  expect_bitwise(b.bias.value, c["second"]["bias"], "second bias");
}

TEST(LinearGolden, ForwardAndBackwardMatchTorchAutograd) {
  int n = 0;
  for (const auto& c : linear_golden()["linear"]) {
    if (c["dtype"] == "float32") check_forward_backward_case<float>(c, 1e-6);
    else check_forward_backward_case<double>(c, 1e-13);
    ++n;
  }
  EXPECT_EQ(n, 5);
}

// ---- shapes and the stateless forms --------------------------------------------------------

TEST(Linear, Rank1InputGivesRank1Output) {
  Linear<double> lin(4, 3);
  const auto x = pattern<double>({4}, 0.2);
  const auto y = lin.forward(x);
  EXPECT_EQ(y.shape(), (Shape{3}));
  const auto y2 = lin.apply(x.reshape({1, 4}));
  for (int o = 0; o < 3; ++o) EXPECT_EQ(y(o), y2(0, o));
  EXPECT_EQ(lin.backward(pattern<double>({3}, 1.0)).shape(), (Shape{4}));
}

TEST(Linear, StridedInputMatchesContiguousCopy) {
  Linear<double> a(3, 5), b(3, 5);
  b.load_state_dict(a.state_dict());
  // x as a [4, 3] view of a [3, 4] buffer: non-contiguous.
  const auto base = pattern<double>({3, 4}, 0.9);
  const auto x = base.transpose(0, 1);
  ASSERT_FALSE(x.is_contiguous());
  const auto dy = pattern<double>({4, 5}, 0.1);
  const auto ya = a.forward(x), yb = b.forward(x.contiguous());
  EXPECT_EQ(ya.to_vector(), yb.to_vector());
  EXPECT_EQ(a.backward(dy).to_vector(), b.backward(dy).to_vector());
  EXPECT_EQ(a.weight.grad.to_vector(), b.weight.grad.to_vector());
  // a strided grad_output too
  const auto dy_t = pattern<double>({5, 4}, 0.3).transpose(0, 1);
  EXPECT_EQ(a.backward_from(x, dy_t).to_vector(), b.backward_from(x.contiguous(), dy_t.contiguous()).to_vector());
}

TEST(Linear, ApplyAndBackwardFromEqualForwardAndBackward) {
  Linear<float> a(6, 2), b(6, 2);
  b.load_state_dict(a.state_dict());
  const auto x = pattern<float>({2, 3, 6}, 0.4);
  const auto dy = pattern<float>({2, 3, 2}, 0.6);
  EXPECT_EQ(a.forward(x).to_vector(), b.apply(x).to_vector());
  EXPECT_EQ(a.backward(dy).to_vector(), b.backward_from(x, dy).to_vector());
  EXPECT_EQ(a.weight.grad.to_vector(), b.weight.grad.to_vector());
  EXPECT_EQ(a.bias.grad.to_vector(), b.bias.grad.to_vector());
}

TEST(Linear, BackwardAccumulatesAndZeroGradClears) {
  Linear<double> lin(3, 2);
  const auto x = pattern<double>({5, 3}, 0.0);
  const auto dy = pattern<double>({5, 2}, 2.0);
  lin.forward(x);
  lin.backward(dy);
  const auto once_w = lin.weight.grad.to_vector(), once_b = lin.bias.grad.to_vector();
  lin.backward(dy);
  for (size_t i = 0; i < once_w.size(); ++i) EXPECT_DOUBLE_EQ(lin.weight.grad.flat(i), 2 * once_w[i]);
  for (size_t i = 0; i < once_b.size(); ++i) EXPECT_DOUBLE_EQ(lin.bias.grad.flat(i), 2 * once_b[i]);
  lin.zero_grad();
  for (double g : lin.weight.grad.to_vector()) EXPECT_EQ(g, 0.0);
}

TEST(Linear, FiniteDifferenceGradientsInDouble) {
  // loss = Σ dy ⊙ y, so d loss / d(anything) is what backward returns.
  attn::Generator gen(17);
  Linear<double> lin(4, 3, true, gen);
  auto x = attn::randn<double>({2, 3, 4}, gen);
  const auto dy = attn::randn<double>({2, 3, 3}, gen);
  auto loss = [&] {
    const auto y = lin.apply(x);
    double s = 0;
    for (int64_t i = 0; i < y.numel(); ++i) s += dy.flat(i) * y.flat(i);
    return s;
  };
  lin.forward(x);
  const auto dx = lin.backward(dy);
  const double h = 1e-6;
  auto numeric = [&](double& v) {
    const double old = v;
    v = old + h;
    const double up = loss();
    v = old - h;
    const double down = loss();
    v = old;
    return (up - down) / (2 * h);
  };
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_NEAR(dx.flat(i), numeric(x.flat(i)), 1e-8) << "dx " << i;
  for (int64_t i = 0; i < lin.weight.value.numel(); ++i)
    EXPECT_NEAR(lin.weight.grad.flat(i), numeric(lin.weight.value.flat(i)), 1e-8) << "dW " << i;
  for (int64_t i = 0; i < lin.bias.value.numel(); ++i)
    EXPECT_NEAR(lin.bias.grad.flat(i), numeric(lin.bias.value.flat(i)), 1e-8) << "db " << i;
}

// ---- parameters -----------------------------------------------------------------------

TEST(Linear, ParametersAreNamedLikeTorch) {
  Linear<float> with(3, 2), without(3, 2, false);
  auto np = with.named_parameters();
  ASSERT_EQ(np.size(), 2u);
  EXPECT_EQ(np[0].name, "weight");
  EXPECT_EQ(np[1].name, "bias");
  EXPECT_EQ(with.weight.value.shape(), (Shape{2, 3}));
  EXPECT_EQ(with.bias.value.shape(), (Shape{2}));
  EXPECT_EQ(with.num_parameters(), 8);
  ASSERT_EQ(without.named_parameters().size(), 1u);
  EXPECT_EQ(without.bias.value.numel(), 0);
  EXPECT_FALSE(without.has_bias());
  EXPECT_EQ(without.state_dict().count("bias"), 0u);
}

TEST(Linear, InitStaysWithinOneOverSqrtIn) {
  Linear<double> lin(25, 40);
  for (double w : lin.weight.value.to_vector()) EXPECT_LE(std::abs(w), 0.2 + 1e-12);
  for (double b : lin.bias.value.to_vector()) EXPECT_LE(std::abs(b), 0.2);
}

TEST(Linear, ZeroInFeaturesOutputsTheBias) {
  // torch allows nn.Linear(0, n): y = b (kaiming skips the empty weight, bias ~ U(0, 0)).
  Linear<float> lin(0, 3);
  const auto y = lin.forward(Tensor<float>({2, 0}));
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  for (float v : y.to_vector()) EXPECT_EQ(v, 0.0f);
}

// ---- errors ---------------------------------------------------------------------------------

TEST(Linear, WrongInputShapeThrowsShapeErrorNamingInput) {
  Linear<float> lin(3, 2);
  try {
    lin.forward(Tensor<float>({4, 5}));
    FAIL() << "no exception";
  } catch (const attn::ShapeError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("input"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[4, 5]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("3"), std::string::npos) << msg;
  }
  EXPECT_THROW(lin.forward(Tensor<float>(Shape{})), attn::ShapeError);  // 0-d
  EXPECT_THROW(lin.forward(Tensor<float>()), attn::ShapeError);         // undefined
  EXPECT_THROW(lin.apply(Tensor<float>({3, 2})), attn::ShapeError);
}

TEST(Linear, BackwardErrors) {
  Linear<double> lin(3, 2);
  EXPECT_THROW(lin.backward(Tensor<double>({4, 2})), attn::ValueError);  // no forward yet
  lin.forward(Tensor<double>({4, 3}));
  try {
    lin.backward(Tensor<double>({4, 3}));
    FAIL() << "no exception";
  } catch (const attn::ShapeError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("grad_output"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[4, 2]"), std::string::npos) << msg;
  }
  EXPECT_THROW(lin.backward_from(Tensor<double>({4, 2}), Tensor<double>({4, 2})), attn::ShapeError);
}

TEST(Linear, NegativeSizesThrowValueError) {
  EXPECT_THROW(Linear<float>(-1, 2), attn::ValueError);
  EXPECT_THROW(Linear<float>(2, -1), attn::ValueError);
}
