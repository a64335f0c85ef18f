#include "attn/tensor.hpp"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

#include "resource_limits.hpp"

using attn::Tensor;

TEST(Tensor, ContiguousLayoutAndAccess) {
  Tensor<float> t({2, 3}, {0, 1, 2, 3, 4, 5});
  EXPECT_EQ(t.strides(), (attn::Shape{3, 1}));
  EXPECT_EQ(t(1, 2), 5.0f);
  EXPECT_EQ(t.at({0, 1}), 1.0f);
  EXPECT_TRUE(t.is_contiguous());
}

TEST(Tensor, TransposeIsAViewThatSharesStorage) {
  Tensor<float> t({2, 3}, {0, 1, 2, 3, 4, 5});
  auto tt = t.transpose(0, 1);
  EXPECT_EQ(tt.shape(), (attn::Shape{3, 2}));
  EXPECT_FALSE(tt.is_contiguous());
  EXPECT_EQ(tt(2, 1), 5.0f);
  tt(0, 1) = 42.0f;
  EXPECT_EQ(t(1, 0), 42.0f);
  EXPECT_EQ(tt.contiguous().to_vector(), (std::vector<float>{0, 42, 1, 4, 2, 5}));
}

TEST(Tensor, ExpandBroadcastsWithZeroStride) {
  Tensor<bool> m({3, 1}, {true, false, true});
  auto e = m.expand({2, 4, 3, 5});
  EXPECT_EQ(e.stride(0), 0);
  EXPECT_EQ(e.stride(3), 0);
  EXPECT_FALSE(e(1, 3, 1, 4));
  EXPECT_TRUE(e(1, 3, 2, 4));
  EXPECT_THROW(Tensor<bool>({2, 3}).expand({4, 3, 3}), attn::ShapeError);
}

TEST(Tensor, SliceSelectReshape) {
  Tensor<double> t({2, 3, 4});
  for (int64_t i = 0; i < t.numel(); ++i) t.flat(i) = static_cast<double>(i);
  auto s = t.slice(2, 1, 3);
  EXPECT_EQ(s.shape(), (attn::Shape{2, 3, 2}));
  EXPECT_EQ(s(1, 2, 1), 22.0);
  auto r = t.select(0, 1).reshape({-1});
  EXPECT_EQ(r.shape(), (attn::Shape{12}));
  EXPECT_EQ(r(0), 12.0);
  EXPECT_THROW(t.reshape({5, 5}), attn::ShapeError);
  EXPECT_THROW(t.at({0, 0, 4}), attn::ShapeError);
  EXPECT_THROW(t.slice(1, 2, 4), attn::ShapeError);
}

TEST(Tensor, ValueCountMustMatchShape) {
  EXPECT_THROW(Tensor<float>({2, 2}, {1, 2, 3}), attn::ShapeError);
  EXPECT_THROW(Tensor<float>({2, -1}), attn::ShapeError);
}

TEST(Tensor, EmptyShapesAreAllowed) {
  Tensor<float> t({0, 4});
  EXPECT_EQ(t.numel(), 0);
  EXPECT_TRUE(t.defined());
  EXPECT_TRUE(t.to_vector().empty());
}

// ---- sizes that do not fit, memory the system refuses (issue 17) -------------------

namespace {

// Expects E whose message contains every fragment.
template <class E, class F>
void expect_error(F&& f, std::initializer_list<std::string> fragments) {
  try {
    f();
    ADD_FAILURE() << "no exception";
  } catch (const E& e) {
    for (const auto& frag : fragments)
      EXPECT_NE(std::string(e.what()).find(frag), std::string::npos) << "'" << frag << "' not in: " << e.what();
  }
}

}  // namespace

TEST(TensorSizes, ElementCountBeyond64BitsIsAShapeErrorNamingTheShape) {
  // 2^32 · 2^32 = 2^64 wrapped to 0: the tensor used to report 0 elements
  // and segfault on the first access.
  const int64_t big = int64_t{1} << 32;
  expect_error<attn::ShapeError>([&] { Tensor<float> t({big, big}); }, {"[4294967296, 4294967296]", "2^63"});
  expect_error<attn::ShapeError>([&] { (void)Tensor<float>::uninitialized({big, big, 2}); }, {"[4294967296, 4294967296, 2]"});
  expect_error<attn::ShapeError>([&] { (void)attn::numel_of({big, big}); }, {"[4294967296, 4294967296]"});
}

