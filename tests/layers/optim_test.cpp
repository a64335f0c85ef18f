// Tests for attn::SGD, attn::Adam, attn::AdamW: trajectories against
// torch.optim (tests/golden/linear_optim_golden.json, made by
// make_linear_optim_golden.py), hand-computed first steps, a small linear
// regression that converges, and the errors.
#include "attn/optim.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "attn/linear.hpp"

using attn::Parameter;
using attn::Shape;
using attn::Tensor;
using nlohmann::json;

namespace {

const json& golden() {
  static const json j = [] {
    std::ifstream in(std::string(ATTN_GOLDEN_DIR) + "/linear_optim_golden.json");
    if (!in) throw std::runtime_error("cannot open linear_optim_golden.json");
    return json::parse(in);
  }();
  return j;
}

template <class T>
std::unique_ptr<attn::Optimizer<T>> make_optimizer(const json& c, std::vector<Parameter<T>*> params) {
  const json& o = c["options"];
  const std::string kind = c["optimizer"];
  if (kind == "SGD") {
    attn::SGDOptions opt;
    opt.lr = o.value("lr", opt.lr);
    opt.momentum = o.value("momentum", opt.momentum);
    opt.dampening = o.value("dampening", opt.dampening);
    opt.weight_decay = o.value("weight_decay", opt.weight_decay);
    opt.nesterov = o.value("nesterov", opt.nesterov);
    opt.maximize = o.value("maximize", opt.maximize);
    return std::make_unique<attn::SGD<T>>(params, opt);
  }
  auto fill = [&](auto opt) {
    opt.lr = o.value("lr", opt.lr);
    if (o.contains("betas")) opt.beta1 = o["betas"][0], opt.beta2 = o["betas"][1];
    opt.eps = o.value("eps", opt.eps);
    opt.weight_decay = o.value("weight_decay", opt.weight_decay);
    opt.amsgrad = o.value("amsgrad", opt.amsgrad);
    opt.maximize = o.value("maximize", opt.maximize);
    return opt;
  };
  if (kind == "Adam") return std::make_unique<attn::Adam<T>>(params, fill(attn::AdamOptions{}));
  if (kind == "AdamW") return std::make_unique<attn::AdamW<T>>(params, fill(attn::AdamWOptions{}));
  throw std::runtime_error("unknown optimizer " + kind);
}

// Replays one golden case: grad = a ⊙ (p − target), step, compare.
template <class T>
void run_case(const json& c, double tol) {
  const std::string name = c["name"];
  const auto shapes = c["shapes"].get<std::vector<Shape>>();
  std::vector<Parameter<T>> params;
  std::vector<Tensor<T>> curvature, target;
  for (size_t k = 0; k < shapes.size(); ++k) {
    params.emplace_back(shapes[k]);
    params[k].value = Tensor<T>(shapes[k], c["init"][k].get<std::vector<T>>());
    curvature.emplace_back(shapes[k], c["curvature"][k].get<std::vector<T>>());
    target.emplace_back(shapes[k], c["target"][k].get<std::vector<T>>());
  }
  std::vector<Parameter<T>*> ptrs;
  for (auto& p : params) ptrs.push_back(&p);
  auto opt = make_optimizer<T>(c, ptrs);

  int step = 0;
  for (const auto& after : c["after_step"]) {
    ++step;
    for (size_t k = 0; k < params.size(); ++k)
      for (int64_t i = 0; i < params[k].value.numel(); ++i)
        params[k].grad.flat(i) = curvature[k].flat(i) * (params[k].value.flat(i) - target[k].flat(i));
    opt->step();
    for (size_t k = 0; k < params.size(); ++k)
      for (int64_t i = 0; i < params[k].value.numel(); ++i) {
        const double want = after[k][static_cast<size_t>(i)];
        EXPECT_NEAR(params[k].value.flat(i), want, tol * (1 + std::abs(want)))
            << name << " step " << step << " param " << k << " [" << i << "]";
      }
  }
  EXPECT_EQ(opt->step_count(), step);
}

}  // namespace

// ---- torch.optim's numbers -------------------------------------------------------------

