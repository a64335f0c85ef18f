// Helpers for the layer tests: random inputs, finite-difference gradient
// checks in double, and the golden-data loader for layers_golden.json.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "attn/module.hpp"
#include "attn/tensor.hpp"

namespace attn_layer_test {

using attn::NamedParameter;
using attn::Shape;
using attn::Tensor;

/// Uniform(−scale, scale) entries from a fixed seed (test inputs only).
template <class T = double>
Tensor<T> uniform(const Shape& shape, uint64_t seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(-scale, scale);
  Tensor<T> t(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.flat(i) = static_cast<T>(dist(rng));
  return t;
}

/// Σ a ⊙ b: the scalar loss whose gradient with respect to the output is b.
template <class T>
double dot(const Tensor<T>& a, const Tensor<T>& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += static_cast<double>(a.flat(i)) * static_cast<double>(b.flat(i));
  return s;
}

/// Central differences: perturbs every element of `x` in place (x may be an
/// input or a parameter's value), calls loss(), restores it, and compares
/// (loss(x + ε) − loss(x − ε)) / 2ε with `analytic`.
inline void expect_grad_matches(const std::function<double()>& loss, const Tensor<double>& x,
                                const Tensor<double>& analytic, const std::string& what, double eps = 1e-6,
                                double tol = 1e-6) {
  ASSERT_TRUE(analytic.defined()) << what;
  ASSERT_EQ(x.shape(), analytic.shape()) << what;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double orig = x.flat(i);
    x.flat(i) = orig + eps;
    const double up = loss();
    x.flat(i) = orig - eps;
    const double down = loss();
    x.flat(i) = orig;
    const double numeric = (up - down) / (2 * eps);
    EXPECT_NEAR(analytic.flat(i), numeric, tol * (1 + std::abs(numeric))) << what << " element " << i;
  }
}

/// Checks every parameter's accumulated grad (from one backward already run)
/// against finite differences of loss().
inline void expect_param_grads_match(std::vector<NamedParameter<double>> params, const std::function<double()>& loss,
                                     const std::string& what) {
  ASSERT_FALSE(params.empty()) << what;
  std::vector<Tensor<double>> grads;
  for (auto& np : params) grads.push_back(np.param->grad.clone());
  for (size_t i = 0; i < params.size(); ++i)
    expect_grad_matches(loss, params[i].param->value, grads[i], what + " " + params[i].name);
}

/// max |got − want| / max(max |want|, floor): the error relative to the
/// tensor's scale. The floor keeps tensors that are zero in exact arithmetic
/// (the gradient of a key bias: adding q·b_k to a whole row of scores does not
/// change its softmax) from turning rounding noise into a huge ratio.
template <class T>
double relative_error(const Tensor<T>& got, const Tensor<double>& want, double floor = 1e-2) {
  double err = 0, scale = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double d = std::abs(static_cast<double>(got.flat(i)) - want.flat(i));
    if (std::isnan(d)) return INFINITY;  // a NaN where a number was expected (std::max would hide it)
    err = std::max(err, d);
    scale = std::max(scale, std::abs(want.flat(i)));
  }
  return err / std::max(scale, floor);
}

template <class T>
void expect_close(const Tensor<T>& got, const Tensor<double>& want, double tol, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  EXPECT_LE(relative_error(got, want), tol) << what;
}

// ---- golden data ------------------------------------------------------------

inline const nlohmann::json& layers_golden() {
  static const nlohmann::json data = [] {
    std::ifstream f(std::string(ATTN_GOLDEN_DIR) + "/layers_golden.json");
    if (!f) throw std::runtime_error("cannot open layers_golden.json in " ATTN_GOLDEN_DIR);
    return nlohmann::json::parse(f);
  }();
  return data;
}

inline Shape json_shape(const nlohmann::json& j) { return j.at("shape").get<Shape>(); }

/// {"shape", "data"} → Tensor<T>; "inf"/"-inf"/"nan" strings are non-finite numbers.
template <class T>
Tensor<T> json_tensor(const nlohmann::json& j) {
  Tensor<T> t(json_shape(j));
  const auto& data = j.at("data");
  EXPECT_EQ(static_cast<int64_t>(data.size()), t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) {
    const auto& v = data[static_cast<size_t>(i)];
    if (v.is_string()) {
      const std::string s = v.get<std::string>();
      t.flat(i) = s == "inf" ? INFINITY : s == "-inf" ? -INFINITY : NAN;
    } else {
      t.flat(i) = static_cast<T>(v.get<double>());
    }
  }
  return t;
}

inline Tensor<bool> json_bool_tensor(const nlohmann::json& j) {
  Tensor<bool> t(json_shape(j));
  const auto& data = j.at("data");
  for (int64_t i = 0; i < t.numel(); ++i) t.flat(i) = data[static_cast<size_t>(i)].get<int>() != 0;
  return t;
}

/// Loads a case's "params" into a module by name (strict: names must match torch's).
template <class T>
void load_params(attn::Module<T>& m, const nlohmann::json& params) {
  std::map<std::string, Tensor<T>> dict;
  for (auto& [name, t] : params.items()) dict[name] = json_tensor<T>(t);
  m.load_state_dict(dict, /*strict=*/true);
}

/// Compares every parameter's grad with the case's "grads"/"params".
template <class T>
void expect_param_grads_close(attn::Module<T>& m, const nlohmann::json& grads, double tol, const std::string& what) {
  auto params = m.named_parameters();
  EXPECT_EQ(params.size(), grads.size()) << what;
  for (auto& np : params) {
    ASSERT_TRUE(grads.contains(np.name)) << what << ": torch has no grad for " << np.name;
    expect_close(np.param->grad, json_tensor<double>(grads.at(np.name)), tol, what + " d" + np.name);
  }
}

/// Runs `f`, expects E whose message contains every string in `needles`.
template <class E, class F>
void expect_error(F&& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "expected an exception mentioning " << (needles.empty() ? "" : needles[0]);
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

}  // namespace attn_layer_test
