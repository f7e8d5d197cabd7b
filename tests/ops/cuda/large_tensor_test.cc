// Tensors past 2^31 elements on the cuda provider, one op per family: elementwise (add),
// row reduction (rms_norm), index (embedding) and copy (cast, contiguous of a view). Inputs are
// integer-valued patterns whose results are exact in the dtype, checked at the start and past the
// 2^31 boundary against values computed here. Skips when the GPU has too little memory.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/ops_test_util.h"

namespace flagstone::ops::testing {
namespace {

constexpr int64_t kBig = (int64_t{1} << 31) + 4096 + 24;  // not a multiple of any pack size

std::optional<Device> big_device(uint64_t needed_bytes) {
  for (const Device& dev : runtime::devices_of("cuda"))
    if (dev.info().memory_bytes >= needed_bytes) return dev;
  return std::nullopt;
}

// bf16 holding (i % period) - offset, exact for the small integers used here.
Tensor pattern(int64_t n, int period, int offset, const Device& dev) {
  std::vector<uint16_t> host(static_cast<size_t>(n));
  for (int p = 0; p < period && p < n; ++p) host[p] = BFloat16(static_cast<float>(p - offset)).bits;
  // The pattern repeats with the period, so doubling copies of the filled prefix fill the rest.
  for (int64_t len = period; len < n; len *= 2)
    std::memcpy(host.data() + len, host.data(), static_cast<size_t>(std::min(len, n - len)) * 2);
  return Tensor::from_host(host.data(), host.size() * 2, {n}, DType::kBF16, dev);
}

std::vector<double> values(const Tensor& t, int64_t start, int64_t count) {
  return t.flatten().narrow(0, start, count).to(Device()).to_double_vector();
}

TEST(CudaLargeTensor, AddPastTwoToThe31) {
  auto dev = big_device(uint64_t{40} << 30);
  if (!dev) GTEST_SKIP() << "no CUDA device with 40 GiB";
  Tensor a = pattern(kBig, 251, 100, *dev), b = pattern(kBig, 13, 6, *dev);
  Tensor out = add(a, b);
  for (int64_t start : {int64_t{0}, (int64_t{1} << 31) - 7, kBig - 1000}) {
    auto got = values(out, start, 1000 < kBig - start ? 1000 : kBig - start);
    for (size_t j = 0; j < got.size(); ++j) {
      int64_t i = start + static_cast<int64_t>(j);
      ASSERT_EQ(got[j], static_cast<double>((i % 251 - 100) + (i % 13 - 6))) << "element " << i;
    }
  }
  // Broadcast (strided path) over the same count: a [rows, 2^k] + b [2^k].
  Tensor rowwise =
      add(a.narrow(0, 0, int64_t{1} << 31).view({int64_t{1} << 21, 1024}), b.narrow(0, 0, 1024));
  auto tail = values(rowwise, (int64_t{1} << 31) - 1024, 1024);
  for (int64_t j = 0; j < 1024; ++j) {
    int64_t i = (int64_t{1} << 31) - 1024 + j;
    ASSERT_EQ(tail[j], static_cast<double>((i % 251 - 100) + (j % 13 - 6))) << "element " << i;
  }
}

TEST(CudaLargeTensor, RmsNormRowsPastTwoToThe31) {
  auto dev = big_device(uint64_t{40} << 30);
  if (!dev) GTEST_SKIP() << "no CUDA device with 40 GiB";
  int64_t n = 1024, rows = kBig / n + 1;
  Tensor x = pattern(rows * n, 7, 3, *dev).view({rows, n});
  Tensor y = rms_norm(x, Tensor(), 0.0);
  // Row r holds (r*n + j) % 7 - 3; its mean square is computed here in double.
  for (int64_t r : {int64_t{0}, rows - 1}) {
    double ss = 0;
    for (int64_t j = 0; j < n; ++j) {
      double v = static_cast<double>((r * n + j) % 7 - 3);
      ss += v * v;
    }
    double scale = 1.0 / std::sqrt(ss / static_cast<double>(n));
    auto got = values(y, r * n, n);
    for (int64_t j = 0; j < n; ++j) {
      double want = static_cast<double>((r * n + j) % 7 - 3) * scale;
      ASSERT_NEAR(got[j], want, std::abs(want) * 1e-2 + 1e-6) << "row " << r << " col " << j;
    }
  }
}

TEST(CudaLargeTensor, EmbeddingOutputPastTwoToThe31) {
  auto dev = big_device(uint64_t{40} << 30);
  if (!dev) GTEST_SKIP() << "no CUDA device with 40 GiB";
  int64_t rows = 1000, dim = 2048, count = kBig / dim + 2;
  Tensor table = pattern(rows * dim, 97, 48, *dev).view({rows, dim});
  std::vector<int64_t> idx(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) idx[i] = (i * 7919) % rows;
  Tensor out = embedding(Tensor::from_vector(idx, {count}, *dev), table);
  for (int64_t i : {int64_t{0}, count - 1}) {
    auto got = values(out, i * dim, dim);
    for (int64_t j = 0; j < dim; ++j)
      ASSERT_EQ(got[j], static_cast<double>((idx[i] * dim + j) % 97 - 48)) << "row " << i;
  }
}

TEST(CudaLargeTensor, CastAndCopyPastTwoToThe31) {
  auto dev = big_device(uint64_t{40} << 30);
  if (!dev) GTEST_SKIP() << "no CUDA device with 40 GiB";
  Tensor a = pattern(kBig, 211, 105, *dev);
  Tensor f = cast(a, DType::kF32);
  auto got = values(f, kBig - 500, 500);
  for (int64_t j = 0; j < 500; ++j)
    ASSERT_EQ(got[j], static_cast<double>((kBig - 500 + j) % 211 - 105));
  // A transposed view made contiguous: element (i, j) of the [cols, rows] result is a[j*cols+i].
  int64_t cols = 2048, rows = kBig / cols;
  Tensor t = contiguous(a.narrow(0, 0, rows * cols).view({rows, cols}).t());
  auto last = values(t, (cols - 1) * rows, rows > 300 ? 300 : rows);
  for (int64_t j = 0; j < static_cast<int64_t>(last.size()); ++j)
    ASSERT_EQ(last[j], static_cast<double>((j * cols + cols - 1) % 211 - 105)) << "row " << j;
}

}  // namespace
}  // namespace flagstone::ops::testing
