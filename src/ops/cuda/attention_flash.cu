// Tensor-core flash attention for f16/bf16 prefill: a block of 4 warps takes 64 query rows (16
// per warp) and walks key tiles held in shared memory; S = Q K^T and O += P V run on
// mma.sync.m16n8k16 with f32 accumulation, and the softmax is kept online per row in registers,
// so the [queries, keys] score matrix never reaches memory. Causal tiles past the diagonal are
// skipped. Masks, paged caches, odd strides and decode shapes go to attention.cu instead.
#include <cstdint>
#include <type_traits>

#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace flagstone::ops::cuda {
namespace {

constexpr int kRows = 64;  // query rows per block: 4 warps x 16
constexpr int kThreads = 128;

template <typename T>
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4],
                                         const uint32_t (&b)[2]) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
}

// Two floats as a packed pair of T (the first in the low half), as mma fragments hold them.
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  T pair[2] = {from_f<T>(lo), from_f<T>(hi)};
  uint32_t bits;
  memcpy(&bits, pair, 4);
  return bits;
}

__device__ __forceinline__ uint32_t lds32(const void* p) {
  return *static_cast<const uint32_t*>(p);
}

template <typename T, int D, int BN>
struct FlashShape {
  static constexpr int kQPitch = D + 8;   // padded rows: fragment loads hit 32 distinct banks
  static constexpr int kVPitch = BN + 8;  // V is stored transposed: [D][BN]
  static constexpr size_t kSmem =
      sizeof(T) * (static_cast<size_t>(kRows + BN) * kQPitch + static_cast<size_t>(D) * kVPitch);
};

template <typename T, int D, int BN>
__global__ void __launch_bounds__(kThreads) flash_forward(AttentionArgs a) {
  using S = FlashShape<T, D, BN>;
  constexpr int QP = S::kQPitch, VP = S::kVPitch;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sq = reinterpret_cast<T*>(smem);
  T* sk = sq + kRows * QP;
  T* svt = sk + BN * QP;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t m0 = int64_t{blockIdx.x} * kRows, h = blockIdx.y, b = blockIdx.z;
  const int64_t kh = h / (a.q_heads / a.kv_heads);
  const T* q = static_cast<const T*>(a.q) + b * a.q_stride[0] + h * a.q_stride[1];
  const T* k = static_cast<const T*>(a.k) + b * a.k_stride[0] + kh * a.k_stride[1];
  const T* v = static_cast<const T*>(a.v) + b * a.v_stride[0] + kh * a.v_stride[1];
  constexpr int kVecs = D / 8;  // 16-byte vectors per row

  for (int idx = threadIdx.x; idx < kRows * kVecs; idx += kThreads) {
    int r = idx / kVecs, c = (idx % kVecs) * 8;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (m0 + r < a.q_len) val = *reinterpret_cast<const uint4*>(q + (m0 + r) * a.q_stride[2] + c);
    *reinterpret_cast<uint4*>(sq + r * QP + c) = val;
  }

  float o[D / 8][4];
#pragma unroll
  for (int j = 0; j < D / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0, 0};
  const float scale_log2 = a.scale * 1.4426950408889634f;
  int64_t kv_end = a.kv_len;
  if (a.causal) kv_end = min(kv_end, max(int64_t{0}, m0 + kRows + a.causal_shift));
  const int64_t row0 = m0 + warp * 16 + g;  // this thread's rows: row0 and row0 + 8

  for (int64_t n0 = 0; n0 < kv_end; n0 += BN) {
    __syncthreads();  // the previous tile is consumed (and the Q tile written, first time)
    for (int idx = threadIdx.x; idx < BN * kVecs; idx += kThreads) {
      int r = idx / kVecs, c = (idx % kVecs) * 8;
      uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
      if (n0 + r < a.kv_len) {
        kv = *reinterpret_cast<const uint4*>(k + (n0 + r) * a.k_stride[2] + c);
        vv = *reinterpret_cast<const uint4*>(v + (n0 + r) * a.v_stride[2] + c);
      }
      *reinterpret_cast<uint4*>(sk + r * QP + c) = kv;
      const T* vals = reinterpret_cast<const T*>(&vv);
#pragma unroll
      for (int i = 0; i < 8; ++i) svt[(c + i) * VP + r] = vals[i];
    }
    __syncthreads();

    float s[BN / 8][4];
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const T* qa = sq + (warp * 16 + g) * QP + kk * 16 + 2 * t;
      uint32_t af[4] = {lds32(qa), lds32(qa + 8 * QP), lds32(qa + 8), lds32(qa + 8 * QP + 8)};
#pragma unroll
      for (int j = 0; j < BN / 8; ++j) {
        const T* kb = sk + (j * 8 + g) * QP + kk * 16 + 2 * t;
        uint32_t bf[2] = {lds32(kb), lds32(kb + 8)};
        mma16816<T>(s[j], af, bf);
      }
    }

    // Scale into log2 units, mask, and fold the tile into the running max and sum.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int64_t row = row0 + 8 * r;
      float tile_max = -INFINITY;
#pragma unroll
      for (int j = 0; j < BN / 8; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          int64_t col = n0 + j * 8 + 2 * t + e;
          float x = s[j][2 * r + e] * scale_log2;
          if (col >= a.kv_len || (a.causal && col > row + a.causal_shift)) x = -INFINITY;
          s[j][2 * r + e] = x;
          tile_max = fmaxf(tile_max, x);
        }
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
      float new_max = fmaxf(row_max[r], tile_max);
      // A row with no allowed key yet keeps max -inf; subtracting 0 keeps its terms at 0.
      float base = new_max == -INFINITY ? 0.0f : new_max;
      float correction = exp2f(row_max[r] - base);
      row_max[r] = new_max;
      row_sum[r] *= correction;
#pragma unroll
      for (int j = 0; j < D / 8; ++j) o[j][2 * r] *= correction, o[j][2 * r + 1] *= correction;
#pragma unroll
      for (int j = 0; j < BN / 8; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float p = exp2f(s[j][2 * r + e] - base);
          s[j][2 * r + e] = p;
          row_sum[r] += p;
        }
    }

    // O += P V, with the score fragments reused as the A operand.
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      uint32_t af[4] = {pack2<T>(s[2 * kk][0], s[2 * kk][1]), pack2<T>(s[2 * kk][2], s[2 * kk][3]),
                        pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                        pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int j = 0; j < D / 8; ++j) {
        const T* vb = svt + (j * 8 + g) * VP + kk * 16 + 2 * t;
        uint32_t bf[2] = {lds32(vb), lds32(vb + 8)};
        mma16816<T>(o[j], af, bf);
      }
    }
  }

  T* out = static_cast<T*>(a.out) + b * a.o_stride[0] + h * a.o_stride[1];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float total = row_sum[r];
    total += __shfl_xor_sync(0xffffffffu, total, 1);
    total += __shfl_xor_sync(0xffffffffu, total, 2);
    const int64_t row = row0 + 8 * r;
    if (row >= a.q_len) continue;
    // No allowed key: NaN as torch gives for a fully masked row; no keys at all: zeros.
    float inv = total > 0 ? 1.0f / total : (a.kv_len == 0 ? 0.0f : NAN);
    T* orow = out + row * a.o_stride[2];
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
      orow[j * 8 + 2 * t] = from_f<T>(total > 0 ? o[j][2 * r] * inv : inv);
      orow[j * 8 + 2 * t + 1] = from_f<T>(total > 0 ? o[j][2 * r + 1] * inv : inv);
    }
  }
}

