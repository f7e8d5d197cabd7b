// Views checked against index arithmetic: every element of a view must be the element that
// the view's definition names in the base tensor.
#include <gtest/gtest.h>

#include <numeric>

#include "flagstone/runtime/tensor.h"

namespace flagstone {
namespace {

Tensor arange_tensor(const Shape& shape) {
  std::vector<int32_t> values(static_cast<size_t>(shape_numel(shape)));
  std::iota(values.begin(), values.end(), 0);
  return Tensor::from_vector(values, shape);
}

TEST(Views, SliceWithStepAndNegativeBounds) {
  Tensor t = arange_tensor({10});
  EXPECT_EQ(t.slice(0, 1, 8, 3).to_vector<int32_t>(), (std::vector<int32_t>{1, 4, 7}));
  EXPECT_EQ(t.slice(0, -3, 100).to_vector<int32_t>(), (std::vector<int32_t>{7, 8, 9}));
  EXPECT_EQ(t.slice(0, 5, 2).numel(), 0);
  EXPECT_THROW(t.slice(0, 0, 5, 0), Error);
  EXPECT_THROW(t.slice(1, 0, 5), Error);
}

TEST(Views, SelectNarrowSqueezeUnsqueeze) {
  Tensor t = arange_tensor({3, 4});
  EXPECT_EQ(t.select(1, -1).to_vector<int32_t>(), (std::vector<int32_t>{3, 7, 11}));
  EXPECT_EQ(t.narrow(0, 1, 2).select(1, 0).to_vector<int32_t>(), (std::vector<int32_t>{4, 8}));
  EXPECT_THROW(t.narrow(0, 2, 2), Error);
  EXPECT_THROW(t.select(0, 3), Error);
  Tensor u = t.unsqueeze(1);
  EXPECT_EQ(u.shape(), (Shape{3, 1, 4}));
  EXPECT_EQ(u.squeeze(1).shape(), (Shape{3, 4}));
  EXPECT_EQ(t.unsqueeze(-1).shape(), (Shape{3, 4, 1}));
  EXPECT_EQ(t.squeeze(0).shape(), (Shape{3, 4}));  // size 3: unchanged
}

TEST(Views, PermuteMatchesIndexArithmetic) {
  Tensor t = arange_tensor({2, 3, 4});
  Tensor p = t.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  auto got = p.contiguous().to_vector<int32_t>();
  size_t k = 0;
  for (int c = 0; c < 4; ++c)
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 3; ++b) ASSERT_EQ(got[k++], (a * 3 + b) * 4 + c);
  EXPECT_THROW(t.permute({0, 0, 1}), Error);
  EXPECT_THROW(t.permute({0, 1}), Error);
  EXPECT_EQ(t.transpose(0, 2).shape(), (Shape{4, 3, 2}));
}

TEST(Views, ViewOnlyWhereStridesAllow) {
  Tensor t = arange_tensor({4, 6});
  Tensor v = t.view({2, 2, 3, 2});
  EXPECT_EQ(v.strides(), (Shape{12, 6, 2, 1}));
  EXPECT_EQ(t.view({-1}).numel(), 24);
  EXPECT_THROW(t.view({5, 5}), Error);
  EXPECT_THROW(t.view({-1, -1}), Error);
  Tensor tt = t.t();  // non-contiguous
  EXPECT_THROW(tt.view({24}), Error);
  Tensor r = tt.reshape({24});  // copies
  auto got = r.to_vector<int32_t>();
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 4; ++j) ASSERT_EQ(got[i * 4 + j], j * 6 + i);
  // Splitting a dim of a transposed tensor is still a view.
  Tensor split = tt.view({2, 3, 4});
  EXPECT_EQ(split.strides(), (Shape{3, 1, 6}));
  Tensor scalar = Tensor::from_vector(std::vector<float>{5}, {});
  EXPECT_EQ(scalar.view({1, 1}).shape(), (Shape{1, 1}));
}

TEST(Views, ExpandBroadcastsWithZeroStrides) {
  Tensor col = arange_tensor({3, 1});
  Tensor e = col.expand({2, 3, 4});
  EXPECT_EQ(e.strides(), (Shape{0, 1, 0}));
  auto got = e.contiguous().to_vector<int32_t>();
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 3; ++b)
      for (int c = 0; c < 4; ++c) ASSERT_EQ(got[(a * 3 + b) * 4 + c], b);
  EXPECT_EQ(col.expand({-1, 5}).shape(), (Shape{3, 5}));
  EXPECT_THROW(col.expand({4, 4}), Error);
  EXPECT_THROW(col.expand({3}), Error);
}

TEST(Views, ViewsShareStorage) {
  Tensor t = arange_tensor({2, 3});
  Tensor row = t.select(0, 1);
  row.copy_from_host(std::vector<int32_t>{7, 8, 9}.data(), 3 * sizeof(int32_t));
  EXPECT_EQ(t.to_vector<int32_t>(), (std::vector<int32_t>{0, 1, 2, 7, 8, 9}));
}

TEST(Views, DtypeReinterpretation) {
  Tensor t = Tensor::from_vector(std::vector<float>{1.0f}, {1});
  EXPECT_EQ(t.view_as_dtype(DType::kI32).to_vector<int32_t>()[0], 0x3F800000);
  EXPECT_THROW(t.view_as_dtype(DType::kF16), Error);
}

}  // namespace
}  // namespace flagstone
