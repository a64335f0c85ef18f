// Reference SDPA, forward: the lecture's numbers, PyTorch spot values for each
// option, properties, edge cases and argument validation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <type_traits>
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

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr float kInfF = std::numeric_limits<float>::infinity();

template <class T>
class SdpaForward : public ::testing::Test {};
using Precisions = ::testing::Types<float, double>;
TYPED_TEST_SUITE(SdpaForward, Precisions);

// Tolerance for comparing with numbers computed in float64.
template <class T>
constexpr double tol() {
  return std::is_same_v<T, float> ? 2e-6 : 1e-10;
}

// ---- the lecture's numbers (tests/golden/notes_numbers.py) ----------------------

TYPED_TEST(SdpaForward, NotesContextVectorsWithQueryKeyValueAllInputs) {
  using T = TypeParam;
  // Simplified self-attention is SDPA with Q = K = V = X and scale 1.
  Tensor<T> x({1, 1, 6, 3}, {0.43, 0.15, 0.89, 0.55, 0.87, 0.66, 0.57, 0.85, 0.64,
                             0.22, 0.58, 0.33, 0.77, 0.25, 0.10, 0.05, 0.80, 0.55});
  SdpaOptions<T> o;
  o.scale = 1.0;
  o.return_weights = true;
  const auto r = attn::scaled_dot_product_attention(x, x, x, o);
  const std::vector<double> z0{0.4421, 0.5931, 0.5790}, z1{0.4419, 0.6515, 0.5683};
  const std::vector<double> w1{0.1385, 0.2379, 0.2333, 0.1240, 0.1082, 0.1581};
  for (int64_t d = 0; d < 3; ++d) {
    EXPECT_NEAR(r.output(0, 0, 0, d), z0[d], 1e-4);
    EXPECT_NEAR(r.output(0, 0, 1, d), z1[d], 1e-4);
  }
  for (int64_t j = 0; j < 6; ++j) EXPECT_NEAR(r.weights(0, 0, 1, j), w1[j], 1e-4);
}

// ---- PyTorch spot values, one per option (tests/golden/sdpa_spot_values.py) -------

struct SpotCase {
  const char* name;
  std::vector<double> output;
  std::vector<double> lse;
};

const SpotCase kSpotCases[] = {
    {"plain", {0.0383020462806, -0.268940630522, -0.449696326478, 0.00643312434622, -0.382569322316, -0.591643438883, 0.0397936177295, -0.0632346283596, -0.136522640663, -0.420636579223, -0.39714158424, -0.18686469668, -0.345932322988, -0.237054438381, -0.0166861473251, -0.215459591766, 0.0488081559955, 0.290120665344}, {1.4072274943, 1.68341074388, 1.42313312905, 1.77779360154, 1.39181543557, 1.73165857846}},
    {"causal top-left", {0.239249329214, -0.442520443295, -0.916165936749, -0.0727030768173, -0.470681940817, -0.647291733442, -0.0116925929957, 0.0476418800288, 0.0845696324508, -0.954019249902, -0.536572918, 0.13323204142, -0.179444499452, 0.165539373571, 0.432667492579, -0.164509603727, 0.0884849902399, 0.29986371068}, {0.52925906898, 1.50105810328, 1.17533798454, -1.03103839252, 0.465430916318, 1.66449316313}},
    {"causal bottom-right", {-0.177478717959, -0.480140559828, -0.556984794006, -0.019688690586, -0.373522422434, -0.551682722562, 0.0397936177295, -0.0632346283596, -0.136522640663, -0.0361835701987, 0.295398059607, 0.488049366258, -0.0271466440637, -0.0862282616138, -0.104755380373, -0.215459591766, 0.0488081559955, 0.290120665344}, {0.956667266265, 1.56947588508, 1.42313312905, -0.250830500258, 0.967369512271, 1.73165857846}},
    {"bool mask", {0.322272368702, -0.188710905492, -0.610940492144, -0.598008800351, -0.219420127882, 0.262365259265, -0.237001427905, -0.489678858875, -0.512052671072, -0.509692712215, -0.504257163848, -0.261661592087, 0.426537243478, 0.134205607244, -0.221245023097, -0.255036317895, 0.0976995021095, 0.404485719675}, {1.15665544263, 0.395932190879, 1.08549570966, 1.70388761268, 0.568943689175, 1.64200077887}},
    {"float mask, scale 0.8", {0.112843151922, -0.294902853092, -0.563951438313, -0.0587964983313, -0.388947007509, -0.53616966159, 0.0428909763437, -0.161403974111, -0.289788113535, -0.427579234248, -0.437268632795, -0.241303760828, -0.444376044839, -0.23354874962, 0.0871201718444, -0.083062347396, 0.107725138101, 0.247847807897}, {0.79905400446, 2.44705369378, 0.733815630657, 2.75326203647, 1.02069388269, 1.6929337186}},
    {"window (1, 0)", {0.239249329214, -0.442520443295, -0.916165936749, -0.0727030768173, -0.470681940817, -0.647291733442, -0.106110548553, 0.232067519443, 0.46110060689, -0.954019249902, -0.536572918, 0.13323204142, -0.179444499452, 0.165539373571, 0.432667492579, 0.641423841095, 0.7265456848, 0.469961740355}, {0.52925906898, 1.50105810328, 0.855972513959, -1.03103839252, 0.465430916318, 0.960998438198}},
    {"alibi bottom-right", {-0.112851548225, -0.291612432508, -0.333223433212, -0.0297617455154, -0.297860583886, -0.425870935455, 0.161772876517, -0.00879775856681, -0.175230670328, -0.328297053459, -0.350224595108, -0.207436037267, -0.278259463858, -0.23999402997, -0.0888556537773, -0.156691409993, 0.0741691095381, 0.270146737929}, {0.961638702089, 0.954959637805, 0.814537411275, 1.42938359933, 1.16726017639, 1.19293624737}},
    {"softcap 0.5, scale 1.3", {0.0561716602505, -0.242507787052, -0.427132032815, -0.0640926901957, -0.268550773257, -0.346705231434, 0.0263880277859, -0.0312277669138, -0.0741566548867, -0.300638337149, -0.300793092244, -0.159480156035, -0.366081280223, -0.26210625471, -0.0348585620846, -0.178813949131, 0.0338068717805, 0.230527792647}, {1.36640788429, 1.42721846594, 1.45226254733, 1.50500614668, 1.39550931061, 1.50547697323}},
    {"sinks", {0.0287882726083, -0.202138970075, -0.337997096624, 0.00514352880222, -0.305878795789, -0.473041543232, 0.0300270469358, -0.0477149166639, -0.10301580939, -0.400261268609, -0.377904353014, -0.177813115278, -0.321832246806, -0.22053956063, -0.0155236730635, -0.204555058534, 0.0463379472909, 0.275437492454}, {1.69276271364, 1.90713168424, 1.70474112991, 1.82744532476, 1.46402815605, 1.78359478709}},
    {"gqa Hq=4 Hkv=2", {0.0383020462806, -0.268940630522, -0.449696326478, 0.00643312434622, -0.382569322316, -0.591643438883, 0.0397936177295, -0.0632346283596, -0.136522640663, 0.324308882277, 0.313657936344, 0.155488761908, 0.144087325041, -0.0283241008441, -0.187414259526, 0.0256474862793, -0.375374790833, -0.599852438423, -0.119291135214, 0.061360434297, 0.213153232775, -0.330242401475, -0.333245941244, -0.179518707735, -0.425073629803, -0.369397672628, -0.139988218018, -0.261511585152, -0.0503334635931, 0.184517272376, -0.156755742606, 0.0983328634734, 0.307173987368, -0.190428663021, -0.144316703032, -0.0303303425964}, {1.4072274943, 1.68341074388, 1.42313312905, 1.82460801953, 1.42159328199, 1.63773626474, 1.53788867714, 1.62034242876, 1.63383352458, 1.47451818741, 1.76096882413, 1.42049154072}},
};

