// cuda native weight-only quantized matmul for decode: int8 rows with per-row scales and GGUF
// q8_0 / q4_0 blocks, dequantized in registers as the GEMV streams the weight once (one warp per
// output feature, up to 4 input rows per pass). Also the dequantizer used to hand larger batches
// to cuBLAS.
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace flagstone::ops::cuda {
namespace {

constexpr int kRowsPerPass = 4;
constexpr int kWarps = 4;

// The weight value at (n, k) for each format; `row` points at weight row n.
__device__ __forceinline__ float q8_0_at(const uint8_t* row, int64_t k) {
  const uint8_t* blk = row + (k / 32) * 34;
  float d = __half2float(*reinterpret_cast<const __half*>(blk));
  return d * static_cast<float>(static_cast<int8_t>(blk[2 + k % 32]));
}
__device__ __forceinline__ float q4_0_at(const uint8_t* row, int64_t k) {
  const uint8_t* blk = row + (k / 32) * 18;
  float d = __half2float(*reinterpret_cast<const __half*>(blk));
  int j = static_cast<int>(k % 32);
  int q = j < 16 ? (blk[2 + j] & 0x0f) : (blk[2 + j - 16] >> 4);
  return d * static_cast<float>(q - 8);
}

template <typename T>
__global__ void __launch_bounds__(kWarps * 32) quant_gemv(QuantArgs a) {
  const int lane = threadIdx.x & 31;
  const int64_t n = int64_t{blockIdx.x} * kWarps + (threadIdx.x >> 5);
  const int64_t m0 = int64_t{blockIdx.y} * kRowsPerPass;
  if (n >= a.n) return;
  const auto* w = static_cast<const uint8_t*>(a.weight) + n * a.row_bytes;
  const T* x = static_cast<const T*>(a.x);
  float acc[kRowsPerPass] = {0, 0, 0, 0};
  const int rows = static_cast<int>(a.m - m0 < kRowsPerPass ? a.m - m0 : kRowsPerPass);
  if (a.format == QuantFormat::kInt8) {
    const auto* wi = reinterpret_cast<const int8_t*>(w);
    for (int64_t k = lane; k < a.k; k += 32) {
      float wv = static_cast<float>(wi[k]);
#pragma unroll
      for (int r = 0; r < kRowsPerPass; ++r)
        if (r < rows) acc[r] += wv * to_f(x[(m0 + r) * a.k + k]);
    }
  } else {
    // One 32-value block per lane step: the scale is read once per block.
    int block_bytes = a.format == QuantFormat::kQ8_0 ? 34 : 18;
    for (int64_t blk = lane; blk < a.k / 32; blk += 32) {
      const uint8_t* p = w + blk * block_bytes;
      float d = __half2float(*reinterpret_cast<const __half*>(p));
      float part[kRowsPerPass] = {0, 0, 0, 0};
#pragma unroll 4
      for (int j = 0; j < 32; ++j) {
        float q = a.format == QuantFormat::kQ8_0
                      ? static_cast<float>(static_cast<int8_t>(p[2 + j]))
                      : static_cast<float>((j < 16 ? (p[2 + j] & 0x0f) : (p[2 + j - 16] >> 4)) - 8);
#pragma unroll
        for (int r = 0; r < kRowsPerPass; ++r)
          if (r < rows) part[r] += q * to_f(x[(m0 + r) * a.k + blk * 32 + j]);
      }
#pragma unroll
      for (int r = 0; r < kRowsPerPass; ++r) acc[r] += d * part[r];
    }
  }
  float scale = a.scale ? load_any(a.scale, a.scale_dtype, n) : 1.0f;
  float bias = a.bias ? load_any(a.bias, a.bias_dtype, n) : 0.0f;
#pragma unroll
  for (int r = 0; r < kRowsPerPass; ++r) {
    float s = warp_sum(acc[r]);
    if (lane == 0 && r < rows)
      static_cast<T*>(a.out)[(m0 + r) * a.n + n] = from_f<T>(s * scale + bias);
  }
}

template <typename T>
__global__ void dequantize_kernel(T* out, QuantArgs a) {
  int64_t total = a.n * a.k;
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total;
       e += int64_t{gridDim.x} * blockDim.x) {
    int64_t n = e / a.k, k = e - n * a.k;
    const auto* row = static_cast<const uint8_t*>(a.weight) + n * a.row_bytes;
    float v;
    if (a.format == QuantFormat::kInt8)
      v = static_cast<float>(reinterpret_cast<const int8_t*>(row)[k]) *
          (a.scale ? load_any(a.scale, a.scale_dtype, n) : 1.0f);
    else if (a.format == QuantFormat::kQ8_0)
      v = q8_0_at(row, k);
    else
      v = q4_0_at(row, k);
    out[e] = from_f<T>(v);
  }
}

template <typename T>
cudaError_t gemv_typed(const QuantArgs& a, cudaStream_t stream) {
  if (a.m == 0 || a.n == 0) return cudaSuccess;
  dim3 grid(static_cast<unsigned>((a.n + kWarps - 1) / kWarps),
            static_cast<unsigned>((a.m + kRowsPerPass - 1) / kRowsPerPass));
  quant_gemv<T><<<grid, kWarps * 32, 0, stream>>>(a);
  return cudaGetLastError();
}

template <typename T>
cudaError_t dequantize_typed(void* out, const QuantArgs& a, cudaStream_t stream) {
  if (a.n == 0 || a.k == 0) return cudaSuccess;
  dequantize_kernel<T><<<grid_for(a.n * a.k, 256), 256, 0, stream>>>(static_cast<T*>(out), a);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_quant_gemv(DType dtype, const QuantArgs& args, cudaStream_t stream) {
  switch (dtype) {
    case DType::kF32:
      return gemv_typed<float>(args, stream);
    case DType::kF16:
      return gemv_typed<__half>(args, stream);
    case DType::kBF16:
      return gemv_typed<__nv_bfloat16>(args, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

cudaError_t launch_dequantize(DType dtype, void* out, const QuantArgs& args, cudaStream_t stream) {
  switch (dtype) {
    case DType::kF32:
      return dequantize_typed<float>(out, args, stream);
    case DType::kF16:
      return dequantize_typed<__half>(out, args, stream);
    case DType::kBF16:
      return dequantize_typed<__nv_bfloat16>(out, args, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace flagstone::ops::cuda
