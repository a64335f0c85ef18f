// The public scaled_dot_product_attention's choice of implementation
// (src/sdpa.cpp): which calls the fast path takes, that asking for it where
// it cannot run is a clear error, and that both paths give the same answer
// through the public API (the detailed agreement is tests/cpu/).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "attn/errors.hpp"
#include "attn/sdpa.hpp"
#include "resource_limits.hpp"

namespace {

using attn::SdpaBackend;
using attn::SdpaOptions;
using attn::Tensor;

template <class T>
Tensor<T> ramp(attn::Shape shape, double step) {
  Tensor<T> t(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.flat(i) = static_cast<T>(std::sin(step * static_cast<double>(i + 1)));
  return t;
}

TEST(SdpaDispatch, FloatGoesFastDoubleGoesReference) {
  // 2·33·40·(16 + 16) = 84480 multiply-adds: past both small-problem cut-offs.
  const auto qf = ramp<float>({1, 2, 33, 16}, 0.3), kf = ramp<float>({1, 2, 40, 16}, 0.7);
  const auto qd = ramp<double>({1, 2, 33, 16}, 0.3), kd = ramp<double>({1, 2, 40, 16}, 0.7);
  EXPECT_EQ(attn::sdpa_selected_backend(qf, kf, kf, SdpaOptions<float>{}), SdpaBackend::Fast);
  EXPECT_EQ(attn::sdpa_selected_backend(qf, kf, kf, SdpaOptions<float>{}, /*backward=*/true), SdpaBackend::Fast);
  EXPECT_EQ(attn::sdpa_selected_backend(qd, kd, kd, SdpaOptions<double>{}), SdpaBackend::Reference);
  SdpaOptions<float> ref;
  ref.backend = SdpaBackend::Reference;
  EXPECT_EQ(attn::sdpa_selected_backend(qf, kf, kf, ref), SdpaBackend::Reference);
  SdpaOptions<float> weights;  // returned weights: the fast path's second pass
  weights.return_weights = true;
  EXPECT_EQ(attn::sdpa_selected_backend(qf, kf, kf, weights), SdpaBackend::Fast);
}

TEST(SdpaDispatch, TinyProblemsGoReferenceUnlessFastIsAsked) {
  // 1·1·6·6·(3 + 3) = 216 multiply-adds: the notes' example.
  const auto x = ramp<float>({1, 1, 6, 3}, 0.3);
  SdpaOptions<float> o;
  EXPECT_EQ(attn::sdpa_selected_backend(x, x, x, o), SdpaBackend::Reference);
  EXPECT_EQ(attn::sdpa_selected_backend(x, x, x, o, true), SdpaBackend::Reference);
  o.backend = SdpaBackend::Fast;
  EXPECT_EQ(attn::sdpa_selected_backend(x, x, x, o), SdpaBackend::Fast);
  // Between the cut-offs: 1·2·8·8·32 = 4096 goes fast forward, reference backward.
  const auto y = ramp<float>({1, 2, 8, 16}, 0.3);
  EXPECT_EQ(attn::sdpa_selected_backend(y, y, y, SdpaOptions<float>{}), SdpaBackend::Fast);
  EXPECT_EQ(attn::sdpa_selected_backend(y, y, y, SdpaOptions<float>{}, true), SdpaBackend::Reference);
}

TEST(SdpaDispatch, BroadcastMaskGradientGoesFastInBackward) {
  const auto q = ramp<float>({2, 2, 30, 16}, 0.3), k = ramp<float>({2, 2, 60, 16}, 0.7);
  SdpaOptions<float> o;
  o.float_mask = ramp<float>({30, 60}, 0.11);  // broadcast over batch and heads
  EXPECT_EQ(attn::sdpa_selected_backend(q, k, k, o), SdpaBackend::Fast);
  EXPECT_EQ(attn::sdpa_selected_backend(q, k, k, o, true, /*need_float_mask_grad=*/true), SdpaBackend::Fast);
  EXPECT_EQ(attn::sdpa_selected_backend(q, k, k, o, true, /*need_float_mask_grad=*/false), SdpaBackend::Fast);
}

TEST(SdpaDispatch, ForcingFastWhereItCannotRunIsAValueErrorSayingWhy) {
  const auto qd = ramp<double>({1, 1, 2, 3}, 0.3);
  SdpaOptions<double> od;
  od.backend = SdpaBackend::Fast;
  try {
    attn::scaled_dot_product_attention(qd, qd, qd, od);
    FAIL() << "expected ValueError";
  } catch (const attn::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("float32"), std::string::npos) << e.what();
  }
  // A key axis longer than the kernels' int32 indices (a stride-0 view: no memory).
  const auto qf = ramp<float>({1, 1, 2, 3}, 0.3);
  const auto long_k = ramp<float>({1, 1, 1, 3}, 0.7).expand({1, 1, (int64_t{1} << 30) + 1, 3});
  SdpaOptions<float> of;
  of.backend = SdpaBackend::Fast;
  try {
    attn::scaled_dot_product_attention(qf, long_k, long_k, of);
    FAIL() << "expected ValueError";
  } catch (const attn::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("2^30"), std::string::npos) << e.what();
  }
}

