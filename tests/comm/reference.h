// Inputs and host-computed expected results for the comm tests: every rank derives its inputs
// from (rank, index), so any rank can compute every other rank's data and the exact reduction.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "flagstone/base/half.h"
#include "flagstone/comm.h"

namespace flagstone::comm::testing {

inline DType runtime_dtype(fsDataType_t dtype) {
  switch (dtype) {
    case fsInt8:
      return DType::kI8;
    case fsUint8:
      return DType::kU8;
    case fsInt32:
      return DType::kI32;
    case fsInt64:
      return DType::kI64;
    case fsFloat16:
      return DType::kF16;
    case fsBfloat16:
      return DType::kBF16;
    case fsFloat32:
      return DType::kF32;
    default:
      return DType::kF64;
  }
}

inline size_t esize(fsDataType_t dtype) {
  static const size_t kSizes[] = {1, 1, 4, 4, 8, 8, 2, 2, 4, 8};
  return kSizes[dtype];
}

inline bool is_unsigned(fsDataType_t dtype) {
  return dtype == fsUint8 || dtype == fsUint32 || dtype == fsUint64;
}

// Small integers, exact in every dtype, so reductions have one right answer; products stay
// within i8 for up to 4 ranks.
inline double input_value(fsDataType_t dtype, fsRedOp_t op, int rank, size_t index) {
  if (op == fsProd) {
    static const int kSigned[] = {1, 2, -1};
    int pick = static_cast<int>((rank * 7 + index * 3) % 3);
    return is_unsigned(dtype) ? 1 + pick % 2 : kSigned[pick];
  }
  int value = static_cast<int>((rank * 5 + index * 7 + index / 13) % 7) - 3;
  return is_unsigned(dtype) ? value + 3 : value;
}

// Writes a double into element `index` of a typed buffer (u32/u64 by hand: the runtime's dtype
// table has no unsigned 32/64-bit types).
inline void store(void* data, fsDataType_t dtype, size_t index, double value) {
  switch (dtype) {
    case fsUint32:
      static_cast<uint32_t*>(data)[index] = static_cast<uint32_t>(value);
      return;
    case fsUint64:
      static_cast<uint64_t*>(data)[index] = static_cast<uint64_t>(value);
      return;
    default:
      store_from_double(data, runtime_dtype(dtype), static_cast<int64_t>(index), value);
  }
}

inline std::vector<char> make_input(fsDataType_t dtype, fsRedOp_t op, int rank, size_t count) {
  std::vector<char> out(count * esize(dtype) + 1);
  for (size_t i = 0; i < count; ++i) store(out.data(), dtype, i, input_value(dtype, op, rank, i));
  return out;
}

// The exact reduction over ranks [0, nranks) of element `index`, in the dtype's semantics:
// integers truncate the average toward zero, f16/bf16/f32 divide in f32, f64 in f64.
inline double reduce_value(fsDataType_t dtype, fsRedOp_t op, int nranks, size_t index) {
  double acc = input_value(dtype, op, 0, index);
  for (int r = 1; r < nranks; ++r) {
    double v = input_value(dtype, op, r, index);
    switch (op) {
      case fsProd:
        acc *= v;
        break;
      case fsMax:
        acc = std::max(acc, v);
        break;
      case fsMin:
        acc = std::min(acc, v);
        break;
      default:
        acc += v;
    }
  }
  if (op != fsAvg) return acc;
  if (dtype == fsFloat64) return acc / nranks;
  if (dtype == fsFloat32 || dtype == fsFloat16 || dtype == fsBfloat16)
    return static_cast<double>(static_cast<float>(acc) / static_cast<float>(nranks));
  return std::trunc(acc / nranks);
}

inline std::vector<char> expected_reduction(fsDataType_t dtype, fsRedOp_t op, int nranks,
                                            size_t first, size_t count) {
  std::vector<char> out(count * esize(dtype) + 1);
  for (size_t i = 0; i < count; ++i)
    store(out.data(), dtype, i, reduce_value(dtype, op, nranks, first + i));
  return out;
}

}  // namespace flagstone::comm::testing