// Inputs and options of a spot case, built as the script builds them.
template <class T>
struct SpotProblem {
  Tensor<T> q, k, v;
  SdpaOptions<T> o;
};

template <class T>
SpotProblem<T> spot_problem(const std::string& name) {
  const int64_t B = 1, Hq = 2, Lq = 3, Lk = 4, Dk = 2, Dv = 3;
  SpotProblem<T> p;
  p.q = pattern<T>({B, Hq, Lq, Dk}, 0.1);
  p.k = pattern<T>({B, Hq, Lk, Dk}, 1.3);
  p.v = pattern<T>({B, Hq, Lk, Dv}, 2.9);
  if (name == "causal top-left") {
    p.o.is_causal = true;
  } else if (name == "causal bottom-right") {
    p.o.is_causal = true;
    p.o.causal_alignment = CausalAlignment::BottomRight;
  } else if (name == "bool mask") {
    p.o.bool_mask = Tensor<bool>({Lq, Lk}, {true, false, true, true, false, true, true, false, true, true, false, true});
  } else if (name == "float mask, scale 0.8") {
    p.o.float_mask = pattern<T>({1, Hq, Lq, Lk}, 4.1);
    p.o.scale = 0.8;
  } else if (name == "window (1, 0)") {
    p.o.window_left = 1;
    p.o.window_right = 0;
  } else if (name == "alibi bottom-right") {
    p.o.alibi_slopes = Tensor<T>({Hq}, {0.5, 0.25});
    p.o.causal_alignment = CausalAlignment::BottomRight;
  } else if (name == "softcap 0.5, scale 1.3") {
    p.o.softcap = 0.5;
    p.o.scale = 1.3;
  } else if (name == "sinks") {
    p.o.sinks = Tensor<T>({Hq}, {0.3, -1.2});
  } else if (name == "gqa Hq=4 Hkv=2") {
    p.q = pattern<T>({B, 4, Lq, Dk}, 0.1);
    p.o.enable_gqa = true;
  } else if (name != "plain") {
    ADD_FAILURE() << "unknown spot case " << name;
  }
  return p;
}

TYPED_TEST(SdpaForward, MatchesPyTorchSpotValues) {
  using T = TypeParam;
  for (const SpotCase& c : kSpotCases) {
    const auto p = spot_problem<T>(c.name);
    const auto r = attn::scaled_dot_product_attention(p.q, p.k, p.v, p.o);
    expect_all_near(r.output, c.output, tol<T>(), std::string(c.name) + " output");
    expect_all_near(r.lse, c.lse, tol<T>(), std::string(c.name) + " lse");
  }
}

// ---- exact small cases ---------------------------------------------------------

