// The native cuda multinomial against the float64 reference: the same seeded draws (indices
// equal exactly) with and without replacement, [n] and [batch, n] weights with zeros, every
// float dtype; and the reference's errors (naming the row) for bad weights. Skips without a
// CUDA device.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>

#include "ops/ops_test_util.h"

namespace flagstone::ops::testing {
namespace {

const Implementation* native_multinomial() {
  for (const Implementation* i : Registry::global().implementations("multinomial", "cuda"))
    if (i->provider == Provider::kNative) return i;
  return nullptr;
}

TEST(CudaMultinomial, MatchesReferenceDraws) {
  auto devices = runtime::devices_of("cuda");
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  const Implementation* impl = native_multinomial();
  ASSERT_NE(impl, nullptr);
  Rng rng(test_seed());
  const Device& dev = devices[0];
  struct Shape2 {
    Shape shape;
    int64_t samples;
    bool replacement;
  };
  // Rows longer than a block (1024 threads) exercise the chunked scan; 3000 draws from 5 rows of
  // 2000 without replacement empty most of each row.
  for (const Shape2& c : std::vector<Shape2>{{{5, 37}, 1, false},
                                             {{5, 37}, 9, false},
                                             {{5, 37}, 64, true},
                                             {{41}, 41, false},
                                             {{3, 2500}, 200, true},
                                             {{2, 2000}, 1500, false}}) {
    int64_t n = c.shape.back(), rows = c.shape.size() == 2 ? c.shape[0] : 1;
    std::vector<double> w(static_cast<size_t>(rows * n));
    for (auto& x : w) x = rng.uniform(0, 1) < 0.2 ? 0.0 : rng.uniform(0, 4);
    for (int64_t r = 0; r < rows; ++r) w[static_cast<size_t>(r * n)] = 0.5;  // one nonzero at least
    if (!c.replacement)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < std::min(n, c.samples + 1); ++j)
          if (w[static_cast<size_t>(r * n + j)] == 0) w[static_cast<size_t>(r * n + j)] = 1;
    for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + std::to_string(rows) + "x" +
                   std::to_string(n) + " samples " + std::to_string(c.samples) +
                   (c.replacement ? " with" : " without") + " replacement");
      Tensor x = make_tensor(w, c.shape, dtype, dev);
      Attrs attrs{{"num_samples", c.samples},
                  {"replacement", c.replacement},
                  {"seed", rng.integer(0, 1 << 30)},
                  {"offset", 3}};
      std::vector<Tensor> out;
      call_implementation(*impl, {x}, attrs, out);
      auto want = call_reference("multinomial", {x}, attrs);
      EXPECT_EQ(out[0].to(Device()).to_double_vector(), want[0].to_double_vector());
    }
  }
}

TEST(CudaMultinomial, BadWeightsRaiseNamingTheRow) {
  auto devices = runtime::devices_of("cuda");
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  const Implementation* impl = native_multinomial();
  ASSERT_NE(impl, nullptr);
  const Device& dev = devices[0];
  struct Bad {
    std::vector<double> w;
    Attrs attrs;
    std::string expect;
  };
  double inf = std::numeric_limits<double>::infinity();
  for (const Bad& b : std::vector<Bad>{
           {{1, 2, 3, 1, -1, 3}, {{"num_samples", 1}}, "row 1 has a negative, infinite or NaN"},
           {{1, 2, 3, inf, 1, 3}, {{"num_samples", 1}}, "row 1 has a negative, infinite or NaN"},
           {{0, 0, 0, 1, 1, 1}, {{"num_samples", 1}}, "row 0 sums to zero"},
           {{1, 1, 1, 0, 1, 0}, {{"num_samples", 2}}, "row 1 has fewer than 2 nonzero"}}) {
    Tensor x = make_tensor(b.w, {2, 3}, DType::kF32, dev);
    std::vector<Tensor> out;
    try {
      call_implementation(*impl, {x}, b.attrs, out);
      ADD_FAILURE() << "no error, expected: " << b.expect;
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(b.expect), std::string::npos) << e.what();
    }
    // The reference raises the same error.
    EXPECT_THROW(call_reference("multinomial", {x}, b.attrs), Error);
  }
}

}  // namespace
}  // namespace flagstone::ops::testing
