// Shared helpers of the ops tests: THE tolerance table (rtol per dtype, atol scaled with the
// reduction length), tensors from double values, output poisoning and element-wise comparison.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "flagstone/ops/ops.h"

namespace flagstone::ops::testing {

struct Tolerance {
  double rtol = 0;
  double atol = 0;
};

// The one place tolerances live. rtol covers a couple of units in the last place of the output
// dtype (a kernel computing in f32 and the float64 reference may round to neighbours); atol
// grows with sqrt(reduction_length), the typical growth of rounding error in a sum.
Tolerance tolerance(DType dtype, int64_t reduction_length = 1);

// A tensor of `dtype` holding `values` (converted as the reference converts), on `device`.
Tensor make_tensor(const std::vector<double>& values, const Shape& shape, DType dtype,
                   const Device& device = Device());
// Poisons every element: all-ones bytes are NaN in every float type and -1 / max in integers,
// so an element a kernel forgets to write fails the comparison.
void poison(Tensor& t);
// Empty when `actual` matches `expected` (same shape and dtype; NaN where NaN, infinities
// exact, integers exact, floats within `tol`); otherwise a description of the first mismatch.
std::string compare(const Tensor& actual, const Tensor& expected, const Tolerance& tol);

// Random test data. The seed comes from FLAGSTONE_TEST_SEED when set, else from the clock, and
// is printed by the tests so a failure can be replayed.
uint64_t test_seed();
struct Rng {
  std::mt19937_64 engine;
  explicit Rng(uint64_t seed) : engine(seed) {}
  double uniform(double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(engine);
  }
  int64_t integer(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(engine);
  }
};
// Random values for `dtype`: floats uniform in [lo, hi), integers uniform in [lo, hi], bools
// half true. When `strided` the tensor is a non-contiguous view (every other element of a
// larger buffer along the last dim, or a transposed 2-d view).
Tensor random_tensor(Rng& rng, const Shape& shape, DType dtype, const Device& device,
                     double lo = -3.0, double hi = 3.0, bool strided = false);

}  // namespace flagstone::ops::testing
