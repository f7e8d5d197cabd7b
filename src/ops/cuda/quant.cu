// cuda native weight-only quantized matmul for decode: int8 rows with per-row scales and GGUF
// q8_0 / q4_0 blocks, dequantized in registers as the GEMV streams the weight once (one warp per
// output feature, up to 4 input rows per pass). Also the dequantizer used to hand larger batches
// to cuBLAS.
#include <cstdlib>
#include <cstring>

#include "cuda/device_utils.cuh"
#include "cuda/gemv.h"
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
    // One 32-value block per lane step: the quants are unpacked from 16-bit loads (blocks are
    // only 2-byte aligned), the scale is applied once per block, and x is read in 16-byte packs
    // when its rows allow.
    const bool q8 = a.format == QuantFormat::kQ8_0;
    const int block_bytes = q8 ? 34 : 18;
    constexpr int N = Pack<T>::kCount;
    const bool x_packed = aligned16(x);  // k is a multiple of 32, so every row is then aligned
    for (int64_t blk = lane; blk < a.k / 32; blk += 32) {
      const uint8_t* p = w + blk * block_bytes;
      const auto* half_words = reinterpret_cast<const uint16_t*>(p);
      float d = __half2float(__ushort_as_half(half_words[0]));
      float q[32];
      if (q8) {
#pragma unroll
        for (int i = 0; i < 16; ++i) {
          uint16_t two = half_words[1 + i];
          q[2 * i] = static_cast<float>(static_cast<int8_t>(two & 0xff));
          q[2 * i + 1] = static_cast<float>(static_cast<int8_t>(two >> 8));
        }
      } else {
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          uint16_t two = half_words[1 + i];
          uint32_t b0 = two & 0xff, b1 = two >> 8;
          q[2 * i] = static_cast<float>(static_cast<int>(b0 & 0x0f) - 8);
          q[2 * i + 1] = static_cast<float>(static_cast<int>(b1 & 0x0f) - 8);
          q[16 + 2 * i] = static_cast<float>(static_cast<int>(b0 >> 4) - 8);
          q[16 + 2 * i + 1] = static_cast<float>(static_cast<int>(b1 >> 4) - 8);
        }
      }
#pragma unroll
      for (int r = 0; r < kRowsPerPass; ++r) {
        if (r >= rows) break;
        const T* xr = x + (m0 + r) * a.k + blk * 32;
        float part = 0;
        if (x_packed) {
#pragma unroll
          for (int c = 0; c < 32; c += N) {
            float xv[N];
            load_pack(xr + c, xv);
#pragma unroll
            for (int i = 0; i < N; ++i) part += q[c + i] * xv[i];
          }
        } else {
#pragma unroll
          for (int c = 0; c < 32; ++c) part += q[c] * to_f(xr[c]);
        }
        acc[r] += d * part;
      }
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

// q8_0 / q4_0 rows whose length is a multiple of 16 bytes (k % 256 == 0): each warp copies 64
// blocks of its row at a time into shared memory with coalesced 16-byte loads (the next step's
// loads in flight while it decodes this one), then every lane decodes whole blocks from there.
// The 34- and 18-byte blocks are only 2-byte aligned, which is what makes direct loads scatter.
constexpr int kStepBlocks = 64;
constexpr int kStepMaxBytes = kStepBlocks * 34;
constexpr int kStepLoads = (kStepMaxBytes / 16 + 31) / 32;  // 16-byte loads per lane and step
constexpr int kStagedWarps = 8;

