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

namespace flagstone::ops::ref {
// Raw element bytes in logical order, for data movement that must copy values exactly.
std::vector<std::byte> load_raw(const Tensor& t);
void store_raw(const Tensor& out, const std::vector<std::byte>& bytes);
// The bytes of one element of `dtype` holding `value` (converted as store() does).
std::vector<std::byte> encode(DType dtype, double value);
// out[i] = src[map[i]] element-wise, or `fill` where map[i] < 0.
std::vector<std::byte> gather_elements(const std::vector<std::byte>& src, size_t element_bytes,
                                       const std::vector<int64_t>& map,
                                       const std::vector<std::byte>& fill = {});
}  // namespace flagstone::ops::ref

namespace flagstone::ops::ref {
inline Shape coords_of(int64_t index, const Shape& shape) {
  Shape c(shape.size());
  for (size_t i = shape.size(); i-- > 0;) {
    c[i] = index % shape[i];
    index /= shape[i];
  }
  return c;
}

inline int64_t index_of(const Shape& coords, const Shape& strides) {
  int64_t i = 0;
  for (size_t d = 0; d < coords.size(); ++d) i += coords[d] * strides[d];
  return i;
}

// out[i] = x[src(coords of i)], or `fill` where src returns -1: exact for every dtype.
template <typename F>
void map_copy(const Tensor& x, const Tensor& out, F src, double fill = 0) {
  auto raw = load_raw(x);
  std::vector<int64_t> map(static_cast<size_t>(out.numel()));
  for (int64_t i = 0; i < out.numel(); ++i) map[i] = src(coords_of(i, out.shape()));
  store_raw(out, gather_elements(raw, dtype_size(x.dtype()), map, encode(x.dtype(), fill)));
}
}  // namespace flagstone::ops::ref
