// Helpers for the float64 reference implementations: tensors read into plain host vectors in
// logical order, results written back with PyTorch's conversion rules, broadcast index maps.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "flagstone/runtime/tensor.h"

namespace flagstone::ops::ref {

// Every element in row-major order as double / as int64 (integers exactly; floats truncated).
std::vector<double> load(const Tensor& t);
std::vector<int64_t> load_i64(const Tensor& t);
// Writes `values` (row-major) into `out`, converting as torch does: round to nearest even for
// f16/bf16, truncation and wrap-around for integers, nonzero (and NaN) -> true for bool.
void store(const Tensor& out, const std::vector<double>& values);
void store_i64(const Tensor& out, const std::vector<int64_t>& values);
// Wraps an int64 to the range of an integer dtype, as a C++ conversion would.
int64_t wrap_to(DType dtype, int64_t value);
// The value `v` would have after a round trip through `dtype` (for intermediate roundings).
double round_to(DType dtype, double v);

// Maps each linear index of `out_shape` to the linear (row-major) index of a tensor of `shape`
// broadcast to it.
class BroadcastIndex {
 public:
  BroadcastIndex(const Shape& shape, const Shape& out_shape);
  int64_t operator()(int64_t out_index) const;

 private:
  Shape out_shape_;
  Shape strides_;  // 0 for broadcast dims
};

// Row-major strides of `shape`.
Shape row_major_strides(const Shape& shape);

// Iterates over all "outer" positions of `shape` with dims `dims` taken as the inner
// (reduced) set: calls body(outer_index, indices of the inner elements in row-major order).
// Used by reductions over arbitrary dims and by dim-wise ops (softmax, cumsum, sort).
struct ReductionPlan {
  ReductionPlan(const Shape& shape, const std::vector<int>& dims);
  int64_t outer = 1;  // number of output positions
  int64_t inner = 1;  // number of elements reduced per position
  // Linear input indices of output position `o`, inner element order row-major over `dims`.
  std::vector<int64_t> indices(int64_t o) const;

 private:
  Shape shape_, strides_;
  std::vector<int> kept_, reduced_;
};

}  // namespace flagstone::ops::ref