__device__ __forceinline__ uint4 load_once(const void* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

template <typename T, int MB>
__global__ void __launch_bounds__(kStagedWarps * 32) quant_gemv_staged(QuantArgs a, int wpr) {
  __shared__ __align__(16) uint8_t stage[kStagedWarps][kStepMaxBytes];
  __shared__ float partial[kStagedWarps][MB];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int rows_per_block = kStagedWarps / wpr;
  const int64_t n0 = int64_t{blockIdx.x} * rows_per_block;
  const int64_t n = n0 + warp / wpr;
  const int part = warp % wpr;
  const int m = static_cast<int>(a.m);
  const bool q8 = a.format == QuantFormat::kQ8_0;
  const int bb = q8 ? 34 : 18;
  const int64_t nblocks = a.k / 32, nsteps = (nblocks + kStepBlocks - 1) / kStepBlocks;
  const int64_t step_bytes = int64_t{kStepBlocks} * bb;
  const T* x = static_cast<const T*>(a.x);
  float acc[MB];
#pragma unroll
  for (int r = 0; r < MB; ++r) acc[r] = 0;
  if (n < a.n) {
    const auto* row = static_cast<const uint8_t*>(a.weight) + n * a.row_bytes;
    uint8_t* buf = stage[warp];
    uint4 regs[kStepLoads];
    auto chunks_of = [&](int64_t s) {
      int64_t left = a.row_bytes - s * step_bytes;
      return static_cast<int>((left < step_bytes ? left : step_bytes) / 16);
    };
    auto load = [&](int64_t s) {
      const int chunks = chunks_of(s);
      const uint8_t* p = row + s * step_bytes;
#pragma unroll
      for (int i = 0; i < kStepLoads; ++i)
        if (lane + 32 * i < chunks) regs[i] = load_once(p + (lane + 32 * i) * 16);
    };
    int64_t s = part;
    if (s < nsteps) load(s);
    for (; s < nsteps; s += wpr) {
      const int chunks = chunks_of(s);
      __syncwarp();
#pragma unroll
      for (int i = 0; i < kStepLoads; ++i)
        if (lane + 32 * i < chunks) *reinterpret_cast<uint4*>(buf + (lane + 32 * i) * 16) = regs[i];
      __syncwarp();
      if (s + wpr < nsteps) load(s + wpr);
      const int64_t b0 = s * kStepBlocks;
      const int nb = static_cast<int>(nblocks - b0 < kStepBlocks ? nblocks - b0 : kStepBlocks);
      for (int j = lane; j < nb; j += 32) {
        const auto* h = reinterpret_cast<const uint16_t*>(buf + j * bb);
        const float d = __half2float(__ushort_as_half(h[0]));
        float q[32];
        if (q8) {
#pragma unroll
          for (int i = 0; i < 16; ++i) {
            uint16_t two = h[1 + i];
            q[2 * i] = static_cast<float>(static_cast<int8_t>(two & 0xff));
            q[2 * i + 1] = static_cast<float>(static_cast<int8_t>(two >> 8));
          }
        } else {
#pragma unroll
          for (int i = 0; i < 8; ++i) {
            uint16_t two = h[1 + i];
            uint32_t lo = two & 0xff, hi = two >> 8;
            q[2 * i] = static_cast<float>(static_cast<int>(lo & 0x0f) - 8);
            q[2 * i + 1] = static_cast<float>(static_cast<int>(hi & 0x0f) - 8);
            q[16 + 2 * i] = static_cast<float>(static_cast<int>(lo >> 4) - 8);
            q[16 + 2 * i + 1] = static_cast<float>(static_cast<int>(hi >> 4) - 8);
          }
        }
        const int64_t k0 = (b0 + j) * 32;
#pragma unroll
        for (int r = 0; r < MB; ++r) {
          if (r >= m) break;
          const T* xr = x + r * a.k + k0;
          constexpr int N = Pack<T>::kCount;
          float sum = 0;
#pragma unroll
          for (int c = 0; c < 32; c += N) {
            float xv[N];
            load_pack(xr + c, xv);
#pragma unroll
            for (int i = 0; i < N; ++i) sum = fmaf(q[c + i], xv[i], sum);
          }
          acc[r] = fmaf(d, sum, acc[r]);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < MB; ++r) {
    float v = warp_sum(acc[r]);
    if (lane == 0) partial[warp][r] = v;
  }
  __syncthreads();
  if (threadIdx.x < rows_per_block * MB) {
    const int row = threadIdx.x / MB, r = threadIdx.x % MB;
    const int64_t j = n0 + row;
    if (j < a.n && r < m) {
      float v = 0;
      for (int p = 0; p < wpr; ++p) v += partial[row * wpr + p][r];
      if (a.bias) v += load_any(a.bias, a.bias_dtype, j);
      static_cast<T*>(a.out)[r * a.n + j] = from_f<T>(v);
    }
  }
}

// q8_0 / q4_0 rows whose length is a multiple of 256 values (k % 256 == 0), read in units of
// 8 GGUF blocks (q8_0: 272 bytes, q4_0: 144): lane L of a warp takes 8 values of block L/4 of
// the unit, so one warp-wide load step covers the unit's bytes once, coalesced. The blocks are
// only 2-byte aligned; each lane reads the aligned 32-bit words around its bytes and funnel-
// shifts them into place. Quants become floats with one byte permute and one add (2^23 + q
// built in the float's bits, minus 2^23 + bias: exact) instead of the slow integer-to-float
// conversion, and x is read 8 or 4 values per load. U units are in flight per warp.
constexpr int kVecWarps = 8;

// 8 bytes at an even offset `off` of a 4-byte aligned base, from the aligned words holding them.
__device__ __forceinline__ uint2 load8_even(const uint8_t* base, int off) {
  const auto* p = reinterpret_cast<const uint32_t*>(base + (off & ~3));
  const int sh = (off & 2) * 8;
  const uint32_t w0 = __ldg(p), w1 = __ldg(p + 1), w2 = __ldg(p + (sh ? 2 : 1));
  return make_uint2(__funnelshift_r(w0, w1, sh), __funnelshift_r(w1, w2, sh));
}
// 4 bytes at an even offset of a 4-byte aligned base.
__device__ __forceinline__ uint32_t load4_even(const uint8_t* base, int off) {
  const auto* p = reinterpret_cast<const uint32_t*>(base + (off & ~3));
  const int sh = (off & 2) * 8;
  const uint32_t w0 = __ldg(p), w1 = __ldg(p + (sh ? 1 : 0));
  return __funnelshift_r(w0, w1, sh);
}
// Byte i of u (0..255) as the float 2^23 + byte, minus `bias_plus_2_23`.
__device__ __forceinline__ float byte_float(uint32_t u, int i, float bias_plus_2_23) {
  return __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7440 | i)) - bias_plus_2_23;
}

// 4 consecutive values of x as floats (p is 8-byte aligned for 16-bit T, 16 for f32).
template <typename T>
__device__ __forceinline__ void load_x4(const T* p, float* out) {
  if constexpr (sizeof(T) == 4) {
    const float4 v = *reinterpret_cast<const float4*>(p);
    out[0] = v.x, out[1] = v.y, out[2] = v.z, out[3] = v.w;
  } else {
    const uint2 v = *reinterpret_cast<const uint2*>(p);
    const T* h = reinterpret_cast<const T*>(&v);
#pragma unroll
    for (int i = 0; i < 4; ++i) out[i] = to_f(h[i]);
  }
}

// One row: registers capped so that 4 blocks (32 warps) share a multiprocessor.
template <typename T, bool kQ8, int MB, int U>
__global__ void __launch_bounds__(kVecWarps * 32, MB == 1 ? 4 : 1)
    quant_gemv_vec(QuantArgs a, int wpr) {
  __shared__ float partial[kVecWarps][MB];
  constexpr int kUnitBytes = kQ8 ? 272 : 144, kBlockBytes = kQ8 ? 34 : 18;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int rows_per_block = kVecWarps / wpr;
  const int64_t n0 = int64_t{blockIdx.x} * rows_per_block;
  const int64_t n = n0 + warp / wpr;
  const int part = warp % wpr;
  const int m = static_cast<int>(a.m);
  const int64_t units = a.k / 256;
  const int b = lane >> 2, qt = lane & 3;
  // Offsets in the unit of this lane's scale and quants, and of its values in the unit.
  const int scale_off = b * kBlockBytes;
  const int quant_off = scale_off + 2 + (kQ8 ? 8 : 4) * qt;
  const int x_off = b * 32 + (kQ8 ? 8 : 4) * qt;  // q4_0: also x_off + 16 (high nibbles)
  const T* x = static_cast<const T*>(a.x);
  float acc[MB];
#pragma unroll
  for (int r = 0; r < MB; ++r) acc[r] = 0;
  if (n < a.n) {
    const auto* row = static_cast<const uint8_t*>(a.weight) + n * a.row_bytes;
    const int64_t stride = int64_t{wpr} * U;
    auto load_step = [&](int64_t u0, uint2(&q)[U], uint16_t(&d)[U]) {
#pragma unroll
      for (int j = 0; j < U; ++j) {
        const int64_t u = u0 + int64_t{j} * wpr;
        if (u < units) {
          const uint8_t* base = row + u * kUnitBytes;
          d[j] = __ldg(reinterpret_cast<const unsigned short*>(base + scale_off));
          if constexpr (kQ8)
            q[j] = load8_even(base, quant_off);
          else
            q[j].x = load4_even(base, quant_off);
        }
      }
    };
    // Software pipelined: the next step's weight words are in flight while this step computes.
    uint2 q[U] = {};
    uint16_t d[U] = {};
    if (part < units) load_step(part, q, d);
    for (int64_t u0 = part; u0 < units; u0 += stride) {
      uint2 qn[U] = {};
      uint16_t dn[U] = {};
      if (u0 + stride < units) load_step(u0 + stride, qn, dn);
#pragma unroll
      for (int j = 0; j < U; ++j) {
        const int64_t u = u0 + int64_t{j} * wpr;
        if (u >= units) break;
        float w[8];
        if constexpr (kQ8) {
          const uint32_t lo = q[j].x ^ 0x80808080u, hi = q[j].y ^ 0x80808080u;
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            w[i] = byte_float(lo, i, 8388736.0f);
            w[4 + i] = byte_float(hi, i, 8388736.0f);
          }
        } else {
          const uint32_t lo = q[j].x & 0x0f0f0f0fu, hi = (q[j].x >> 4) & 0x0f0f0f0fu;
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            w[i] = byte_float(lo, i, 8388616.0f);
            w[4 + i] = byte_float(hi, i, 8388616.0f);
          }
        }
        const float scale = __half2float(__ushort_as_half(d[j]));
        const int64_t k0 = u * 256 + x_off;
#pragma unroll
        for (int r = 0; r < MB; ++r) {
          if (r >= m) break;
          const T* xr = x + r * a.k + k0;
          float xv[8];
          load_x4(xr, xv);
          load_x4(xr + (kQ8 ? 4 : 16), xv + 4);
          float sum = 0;
#pragma unroll
          for (int i = 0; i < 8; ++i) sum = fmaf(w[i], xv[i], sum);
          acc[r] = fmaf(scale, sum, acc[r]);
        }
      }
#pragma unroll
      for (int j = 0; j < U; ++j) q[j] = qn[j], d[j] = dn[j];
    }
  }
#pragma unroll
  for (int r = 0; r < MB; ++r) {
    float v = warp_sum(acc[r]);
    if (lane == 0) partial[warp][r] = v;
  }
  __syncthreads();
  if (threadIdx.x < rows_per_block * MB) {
    const int row = threadIdx.x / MB, r = threadIdx.x % MB;
    const int64_t j = n0 + row;
    if (j < a.n && r < m) {
      float v = 0;
      for (int p = 0; p < wpr; ++p) v += partial[row * wpr + p][r];
      if (a.bias) v += load_any(a.bias, a.bias_dtype, j);
      static_cast<T*>(a.out)[r * a.n + j] = from_f<T>(v);
    }
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

template <typename T, int MB>
cudaError_t staged_typed(const QuantArgs& a, cudaStream_t stream) {
  const int64_t nsteps = (a.k / 32 + kStepBlocks - 1) / kStepBlocks;
  const int64_t target = int64_t{current_device_sm_count()} * 32;
  int wpr = 1;
  while (wpr < kStagedWarps && a.n * wpr < target && nsteps >= 2 * wpr) wpr *= 2;
  const int64_t rows_per_block = kStagedWarps / wpr;
  const int64_t blocks = (a.n + rows_per_block - 1) / rows_per_block;
  quant_gemv_staged<T, MB><<<static_cast<unsigned>(blocks), kStagedWarps * 32, 0, stream>>>(a, wpr);
  return cudaGetLastError();
}

// Warps per output row of the unit kernel: enough warps in all to fill the device, each
// keeping at least two steps of U units; FLAGSTONE_QUANT_VEC_WPR=1|2|4|8 forces it (sweeps).
int vec_warps_per_row(const QuantArgs& a, int unroll) {
  if (const char* v = std::getenv("FLAGSTONE_QUANT_VEC_WPR")) {
    int w = std::atoi(v);
    if (w == 1 || w == 2 || w == 4 || w == 8) return w;
  }
  const int64_t units = a.k / 256, target = int64_t{current_device_sm_count()} * 48;
  int wpr = 1;
  while (wpr < kVecWarps && a.n * wpr < target && units >= int64_t{2} * unroll * wpr * 2) wpr *= 2;
  return wpr;
}

template <typename T, bool kQ8, int MB>
cudaError_t vec_typed(const QuantArgs& a, cudaStream_t stream) {
  // Two steps of 4 units (0.6-1.1 KiB each) in flight per warp.
  constexpr int kUnroll = 4;
  const int wpr = vec_warps_per_row(a, kUnroll);
  const int64_t rows_per_block = kVecWarps / wpr;
  const int64_t blocks = (a.n + rows_per_block - 1) / rows_per_block;
  quant_gemv_vec<T, kQ8, MB, kUnroll>
      <<<static_cast<unsigned>(blocks), kVecWarps * 32, 0, stream>>>(a, wpr);
  return cudaGetLastError();
}

template <typename T, int MB>
cudaError_t vec_rows(const QuantArgs& a, cudaStream_t stream) {
  return a.format == QuantFormat::kQ8_0 ? vec_typed<T, true, MB>(a, stream)
                                        : vec_typed<T, false, MB>(a, stream);
}

// Which q8_0/q4_0 GEMV runs, read on every launch so a timing tool can compare them:
// FLAGSTONE_QUANT_GEMV=vec (the unit kernel), staged (shared-memory staged rows), warp or unset
// (one warp per row); vec and staged fall back to warp where their layout needs do not hold.
enum class QuantKernel { kWarp, kStaged, kVec };
QuantKernel quant_kernel_for(const QuantArgs& a) {
  const char* v = std::getenv("FLAGSTONE_QUANT_GEMV");
  QuantKernel want = !v                              ? QuantKernel::kWarp
                     : std::strcmp(v, "vec") == 0    ? QuantKernel::kVec
                     : std::strcmp(v, "staged") == 0 ? QuantKernel::kStaged
                                                     : QuantKernel::kWarp;
  if (want == QuantKernel::kWarp || a.format == QuantFormat::kInt8 || a.m > 8)
    return QuantKernel::kWarp;
  const auto w = reinterpret_cast<uintptr_t>(a.weight), x = reinterpret_cast<uintptr_t>(a.x);
  if (want == QuantKernel::kVec)
    return a.k % 256 == 0 && (w & 3u) == 0 && (x & 15u) == 0 ? want : QuantKernel::kWarp;
  return a.row_bytes % 16 == 0 && a.k % 32 == 0 && (w & 15u) == 0 && (x & 15u) == 0
             ? want
             : QuantKernel::kWarp;
}

template <typename T>
cudaError_t gemv_typed(const QuantArgs& a, cudaStream_t stream) {
  if (a.m == 0 || a.n == 0) return cudaSuccess;
  const QuantKernel kernel = quant_kernel_for(a);
  if (kernel == QuantKernel::kVec) {
    // Decode's one row, else up to 8 rows in one pass (fewer instantiations to compile).
    return a.m <= 1 ? vec_rows<T, 1>(a, stream) : vec_rows<T, 8>(a, stream);
  }
  if (kernel == QuantKernel::kStaged) {
    if (a.m <= 1) return staged_typed<T, 1>(a, stream);
    if (a.m <= 4) return staged_typed<T, 4>(a, stream);
    return staged_typed<T, 8>(a, stream);
  }
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
