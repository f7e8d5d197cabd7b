// PyTorch's type promotion for op outputs: promote_types for two dtypes and result_type for a
// list of tensors, where zero-dim tensors only raise the category (bool < integer < float).
#pragma once

#include <vector>

#include "flagstone/runtime/tensor.h"

namespace flagstone::ops {

// torch.promote_types: u8+i8 -> i16, f16+bf16 -> f32, integer+float -> float, bool+x -> x.
DType promote_types(DType a, DType b);
// torch.result_type over the defined tensors of `tensors`.
DType result_type(const std::vector<Tensor>& tensors);
// The float dtype an integer/bool input computes in (f32, torch's default dtype); floats stay.
inline DType to_float_dtype(DType dtype) {
  return is_floating(dtype) ? dtype : DType::kF32;
}
// Plain (non-quantized) numeric dtypes, in a stable order for matrices and loops.
inline constexpr DType kPlainDTypes[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kF64,
                                         DType::kI64, DType::kI32, DType::kI16,  DType::kI8,
                                         DType::kU8,  DType::kBool};

}  // namespace flagstone::ops
