#include "attn/tensor.hpp"

#include <gtest/gtest.h>

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