TEST(SdpaExact, TwoKeysGiveTheLogisticWeights) {
  // One query, two keys with scores a and b: p = [σ(a − b), σ(b − a)], exactly.
  Tensor<double> q({1, 1, 1, 1}, {2.0}), k({1, 1, 2, 1}, {0.5, -0.25}), v({1, 1, 2, 2}, {1.0, 10.0, 3.0, -4.0});
  SdpaOptions<double> o;
  o.scale = 1.0;
  const auto r = attn::scaled_dot_product_attention(q, k, v, o);
  const double a = 1.0, b = -0.5;  // 2·0.5, 2·(−0.25)
  const double p0 = 1.0 / (1.0 + std::exp(b - a)), p1 = 1.0 - p0;
  EXPECT_NEAR(r.output(0, 0, 0, 0), p0 * 1.0 + p1 * 3.0, 1e-15);
  EXPECT_NEAR(r.output(0, 0, 0, 1), p0 * 10.0 + p1 * -4.0, 1e-14);
  EXPECT_NEAR(r.lse(0, 0, 0), std::log(std::exp(a) + std::exp(b)), 1e-15);
}

TEST(SdpaExact, SinkTakesItsShareOfTheDenominator) {
  // One key with score 0 and a sink logit 0: the key gets weight 1/2, the output v/2.
  Tensor<double> q({1, 1, 1, 1}, {0.0}), k({1, 1, 1, 1}, {0.0}), v({1, 1, 1, 1}, {6.0});
  SdpaOptions<double> o;
  o.sinks = Tensor<double>({1}, {0.0});
  o.return_weights = true;
  const auto r = attn::scaled_dot_product_attention(q, k, v, o);
  EXPECT_DOUBLE_EQ(r.output(0, 0, 0, 0), 3.0);
  EXPECT_DOUBLE_EQ(r.weights(0, 0, 0, 0), 0.5);
  EXPECT_DOUBLE_EQ(r.lse(0, 0, 0), std::log(2.0));
}

TEST(SdpaExact, WindowMinusOneIsUnboundedAndRightZeroIsCausal) {
  const auto q = pattern<double>({2, 2, 5, 3}, 0.4), k = pattern<double>({2, 2, 5, 3}, 1.1),
             v = pattern<double>({2, 2, 5, 2}, 2.2);
  SdpaOptions<double> causal, window, unbounded, plain;
  causal.is_causal = true;
  window.window_left = -1;
  window.window_right = 0;
  unbounded.window_left = -1;
  unbounded.window_right = -1;
  EXPECT_EQ(attn::scaled_dot_product_attention(q, k, v, causal).output.to_vector(),
            attn::scaled_dot_product_attention(q, k, v, window).output.to_vector());
  EXPECT_EQ(attn::scaled_dot_product_attention(q, k, v, plain).output.to_vector(),
            attn::scaled_dot_product_attention(q, k, v, unbounded).output.to_vector());
}

TEST(SdpaExact, BottomRightCausalDecodeRowSeesEveryKey) {
  // KV-cache decode: one query against 4 cached keys. Bottom-right alignment
  // lets it see all 4 (= no mask); top-left would let it see only key 0.
  const auto q = pattern<double>({1, 1, 1, 2}, 0.3), k = pattern<double>({1, 1, 4, 2}, 1.0),
             v = pattern<double>({1, 1, 4, 2}, 2.0);
  SdpaOptions<double> br, tl, none;
  br.is_causal = tl.is_causal = true;
  br.causal_alignment = CausalAlignment::BottomRight;
  EXPECT_EQ(attn::scaled_dot_product_attention(q, k, v, br).output.to_vector(),
            attn::scaled_dot_product_attention(q, k, v, none).output.to_vector());
  const auto top = attn::scaled_dot_product_attention(q, k, v, tl).output;
  EXPECT_DOUBLE_EQ(top(0, 0, 0, 0), v(0, 0, 0, 0));  // only key 0: weight exactly 1
  EXPECT_DOUBLE_EQ(top(0, 0, 0, 1), v(0, 0, 0, 1));
}

// ---- properties -----------------------------------------------------------------

TYPED_TEST(SdpaForward, WeightRowsSumToOneAndMatchExpOfScoresMinusLse) {
  using T = TypeParam;
  const auto q = pattern<T>({2, 3, 4, 5}, 0.2), k = pattern<T>({2, 3, 6, 5}, 0.9), v = pattern<T>({2, 3, 6, 2}, 1.7);
  SdpaOptions<T> o;
  o.return_weights = true;
  o.bool_mask = Tensor<bool>({4, 6});
  for (int64_t n = 0; n < 24; ++n) o.bool_mask.flat(n) = (n % 5) != 2;  // every row keeps some keys
  const auto r = attn::scaled_dot_product_attention(q, k, v, o);
  const double scale = 1.0 / std::sqrt(5.0);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < 3; ++h)
      for (int64_t i = 0; i < 4; ++i) {
        double sum = 0;
        for (int64_t j = 0; j < 6; ++j) {
          const double w = r.weights(b, h, i, j);
          EXPECT_GE(w, 0.0);
          sum += w;
          double dot = 0;  // the score, recomputed here in double
          for (int64_t d = 0; d < 5; ++d) dot += double(q(b, h, i, d)) * double(k(b, h, j, d));
          const double want = o.bool_mask(i, j) ? std::exp(scale * dot - double(r.lse(b, h, i))) : 0.0;
          EXPECT_NEAR(w, want, 10 * tol<T>());
        }
        EXPECT_NEAR(sum, 1.0, 10 * tol<T>());
      }
}

