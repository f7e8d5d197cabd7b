// Shape and dtype checks shared by the op schemas: broadcasting, dim normalization, reduced
// shapes, and dtype requirements, each throwing an error that names the tensor at fault.
#pragma once

#include <string_view>
#include <vector>

#include "flagstone/ops/attrs.h"
#include "flagstone/ops/dtype_rules.h"
#include "flagstone/ops/registry.h"
#include "flagstone/runtime/tensor.h"

namespace flagstone::ops {

// numpy/torch broadcasting of two shapes; throws naming both shapes and the dim that clashes.
Shape broadcast_shapes(const Shape& a, const Shape& b);
Shape broadcast_all(const std::vector<Tensor>& tensors);
// Wraps a negative dim; `what` names the argument in the error ("dim", "dim0").
int normalize_dim(int64_t dim, int ndim, std::string_view what = "dim");
// Sorted unique dims; an empty list means every dim. Duplicates throw.
std::vector<int> normalize_dims(const std::vector<int64_t>& dims, int ndim);
Shape reduced_shape(const Shape& shape, const std::vector<int>& dims, bool keepdim);

void check_floating(const Tensor& t, std::string_view name);
void check_integer(const Tensor& t, std::string_view name);  // integer types only (not bool)
void check_integer_or_bool(const Tensor& t, std::string_view name);
void check_index(const Tensor& t, std::string_view name);  // i32 or i64
void check_ndim(const Tensor& t, std::string_view name, int ndim);
void check_same_dtype(const Tensor& a, std::string_view a_name, const Tensor& b,
                      std::string_view b_name);
void check_shape(const Tensor& t, std::string_view name, const Shape& expected);
// The dtype attribute ("dtype": "f32") or `fallback`.
DType attr_dtype(const Attrs& attrs, DType fallback);

// Dtype lists for OpSchema::dtypes.
inline const std::vector<DType> kFloatTypes{DType::kF32, DType::kF16, DType::kBF16, DType::kF64};
inline const std::vector<DType> kIntTypes{DType::kI64, DType::kI32, DType::kI16, DType::kI8,
                                          DType::kU8};
std::vector<DType> all_plain_types();     // floats, ints and bool
std::vector<DType> numeric_types();       // floats and ints
std::vector<DType> int_and_bool_types();  // ints and bool

}  // namespace flagstone::ops

namespace flagstone::ops {
// Throws kInvalidArgument when `t`'s dtype is not in `allowed`, listing the allowed ones.
void check_dtype_in(const Tensor& t, std::string_view name, const std::vector<DType>& allowed);
}  // namespace flagstone::ops

namespace flagstone::ops {
// The dense products behind mm, addmm, bmm, linear and matmul, C[m, n] = A[m, k] @ op(B) per
// batch entry, with each entry's element offsets into A and B (matmul: 1-d operands as a row or
// column, batch dims broadcast). Shared by the GEMM providers so they agree on the layout.
struct GemmShape {
  int64_t m = 0, n = 0, k = 0;
  bool b_trans = false;               // B is [n, k] (linear's weight)
  std::vector<int64_t> a_off, b_off;  // one per batch entry
};
GemmShape gemm_shape(const KernelArgs& args);

// Strides of `t` broadcast to `shape` (0 where t has size 1 or the dim is missing).
Shape broadcast_strides(const Tensor& t, const Shape& shape);
// The fewest dims that walk the same elements as `shape` for every operand: size-1 dims dropped,
// neighbours merged where each operand's outer stride is its inner stride times the inner
// size. `strides[k]` are operand k's strides over `shape`; `dim_strides[k]` come back per dim.
void collapse_dims(const Shape& shape, const std::vector<Shape>& strides, Shape& dims,
                   std::vector<Shape>& dim_strides);
}  // namespace flagstone::ops
