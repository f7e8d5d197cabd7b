// PyTorch's promotion lattice, written out for Flagstone's plain dtypes.
#include "flagstone/ops/dtype_rules.h"

namespace flagstone::ops {
namespace {

int float_rank(DType d) {
  switch (d) {
    case DType::kF16:
    case DType::kBF16:
      return 1;
    case DType::kF32:
      return 2;
    default:
      return 3;  // f64
  }
}

int int_bits(DType d) {
  switch (d) {
    case DType::kI8:
    case DType::kU8:
      return 8;
    case DType::kI16:
      return 16;
    case DType::kI32:
      return 32;
    default:
      return 64;
  }
}

DType signed_of_bits(int bits) {
  switch (bits) {
    case 8:
      return DType::kI8;
    case 16:
      return DType::kI16;
    case 32:
      return DType::kI32;
    default:
      return DType::kI64;
  }
}

// 0 bool, 1 integer, 2 float: the categories of torch's result_type.
int category(DType d) {
  return d == DType::kBool ? 0 : (is_floating(d) ? 2 : 1);
}

}  // namespace

DType promote_types(DType a, DType b) {
  FS_CHECK(!is_quantized(a) && !is_quantized(b), kInvalidArgument, "no type promotion for ",
           dtype_name(a), " and ", dtype_name(b), ": quantized types are storage only");
  if (a == b) return a;
  if (a == DType::kBool) return b;
  if (b == DType::kBool) return a;
  bool fa = is_floating(a), fb = is_floating(b);
  if (fa && fb) {
    int ra = float_rank(a), rb = float_rank(b);
    if (ra == 1 && rb == 1) return DType::kF32;  // f16 with bf16
    return ra > rb ? a : b;
  }
  if (fa) return a;
  if (fb) return b;
  // Both integers. u8 with a signed type needs a signed type wider than 8 bits.
  if (a == DType::kU8 || b == DType::kU8) {
    DType other = a == DType::kU8 ? b : a;
    return signed_of_bits(std::max(16, int_bits(other)));
  }
  return int_bits(a) >= int_bits(b) ? a : b;
}

DType result_type(const std::vector<Tensor>& tensors) {
  bool have_dim = false, have_zero = false;
  DType dim_result = DType::kBool, zero_result = DType::kBool;
  for (const Tensor& t : tensors) {
    if (!t.defined()) continue;
    if (t.dim() > 0) {
      dim_result = have_dim ? promote_types(dim_result, t.dtype()) : t.dtype();
      have_dim = true;
    } else {
      zero_result = have_zero ? promote_types(zero_result, t.dtype()) : t.dtype();
      have_zero = true;
    }
  }
  FS_CHECK(have_dim || have_zero, kInvalidArgument, "result_type of no tensors");
  if (!have_dim) return zero_result;
  if (!have_zero) return dim_result;
  // A zero-dim tensor only matters when it is of a higher category (torch's combine_categories).
  if (is_floating(dim_result)) return dim_result;
  if (dim_result == DType::kBool || is_floating(zero_result)) {
    return category(zero_result) > category(dim_result) ? promote_types(dim_result, zero_result)
                                                        : dim_result;
  }
  return dim_result;
}

}  // namespace flagstone::ops