TYPED_TEST(SdpaForward, CausalOutputIgnoresLaterTokens) {
  using T = TypeParam;
  for (auto align : {CausalAlignment::TopLeft, CausalAlignment::BottomRight}) {
    const int64_t L = 5;
    auto q = pattern<T>({1, 2, L, 3}, 0.2), k = pattern<T>({1, 2, L, 3}, 0.9), v = pattern<T>({1, 2, L, 2}, 1.7);
    SdpaOptions<T> o;
    o.is_causal = true;
    o.causal_alignment = align;
    const auto before = attn::scaled_dot_product_attention(q, k, v, o).output;
    const int64_t t = 2;  // change every token after position t
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t j = t + 1; j < L; ++j) {
        for (int64_t d = 0; d < 3; ++d) q(0, h, j, d) += 5, k(0, h, j, d) -= 3;
        for (int64_t d = 0; d < 2; ++d) v(0, h, j, d) *= -7;
      }
    const auto after = attn::scaled_dot_product_attention(q, k, v, o).output;
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t i = 0; i <= t; ++i)
        for (int64_t d = 0; d < 2; ++d) EXPECT_EQ(before(0, h, i, d), after(0, h, i, d));
    EXPECT_NE(before(0, 0, L - 1, 0), after(0, 0, L - 1, 0));  // the change did reach later rows
  }
}

TYPED_TEST(SdpaForward, PermutingKeysAndValuesTogetherChangesNothing) {
  using T = TypeParam;
  const auto q = pattern<T>({1, 2, 3, 4}, 0.2), k = pattern<T>({1, 2, 5, 4}, 0.9), v = pattern<T>({1, 2, 5, 3}, 1.7);
  const int64_t perm[5] = {3, 0, 4, 1, 2};
  Tensor<T> kp({1, 2, 5, 4}), vp({1, 2, 5, 3});
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t j = 0; j < 5; ++j) {
      for (int64_t d = 0; d < 4; ++d) kp(0, h, j, d) = k(0, h, perm[j], d);
      for (int64_t d = 0; d < 3; ++d) vp(0, h, j, d) = v(0, h, perm[j], d);
    }
  const auto a = attn::scaled_dot_product_attention(q, k, v);
  const auto b = attn::scaled_dot_product_attention(q, kp, vp);
  expect_all_near(b.output, a.output, 5 * tol<T>(), "output");
  expect_all_near(b.lse, a.lse, 5 * tol<T>(), "lse");
}

// K/V with each head repeated `group` times (torch's repeat_interleave on dim 1).
template <class T>
Tensor<T> repeat_heads(const Tensor<T>& x, int64_t group) {
  Tensor<T> r({x.size(0), x.size(1) * group, x.size(2), x.size(3)});
  for (int64_t b = 0; b < r.size(0); ++b)
    for (int64_t h = 0; h < r.size(1); ++h)
      for (int64_t j = 0; j < r.size(2); ++j)
        for (int64_t d = 0; d < r.size(3); ++d) r(b, h, j, d) = x(b, h / group, j, d);
  return r;
}

TYPED_TEST(SdpaForward, GqaEqualsExplicitlyRepeatedKeysAndValues) {
  using T = TypeParam;
  for (int64_t Hkv : {1, 2}) {  // MQA and GQA
    const auto q = pattern<T>({2, 4, 3, 2}, 0.2), k = pattern<T>({2, Hkv, 5, 2}, 0.9),
               v = pattern<T>({2, Hkv, 5, 3}, 1.7);
    SdpaOptions<T> o;
    o.enable_gqa = true;
    o.is_causal = true;
    o.dropout_p = 0.3;  // dropout is keyed by the query head, so it must agree too
    o.dropout_seed = 11;
    const auto gqa = attn::scaled_dot_product_attention(q, k, v, o);
    const auto rep = attn::scaled_dot_product_attention(q, repeat_heads(k, 4 / Hkv), repeat_heads(v, 4 / Hkv), o);
    EXPECT_EQ(gqa.output.to_vector(), rep.output.to_vector());
    EXPECT_EQ(gqa.lse.to_vector(), rep.lse.to_vector());
  }
}

