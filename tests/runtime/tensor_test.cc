// Tensor construction, copies between devices and layouts, host transfers, printing and the
// errors of misuse, on every device found.
#include <gtest/gtest.h>

#include <numeric>
#include <random>

#include "flagstone/runtime/tensor.h"
#include "support/devices.h"

namespace flagstone {
namespace {

class TensorOnDevice : public ::testing::TestWithParam<Device> {};

std::vector<float> iota_floats(size_t n, float start = 0) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

TEST_P(TensorOnDevice, RoundTripsThroughTheDevice) {
  std::vector<float> values = iota_floats(2 * 3 * 5, -7.5f);
  Tensor t = Tensor::from_vector(values, {2, 3, 5}, GetParam());
  EXPECT_EQ(t.device(), GetParam());
  EXPECT_EQ(t.shape(), (Shape{2, 3, 5}));
  EXPECT_EQ(t.strides(), (Shape{15, 5, 1}));
  EXPECT_EQ(t.nbytes(), values.size() * sizeof(float));
  EXPECT_EQ(t.to_vector<float>(), values);
  Tensor back = t.to(Device());
  EXPECT_EQ(back.to_vector<float>(), values);
}

TEST_P(TensorOnDevice, CloneIsIndependent) {
  Tensor t = Tensor::from_vector(std::vector<int64_t>{1, 2, 3, 4}, {4}, GetParam());
  Tensor c = t.clone();
  t.copy_from_host(std::vector<int64_t>{9, 9, 9, 9}.data(), 4 * sizeof(int64_t));
  EXPECT_EQ(c.to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 3, 4}));
}

TEST_P(TensorOnDevice, CopiesBetweenLayoutsAndDevices) {
  std::mt19937 rng(42);
  std::uniform_real_distribution<double> dist(-1, 1);
  std::vector<double> values(4 * 6 * 3);
  for (auto& v : values) v = dist(rng);
  Tensor cpu = Tensor::from_vector(values, {4, 6, 3});
  Tensor dev = Tensor::empty({3, 4, 6}, DType::kF64, GetParam()).permute({1, 2, 0});
  dev.copy_(cpu);  // cpu contiguous -> device non-contiguous
  EXPECT_EQ(dev.to_vector<double>(), values);
  Tensor other = Tensor::empty({4, 6, 3}, DType::kF64, Device());
  other.copy_(dev.slice(0, 0, 4));  // device non-contiguous -> cpu
  EXPECT_EQ(other.to_vector<double>(), values);
}

TEST_P(TensorOnDevice, FillBytesPoisonsOnlyTheView) {
  Tensor t = Tensor::from_vector(std::vector<uint8_t>(12, 1), {3, 4}, GetParam());
  t.slice(1, 1, 3).fill_bytes_(0xFF);
  EXPECT_EQ(t.to_vector<uint8_t>(),
            (std::vector<uint8_t>{1, 255, 255, 1, 1, 255, 255, 1, 1, 255, 255, 1}));
}

TEST_P(TensorOnDevice, HalfTypesKeepBits) {
  std::vector<Half> h = {Half(1.0f), Half(-0.5f), Half::from_bits(0x7E00), Half(65504.0f)};
  Tensor t = Tensor::from_vector(h, {4}, GetParam());
  auto back = t.to_vector<Half>();
  for (size_t i = 0; i < h.size(); ++i) EXPECT_EQ(back[i].bits, h[i].bits);
  auto as_double = t.to_double_vector();
  EXPECT_EQ(as_double[1], -0.5);
  EXPECT_TRUE(std::isnan(as_double[2]));
}