TEST(SdpaDispatch, InvalidArgumentsAreReportedBeforeAnyPathIsChosen) {
  // The same ShapeError whichever backend is asked for.
  const auto q = ramp<float>({1, 2, 3, 4}, 0.3), k = ramp<float>({1, 2, 3, 5}, 0.7);
  for (SdpaBackend b : {SdpaBackend::Auto, SdpaBackend::Reference, SdpaBackend::Fast}) {
    SdpaOptions<float> o;
    o.backend = b;
    EXPECT_THROW(attn::scaled_dot_product_attention(q, k, k, o), attn::ShapeError) << attn::to_string(b);
  }
}

TEST(SdpaDispatch, BothPathsAgreeThroughThePublicApi) {
  const auto q = ramp<float>({2, 4, 19, 8}, 0.37), k = ramp<float>({2, 2, 23, 8}, 0.71),
             v = ramp<float>({2, 2, 23, 6}, 0.53), dout = ramp<float>({2, 4, 19, 6}, 0.19);
  ASSERT_EQ(attn::sdpa_selected_backend(q, k, v, SdpaOptions<float>{.enable_gqa = true}, true), SdpaBackend::Fast);
  SdpaOptions<float> o;
  o.enable_gqa = true;
  o.is_causal = true;
  o.causal_alignment = attn::CausalAlignment::BottomRight;
  o.softcap = 5.0;
  SdpaOptions<float> r = o;
  r.backend = SdpaBackend::Reference;
  const auto fast = attn::scaled_dot_product_attention(q, k, v, o);
  const auto ref = attn::scaled_dot_product_attention(q, k, v, r);
  for (int64_t i = 0; i < fast.output.numel(); ++i) EXPECT_NEAR(fast.output.flat(i), ref.output.flat(i), 5e-6);
  for (int64_t i = 0; i < fast.lse.numel(); ++i) EXPECT_NEAR(fast.lse.flat(i), ref.lse.flat(i), 5e-6);
  const auto gf = attn::scaled_dot_product_attention_backward(dout, q, k, v, fast.output, fast.lse, o);
  const auto gr = attn::scaled_dot_product_attention_backward(dout, q, k, v, ref.output, ref.lse, r);
  for (int64_t i = 0; i < gf.d_query.numel(); ++i) EXPECT_NEAR(gf.d_query.flat(i), gr.d_query.flat(i), 2e-5);
  for (int64_t i = 0; i < gf.d_key.numel(); ++i) EXPECT_NEAR(gf.d_key.flat(i), gr.d_key.flat(i), 2e-5);
  for (int64_t i = 0; i < gf.d_value.numel(); ++i) EXPECT_NEAR(gf.d_value.flat(i), gr.d_value.flat(i), 2e-5);
}

TEST(SdpaDispatch, ReturnLseFalseGivesNoLseOnEitherPath) {
  const auto q = ramp<float>({1, 1, 3, 4}, 0.3);
  for (SdpaBackend b : {SdpaBackend::Fast, SdpaBackend::Reference}) {
    SdpaOptions<float> o;
    o.backend = b;
    o.return_lse = false;
    const auto r = attn::scaled_dot_product_attention(q, q, q, o);
    EXPECT_TRUE(r.output.defined());
    EXPECT_FALSE(r.lse.defined()) << attn::to_string(b);
  }
}

// ---- sizes: empty, too large, refused (issue 17) ------------------------------------
// Views of stride 0 (expand) make huge shapes cheap to pass in; what SDPA
// does with them must be an empty result, a typed error, or (for memory the
// system refuses) a ResourceError — never a wrapped size and a segfault.