TYPED_TEST(SdpaForward, DropoutIsDeterministicPerSeedAndScalesKeptWeights) {
  using T = TypeParam;
  const auto q = pattern<T>({1, 4, 64, 2}, 0.2), k = pattern<T>({1, 4, 64, 2}, 0.9),
             v = pattern<T>({1, 4, 64, 2}, 1.7);
  SdpaOptions<T> plain;
  plain.return_weights = true;
  const auto ref = attn::scaled_dot_product_attention(q, k, v, plain);

  SdpaOptions<T> zero = plain;  // p = 0 is no dropout, whatever the seed
  zero.dropout_seed = 1234;
  EXPECT_EQ(attn::scaled_dot_product_attention(q, k, v, zero).output.to_vector(), ref.output.to_vector());

  SdpaOptions<T> drop = plain;
  drop.dropout_p = 0.3;
  drop.dropout_seed = 7;
  const auto a = attn::scaled_dot_product_attention(q, k, v, drop);
  const auto a2 = attn::scaled_dot_product_attention(q, k, v, drop);
  EXPECT_EQ(a.weights.to_vector(), a2.weights.to_vector());
  EXPECT_EQ(a.output.to_vector(), a2.output.to_vector());
  EXPECT_EQ(a.lse.to_vector(), ref.lse.to_vector());  // lse is of the softmax, before dropout

  drop.dropout_seed = 8;
  const auto b = attn::scaled_dot_product_attention(q, k, v, drop);
  int64_t kept = 0, differ = 0;
  const int64_t n = a.weights.numel();
  for (int64_t e = 0; e < n; ++e) {
    const double w = a.weights.flat(e), p = ref.weights.flat(e);
    if (w != 0) {
      ++kept;
      EXPECT_NEAR(w, p / 0.7, 1e-6 * p);  // kept weights are scaled by 1 / (1 − p)
    }
    differ += (w != 0) != (b.weights.flat(e) != 0);
  }
  // 16384 weights: keep fraction 0.7 ± 0.0036 (1σ); 5σ bounds.
  EXPECT_NEAR(double(kept) / double(n), 0.7, 0.018);
  // Two independent masks disagree on 2·0.7·0.3 = 42% of the entries.
  EXPECT_NEAR(double(differ) / double(n), 0.42, 0.02);
  // Each output row is exactly Σ_j weight_ij v_j with the returned weights.
  for (int64_t h = 0; h < 4; ++h)
    for (int64_t i = 0; i < 64; i += 9) {
      double o0 = 0;
      for (int64_t j = 0; j < 64; ++j) o0 += double(a.weights(0, h, i, j)) * double(v(0, h, j, 0));
      EXPECT_NEAR(a.output(0, h, i, 0), o0, 50 * tol<T>());
    }
}

TYPED_TEST(SdpaForward, StridedBlhdInputMatchesContiguous) {
  using T = TypeParam;
  // [B, L, H, D] storage viewed as [B, H, L, D], as a projection usually produces it.
  const auto q_blhd = pattern<T>({2, 3, 2, 4}, 0.2), k_blhd = pattern<T>({2, 5, 2, 4}, 0.9),
             v_blhd = pattern<T>({2, 5, 2, 3}, 1.7);
  const auto q = q_blhd.transpose(1, 2), k = k_blhd.transpose(1, 2), v = v_blhd.transpose(1, 2);
  ASSERT_FALSE(q.is_contiguous());
  SdpaOptions<T> o;
  o.is_causal = true;
  o.causal_alignment = CausalAlignment::BottomRight;
  o.alibi_slopes = Tensor<T>({2}, {0.3, 0.1});
  const auto strided = attn::scaled_dot_product_attention(q, k, v, o);
  const auto contiguous = attn::scaled_dot_product_attention(q.clone(), k.clone(), v.clone(), o);
  EXPECT_TRUE(strided.output.is_contiguous());
  EXPECT_EQ(strided.output.to_vector(), contiguous.output.to_vector());
  EXPECT_EQ(strided.lse.to_vector(), contiguous.lse.to_vector());
}

TEST(SdpaForwardPrecision, FloatAndDoubleAgree) {
  const auto q = pattern<double>({2, 4, 5, 8}, 0.2), k = pattern<double>({2, 2, 7, 8}, 0.9),
             v = pattern<double>({2, 2, 7, 6}, 1.7);
  SdpaOptions<double> od;
  od.enable_gqa = true;
  od.is_causal = true;
  od.causal_alignment = CausalAlignment::BottomRight;
  od.softcap = 2.0;
  od.alibi_slopes = Tensor<double>({4}, {0.5, 0.25, 0.125, 0.0625});
  od.sinks = Tensor<double>({4}, {0.1, -0.2, 0.3, 0.0});
  SdpaOptions<float> of;
  of.enable_gqa = true;
  of.is_causal = true;
  of.causal_alignment = CausalAlignment::BottomRight;
  of.softcap = 2.0;
  of.alibi_slopes = od.alibi_slopes.to<float>();
  of.sinks = od.sinks.to<float>();
  const auto d = attn::scaled_dot_product_attention(q, k, v, od);
  const auto f = attn::scaled_dot_product_attention(q.to<float>(), k.to<float>(), v.to<float>(), of);
  expect_all_near(f.output, d.output, 1e-5, "output");
  expect_all_near(f.lse, d.lse, 1e-5, "lse");
}

// ---- edge cases -------------------------------------------------------------------