TEST(OptimGolden, TrajectoriesMatchTorchOptim) {
  int n = 0;
  for (const auto& c : golden()["optim"]) {
    if (c["dtype"] == "float64") run_case<double>(c, 1e-13);
    else run_case<float>(c, 2e-6);
    ++n;
  }
  EXPECT_EQ(n, 20);  // 10 configurations x {float32, float64}
}

// ---- first steps by hand ----------------------------------------------------------------

TEST(Optim, SgdFirstStepIsLrTimesGrad) {
  Parameter<double> p({2});
  p.value = Tensor<double>({2}, {1.0, -2.0});
  p.grad = Tensor<double>({2}, {0.5, 4.0});
  attn::SGD<double> opt({&p}, {.lr = 0.1, .momentum = 0.9});  // first step: buf = grad
  opt.step();
  EXPECT_DOUBLE_EQ(p.value(0), 1.0 - 0.1 * 0.5);
  EXPECT_DOUBLE_EQ(p.value(1), -2.0 - 0.1 * 4.0);
  opt.step();  // buf = 0.9·grad + grad
  EXPECT_DOUBLE_EQ(p.value(0), 0.95 - 0.1 * 1.9 * 0.5);
}

TEST(Optim, AdamFirstStepMovesEveryWeightByLr) {
  // After bias correction, m̂ = g and v̂ = g², so the first step is lr·sign(g)
  // (up to eps), whatever the size of g.
  Parameter<double> p({3});
  p.grad = Tensor<double>({3}, {1e-3, -5.0, 200.0});
  attn::Adam<double> opt({&p}, {.lr = 0.01, .eps = 0.0});
  opt.step();
  EXPECT_DOUBLE_EQ(p.value(0), -0.01);
  EXPECT_DOUBLE_EQ(p.value(1), 0.01);
  EXPECT_DOUBLE_EQ(p.value(2), -0.01);
}

TEST(Optim, AdamSetLrScalesTheNextStepAndKeepsTheMoments) {
  // Step 1 with lr 0.01 moves by lr·sign(g) (see above). Step 2 with the same
  // g: m̂ = g and v̂ = g² again (averages of equal g's), so it moves by the new
  // lr exactly. Step 3 with −g shows the moments were kept: after a reset it
  // would move by exactly +lr; with them it moves by lr·m̂/√v̂, by hand below.
  Parameter<double> p({1});
  p.grad = Tensor<double>({1}, {2.0});
  attn::Adam<double> opt({&p}, {.lr = 0.01, .eps = 0.0});
  opt.step();
  EXPECT_DOUBLE_EQ(p.value(0), -0.01);
  opt.set_lr(0.5);
  EXPECT_EQ(opt.options().lr, 0.5);
  opt.step();
  EXPECT_NEAR(p.value(0), -0.51, 1e-12);  // (the bias corrections round)
  // Step 3, g = −2: m = 0.9·(0.19·2) + 0.1·(−2) = 0.142, m̂ = 0.142/(1 − 0.9³);
  // v = 0.999·(0.001999·4) + 0.001·4 = 0.011988004, v̂ = v/(1 − 0.999³).
  p.grad = Tensor<double>({1}, {-2.0});
  opt.step();
  const double m_hat = 0.142 / (1 - 0.729), v_hat = 0.011988004 / (1 - 0.997002999);
  EXPECT_NEAR(p.value(0), -0.51 - 0.5 * m_hat / std::sqrt(v_hat), 1e-12);
  EXPECT_THROW(opt.set_lr(-1.0), attn::ValueError);
}

TEST(Optim, AdamWDecaysWeightsEvenWithZeroGrad) {
  Parameter<double> p({1});
  p.value.fill_(2.0);
  attn::AdamW<double> opt({&p}, {.lr = 0.1, .weight_decay = 0.5});
  opt.step();  // p *= 1 - 0.1·0.5; the Adam part is 0/(0 + eps) = 0
  EXPECT_DOUBLE_EQ(p.value(0), 2.0 * 0.95);
  EXPECT_EQ(attn::AdamWOptions{}.weight_decay, 1e-2);  // torch's AdamW default
  EXPECT_EQ(attn::AdamOptions{}.weight_decay, 0.0);
}