// Expects E whose message contains `fragment`.
template <class E, class F>
void expect_error(F&& f, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one with '" << fragment << "'";
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(SdpaSizes, AZeroDimensionGivesAnEmptyResultWhateverTheOtherSizes) {
  // As PyTorch: an output with no elements is a correct answer, even when
  // the other sizes are huge (these inputs are views of one element).
  const int64_t big = int64_t{1} << 20;
  const auto q = Tensor<float>({1, 1, 1, 8}).expand({0, big, big, 8});
  const auto k = Tensor<float>({1, 1, 1, 8}).expand({0, big, big, 8});
  for (SdpaBackend backend : {SdpaBackend::Reference, SdpaBackend::Fast}) {
    SdpaOptions<float> o;
    o.backend = backend;
    o.return_lse = true;
    const auto r = attn::scaled_dot_product_attention(q, k, k, o);
    EXPECT_EQ(r.output.shape(), (attn::Shape{0, big, big, 8}));
    EXPECT_EQ(r.lse.shape(), (attn::Shape{0, big, big}));
    const auto g = attn::scaled_dot_product_attention_backward(r.output, q, k, k, r.output, r.lse, o);
    EXPECT_EQ(g.d_query.numel(), 0);
  }
  // No key at all: every row sees nothing, output 0 (the library's rule).
  const auto r = attn::scaled_dot_product_attention(ramp<float>({1, 2, 3, 4}, 0.1), Tensor<float>({1, 2, 0, 4}),
                                                    Tensor<float>({1, 2, 0, 5}));
  EXPECT_EQ(r.output.shape(), (attn::Shape{1, 2, 3, 5}));
  for (float x : r.output.to_vector()) EXPECT_EQ(x, 0.0f);
}

TEST(SdpaSizes, AnOutputWhoseSizeDoesNotFitIsAShapeError) {
  // query [1, 1, 2^40, 1] and value [1, 1, 1, 2^40] are fine views; the
  // output [1, 1, 2^40, 2^40] has 2^80 elements.
  const int64_t t40 = int64_t{1} << 40;
  const auto q = Tensor<float>({1, 1, 1, 1}).expand({1, 1, t40, 1});
  const auto k = Tensor<float>({1, 1, 1, 1});
  const auto v = Tensor<float>({1, 1, 1, 1}).expand({1, 1, 1, t40});
  expect_error<attn::ShapeError>([&] { (void)attn::scaled_dot_product_attention(q, k, v); },
                                 "[1, 1, 1099511627776, 1099511627776]");
}

TEST(SdpaSizes, AWorkspaceThatCannotExistIsAResourceErrorBeforeAnyAllocation) {
  // Keys [1, 1, 2^29, 2^33] (a view of one element) and one query: the
  // output is one number, but the fast path would pack 2^62 floats of keys.
  const auto q = Tensor<float>({1, 1, 1, 1}).expand({1, 1, 1, int64_t{1} << 33});
  const auto k = Tensor<float>({1, 1, 1, 1}).expand({1, 1, int64_t{1} << 29, int64_t{1} << 33});
  const auto v = Tensor<float>({1, 1, 1, 1}).expand({1, 1, int64_t{1} << 29, 1});
  SdpaOptions<float> o;
  o.backend = SdpaBackend::Fast;
  expect_error<attn::ResourceError>([&] { (void)attn::scaled_dot_product_attention(q, k, v, o); },
                                    "key [1, 1, 536870912, 8589934592]");
}

TEST(SdpaSizes, AnOutputTheSystemRefusesIsAResourceErrorAndLaterCallsWork) {
  if (attn::testing::kUnderAddressSanitizer)
    GTEST_SKIP() << "AddressSanitizer's operator new aborts on a failed allocation instead of throwing";
  // Weights [1, 1, 2^23, 2^23] = 2^46 floats: more than a process can address.
  const auto q = Tensor<float>({1, 1, 1, 4}).expand({1, 1, int64_t{1} << 23, 4});
  for (SdpaBackend backend : {SdpaBackend::Reference, SdpaBackend::Fast}) {
    SdpaOptions<float> o;
    o.backend = backend;
    o.return_weights = true;
    expect_error<attn::ResourceError>([&] { (void)attn::scaled_dot_product_attention(q, q, q, o); },
                                      "[1, 1, 8388608, 8388608]");
  }
  const auto small = ramp<float>({1, 2, 33, 16}, 0.3);
  const auto r = attn::scaled_dot_product_attention(small, small, small);
  EXPECT_TRUE(std::isfinite(r.output(0, 1, 32, 15)));
}

}  // namespace