TYPED_TEST(SdpaForward, RowThatSeesNoKeyGivesZeroAndMinusInfinityLse) {
  using T = TypeParam;
  const auto q = pattern<T>({1, 2, 3, 2}, 0.2), k = pattern<T>({1, 2, 4, 2}, 0.9), v = pattern<T>({1, 2, 4, 3}, 1.7);
  // Row 1 is fully masked by each kind of mask; rows 0 and 2 see keys.
  SdpaOptions<T> by_bool, by_float, by_window;
  by_bool.bool_mask = Tensor<bool>::full({3, 4}, true);
  for (int64_t j = 0; j < 4; ++j) by_bool.bool_mask(1, j) = false;
  by_float.float_mask = Tensor<T>({3, 4});
  for (int64_t j = 0; j < 4; ++j) by_float.float_mask(1, j) = -std::numeric_limits<T>::infinity();
  by_window.window_left = 0;  // a query sees only key i + diag: row i = 1 with diag 3 → key 4, past the end
  by_window.window_right = 0;
  by_window.causal_alignment = CausalAlignment::BottomRight;
  for (auto* o : {&by_bool, &by_float}) {
    o->return_weights = true;
    const auto r = attn::scaled_dot_product_attention(q, k, v, *o);
    for (int64_t h = 0; h < 2; ++h) {
      EXPECT_EQ(r.lse(0, h, 1), -std::numeric_limits<T>::infinity());
      for (int64_t d = 0; d < 3; ++d) EXPECT_EQ(r.output(0, h, 1, d), T(0));
      for (int64_t j = 0; j < 4; ++j) EXPECT_EQ(r.weights(0, h, 1, j), T(0));
      EXPECT_TRUE(std::isfinite(r.output(0, h, 0, 0)));
      EXPECT_TRUE(std::isfinite(r.lse(0, h, 2)));
    }
  }
  // Bottom-right, Lq = 3, Lk = 4 and a 0-wide window: row i sees key i + 1 only.
  const auto w = attn::scaled_dot_product_attention(q, k, v, by_window);
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t d = 0; d < 3; ++d) {
        // Exactly v on the reference path (weight e^0 / e^0 = 1). The float
        // fast path folds the scale into its exp argument with one fused
        // multiply-subtract, so its weight is 1 within a couple of ulps.
        if (std::is_same_v<T, double>)
          EXPECT_EQ(w.output(0, h, i, d), v(0, h, i + 1, d));
        else
          EXPECT_NEAR(w.output(0, h, i, d), v(0, h, i + 1, d), 3e-7 * std::abs(v(0, h, i + 1, d)));
      }
  // With a sink, a row that sees no key still outputs 0; its lse is the sink.
  by_bool.sinks = Tensor<T>({2}, {0.5, -0.5});
  const auto s = attn::scaled_dot_product_attention(q, k, v, by_bool);
  EXPECT_EQ(s.output(0, 0, 1, 0), T(0));
  EXPECT_EQ(s.lse(0, 0, 1), T(0.5));
  EXPECT_EQ(s.lse(0, 1, 1), T(-0.5));
}

TYPED_TEST(SdpaForward, NanOrInfInAMaskedKeyOrValueDoesNotLeak) {
  using T = TypeParam;
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  const auto q = pattern<T>({1, 1, 3, 2}, 0.2);
  auto k = pattern<T>({1, 1, 4, 2}, 0.9), v = pattern<T>({1, 1, 4, 3}, 1.7);
  // Key 3 is hidden from every row by each mechanism in turn.
  SdpaOptions<T> by_bool, by_float, by_causal, by_window;
  by_bool.bool_mask = Tensor<bool>::full({4}, true);
  by_bool.bool_mask(3) = false;
  by_float.float_mask = Tensor<T>({4});
  by_float.float_mask(3) = -inf;
  by_causal.is_causal = true;  // top-left, Lq = 3: rows 0..2 never see key 3
  by_window.window_right = 0;
  for (const auto* o : {&by_bool, &by_float, &by_causal, &by_window}) {
    auto kc = k.clone(), vc = v.clone();
    const auto clean = attn::scaled_dot_product_attention(q, kc, vc, *o);
    kc(0, 0, 3, 0) = nan;
    kc(0, 0, 3, 1) = inf;
    vc(0, 0, 3, 0) = nan;
    vc(0, 0, 3, 1) = -inf;
    const auto dirty = attn::scaled_dot_product_attention(q, kc, vc, *o);
    EXPECT_EQ(dirty.output.to_vector(), clean.output.to_vector());
    EXPECT_EQ(dirty.lse.to_vector(), clean.lse.to_vector());
  }
}

TYPED_TEST(SdpaForward, EmptySequencesAndBatches) {
  using T = TypeParam;
  {  // Lq = 0: empty output and lse.
    const auto r = attn::scaled_dot_product_attention(Tensor<T>({1, 2, 0, 3}), Tensor<T>({1, 2, 4, 3}),
                                                      Tensor<T>({1, 2, 4, 5}));
    EXPECT_EQ(r.output.shape(), (Shape{1, 2, 0, 5}));
    EXPECT_EQ(r.lse.shape(), (Shape{1, 2, 0}));
  }
  {  // Lk = 0: every row sees nothing.
    SdpaOptions<T> o;
    o.return_weights = true;
    const auto r = attn::scaled_dot_product_attention(pattern<T>({1, 2, 3, 3}, 0.1), Tensor<T>({1, 2, 0, 3}),
                                                      Tensor<T>({1, 2, 0, 5}), o);
    EXPECT_EQ(r.output.shape(), (Shape{1, 2, 3, 5}));
    EXPECT_EQ(r.weights.shape(), (Shape{1, 2, 3, 0}));
    for (T x : r.output.to_vector()) EXPECT_EQ(x, T(0));
    for (T x : r.lse.to_vector()) EXPECT_EQ(x, -std::numeric_limits<T>::infinity());
  }
  {  // B = 0, and return_lse = false leaves lse undefined.
    SdpaOptions<T> o;
    o.return_lse = false;
    const auto r = attn::scaled_dot_product_attention(Tensor<T>({0, 2, 3, 3}), Tensor<T>({0, 2, 4, 3}),
                                                      Tensor<T>({0, 2, 4, 5}), o);
    EXPECT_EQ(r.output.shape(), (Shape{0, 2, 3, 5}));
    EXPECT_FALSE(r.lse.defined());
    EXPECT_FALSE(r.weights.defined());
  }
}