TEST(Optim, ZeroGradClearsEveryGrad) {
  attn::Linear<float> lin(3, 2);
  lin.weight.grad.fill_(1.0f);
  lin.bias.grad.fill_(2.0f);
  attn::SGD<float> opt(lin.parameters());
  opt.zero_grad();
  for (float g : lin.weight.grad.to_vector()) EXPECT_EQ(g, 0.0f);
  for (float g : lin.bias.grad.to_vector()) EXPECT_EQ(g, 0.0f);
}

// ---- training ----------------------------------------------------------------------------

// Fits y = 2·x0 − 3·x1 + 0.5 with a Linear(2, 1) and mean-squared error.
template <class Opt, class Options>
double train_linear_regression(Options options, int steps) {
  attn::Generator gen(0);
  attn::Linear<double> lin(2, 1, true, gen);
  const auto x = attn::randn<double>({32, 2}, gen);
  Tensor<double> target({32, 1});
  for (int r = 0; r < 32; ++r) target(r, 0) = 2 * x(r, 0) - 3 * x(r, 1) + 0.5;
  Opt opt(lin.parameters(), options);
  double loss = 0;
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    const auto y = lin.forward(x);
    Tensor<double> dy({32, 1});
    loss = 0;
    for (int r = 0; r < 32; ++r) {
      const double e = y(r, 0) - target(r, 0);
      loss += e * e / 32;
      dy(r, 0) = 2 * e / 32;
    }
    lin.backward(dy);
    opt.step();
  }
  EXPECT_NEAR(lin.weight.value(0, 0), 2.0, 1e-3);
  EXPECT_NEAR(lin.weight.value(0, 1), -3.0, 1e-3);
  EXPECT_NEAR(lin.bias.value(0), 0.5, 1e-3);
  return loss;
}

TEST(Optim, SgdFitsALinearRegression) {
  EXPECT_LT((train_linear_regression<attn::SGD<double>>(attn::SGDOptions{.lr = 0.1, .momentum = 0.9}, 300)), 1e-10);
}

TEST(Optim, AdamFitsALinearRegression) {
  EXPECT_LT((train_linear_regression<attn::Adam<double>>(attn::AdamOptions{.lr = 0.05}, 1000)), 1e-8);
}

// ---- errors -------------------------------------------------------------------------------

TEST(Optim, BadHyperParametersThrowValueError) {
  Parameter<float> p({2});
  EXPECT_THROW(attn::SGD<float>({&p}, {.lr = -1.0}), attn::ValueError);
  EXPECT_THROW(attn::SGD<float>({&p}, {.momentum = -0.1}), attn::ValueError);
  EXPECT_THROW(attn::SGD<float>({&p}, {.nesterov = true}), attn::ValueError);  // no momentum
  EXPECT_THROW(attn::SGD<float>({&p}, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}), attn::ValueError);
  EXPECT_THROW(attn::Adam<float>({&p}, {.beta1 = 1.0}), attn::ValueError);
  EXPECT_THROW(attn::Adam<float>({&p}, {.beta2 = -0.5}), attn::ValueError);
  EXPECT_THROW(attn::Adam<float>({&p}, {.eps = -1e-8}), attn::ValueError);
  EXPECT_THROW(attn::AdamW<float>({&p}, {.weight_decay = std::nan("")}), attn::ValueError);
  EXPECT_THROW(attn::SGD<float>({&p, nullptr}), attn::ValueError);
  EXPECT_THROW(attn::SGD<float>({&p, &p}), attn::ValueError);
}

TEST(Optim, GradWithWrongShapeThrowsShapeError) {
  Parameter<float> p({2, 3});
  p.grad = Tensor<float>({3, 2});
  attn::Adam<float> adam({&p});
  try {
    adam.step();
    FAIL() << "no exception";
  } catch (const attn::ShapeError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("[3, 2]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[2, 3]"), std::string::npos) << msg;
  }
  EXPECT_EQ(adam.step_count(), 0);
  attn::SGD<float> sgd({&p});
  EXPECT_THROW(sgd.step(), attn::ShapeError);
}