template <typename T, int D, int BN>
cudaError_t flash_typed(const AttentionArgs& a, cudaStream_t stream) {
  if (a.q_len == 0 || a.batch == 0 || a.q_heads == 0) return cudaSuccess;
  constexpr size_t smem = FlashShape<T, D, BN>::kSmem;
  cudaError_t status = cudaFuncSetAttribute(
      flash_forward<T, D, BN>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (status != cudaSuccess) return status;
  dim3 grid(static_cast<unsigned>((a.q_len + kRows - 1) / kRows), static_cast<unsigned>(a.q_heads),
            static_cast<unsigned>(a.batch));
  flash_forward<T, D, BN><<<grid, kThreads, smem, stream>>>(a);
  return cudaGetLastError();
}

template <typename T>
cudaError_t flash_dim(const AttentionArgs& a, cudaStream_t stream) {
  switch (a.head_dim) {
    case 64:
      return flash_typed<T, 64, 64>(a, stream);
    case 80:
      return flash_typed<T, 80, 64>(a, stream);
    case 96:
      return flash_typed<T, 96, 64>(a, stream);
    case 128:
      return flash_typed<T, 128, 64>(a, stream);
    case 256:
      return flash_typed<T, 256, 32>(a, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

bool aligned_rows(const void* p, const int64_t (&stride)[4]) {
  // Every row start must be 16-byte aligned for the vector loads (2-byte elements).
  if ((reinterpret_cast<uintptr_t>(p) & 15u) != 0) return false;
  for (int d = 0; d < 3; ++d)
    if (stride[d] % 8 != 0) return false;
  return stride[3] == 1;
}

}  // namespace

bool flash_attention_supported(DType dtype, const AttentionArgs& a) {
  if (dtype != DType::kF16 && dtype != DType::kBF16) return false;
  int64_t d = a.head_dim;
  if (d != 64 && d != 80 && d != 96 && d != 128 && d != 256) return false;
  if (a.v_dim != d || a.mask || a.block_table || a.q_len < 16) return false;
  if (a.q_heads > 65535 || a.batch > 65535 || (a.q_len + kRows - 1) / kRows >= (int64_t{1} << 31))
    return false;
  return aligned_rows(a.q, a.q_stride) && aligned_rows(a.k, a.k_stride) &&
         aligned_rows(a.v, a.v_stride) && a.o_stride[3] == 1;
}

cudaError_t launch_flash_attention(DType dtype, const AttentionArgs& args, cudaStream_t stream) {
  if (dtype == DType::kBF16) return flash_dim<__nv_bfloat16>(args, stream);
  if (dtype == DType::kF16) return flash_dim<__half>(args, stream);
  return cudaErrorInvalidValue;
}

}  // namespace flagstone::ops::cuda