TYPED_TEST(SdpaForward, MasksBroadcastFromEveryLeadingShape) {
  using T = TypeParam;
  const auto q = pattern<T>({2, 2, 3, 2}, 0.2), k = pattern<T>({2, 2, 4, 2}, 0.9), v = pattern<T>({2, 2, 4, 3}, 1.7);
  const auto full = pattern<T>({2, 2, 3, 4}, 3.3);
  // The same mask given as [Lk], [Lq, Lk], [1, 1, Lq, Lk] equals the full [B, Hq, Lq, Lk] one.
  Tensor<T> row({4}, {0.5, -1.0, 0.0, 2.0});
  Tensor<T> row_full({2, 2, 3, 4});
  for (int64_t n = 0; n < row_full.numel(); ++n) row_full.flat(n) = row.flat(n % 4);
  SdpaOptions<T> a, b;
  a.float_mask = row;
  b.float_mask = row_full;
  EXPECT_EQ(attn::scaled_dot_product_attention(q, k, v, a).output.to_vector(),
            attn::scaled_dot_product_attention(q, k, v, b).output.to_vector());
  // A [B, 1, Lq, Lk] mask is shared by the heads.
  const auto per_batch = full.slice(1, 0, 1);
  Tensor<T> per_batch_full({2, 2, 3, 4});
  for (int64_t bb = 0; bb < 2; ++bb)
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 4; ++j) per_batch_full(bb, h, i, j) = per_batch(bb, 0, i, j);
  a.float_mask = per_batch;
  b.float_mask = per_batch_full;
  EXPECT_EQ(attn::scaled_dot_product_attention(q, k, v, a).output.to_vector(),
            attn::scaled_dot_product_attention(q, k, v, b).output.to_vector());
}

TYPED_TEST(SdpaForward, AlibiSlopesPerBatchEqualPerHeadWhenRowsAgree) {
  using T = TypeParam;
  const auto q = pattern<T>({2, 2, 3, 2}, 0.2), k = pattern<T>({2, 2, 4, 2}, 0.9), v = pattern<T>({2, 2, 4, 3}, 1.7);
  SdpaOptions<T> per_head, per_batch, other;
  per_head.alibi_slopes = Tensor<T>({2}, {0.5, 0.25});
  per_batch.alibi_slopes = Tensor<T>({2, 2}, {0.5, 0.25, 0.5, 0.25});
  other.alibi_slopes = Tensor<T>({2, 2}, {0.5, 0.25, 0.1, 0.25});
  const auto a = attn::scaled_dot_product_attention(q, k, v, per_head).output;
  EXPECT_EQ(a.to_vector(), attn::scaled_dot_product_attention(q, k, v, per_batch).output.to_vector());
  const auto c = attn::scaled_dot_product_attention(q, k, v, other).output;
  EXPECT_EQ(a(0, 0, 0, 0), c(0, 0, 0, 0));  // batch 0 unchanged
  EXPECT_NE(a(1, 0, 0, 0), c(1, 0, 0, 0));  // batch 1, head 0 uses its own slope
}

// ---- argument validation ------------------------------------------------------------

TEST(SdpaValidation, ShapesAreCheckedAndNamed) {
  using attn::ShapeError;
  using attn::ValueError;
  const Tensor<double> q({2, 4, 3, 8}), k({2, 4, 5, 8}), v({2, 4, 5, 6});
  auto run = [&](const Tensor<double>& qq, const Tensor<double>& kk, const Tensor<double>& vv,
                 SdpaOptions<double> o = {}) { return [=] { attn::scaled_dot_product_attention(qq, kk, vv, o); }; };
  expect_error<ShapeError>(run(Tensor<double>({4, 3, 8}), k, v), {"query", "[4, 3, 8]", "rank 4"});
  expect_error<ShapeError>(run(q, Tensor<double>({2, 4, 5}), v), {"key", "[2, 4, 5]"});
  expect_error<ShapeError>(run(q, k, Tensor<double>()), {"value", "undefined"});
  expect_error<ShapeError>(run(q, Tensor<double>({3, 4, 5, 8}), Tensor<double>({3, 4, 5, 6})),
                           {"key", "[3, 4, 5, 8]", "batch"});
  expect_error<ShapeError>(run(q, Tensor<double>({2, 4, 5, 7}), v), {"key", "[2, 4, 5, 7]", "Dk"});
  expect_error<ShapeError>(run(q, k, Tensor<double>({2, 4, 6, 6})), {"value", "[2, 4, 6, 6]", "Lk"});
  expect_error<ShapeError>(run(q, k, Tensor<double>({1, 4, 5, 6})), {"value", "[1, 4, 5, 6]"});
  SdpaOptions<double> gqa;
  gqa.enable_gqa = true;
  expect_error<ShapeError>(run(q, Tensor<double>({2, 3, 5, 8}), Tensor<double>({2, 3, 5, 6}), gqa),
                           {"heads", "4", "3", "multiple"});
  expect_error<ValueError>(run(q, Tensor<double>({2, 2, 5, 8}), Tensor<double>({2, 2, 5, 6})),
                           {"enable_gqa", "4", "2"});
  EXPECT_NO_THROW(run(q, Tensor<double>({2, 2, 5, 8}), Tensor<double>({2, 2, 5, 6}), gqa)());

  SdpaOptions<double> o;
  o.bool_mask = Tensor<bool>({4, 4});
  expect_error<ShapeError>(run(q, k, v, o), {"bool_mask", "[4, 4]", "[2, 4, 3, 5]"});
  o = {};
  o.float_mask = Tensor<double>({3, 2, 4, 3, 5});
  expect_error<ShapeError>(run(q, k, v, o), {"float_mask", "[3, 2, 4, 3, 5]"});
  o = {};
  o.alibi_slopes = Tensor<double>({3});
  expect_error<ShapeError>(run(q, k, v, o), {"alibi_slopes", "[3]", "[4]", "[2, 4]"});
  o = {};
  o.sinks = Tensor<double>({2, 4});
  expect_error<ShapeError>(run(q, k, v, o), {"sinks", "[2, 4]", "[4]"});
}