TEST(TensorSizes, ZeroSizeWithHugeOthersNeedsStridesThatFit) {
  // 0 elements, but the strides of [0, 2^40, 2^40] would overflow (PyTorch
  // refuses it too); [0, 2^20, 2^20] is a fine empty tensor.
  const int64_t t40 = int64_t{1} << 40, t20 = int64_t{1} << 20;
  expect_error<attn::ShapeError>([&] { Tensor<float> t({0, t40, t40}); }, {"[0, 1099511627776, 1099511627776]"});
  Tensor<float> empty({0, t20, t20});
  EXPECT_EQ(empty.numel(), 0);
  EXPECT_EQ(empty.stride(0), t20 * t20);
}

TEST(TensorSizes, ByteCountBeyond64BitsIsAShapeError) {
  // 2^61 doubles: the count fits in int64_t, the 2^64 bytes do not.
  expect_error<attn::ShapeError>([] { Tensor<double> t({int64_t{1} << 61}); }, {"[2305843009213693952]", "bytes"});
}

TEST(TensorSizes, ViewsAndReshapesMustFitToo) {
  // A broadcast view costs no memory, but every loop over it counts its elements.
  const int64_t big = int64_t{1} << 32;
  Tensor<float> one({1, 1});
  expect_error<attn::ShapeError>([&] { (void)one.expand({big, big}); }, {"[4294967296, 4294967296]"});
  EXPECT_EQ(one.expand({big, 2}).numel(), 2 * big);  // fits: a fine view
  Tensor<float> t({4});
  expect_error<attn::ShapeError>([&] { (void)t.reshape({big, big, 0, -1}); }, {"reshape"});
  expect_error<attn::ShapeError>([&] { (void)t.reshape({-3, 4}); }, {"reshape"});
  expect_error<attn::ShapeError>([&] { (void)Tensor<float>::from_blob(nullptr, {0, int64_t{1} << 40, int64_t{1} << 40}); },
                                 {"[0, 1099511627776, 1099511627776]"});
}

TEST(TensorSizes, AFailedAllocationIsAResourceErrorAndTheLibraryStaysUsable) {
  if (attn::testing::kUnderAddressSanitizer)
    GTEST_SKIP() << "AddressSanitizer's operator new aborts on a failed allocation instead of throwing";
  // 2^46 floats = 256 TiB: more than the 128 TiB a process can address, so
  // the allocation fails whatever the machine's memory and overcommit policy.
  expect_error<attn::ResourceError>([] { Tensor<float> t({int64_t{1} << 46}); },
                                    {"[70368744177664]", "281474976710656 bytes", "out of memory"});
  expect_error<attn::ResourceError>([] { (void)Tensor<float>::uninitialized({int64_t{1} << 23, int64_t{1} << 23}); },
                                    {"[8388608, 8388608]"});
  Tensor<float> fine({3, 4});  // and the next allocation works
  fine(2, 3) = 1.0f;
  EXPECT_EQ(fine.to_vector().back(), 1.0f);
}

// An empty buffer's data() may be null (std::vector, numpy); a view of it is
// an empty tensor, not an undefined one ("not given"). Found by
// fuzz/sdpa_fuzzer.cpp: bfloat16 SDPA widens into a std::vector viewed with
// from_blob, and an empty sequence made it throw "query has shape (undefined)".
TEST(Tensor, FromBlobOfAnEmptyNullBufferIsDefined) {
  const Tensor<float> t = Tensor<float>::from_blob(nullptr, {2, 0, 3});
  EXPECT_TRUE(t.defined());
  EXPECT_EQ(t.shape(), (attn::Shape{2, 0, 3}));
  EXPECT_EQ(t.numel(), 0);
  EXPECT_TRUE(t.to_vector().empty());
  float x = 1.0f;
  EXPECT_TRUE(Tensor<float>::from_blob(&x, {0}).defined());
}
