// LayerNorm and GELU: exact values by hand, torch's values and gradients
// (tests/golden/bert_golden.json, made by tests/golden/make_bert_golden.py),
// finite differences, and the errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "attn/layer_norm.hpp"

namespace {

using namespace attn;
using nlohmann::json;

json golden() {
  std::ifstream f(std::string(ATTN_GOLDEN_DIR) + "/bert_golden.json");
  return json::parse(f);
}

template <class T>
Tensor<T> tensor(const json& values, Shape shape) {
  return Tensor<T>(std::move(shape), values.get<std::vector<T>>());
}

TEST(LayerNorm, ByHand) {
  // Row [1, 2, 3]: mean 2, biased variance 2/3, so x̂ = ±1/√(2/3) = ±√1.5.
  LayerNorm<double> ln(3, 0.0);
  const auto y = ln.forward(Tensor<double>({1, 3}, {1, 2, 3}));
  EXPECT_NEAR(y(0, 0), -std::sqrt(1.5), 1e-15);
  EXPECT_NEAR(y(0, 1), 0.0, 1e-15);
  EXPECT_NEAR(y(0, 2), std::sqrt(1.5), 1e-15);
  // γ and β: y = x̂·γ + β.
  ln.weight.value = Tensor<double>({3}, {2, 2, 2});
  ln.bias.value = Tensor<double>({3}, {1, 1, 1});
  EXPECT_NEAR(ln.apply(Tensor<double>({3}, {1, 2, 3}))(2), 1 + 2 * std::sqrt(1.5), 1e-14);
  // A constant row is all β (x̂ = 0), eps keeps it finite.
  LayerNorm<float> c(4, 1e-12);
  const auto z = c.forward(Tensor<float>({4}, {7, 7, 7, 7}));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(z(i), 0.0f);
}

template <class T>
void check_layer_norm_golden(double base_tol) {
  const json g = golden();  // held here: a range-for over golden().at(...) would read a destroyed temporary
  for (const auto& c : g.at("layer_norm")) {
    const int64_t R = c.at("rows"), D = c.at("d");
    double tol = base_tol;
    LayerNorm<T> ln(D, c.at("eps").get<double>());
    ln.weight.value = tensor<T>(c.at("weight"), {D});
    ln.bias.value = tensor<T>(c.at("bias"), {D});
    const auto y = ln.forward(tensor<T>(c.at("x"), {R, D}));
    const auto dx = ln.backward(tensor<T>(c.at("grad_output"), {R, D}));
    const auto want_y = c.at("y").get<std::vector<double>>(), want_dx = c.at("d_x").get<std::vector<double>>();
    const auto want_dw = c.at("d_weight").get<std::vector<double>>(), want_db = c.at("d_bias").get<std::vector<double>>();
    // Rounding x to T moves x̂ by up to ulp(max|x|)/σ: the case "1000 + N(0, 1)"
    // loses ~1e-5 of x̂ in float before any arithmetic. Scale the bound by max|x|/σ.
    const auto xs = c.at("x").get<std::vector<double>>();
    double max_abs = 0, min_std = 1e300;
    for (int64_t r = 0; r < R; ++r) {
      double m = 0, v = 0;
      for (int64_t i = 0; i < D; ++i) m += xs[r * D + i] / D;
      for (int64_t i = 0; i < D; ++i) v += (xs[r * D + i] - m) * (xs[r * D + i] - m) / D;
      min_std = std::min(min_std, std::sqrt(v));
      for (int64_t i = 0; i < D; ++i) max_abs = std::max(max_abs, std::abs(xs[r * D + i]));
    }
    tol = base_tol * std::max(1.0, max_abs / min_std);
    for (int64_t i = 0; i < R * D; ++i) {
      EXPECT_NEAR(y.flat(i), want_y[i], tol * (1 + std::abs(want_y[i]))) << "D=" << D << " i=" << i;
      EXPECT_NEAR(dx.flat(i), want_dx[i], tol * 100 * (1 + std::abs(want_dx[i]))) << "D=" << D << " i=" << i;
    }
    for (int64_t i = 0; i < D; ++i) {
      EXPECT_NEAR(ln.weight.grad.flat(i), want_dw[i], tol * (1 + std::abs(want_dw[i])));
      EXPECT_NEAR(ln.bias.grad.flat(i), want_db[i], tol * (1 + std::abs(want_db[i])));
    }
  }
}

TEST(LayerNorm, MatchesTorchDouble) { check_layer_norm_golden<double>(1e-12); }
TEST(LayerNorm, MatchesTorchFloat) { check_layer_norm_golden<float>(2e-6); }

TEST(LayerNorm, BackwardMatchesFiniteDifferences) {
  LayerNorm<double> ln(5, 1e-5);
  ln.weight.value = Tensor<double>({5}, {0.5, -1, 2, 1.5, 0.25});
  const Tensor<double> x({2, 5}, {0.3, -1.2, 2.2, 0.7, -0.1, 5, 4, 3.5, 6, 4.2});
  const Tensor<double> g({2, 5}, {1, -2, 0.5, 0.3, 2, -1, 0.1, 0.7, -0.4, 1.1});
  ln.forward(x);
  const auto dx = ln.backward(g);
  auto loss = [&](const Tensor<double>& xx) {
    const auto y = ln.apply(xx);
    double s = 0;
    for (int64_t i = 0; i < y.numel(); ++i) s += y.flat(i) * g.flat(i);
    return s;
  };
  for (int64_t i = 0; i < x.numel(); ++i) {
    Tensor<double> p = x.clone(), m = x.clone();
    p.flat(i) += 1e-6;
    m.flat(i) -= 1e-6;
    EXPECT_NEAR(dx.flat(i), (loss(p) - loss(m)) / 2e-6, 1e-7);
  }
}

TEST(LayerNorm, Errors) {
  EXPECT_THROW(LayerNorm<float>(0), ValueError);
  EXPECT_THROW(LayerNorm<float>(4, -1.0), ValueError);
  LayerNorm<float> ln(4);
  EXPECT_THROW(ln.forward(Tensor<float>({2, 3})), ShapeError);
  EXPECT_THROW(ln.backward(Tensor<float>({2, 4})), ValueError);  // before forward
  ln.forward(Tensor<float>({2, 4}));
  EXPECT_THROW(ln.backward(Tensor<float>({2, 5})), ShapeError);
  EXPECT_EQ(ln.named_parameters().size(), 2u);
  EXPECT_EQ(ln.named_parameters()[0].name, "weight");
}

TEST(GELU, ByHandAndTorch) {
  // Exact points: gelu(0) = 0; gelu(x) − gelu(−x) = x (since Φ(x) + Φ(−x) = 1).
  const auto y0 = gelu(Tensor<double>({3}, {0.0, 1.3, -1.3}));
  EXPECT_EQ(y0(0), 0.0);
  EXPECT_NEAR(y0(1) - y0(2), 1.3, 1e-15);
  // gelu(1) = Φ(1) = 0.841344746068542948585 (the normal CDF at 1, from tables).
  EXPECT_NEAR(gelu(Tensor<double>({1}, {1.0}))(0), 0.841344746068542948585, 1e-15);

  const auto g = golden().at("gelu");
  const auto xs = g.at("x").get<std::vector<double>>();
  const auto want = g.at("y").get<std::vector<double>>(), want_d = g.at("dy_dx").get<std::vector<double>>();
  const int64_t n = static_cast<int64_t>(xs.size());
  const Tensor<double> x({n}, xs);
  GELU<double> layer;
  const auto y = layer.forward(x);
  const auto d = layer.backward(Tensor<double>::full({n}, 1.0));
  const auto yf = gelu(x.to<float>());
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_NEAR(y(i), want[i], 1e-15 * (1 + std::abs(want[i]))) << "x=" << xs[i];
    EXPECT_NEAR(d(i), want_d[i], 1e-14) << "x=" << xs[i];
    EXPECT_NEAR(yf(i), want[i], 2e-7 * (1 + std::abs(want[i]))) << "x=" << xs[i];
  }
  EXPECT_THROW(gelu_backward(x, Tensor<double>({2})), ShapeError);
  GELU<float> fresh;
  EXPECT_THROW(fresh.backward(Tensor<float>({1})), ValueError);
}

}  // namespace