TEST(SdpaValidation, ValuesAndCombinationsAreCheckedAndNamed) {
  using attn::ValueError;
  const auto q = pattern<double>({1, 2, 3, 4}, 0.1), k = pattern<double>({1, 2, 3, 4}, 0.2),
             v = pattern<double>({1, 2, 3, 4}, 0.3);
  auto run = [&](SdpaOptions<double> o) { return [=] { attn::scaled_dot_product_attention(q, k, v, o); }; };
  SdpaOptions<double> o;
  o.is_causal = true;
  o.bool_mask = Tensor<bool>::full({3, 3}, true);
  expect_error<ValueError>(run(o), {"is_causal", "bool_mask"});
  o.bool_mask = {};
  o.float_mask = Tensor<double>({3, 3});
  expect_error<ValueError>(run(o), {"is_causal", "float_mask"});
  o = {};
  o.bool_mask = Tensor<bool>::full({3, 3}, true);
  o.float_mask = Tensor<double>({3, 3});
  expect_error<ValueError>(run(o), {"bool_mask", "float_mask"});
  for (double p : {-0.1, 1.0, 1.5, std::nan("")}) {
    o = {};
    o.dropout_p = p;
    expect_error<ValueError>(run(o), {"dropout_p", "[0, 1)"});
  }
  for (double s : {0.0, -1.0, std::nan(""), kInf}) {
    o = {};
    o.scale = s;
    expect_error<ValueError>(run(o), {"scale"});
  }
  for (double c : {-0.5, std::nan(""), kInf}) {
    o = {};
    o.softcap = c;
    expect_error<ValueError>(run(o), {"softcap"});
  }
  o = {};
  o.window_left = -2;
  expect_error<ValueError>(run(o), {"window_left", "-2"});
  o = {};
  o.window_right = -5;
  expect_error<ValueError>(run(o), {"window_right", "-5"});
}

// A sink is a logit: finite, or −∞ for "no sink". +∞ and NaN were accepted
// and left the fast path's rows that see no key NaN (e^{∞ − ∞}) where the
// reference gave 0 (found by fuzz/sdpa_fuzzer.cpp); an infinite ALiBi slope
// made ∞ · 0 on the diagonal. Both are refused, on both paths and in decode.
TEST(SdpaValidation, SinksAndSlopesMustBeUsableNumbers) {
  using attn::ValueError;
  for (const auto backend : {attn::SdpaBackend::Reference, attn::SdpaBackend::Fast}) {
    const auto q = pattern<float>({2, 2, 3, 4}, 0.1), k = pattern<float>({2, 2, 3, 4}, 0.2),
               v = pattern<float>({2, 2, 3, 4}, 0.3);
    auto run = [&](SdpaOptions<float> o) {
      o.backend = backend;
      return [=] { attn::scaled_dot_product_attention(q, k, v, o); };
    };
    for (float bad : {kInfF, std::nanf("")}) {
      SdpaOptions<float> o;
      o.sinks = Tensor<float>({2}, {0.5f, bad});
      expect_error<ValueError>(run(o), {"sinks[1]", "finite logit or -inf"});
    }
    for (float bad : {kInfF, -kInfF, std::nanf("")}) {
      SdpaOptions<float> o;
      o.alibi_slopes = Tensor<float>({2, 2}, {0.1f, 0.2f, 0.3f, bad});
      expect_error<ValueError>(run(o), {"alibi_slopes", "batch 1, head 1", "finite slopes"});
    }
  }
}

TEST(SdpaExact, MinusInfinitySinkIsNoSinkOnBothPaths) {
  // Row 0 of a window-0 causal pattern sees key 0; with window_left 0 and a
  // bottom-right shift every row sees exactly its own key, and row -1... a
  // plain mask that hides every key of row 1 gives a row that sees no key: 0.
  for (const auto backend : {attn::SdpaBackend::Reference, attn::SdpaBackend::Fast}) {
    const auto q = pattern<float>({1, 2, 3, 4}, 0.1), k = pattern<float>({1, 2, 3, 4}, 0.2),
               v = pattern<float>({1, 2, 3, 4}, 0.3);
    SdpaOptions<float> with_sink, without;
    with_sink.backend = without.backend = backend;
    Tensor<bool> mask = Tensor<bool>::full({3, 3}, true);
    for (int64_t j = 0; j < 3; ++j) mask(1, j) = false;  // query 1 sees no key
    with_sink.bool_mask = without.bool_mask = mask;
    with_sink.sinks = Tensor<float>({2}, {-kInfF, -kInfF});
    const auto a = attn::scaled_dot_product_attention(q, k, v, with_sink);
    const auto b = attn::scaled_dot_product_attention(q, k, v, without);
    EXPECT_EQ(a.output.to_vector(), b.output.to_vector());
    EXPECT_EQ(a.lse.to_vector(), b.lse.to_vector());
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t d = 0; d < 4; ++d) EXPECT_EQ(a.output(0, h, 1, d), 0.0f);
  }
}

}  // namespace
