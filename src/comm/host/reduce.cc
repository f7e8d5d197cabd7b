// Reduction loops written so the compiler vectorizes the common f32/f64/integer cases.
#include "reduce.h"

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "../internal.h"
#include "flagstone/base/half.h"

namespace flagstone::comm {

namespace {

// Signed integers reduce in their unsigned twin so that overflow wraps instead of being UB.
template <typename T, bool = std::is_integral_v<T>>
struct WrapOf {
  using type = T;
};
template <typename T>
struct WrapOf<T, true> {
  using type = std::make_unsigned_t<T>;
};
template <typename T>
using Wrap = typename WrapOf<T>::type;

template <typename T>
T apply(fsRedOp_t op, T a, T b) {
  switch (op) {
    case fsSum:
    case fsAvg:
      return static_cast<T>(static_cast<Wrap<T>>(a) + static_cast<Wrap<T>>(b));
    case fsProd:
      return static_cast<T>(static_cast<Wrap<T>>(a) * static_cast<Wrap<T>>(b));
    case fsMax:
      return std::max(a, b);
    default:
      return std::min(a, b);
  }
}

template <typename T>
void pair_loop(T* out, const T* a, const T* b, size_t n, fsRedOp_t op) {
  switch (op) {
    case fsSum:
    case fsAvg:
      for (size_t i = 0; i < n; ++i) out[i] = apply<T>(fsSum, a[i], b[i]);
      break;
    case fsProd:
      for (size_t i = 0; i < n; ++i) out[i] = apply<T>(fsProd, a[i], b[i]);
      break;
    case fsMax:
      for (size_t i = 0; i < n; ++i) out[i] = std::max(a[i], b[i]);
      break;
    default:
      for (size_t i = 0; i < n; ++i) out[i] = std::min(a[i], b[i]);
      break;
  }
}

// f16/bf16 through f32, a block at a time so the float loop still vectorizes.
template <float (*Load)(uint16_t), uint16_t (*Store)(float)>
void half_loop(uint16_t* out, const uint16_t* a, const uint16_t* b, size_t n, fsRedOp_t op) {
  constexpr size_t kBlock = 256;
  float fa[kBlock], fb[kBlock];
  for (size_t base = 0; base < n; base += kBlock) {
    size_t m = std::min(kBlock, n - base);
    for (size_t i = 0; i < m; ++i) {
      fa[i] = Load(a[base + i]);
      fb[i] = Load(b[base + i]);
    }
    pair_loop<float>(fa, fa, fb, m, op);
    for (size_t i = 0; i < m; ++i) out[base + i] = Store(fa[i]);
  }
}

float load_bf16(uint16_t bits) {
  return bf16_bits_to_float(bits);
}
uint16_t store_bf16(float value) {
  return float_to_bf16_bits(value);
}
float load_f16(uint16_t bits) {
  return f16_bits_to_float(bits);
}
uint16_t store_f16(float value) {
  return float_to_f16_bits(value);
}

template <typename T>
void average_loop(T* data, size_t n, int nranks) {
  for (size_t i = 0; i < n; ++i) data[i] = static_cast<T>(data[i] / static_cast<T>(nranks));
}

}  // namespace

void reduce_pair(void* out, const void* a, const void* b, size_t count, fsDataType_t dtype,
                 fsRedOp_t op) {
  switch (dtype) {
#define FS_CASE(code, T)                                                                          \
  case code:                                                                                      \
    pair_loop<T>(static_cast<T*>(out), static_cast<const T*>(a), static_cast<const T*>(b), count, \
                 op);                                                                             \
    return;
    FS_CASE(fsInt8, int8_t)
    FS_CASE(fsUint8, uint8_t)
    FS_CASE(fsInt32, int32_t)
    FS_CASE(fsUint32, uint32_t)
    FS_CASE(fsInt64, int64_t)
    FS_CASE(fsUint64, uint64_t)
    FS_CASE(fsFloat32, float)
    FS_CASE(fsFloat64, double)
#undef FS_CASE
    case fsFloat16:
      half_loop<load_f16, store_f16>(static_cast<uint16_t*>(out), static_cast<const uint16_t*>(a),
                                     static_cast<const uint16_t*>(b), count, op);
      return;
    case fsBfloat16:
      half_loop<load_bf16, store_bf16>(static_cast<uint16_t*>(out), static_cast<const uint16_t*>(a),
                                       static_cast<const uint16_t*>(b), count, op);
      return;
    default:
      fail(fsInternalError, "reduce: invalid dtype ", static_cast<int>(dtype));
  }
}

void reduce_into(void* acc, const void* in, size_t count, fsDataType_t dtype, fsRedOp_t op) {
  reduce_pair(acc, acc, in, count, dtype, op);
}

void finish_average(void* data, size_t count, fsDataType_t dtype, int nranks) {
  switch (dtype) {
    case fsInt8:
      average_loop(static_cast<int8_t*>(data), count, nranks);
      return;
    case fsUint8:
      average_loop(static_cast<uint8_t*>(data), count, nranks);
      return;
    case fsInt32:
      average_loop(static_cast<int32_t*>(data), count, nranks);
      return;
    case fsUint32:
      average_loop(static_cast<uint32_t*>(data), count, nranks);
      return;
    case fsInt64:
      average_loop(static_cast<int64_t*>(data), count, nranks);
      return;
    case fsUint64:
      average_loop(static_cast<uint64_t*>(data), count, nranks);
      return;
    case fsFloat32:
      average_loop(static_cast<float*>(data), count, nranks);
      return;
    case fsFloat64:
      average_loop(static_cast<double*>(data), count, nranks);
      return;
    case fsFloat16:
    case fsBfloat16: {
      auto* bits = static_cast<uint16_t*>(data);
      bool f16 = dtype == fsFloat16;
      for (size_t i = 0; i < count; ++i) {
        float value = (f16 ? f16_bits_to_float(bits[i]) : bf16_bits_to_float(bits[i])) /
                      static_cast<float>(nranks);
        bits[i] = f16 ? float_to_f16_bits(value) : float_to_bf16_bits(value);
      }
      return;
    }
    default:
      fail(fsInternalError, "average: invalid dtype ", static_cast<int>(dtype));
  }
}

}  // namespace flagstone::comm
