// Reference SDPA, backward: central finite differences in double for every
// option, then properties (GQA = repeated K/V, zero gradient for rows that see
// nothing, no NaN from hidden keys, strided inputs, float vs double) and the
// backward's own argument checks.
//
// The loss is L = Σ G∘O for a fixed G, so dL/dO = G; each input element x is
// nudged by ±h and (L(x+h) − L(x−h)) / 2h is compared with the analytic
// gradient. Dropout with a fixed seed is a fixed mask, so it is differentiable.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "attn/sdpa.hpp"
#include "reference/sdpa_test_helpers.hpp"

namespace {

using attn::CausalAlignment;
using attn::SdpaOptions;
using attn::Shape;
using attn::Tensor;
using attn_test::expect_all_near;
using attn_test::expect_error;
using attn_test::pattern;

struct Sizes {
  int64_t B, Hq, Hkv, Lq, Lk, Dk, Dv;
};

struct GradCase {
  std::string name;
  Sizes n;
  std::function<void(SdpaOptions<double>&, const Sizes&)> set;
  bool mask_grad = false;
};

double loss(const Tensor<double>& q, const Tensor<double>& k, const Tensor<double>& v,
            const SdpaOptions<double>& o, const Tensor<double>& g) {
  const auto out = attn::scaled_dot_product_attention(q, k, v, o).output;
  double l = 0;
  for (int64_t e = 0; e < out.numel(); ++e) l += out.flat(e) * g.flat(e);
  return l;
}

// Compares `analytic` with central differences of the loss in every element of `x`
// (x is one of the tensors the loss reads, so nudging it changes the loss).
void check_against_finite_differences(const std::string& what, const Tensor<double>& x,
                                      const Tensor<double>& analytic, const std::function<double()>& loss_now) {
  ASSERT_EQ(analytic.shape(), x.shape()) << what;
  const double h = 1e-5;
  for (int64_t e = 0; e < x.numel(); ++e) {
    const double keep = x.flat(e);
    if (!std::isfinite(keep)) continue;  // a −∞ mask entry has no derivative
    x.flat(e) = keep + h;
    const double up = loss_now();
    x.flat(e) = keep - h;
    const double down = loss_now();
    x.flat(e) = keep;
    const double numeric = (up - down) / (2 * h);
    EXPECT_NEAR(analytic.flat(e), numeric, 1e-8 + 1e-6 * std::abs(numeric)) << what << " element " << e;
  }
}

void run_case(const GradCase& c) {
  SCOPED_TRACE(c.name);
  const Sizes& n = c.n;
  const auto q = pattern<double>({n.B, n.Hq, n.Lq, n.Dk}, 0.3);
  const auto k = pattern<double>({n.B, n.Hkv, n.Lk, n.Dk}, 1.1);
  const auto v = pattern<double>({n.B, n.Hkv, n.Lk, n.Dv}, 2.3);
  const auto g = pattern<double>({n.B, n.Hq, n.Lq, n.Dv}, 3.7);
  SdpaOptions<double> o;
  o.enable_gqa = n.Hq != n.Hkv;
  c.set(o, n);
  const auto fwd = attn::scaled_dot_product_attention(q, k, v, o);
  const auto grads = attn::scaled_dot_product_attention_backward(g, q, k, v, fwd.output, fwd.lse, o, c.mask_grad);
  auto L = [&] { return loss(q, k, v, o, g); };
  check_against_finite_differences("d_query", q, grads.d_query, L);
  check_against_finite_differences("d_key", k, grads.d_key, L);
  check_against_finite_differences("d_value", v, grads.d_value, L);
  if (c.mask_grad) check_against_finite_differences("d_float_mask", o.float_mask, grads.d_float_mask, L);
  if (o.sinks.defined()) {
    check_against_finite_differences("d_sinks", o.sinks, grads.d_sinks, L);
  } else {
    EXPECT_FALSE(grads.d_sinks.defined());
  }
  if (!c.mask_grad) {
    EXPECT_FALSE(grads.d_float_mask.defined());
  }
}

const Sizes kSmall{2, 2, 2, 3, 5, 4, 3};  // Lq != Lk, Dk != Dv

std::vector<GradCase> grad_cases() {
  using O = SdpaOptions<double>;
  const double ninf = -std::numeric_limits<double>::infinity();
  std::vector<GradCase> cases;
  cases.push_back({"plain", kSmall, [](O&, const Sizes&) {}});
  cases.push_back({"explicit scale", kSmall, [](O& o, const Sizes&) { o.scale = 0.7; }});
  cases.push_back({"causal top-left", {1, 2, 2, 4, 6, 3, 2}, [](O& o, const Sizes&) { o.is_causal = true; }});
  cases.push_back({"causal bottom-right", {1, 2, 2, 4, 6, 3, 2}, [](O& o, const Sizes&) {
                     o.is_causal = true;
                     o.causal_alignment = CausalAlignment::BottomRight;
                   }});
  // Lq > Lk, bottom-right: the first rows see no key at all.
  cases.push_back({"causal bottom-right, Lq > Lk", {1, 2, 2, 5, 3, 3, 2}, [](O& o, const Sizes&) {
                     o.is_causal = true;
                     o.causal_alignment = CausalAlignment::BottomRight;
                   }});
  cases.push_back({"window (1, 1)", {1, 2, 2, 5, 6, 3, 2}, [](O& o, const Sizes&) {
                     o.window_left = 1;
                     o.window_right = 1;
                     o.causal_alignment = CausalAlignment::BottomRight;
                   }});
  cases.push_back({"window (2, -1) top-left", {1, 1, 1, 5, 5, 3, 2}, [](O& o, const Sizes&) {
                     o.window_left = 2;
                   }});
  cases.push_back({"bool mask with a fully masked row", kSmall, [](O& o, const Sizes& n) {
                     o.bool_mask = Tensor<bool>({n.Lq, n.Lk});
                     for (int64_t e = 0; e < o.bool_mask.numel(); ++e) o.bool_mask.flat(e) = e % 3 != 1;
                     for (int64_t j = 0; j < n.Lk; ++j) o.bool_mask(1, j) = false;
                   }});
  cases.push_back({"float mask [1, Hq, Lq, Lk] with grad", kSmall,
                   [=](O& o, const Sizes& n) {
                     o.float_mask = pattern<double>({1, n.Hq, n.Lq, n.Lk}, 4.4);
                     o.float_mask(0, 1, 2, 3) = ninf;
                   },
                   true});
  cases.push_back({"float mask [Lk] broadcast with grad", kSmall,
                   [](O& o, const Sizes& n) { o.float_mask = pattern<double>({n.Lk}, 5.5); }, true});
  cases.push_back({"alibi [Hq]", kSmall, [](O& o, const Sizes&) { o.alibi_slopes = Tensor<double>({2}, {0.5, 0.25}); }});
  cases.push_back({"alibi [B, Hq] causal bottom-right", kSmall, [](O& o, const Sizes&) {
                     o.alibi_slopes = Tensor<double>({2, 2}, {0.5, 0.25, 0.3, 0.1});
                     o.is_causal = true;
                     o.causal_alignment = CausalAlignment::BottomRight;
                   }});
  cases.push_back({"softcap", kSmall, [](O& o, const Sizes&) {
                     o.softcap = 0.6;
                     o.scale = 1.5;
                   }});
  cases.push_back({"sinks with grad", kSmall, [](O& o, const Sizes&) { o.sinks = Tensor<double>({2}, {0.4, -0.9}); }});
  cases.push_back({"sinks on rows that see no key", {1, 2, 2, 5, 3, 3, 2}, [](O& o, const Sizes&) {
                     o.sinks = Tensor<double>({2}, {0.4, -0.9});
                     o.is_causal = true;
                     o.causal_alignment = CausalAlignment::BottomRight;
                   }});
  cases.push_back({"gqa Hq=4 Hkv=2", {2, 4, 2, 3, 4, 3, 2}, [](O&, const Sizes&) {}});
  cases.push_back({"mqa Hq=3 Hkv=1", {1, 3, 1, 3, 4, 3, 2}, [](O& o, const Sizes&) { o.is_causal = true; }});
  cases.push_back({"dropout 0.4", kSmall, [](O& o, const Sizes&) {
                     o.dropout_p = 0.4;
                     o.dropout_seed = 5;
                   }});
  cases.push_back({"everything at once", {2, 4, 2, 4, 6, 3, 2},
                   [](O& o, const Sizes&) {
                     o.is_causal = true;
                     o.causal_alignment = CausalAlignment::BottomRight;
                     o.window_left = 2;
                     o.alibi_slopes = Tensor<double>({4}, {0.5, 0.25, 0.125, 0.0625});
                     o.softcap = 1.2;
                     o.sinks = Tensor<double>({4}, {0.1, -0.3, 0.2, 0.0});
                     o.dropout_p = 0.25;
                     o.dropout_seed = 99;
                   }});
  cases.push_back({"float mask, sinks, dropout, gqa with grads", {1, 4, 2, 3, 5, 2, 3},
                   [](O& o, const Sizes& n) {
                     o.float_mask = pattern<double>({n.B, 1, n.Lq, n.Lk}, 6.6);
                     o.sinks = Tensor<double>({4}, {1.0, -1.0, 0.5, 0.0});
                     o.dropout_p = 0.3;
                     o.dropout_seed = 3;
                   },
                   true});
  return cases;
}

TEST(SdpaGradient, MatchesFiniteDifferencesForEveryOption) {
  for (const GradCase& c : grad_cases()) run_case(c);
}

// ---- properties ---------------------------------------------------------------------

template <class T>
Tensor<T> repeat_heads(const Tensor<T>& x, int64_t group) {
  Tensor<T> r({x.size(0), x.size(1) * group, x.size(2), x.size(3)});
  for (int64_t b = 0; b < r.size(0); ++b)
    for (int64_t h = 0; h < r.size(1); ++h)
      for (int64_t j = 0; j < r.size(2); ++j)
        for (int64_t d = 0; d < r.size(3); ++d) r(b, h, j, d) = x(b, h / group, j, d);
  return r;
}

// Sums the gradient of repeated heads back onto the shared head.
template <class T>
Tensor<T> sum_groups(const Tensor<T>& x, int64_t group) {
  Tensor<T> r({x.size(0), x.size(1) / group, x.size(2), x.size(3)});
  for (int64_t b = 0; b < x.size(0); ++b)
    for (int64_t h = 0; h < x.size(1); ++h)
      for (int64_t j = 0; j < x.size(2); ++j)
        for (int64_t d = 0; d < x.size(3); ++d) r(b, h / group, j, d) += x(b, h, j, d);
  return r;
}

TEST(SdpaGradient, GqaEqualsRepeatedKeysAndValuesSummedOverTheGroup) {
  const auto q = pattern<double>({2, 6, 3, 4}, 0.2), k = pattern<double>({2, 2, 5, 4}, 0.9),
             v = pattern<double>({2, 2, 5, 3}, 1.7), g = pattern<double>({2, 6, 3, 3}, 2.5);
  SdpaOptions<double> o;
  o.enable_gqa = true;
  o.is_causal = true;
  o.causal_alignment = CausalAlignment::BottomRight;
  o.sinks = Tensor<double>({6}, {0.1, 0.2, 0.3, -0.1, -0.2, -0.3});
  o.dropout_p = 0.2;
  o.dropout_seed = 17;
  const auto kr = repeat_heads(k, 3), vr = repeat_heads(v, 3);
  const auto f1 = attn::scaled_dot_product_attention(q, k, v, o);
  const auto f2 = attn::scaled_dot_product_attention(q, kr, vr, o);
  const auto g1 = attn::scaled_dot_product_attention_backward(g, q, k, v, f1.output, f1.lse, o);
  const auto g2 = attn::scaled_dot_product_attention_backward(g, q, kr, vr, f2.output, f2.lse, o);
  expect_all_near(g1.d_query, g2.d_query, 1e-14, "d_query");
  expect_all_near(g1.d_key, sum_groups(g2.d_key, 3), 1e-14, "d_key");
  expect_all_near(g1.d_value, sum_groups(g2.d_value, 3), 1e-14, "d_value");
  expect_all_near(g1.d_sinks, g2.d_sinks, 1e-14, "d_sinks");
}

TEST(SdpaGradient, RowsThatSeeNothingAndHiddenNanKeysGiveZeroNotNan) {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  const auto q = pattern<double>({1, 2, 3, 2}, 0.2), g = pattern<double>({1, 2, 3, 3}, 2.5);
  auto k = pattern<double>({1, 2, 4, 2}, 0.9), v = pattern<double>({1, 2, 4, 3}, 1.7);
  SdpaOptions<double> o;
  o.bool_mask = Tensor<bool>::full({3, 4}, true);
  for (int64_t j = 0; j < 4; ++j) o.bool_mask(1, j) = false;  // row 1 sees nothing
  for (int64_t i = 0; i < 3; ++i) o.bool_mask(i, 2) = false;  // key 2 is hidden from everyone
  const auto clean_f = attn::scaled_dot_product_attention(q, k, v, o);
  const auto clean = attn::scaled_dot_product_attention_backward(g, q, k, v, clean_f.output, clean_f.lse, o);
  for (int64_t h = 0; h < 2; ++h) {
    for (int64_t d = 0; d < 2; ++d) {
      EXPECT_EQ(clean.d_query(0, h, 1, d), 0.0);
      EXPECT_EQ(clean.d_key(0, h, 2, d), 0.0);
    }
    for (int64_t d = 0; d < 3; ++d) EXPECT_EQ(clean.d_value(0, h, 2, d), 0.0);
  }
  k(0, 0, 2, 0) = nan;
  k(0, 1, 2, 1) = -inf;
  v(0, 0, 2, 1) = inf;
  v(0, 1, 2, 2) = nan;
  const auto dirty_f = attn::scaled_dot_product_attention(q, k, v, o);
  const auto dirty = attn::scaled_dot_product_attention_backward(g, q, k, v, dirty_f.output, dirty_f.lse, o);
  EXPECT_EQ(dirty.d_query.to_vector(), clean.d_query.to_vector());
  EXPECT_EQ(dirty.d_key.to_vector(), clean.d_key.to_vector());
  EXPECT_EQ(dirty.d_value.to_vector(), clean.d_value.to_vector());
}

// A visible key holding −∞ gets a score of −∞ and weight exactly 0: key 2
// of this case (every q_i0 > 0, so q·k_2 = −∞). run() gives the forward and
// backward of that case and of the same key hidden by the mask instead, on
// one path; the tests below compare the two.
struct ZeroWeightKey {
  Tensor<float> q = pattern<float>({1, 1, 3, 2}, 0.2), k = pattern<float>({1, 1, 4, 2}, 0.9);
  Tensor<float> v = pattern<float>({1, 1, 4, 3}, 1.7), g = pattern<float>({1, 1, 3, 3}, 2.5);
  attn::SdpaResult<float> hidden_f, infinite_f;
  attn::SdpaGradients<float> hidden_g, infinite_g;