TEST_P(TensorOnDevice, QuantizedTensorsMoveAsBlocks) {
  std::vector<uint8_t> blocks(2 * 34);
  std::iota(blocks.begin(), blocks.end(), 0);
  Tensor t = Tensor::from_host(blocks.data(), blocks.size(), {1, 64}, DType::kQ8_0, GetParam());
  EXPECT_EQ(t.nbytes(), 68u);
  Tensor back = t.to(Device());
  std::vector<uint8_t> got(68);
  back.copy_to_host(got.data(), got.size());
  EXPECT_EQ(got, blocks);
  EXPECT_THROW(t.slice(1, 0, 16), Error);  // would split a block
  EXPECT_NO_THROW(t.slice(1, 32, 64));
  EXPECT_THROW(Tensor::empty({3, 31}, DType::kQ4_0, GetParam()), Error);
}

TEST_P(TensorOnDevice, ZeroSizedTensors) {
  Tensor t = Tensor::empty({0, 5}, DType::kF32, GetParam());
  EXPECT_EQ(t.numel(), 0);
  EXPECT_TRUE(t.to_vector<float>().empty());
  EXPECT_EQ(t.contiguous().numel(), 0);
  EXPECT_EQ(t.to(Device()).numel(), 0);
}

FLAGSTONE_INSTANTIATE_ON_ALL_DEVICES(TensorOnDevice);

TEST(Tensor, PrintsLikePyTorch) {
  Tensor t = Tensor::from_vector(std::vector<float>{1.5f, -2.25f, 3.0f, 0.125f}, {2, 2});
  EXPECT_EQ(t.to_string(),
            "tensor([[1.5000, -2.2500],\n        [3.0000, 0.1250]], dtype=f32, "
            "device=cpu:0)");
  Tensor i = Tensor::from_vector(std::vector<int32_t>{1, 2, 3}, {3});
  EXPECT_EQ(i.to_string(), "tensor([1, 2, 3], dtype=i32, device=cpu:0)");
  Tensor whole = Tensor::from_vector(std::vector<float>{1, 2}, {2});
  EXPECT_EQ(whole.to_string(), "tensor([1., 2.], dtype=f32, device=cpu:0)");
  Tensor big = Tensor::from_vector(iota_floats(2000), {2000});
  EXPECT_EQ(big.to_string(),
            "tensor([0., 1., 2., ..., 1997., 1998., 1999.], dtype=f32, "
            "device=cpu:0)");
  Tensor b = Tensor::from_vector(std::vector<uint8_t>{1, 0}, {2}).view_as_dtype(DType::kBool);
  EXPECT_EQ(b.to_string(), "tensor([True, False], dtype=bool, device=cpu:0)");
}

TEST(Tensor, MisuseNamesTheTensor) {
  Tensor t = Tensor::from_vector(iota_floats(6), {2, 3});
  try {
    t.to_vector<int32_t>();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("f32"), std::string::npos) << e.what();
  }
  try {
    t.copy_(Tensor::empty({3, 2}, DType::kF32));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("f32[2, 3]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(t.copy_from_host(nullptr, 5), Error);
  EXPECT_THROW(Tensor::empty({-1, 2}, DType::kF32), Error);
  EXPECT_THROW(Tensor().contiguous(), Error);
  Tensor row = Tensor::from_vector(iota_floats(3), {1, 3});
  // A destination whose elements overlap (stride 0) cannot be written element by element.
  EXPECT_THROW(row.expand({4, 3}).copy_(Tensor::empty({4, 3}, DType::kF32)), Error);
}

TEST(Tensor, FromBufferChecksBounds) {
  Buffer buffer = Buffer::allocate(Device(), 40);
  EXPECT_NO_THROW(Tensor::from_buffer(buffer, {2, 5}, {5, 1}, 0, DType::kF32));
  EXPECT_NO_THROW(Tensor::from_buffer(buffer, {3, 3}, {3, 1}, 1, DType::kF32));
  EXPECT_THROW(Tensor::from_buffer(buffer, {3, 3}, {3, 1}, 2, DType::kF32), Error);
  EXPECT_THROW(Tensor::from_buffer(buffer, {2, 5}, {5, 1}, 0, DType::kF64), Error);
  EXPECT_THROW(Tensor::from_buffer(buffer, {2, 5}, {5}, 0, DType::kF32), Error);
}

}  // namespace
}  // namespace flagstone
