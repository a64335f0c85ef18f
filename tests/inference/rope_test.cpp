// RoPE: the closed-form rotation (cos/sin in long double, computed here),
// PyTorch golden data (tests/golden/make_rope_golden.py: HF rotate_half and
// GPT-J rotate_every_two), the relative-position property, the backward by
// finite differences in float64, strided inputs and typed errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "attn/rope.hpp"
#include "layers/layer_test_util.hpp"

namespace {

using attn::RopeLayout;
using attn::RopeOptions;
using attn::Tensor;
using attn_layer_test::dot;
using attn_layer_test::expect_grad_matches;
using attn_layer_test::json_tensor;
using attn_layer_test::uniform;

// The rotation written out independently: angle = pos · theta^(−2i/R) in long double.
Tensor<double> closed_form(const Tensor<double>& x, const std::vector<int64_t>& pos, const RopeOptions& o) {
  const int64_t B = x.size(0), H = x.size(1), L = x.size(2), D = x.size(3);
  const int64_t R = o.rotary_dim < 0 ? D : o.rotary_dim;
  Tensor<double> y = x.clone();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t l = 0; l < L; ++l)
        for (int64_t i = 0; i < R / 2; ++i) {
          const long double w = std::pow(static_cast<long double>(o.theta), -2.0L * i / R);
          const long double a = static_cast<long double>(pos[static_cast<size_t>(l)]) * w;
          const int64_t ia = o.layout == RopeLayout::Half ? i : 2 * i;
          const int64_t ib = o.layout == RopeLayout::Half ? i + R / 2 : 2 * i + 1;
          const long double xa = x(b, h, l, ia), xb = x(b, h, l, ib);
          y(b, h, l, ia) = static_cast<double>(xa * std::cos(a) - xb * std::sin(a));
          y(b, h, l, ib) = static_cast<double>(xb * std::cos(a) + xa * std::sin(a));
        }
  return y;
}

double max_abs_diff(const Tensor<double>& a, const Tensor<double>& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::abs(a.flat(i) - b.flat(i)));
  return m;
}

TEST(Rope, EqualsClosedFormBothLayoutsAndPartial) {
  for (RopeLayout layout : {RopeLayout::Half, RopeLayout::Interleaved})
    for (int64_t R : {-1, 4, 0}) {
      RopeOptions o;
      o.layout = layout;
      o.rotary_dim = R;
      o.theta = 500.0;
      const Tensor<double> x = uniform({2, 3, 5, 8}, 11);
      const Tensor<double> y = attn::apply_rope(x, 7, o);
      const Tensor<double> want = closed_form(x, {7, 8, 9, 10, 11}, o);
      EXPECT_LE(max_abs_diff(y, want), 1e-14) << "R " << R;
      // float: rounding of the inputs and of cos/sin only
      const Tensor<float> yf = attn::apply_rope(x.to<float>(), 7, o);
      EXPECT_LE(max_abs_diff(yf.to<double>(), want), 1e-6);
    }
}

TEST(Rope, LayoutsDiffer) {
  // A test that the layout option is honoured: the two layouts rotate different pairs.
  const Tensor<double> x = uniform({1, 1, 2, 8}, 3);
  RopeOptions half, inter;
  inter.layout = RopeLayout::Interleaved;
  EXPECT_GT(max_abs_diff(attn::apply_rope(x, 1, half), attn::apply_rope(x, 1, inter)), 1e-3);
}

TEST(Rope, MatchesPytorchGolden) {
  std::ifstream f(std::string(ATTN_GOLDEN_DIR) + "/rope_golden.json");
  ASSERT_TRUE(f) << "rope_golden.json";
  const auto data = nlohmann::json::parse(f);
  int n = 0;
  for (const auto& c : data.at("cases")) {
    RopeOptions o;
    o.layout = c.at("layout") == "half" ? RopeLayout::Half : RopeLayout::Interleaved;
    o.theta = c.at("theta").get<double>();
    o.rotary_dim = c.at("rotary_dim").get<int64_t>();
    const Tensor<double> x = json_tensor<double>(c.at("x")), want = json_tensor<double>(c.at("y"));
    Tensor<double> y;
    if (c.at("explicit_positions").get<bool>()) {
      Tensor<int64_t> pos(c.at("positions").at("shape").get<attn::Shape>());
      const auto& d = c.at("positions").at("data");
      for (int64_t i = 0; i < pos.numel(); ++i) pos.flat(i) = d[static_cast<size_t>(i)].get<int64_t>();
      y = attn::apply_rope(x, pos, o);
    } else {
      y = attn::apply_rope(x, c.at("start_pos").get<int64_t>(), o);
    }
    EXPECT_LE(max_abs_diff(y, want), 1e-12) << "case " << n;
    ++n;
  }
  EXPECT_EQ(n, 8);
}

