// Golden test of scaled_dot_product_attention and its backward against PyTorch.
//
// tests/golden/sdpa_golden.json holds 200+ configurations made by
// tests/golden/make_sdpa_golden.py (see the README beside it): inputs, the
// options of SdpaOptions, and the expected output, lse and gradients computed
// by torch in float64. Each configuration is one parameterised test, named
// after it, run twice:
//   Double: inputs as stored; every value within 1e-10·max(1, |expected|).
//   Float:  inputs cast to float; output and weights within 1e-5 absolute,
//           lse within 1e-5·max(1, |expected|) (it grows with the scores),
//           gradients within 1e-4·max(1, |expected|).
// A −∞ in lse (a row that sees no key) must be −∞ exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iomanip>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "attn/sdpa.hpp"
#include "cpu/flash_attention.hpp"  // flash_supports_backward: which configs the fast path takes

namespace {

using nlohmann::json;

// ---- the data, loaded once ------------------------------------------------------

struct GoldenFile {
  json configs = json::array();
  std::string error;  // why loading failed, empty if it did not
};

const GoldenFile& golden() {
  static const GoldenFile file = [] {
    GoldenFile g;
    const std::string path = std::string(ATTN_GOLDEN_DIR) + "/sdpa_golden.json";
    std::ifstream in(path);
    if (!in) {
      g.error = "cannot open " + path;
      return g;
    }
    try {
      json doc = json::parse(in);
      g.configs = doc.at("configs");
    } catch (const std::exception& e) {
      g.error = path + ": " + e.what();
    }
    return g;
  }();
  return file;
}

const json& config(int index) { return golden().configs.at(static_cast<size_t>(index)); }

std::vector<int> config_indices() {
  std::vector<int> ids(golden().configs.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int>(i);
  return ids;
}

// Non-finite numbers are stored as the strings "nan", "inf", "-inf".
double number(const json& x) {
  if (x.is_string()) {
    const std::string s = x.get<std::string>();
    if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
    throw std::runtime_error("sdpa_golden.json: unexpected string number '" + s + "'");
  }
  return x.get<double>();
}

attn::Shape shape_of(const json& t) { return t.at("shape").get<attn::Shape>(); }

// {"shape": [...], "data": [...]} (row-major) -> a contiguous Tensor<T>.
template <class T>
attn::Tensor<T> read_tensor(const json& t) {
  attn::Tensor<T> out(shape_of(t));
  const json& data = t.at("data");
  if (static_cast<int64_t>(data.size()) != out.numel())
    throw std::runtime_error("sdpa_golden.json: " + std::to_string(data.size()) + " values for shape " +
                             attn::shape_str(out.shape()));
  for (int64_t i = 0; i < out.numel(); ++i) {
    const double v = number(data[static_cast<size_t>(i)]);
    if constexpr (std::is_same_v<T, bool>)
      out.flat(i) = v != 0;
    else
      out.flat(i) = static_cast<T>(v);
  }
  return out;
}

// The "bshd" layout: the same values stored as [B, L, H, D] and handed over as
// the [B, H, L, D] view .transpose(1, 2), so the library sees non-contiguous strides.
template <class T>
attn::Tensor<T> in_layout(const attn::Tensor<T>& bhld, const std::string& layout) {
  if (layout == "bhsd") return bhld;
  const attn::Shape& s = bhld.shape();
  attn::Tensor<T> blhd({s[0], s[2], s[1], s[3]});
  attn::Tensor<T> view = blhd.transpose(1, 2);
  view.copy_(bhld);
  return view;
}

template <class T>
attn::SdpaOptions<T> read_options(const json& o) {
  attn::SdpaOptions<T> opt;
  opt.is_causal = o.at("is_causal").get<bool>();
  const std::string align = o.at("causal_alignment").get<std::string>();
  opt.causal_alignment =
      align == "bottom_right" ? attn::CausalAlignment::BottomRight : attn::CausalAlignment::TopLeft;
  opt.window_left = o.at("window_left").get<int64_t>();
  opt.window_right = o.at("window_right").get<int64_t>();
  if (!o.at("scale").is_null()) opt.scale = number(o.at("scale"));
  opt.enable_gqa = o.at("enable_gqa").get<bool>();
  opt.softcap = number(o.at("softcap"));
  if (!o.at("bool_mask").is_null()) opt.bool_mask = read_tensor<bool>(o.at("bool_mask"));
  if (!o.at("float_mask").is_null()) opt.float_mask = read_tensor<T>(o.at("float_mask"));
  if (!o.at("alibi_slopes").is_null()) opt.alibi_slopes = read_tensor<T>(o.at("alibi_slopes"));
  if (!o.at("sinks").is_null()) opt.sinks = read_tensor<T>(o.at("sinks"));
  // Dropout is not golden-tested (torch's RNG is not ours): dropout_p stays 0.
  return opt;
}

// ---- comparison -----------------------------------------------------------------

// |got − expected| <= tol, or <= tol·max(1, |expected|) when `relative`
// (absolute near 0, relative for large values); a non-finite expected value
// (−∞ lse) must be matched exactly.
struct Tolerance {
  double tol;
  bool relative;  // tol·max(1, |expected|) rather than tol
};

std::string index_str(int64_t flat, const attn::Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return attn::shape_str(idx);
}

template <class T>
void expect_matches(const std::string& what, const attn::Tensor<T>& got, const json& expected, Tolerance tol) {
  const attn::Shape want_shape = shape_of(expected);
  ASSERT_TRUE(got.defined()) << what << " was not returned";
  ASSERT_EQ(got.shape(), want_shape) << what << " has shape " << attn::shape_str(got.shape()) << ", expected "
                                     << attn::shape_str(want_shape);
  const json& data = expected.at("data");
  int64_t bad = 0;
  double worst = 0;
  std::ostringstream first;
  first << std::setprecision(17);
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double want = number(data[static_cast<size_t>(i)]);
    const double have = static_cast<double>(got.flat(i));
    bool ok;
    double err = 0;
    if (!std::isfinite(want)) {
      ok = have == want;  // −∞ lse of a row that sees no key
    } else {
      err = std::abs(have - want);  // NaN fails the comparison below
      const double bound = tol.relative ? tol.tol * std::max(1.0, std::abs(want)) : tol.tol;
      ok = err <= bound;
      if (std::isfinite(err)) worst = std::max(worst, err);
    }
    if (!ok && bad++ < 4)
      first << "\n  " << what << index_str(i, want_shape) << " = " << have << ", expected " << want;
  }
  if (bad > 0)
    ADD_FAILURE() << what << ": " << bad << " of " << got.numel() << " values off (largest finite error " << worst
                  << ", tolerance " << tol.tol << (tol.relative ? "·max(1, |expected|)" : " absolute") << ")"
                  << first.str() << (bad > 4 ? "\n  ..." : "");
}

// ---- one configuration, in precision T -----------------------------------------------

template <class T>
void run_config(const json& c, Tolerance out_tol, Tolerance lse_tol, Tolerance grad_tol,
                attn::SdpaBackend backend = attn::SdpaBackend::Auto) {
  const std::string layout = c.at("layout").get<std::string>();
  const json& in = c.at("inputs");
  const json& want = c.at("expected");
  // Inputs are read in double and cast, as the brief for the float run says.
  const attn::Tensor<T> q = in_layout(read_tensor<double>(in.at("query")).template to<T>(), layout);
  const attn::Tensor<T> k = in_layout(read_tensor<double>(in.at("key")).template to<T>(), layout);
  const attn::Tensor<T> v = in_layout(read_tensor<double>(in.at("value")).template to<T>(), layout);
  const attn::Tensor<T> d_out = in_layout(read_tensor<double>(in.at("grad_output")).template to<T>(), layout);
  attn::SdpaOptions<T> opt = read_options<T>(c.at("options"));
  opt.return_weights = want.contains("weights");
  opt.return_lse = true;
  const bool need_mask_grad = want.contains("d_float_mask");
  // SdpaBackend::Fast means "the fast path wherever it runs": these configs
  // are tiny, so Auto would send most of them to the reference loops.
  opt.backend = backend;
  if constexpr (std::is_same_v<T, float>)
    if (backend == attn::SdpaBackend::Fast)
      EXPECT_EQ(attn::sdpa_selected_backend(q, k, v, opt), opt.backend);

  const attn::SdpaResult<T> res = attn::scaled_dot_product_attention(q, k, v, opt);
  expect_matches("output", res.output, want.at("output"), out_tol);
  expect_matches("lse", res.lse, want.at("lse"), lse_tol);
  if (opt.return_weights) expect_matches("weights", res.weights, want.at("weights"), out_tol);

  if (backend == attn::SdpaBackend::Fast) {
    opt.backend = attn::SdpaBackend::Fast;
    if constexpr (std::is_same_v<T, float>)
      if (!attn::cpu::flash_supports_backward(q, k, v, opt, need_mask_grad)) opt.backend = attn::SdpaBackend::Reference;
  }
  const attn::SdpaGradients<T> g =
      attn::scaled_dot_product_attention_backward(d_out, q, k, v, res.output, res.lse, opt, need_mask_grad);
  expect_matches("d_query", g.d_query, want.at("d_query"), grad_tol);
  expect_matches("d_key", g.d_key, want.at("d_key"), grad_tol);
  expect_matches("d_value", g.d_value, want.at("d_value"), grad_tol);
  if (need_mask_grad) expect_matches("d_float_mask", g.d_float_mask, want.at("d_float_mask"), grad_tol);
  if (want.contains("d_sinks")) expect_matches("d_sinks", g.d_sinks, want.at("d_sinks"), grad_tol);
}

// ---- the tests ------------------------------------------------------------------

class SdpaGoldenTest : public ::testing::TestWithParam<int> {};

TEST_P(SdpaGoldenTest, Double) {
  const Tolerance tight{1e-10, true};
  run_config<double>(config(GetParam()), tight, tight, tight);
}

// Float runs twice: on the fast path wherever it applies (everything but
// returned weights and some mask gradients) and on the reference path, so
// both are held to PyTorch independently.
TEST_P(SdpaGoldenTest, Float) {
  run_config<float>(config(GetParam()), Tolerance{1e-5, false}, Tolerance{1e-5, true}, Tolerance{1e-4, true},
                    attn::SdpaBackend::Fast);
}

TEST_P(SdpaGoldenTest, FloatReference) {
  run_config<float>(config(GetParam()), Tolerance{1e-5, false}, Tolerance{1e-5, true}, Tolerance{1e-4, true},
                    attn::SdpaBackend::Reference);
}

INSTANTIATE_TEST_SUITE_P(SdpaGolden, SdpaGoldenTest, ::testing::ValuesIn(config_indices()),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return config(info.param).at("name").get<std::string>();
                         });