  ZeroWeightKey() {
    for (int64_t i = 0; i < 3; ++i) q(0, 0, i, 0) = 0.5f + static_cast<float>(i);
  }
  void run(attn::SdpaBackend backend) {
    SdpaOptions<float> hidden, infinite;
    hidden.backend = infinite.backend = backend;
    hidden.bool_mask = Tensor<bool>::full({3, 4}, true);
    for (int64_t i = 0; i < 3; ++i) hidden.bool_mask(i, 2) = false;
    hidden_f = attn::scaled_dot_product_attention(q, k, v, hidden);
    hidden_g = attn::scaled_dot_product_attention_backward(g, q, k, v, hidden_f.output, hidden_f.lse, hidden);
    const Tensor<float> k_inf = k.clone();
    k_inf(0, 0, 2, 0) = -std::numeric_limits<float>::infinity();
    infinite_f = attn::scaled_dot_product_attention(q, k_inf, v, infinite);
    infinite_g =
        attn::scaled_dot_product_attention_backward(g, q, k_inf, v, infinite_f.output, infinite_f.lse, infinite);
  }
};

// Its d_query term ds · k = 0 · ∞ used to be NaN on the reference path while
// the fast path skipped it (0) — found by fuzz/sdpa_fuzzer.cpp. Both now
// skip a zero coefficient, as the forward skips zero weights: the gradients
// equal those with that key hidden by the mask, on both paths.
TEST(SdpaGradient, AKeyWithWeightZeroBecauseOfInfinityAddsNothing) {
  for (const auto backend : {attn::SdpaBackend::Reference, attn::SdpaBackend::Fast}) {
    SCOPED_TRACE(attn::to_string(backend));
    ZeroWeightKey c;
    c.run(backend);
    expect_all_near(c.infinite_f.output, c.hidden_f.output, 1e-6);
    expect_all_near(c.infinite_g.d_query, c.hidden_g.d_query, 1e-6);
    expect_all_near(c.infinite_g.d_value, c.hidden_g.d_value, 1e-6);
    for (int64_t j : {0, 1, 3})
      for (int64_t d = 0; d < 2; ++d) EXPECT_NEAR(c.infinite_g.d_key(0, 0, j, d), c.hidden_g.d_key(0, 0, j, d), 1e-6);
  }
}

// The same key with an infinite grad_output row: its d_value term w · dout
// = 0 · ∞ was NaN on the reference path, 0 on the fast path (found by
// fuzz/sdpa_fuzzer.cpp). Both skip it, as when the key is hidden.
TEST(SdpaGradient, AKeyWithWeightZeroGetsNoValueGradientFromAnInfiniteGradOutput) {
  const float inf = std::numeric_limits<float>::infinity();
  for (const auto backend : {attn::SdpaBackend::Reference, attn::SdpaBackend::Fast}) {
    SCOPED_TRACE(attn::to_string(backend));
    ZeroWeightKey c;
    c.g(0, 0, 1, 2) = inf;
    c.run(backend);
    for (int64_t d = 0; d < 3; ++d) {
      EXPECT_EQ(c.infinite_g.d_value(0, 0, 2, d), 0.0f) << "d " << d;
      for (int64_t j : {0, 1, 3})
        EXPECT_EQ(std::isnan(c.infinite_g.d_value(0, 0, j, d)), std::isnan(c.hidden_g.d_value(0, 0, j, d)));
    }
    EXPECT_EQ(c.infinite_g.d_value(0, 0, 0, 2), inf);  // the other keys do get the infinite row's share
  }
}

TEST(SdpaGradient, EmptySequencesGiveEmptyOrZeroGradients) {
  {  // Lk = 0
    const auto q = pattern<double>({1, 2, 3, 2}, 0.2);
    const Tensor<double> k({1, 2, 0, 2}), v({1, 2, 0, 4});
    const auto f = attn::scaled_dot_product_attention(q, k, v);
    const auto g = attn::scaled_dot_product_attention_backward(pattern<double>({1, 2, 3, 4}, 1.0), q, k, v,
                                                              f.output, f.lse);
    EXPECT_EQ(g.d_query.shape(), q.shape());
    for (double x : g.d_query.to_vector()) EXPECT_EQ(x, 0.0);
    EXPECT_EQ(g.d_key.shape(), k.shape());
    EXPECT_EQ(g.d_value.shape(), v.shape());
  }
  {  // Lq = 0 and B = 0
    for (const Shape& qs : {Shape{1, 2, 0, 2}, Shape{0, 2, 3, 2}}) {
      const Tensor<double> q(qs), k({qs[0], 2, 4, 2}), v({qs[0], 2, 4, 3});
      const auto f = attn::scaled_dot_product_attention(q, k, v);
      const auto g = attn::scaled_dot_product_attention_backward(Tensor<double>({qs[0], 2, qs[2], 3}), q, k, v,
                                                                f.output, f.lse);
      EXPECT_EQ(g.d_query.shape(), q.shape());
      EXPECT_EQ(g.d_key.shape(), k.shape());
      for (double x : g.d_key.to_vector()) EXPECT_EQ(x, 0.0);
    }
  }
}

TEST(SdpaGradient, DropoutProbabilityZeroEqualsNoDropout) {
  const auto q = pattern<double>({1, 2, 3, 4}, 0.2), k = pattern<double>({1, 2, 5, 4}, 0.9),
             v = pattern<double>({1, 2, 5, 3}, 1.7), g = pattern<double>({1, 2, 3, 3}, 2.5);
  SdpaOptions<double> none, zero;
  zero.dropout_seed = 42;
  const auto f = attn::scaled_dot_product_attention(q, k, v, none);
  const auto a = attn::scaled_dot_product_attention_backward(g, q, k, v, f.output, f.lse, none);
  const auto b = attn::scaled_dot_product_attention_backward(g, q, k, v, f.output, f.lse, zero);
  EXPECT_EQ(a.d_query.to_vector(), b.d_query.to_vector());
  EXPECT_EQ(a.d_key.to_vector(), b.d_key.to_vector());
  EXPECT_EQ(a.d_value.to_vector(), b.d_value.to_vector());
}

TEST(SdpaGradient, StridedBlhdInputsMatchContiguous) {
  const auto q = pattern<double>({2, 3, 2, 4}, 0.2).transpose(1, 2), k = pattern<double>({2, 5, 2, 4}, 0.9).transpose(1, 2),
             v = pattern<double>({2, 5, 2, 3}, 1.7).transpose(1, 2), g = pattern<double>({2, 3, 2, 3}, 2.5).transpose(1, 2);
  SdpaOptions<double> o;
  o.is_causal = true;
  o.softcap = 1.0;
  const auto f = attn::scaled_dot_product_attention(q, k, v, o);
  const auto a = attn::scaled_dot_product_attention_backward(g, q, k, v, f.output, f.lse, o);
  const auto b = attn::scaled_dot_product_attention_backward(g.clone(), q.clone(), k.clone(), v.clone(),
                                                            f.output, f.lse, o);
  EXPECT_TRUE(a.d_query.is_contiguous());
  EXPECT_EQ(a.d_query.shape(), q.shape());
  EXPECT_EQ(a.d_query.to_vector(), b.d_query.to_vector());
  EXPECT_EQ(a.d_key.to_vector(), b.d_key.to_vector());
  EXPECT_EQ(a.d_value.to_vector(), b.d_value.to_vector());
}

TEST(SdpaGradient, FloatAndDoubleAgree) {
  const auto q = pattern<double>({2, 4, 5, 8}, 0.2), k = pattern<double>({2, 2, 7, 8}, 0.9),
             v = pattern<double>({2, 2, 7, 6}, 1.7), g = pattern<double>({2, 4, 5, 6}, 2.5);
  const auto mask = pattern<double>({5, 7}, 3.1);
  SdpaOptions<double> od;
  od.enable_gqa = true;
  od.softcap = 2.0;
  od.float_mask = mask;
  od.alibi_slopes = Tensor<double>({4}, {0.5, 0.25, 0.125, 0.0625});
  od.sinks = Tensor<double>({4}, {0.1, -0.2, 0.3, 0.0});
  od.dropout_p = 0.1;
  od.dropout_seed = 4;
  SdpaOptions<float> of;
  of.enable_gqa = true;
  of.softcap = 2.0;
  of.float_mask = mask.to<float>();
  of.alibi_slopes = od.alibi_slopes.to<float>();
  of.sinks = od.sinks.to<float>();
  of.dropout_p = 0.1;
  of.dropout_seed = 4;
  const auto fd = attn::scaled_dot_product_attention(q, k, v, od);
  const auto gd = attn::scaled_dot_product_attention_backward(g, q, k, v, fd.output, fd.lse, od, true);
  const auto qf = q.to<float>(), kf = k.to<float>(), vf = v.to<float>();
  const auto ff = attn::scaled_dot_product_attention(qf, kf, vf, of);
  const auto gf = attn::scaled_dot_product_attention_backward(g.to<float>(), qf, kf, vf, ff.output, ff.lse, of, true);
  expect_all_near(gf.d_query, gd.d_query, 1e-5, "d_query");
  expect_all_near(gf.d_key, gd.d_key, 1e-5, "d_key");
  expect_all_near(gf.d_value, gd.d_value, 1e-5, "d_value");
  expect_all_near(gf.d_float_mask, gd.d_float_mask, 1e-5, "d_float_mask");
  expect_all_near(gf.d_sinks, gd.d_sinks, 1e-5, "d_sinks");
}

// ---- the backward's own arguments ------------------------------------------------------

TEST(SdpaGradientValidation, GradOutputOutputAndLseShapesAreChecked) {
  using attn::ShapeError;
  using attn::ValueError;
  const auto q = pattern<double>({2, 2, 3, 4}, 0.2), k = pattern<double>({2, 2, 5, 4}, 0.9),
             v = pattern<double>({2, 2, 5, 6}, 1.7), g = pattern<double>({2, 2, 3, 6}, 2.5);
  const auto f = attn::scaled_dot_product_attention(q, k, v);
  auto run = [&](const Tensor<double>& gg, const Tensor<double>& out, const Tensor<double>& lse,
                 SdpaOptions<double> o = {}, bool mask_grad = false) {
    return [=] { attn::scaled_dot_product_attention_backward(gg, q, k, v, out, lse, o, mask_grad); };
  };
  expect_error<ShapeError>(run(Tensor<double>({2, 2, 3, 4}), f.output, f.lse), {"grad_output", "[2, 2, 3, 4]", "[2, 2, 3, 6]"});
  expect_error<ShapeError>(run(g, Tensor<double>({2, 2, 6}), f.lse), {"output", "[2, 2, 6]", "[2, 2, 3, 6]"});
  expect_error<ShapeError>(run(g, f.output, Tensor<double>()), {"lse", "undefined", "[2, 2, 3]"});
  expect_error<ShapeError>(run(g, f.output, Tensor<double>({2, 2, 3, 1})), {"lse", "[2, 2, 3, 1]"});
  expect_error<ValueError>(run(g, f.output, f.lse, {}, true), {"need_float_mask_grad", "float_mask"});
  // The forward's checks run in the backward too, named after it.
  SdpaOptions<double> bad;
  bad.dropout_p = 2.0;
  expect_error<ValueError>(run(g, f.output, f.lse, bad), {"scaled_dot_product_attention_backward", "dropout_p"});
}

}  // namespace