TEST(Rope, PositionsTensorEqualsStartOffset) {
  const Tensor<double> x = uniform({2, 2, 4, 6}, 5);
  Tensor<int64_t> p1({4}, {3, 4, 5, 6});
  EXPECT_EQ(max_abs_diff(attn::apply_rope(x, p1), attn::apply_rope(x, 3)), 0.0);
  Tensor<int64_t> p2({2, 4}, {3, 4, 5, 6, 0, 1, 2, 3});
  const Tensor<double> y = attn::apply_rope(x, p2);
  EXPECT_EQ(max_abs_diff(y.slice(0, 0, 1), attn::apply_rope(x.slice(0, 0, 1), 3)), 0.0);
  EXPECT_EQ(max_abs_diff(y.slice(0, 1, 2), attn::apply_rope(x.slice(0, 1, 2), 0)), 0.0);
}

TEST(Rope, StridedInputEqualsContiguous) {
  // [B, L, H, D] viewed as [B, H, L, D] without a copy.
  const Tensor<double> bl = uniform({2, 5, 3, 8}, 9);
  const Tensor<double> view = bl.transpose(1, 2);
  for (RopeLayout layout : {RopeLayout::Half, RopeLayout::Interleaved}) {
    RopeOptions o;
    o.layout = layout;
    EXPECT_EQ(max_abs_diff(attn::apply_rope(view, 2, o), attn::apply_rope(view.contiguous(), 2, o)), 0.0);
  }
}

TEST(Rope, ScoreDependsOnlyOnPositionDifference) {
  // (R_p q)·(R_s k) = q·(R_{s−p} k): shift both positions by the same amount.
  for (RopeLayout layout : {RopeLayout::Half, RopeLayout::Interleaved}) {
    RopeOptions o;
    o.layout = layout;
    const Tensor<double> q = uniform({1, 1, 1, 16}, 1), k = uniform({1, 1, 1, 16}, 2);
    auto score = [&](int64_t p, int64_t s) { return dot(attn::apply_rope(q, p, o), attn::apply_rope(k, s, o)); };
    const double base = score(3, 10);
    for (int64_t shift : {1, 17, 1000}) EXPECT_NEAR(score(3 + shift, 10 + shift), base, 1e-10) << shift;
    EXPECT_GT(std::abs(score(3, 11) - base), 1e-6);  // but a different difference changes it
    EXPECT_NEAR(score(0, 0), dot(q, k), 1e-14);      // position 0 is the identity
  }
}

TEST(Rope, BackwardIsInverseAndMatchesFiniteDifferences) {
  for (RopeLayout layout : {RopeLayout::Half, RopeLayout::Interleaved}) {
    RopeOptions o;
    o.layout = layout;
    o.rotary_dim = 6;
    const Tensor<double> x = uniform({2, 2, 3, 8}, 21), g = uniform({2, 2, 3, 8}, 22);
    // the inverse rotation undoes the forward
    EXPECT_LE(max_abs_diff(attn::apply_rope_backward(attn::apply_rope(x, 5, o), 5, o), x), 1e-14);
    const Tensor<double> dx = attn::apply_rope_backward(g, 5, o);
    expect_grad_matches([&] { return dot(attn::apply_rope(x, 5, o), g); }, x, dx, "d_x");
    Tensor<int64_t> pos({2, 3}, {0, 4, 9, 2, 2, 7});
    const Tensor<double> dxp = attn::apply_rope_backward(g, pos, o);
    expect_grad_matches([&] { return dot(attn::apply_rope(x, pos, o), g); }, x, dxp, "d_x positions");
  }
}

TEST(Rope, TypedErrors) {
  const Tensor<float> x({1, 2, 3, 8});
  RopeOptions o;
  EXPECT_THROW(attn::apply_rope(Tensor<float>({2, 3, 8})), attn::ShapeError);
  o.rotary_dim = 5;
  EXPECT_THROW(attn::apply_rope(x, 0, o), attn::ValueError);
  o.rotary_dim = 10;
  EXPECT_THROW(attn::apply_rope(x, 0, o), attn::ValueError);
  o = {};
  o.theta = 0;
  EXPECT_THROW(attn::apply_rope(x, 0, o), attn::ValueError);
  o.theta = INFINITY;
  EXPECT_THROW(attn::apply_rope(x, 0, o), attn::ValueError);
  EXPECT_THROW(attn::apply_rope(x, -1), attn::ValueError);
  EXPECT_THROW(attn::apply_rope(x, Tensor<int64_t>({4})), attn::ShapeError);
  EXPECT_THROW(attn::apply_rope(x, Tensor<int64_t>({2, 3})), attn::ShapeError);
  EXPECT_THROW(attn::apply_rope(x, Tensor<int64_t>({3}, {0, -1, 2})), attn::ValueError);
  EXPECT_THROW(attn::apply_rope_backward(Tensor<float>({8})), attn::ShapeError);
  try {
    attn::apply_rope(x, Tensor<int64_t>({4}));
  } catch (const attn::ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("positions has shape [4]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[1, 2, 3, 8]"), std::string::npos) << e.what();
  }
}

}  // namespace