// If the file is missing there are no parameters; SdpaGoldenData fails instead.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(SdpaGoldenTest);

// The data itself: present, and covering every option (a regenerated file that
// silently dropped one would otherwise pass).
TEST(SdpaGoldenData, LoadsAndCoversEveryOption) {
  ASSERT_TRUE(golden().error.empty()) << golden().error;
  const json& configs = golden().configs;
  EXPECT_GE(configs.size(), 200u);
  int causal_tl = 0, causal_br = 0, window = 0, bool_mask = 0, float_mask = 0, alibi = 0, softcap = 0, sinks = 0,
      scale = 0, gqa = 0, empty = 0, no_key_row = 0, poisoned = 0, bshd = 0, weights = 0, mask_grad = 0;
  for (const json& c : configs) {
    const json& o = c.at("options");
    const json& s = c.at("shape");
    const bool br = o.at("causal_alignment") == "bottom_right";
    causal_tl += o.at("is_causal").get<bool>() && !br;
    causal_br += o.at("is_causal").get<bool>() && br;
    window += o.at("window_left").get<int64_t>() >= 0 || o.at("window_right").get<int64_t>() >= 0;
    bool_mask += !o.at("bool_mask").is_null();
    float_mask += !o.at("float_mask").is_null();
    alibi += !o.at("alibi_slopes").is_null();
    softcap += number(o.at("softcap")) > 0;
    sinks += !o.at("sinks").is_null();
    scale += !o.at("scale").is_null();
    gqa += s.at("Hq") != s.at("Hkv");
    empty += s.at("Lq") == 0 || s.at("Lk") == 0;
    for (const json& x : c.at("expected").at("lse").at("data"))
      if (x.is_string() && x == "-inf") {
        ++no_key_row;
        break;
      }
    poisoned += c.at("poisoned").get<bool>();
    bshd += c.at("layout") == "bshd";
    weights += c.at("expected").contains("weights");
    mask_grad += c.at("expected").contains("d_float_mask");
  }
  for (auto [name, n] : {std::pair{"causal top-left", causal_tl}, {"causal bottom-right", causal_br},
                         {"window", window}, {"bool mask", bool_mask}, {"float mask", float_mask},
                         {"ALiBi", alibi}, {"softcap", softcap}, {"sinks", sinks}, {"custom scale", scale},
                         {"GQA", gqa}, {"empty Lq/Lk", empty}, {"row that sees no key", no_key_row},
                         {"NaN/Inf in hidden keys", poisoned}, {"[B, L, H, D] layout", bshd},
                         {"return_weights", weights}, {"d_float_mask", mask_grad}})
    EXPECT_GE(n, 5) << "too few golden configs with " << name;
}

}  // namespace
