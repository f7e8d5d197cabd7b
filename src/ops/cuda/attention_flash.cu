// Tensor-core flash attention for f16/bf16 prefill: a block of 8 warps takes 128 query rows (4
// warps and 64 rows for head dim 256), 16 rows per warp with the Q fragments kept in registers,
// and walks key tiles of K and V that cp.async double-buffers in shared memory; S = Q K^T and
// O += P V run on mma.sync.m16n8k16 with f32 accumulation, operands fetched with ldmatrix
// (transposed for V), and the softmax is kept online per row, so the [queries, keys] score
// matrix never reaches memory. Causal tiles past the diagonal are skipped. Masks, paged caches,
// odd strides and decode shapes go to attention.cu instead.
#include <cstdint>
#include <type_traits>

#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace flagstone::ops::cuda {
namespace {

constexpr int kMinRows = 64;  // query rows per block: 16 per warp, 4 or 8 warps

template <typename T>
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// 16 bytes global -> shared without a register round trip; `valid` false writes zeros.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// 2^x by the hardware approximation (2 ulp); -inf gives +0, which masked scores rely on.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// Two floats as a packed pair of T (the first in the low half), as mma fragments hold them.
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  T pair[2] = {from_f<T>(lo), from_f<T>(hi)};
  uint32_t bits;
  memcpy(&bits, pair, 4);
  return bits;
}

template <typename T, int D, int BN>
struct FlashShape {
  // 128 rows (8 warps) halve the K/V traffic per query; head dim 256 keeps 64 for registers.
  static constexpr int kRows = D <= 128 ? 128 : 64;
  static constexpr int kThreads = kRows * 2;
  static constexpr int kPitch = D + 8;  // padded rows: ldmatrix rows land in distinct banks
  static constexpr size_t kSmem = sizeof(T) * static_cast<size_t>(kRows + 4 * BN) * kPitch;
};

// Issues the cp.async copies of rows [row0, row0 + count) of a [len, D] operand into `dst`.
template <typename T, int D, int kThreads>
__device__ __forceinline__ void load_tile(T* dst, const T* src, int64_t row_stride, int64_t row0,
                                          int count, int64_t len) {
  constexpr int kVecs = D / 8, P = D + 8;
  for (int idx = threadIdx.x; idx < count * kVecs; idx += kThreads) {
    int r = idx / kVecs, c = (idx % kVecs) * 8;
    bool valid = row0 + r < len;
    cp_async16(dst + r * P + c, src + (valid ? (row0 + r) * row_stride + c : 0), valid);
  }
}

template <typename T, int D, int BN>
__global__ void __launch_bounds__(FlashShape<T, D, BN>::kThreads) flash_forward(AttentionArgs a) {
  constexpr int P = FlashShape<T, D, BN>::kPitch, kRows = FlashShape<T, D, BN>::kRows,
                kThreads = FlashShape<T, D, BN>::kThreads;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sq = reinterpret_cast<T*>(smem);
  // Stage s of the K and V tiles (computed, not indexed, so nothing goes to local memory).
  auto sk = [&](int stage) { return sq + (kRows + stage * BN) * P; };
  auto sv = [&](int stage) { return sq + (kRows + (2 + stage) * BN) * P; };
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  // Causal blocks lower in the matrix have more keys: start those first for a shorter tail.
  const int64_t m_block = a.causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const int64_t m0 = m_block * kRows, h = blockIdx.y, b = blockIdx.z;
  const int64_t kh = h / (a.q_heads / a.kv_heads);
  const T* q = static_cast<const T*>(a.q) + b * a.q_stride[0] + h * a.q_stride[1];
  const T* k = static_cast<const T*>(a.k) + b * a.k_stride[0] + kh * a.k_stride[1];
  const T* v = static_cast<const T*>(a.v) + b * a.v_stride[0] + kh * a.v_stride[1];

  int64_t kv_end = a.kv_len;
  if (a.causal) kv_end = min(kv_end, max(int64_t{0}, m0 + kRows + a.causal_shift));
  const int64_t tiles = (kv_end + BN - 1) / BN;

  load_tile<T, D, kThreads>(sq, q, a.q_stride[2], m0, kRows, a.q_len);
  if (tiles > 0) {
    load_tile<T, D, kThreads>(sk(0), k, a.k_stride[2], 0, BN, a.kv_len);
    load_tile<T, D, kThreads>(sv(0), v, a.v_stride[2], 0, BN, a.kv_len);
  }
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();

  // Q fragments for every 16-wide slice of the head dim, kept for the whole key loop.
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
    ldmatrix_x4(qf[kk], sq + (warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * P + kk * 16 +
                            (lane >> 4) * 8);

  float o[D / 8][4];
#pragma unroll
  for (int j = 0; j < D / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0, 0};
  const float scale_log2 = a.scale * 1.4426950408889634f;
  const int64_t row0 = m0 + warp * 16 + g;  // this thread's rows: row0 and row0 + 8

  for (int64_t tile = 0; tile < tiles; ++tile) {
    const int cur = static_cast<int>(tile & 1);
    const int64_t n0 = tile * BN;
    if (tile + 1 < tiles) {
      // The other buffer was last read in the previous iteration, which ended in a barrier.
      load_tile<T, D, kThreads>(sk(cur ^ 1), k, a.k_stride[2], n0 + BN, BN, a.kv_len);
      load_tile<T, D, kThreads>(sv(cur ^ 1), v, a.v_stride[2], n0 + BN, BN, a.kv_len);
    }
    cp_async_commit();
    if (tile > 0) {
      cp_async_wait<1>();  // this tile's copies (issued one iteration ago) are done
      __syncthreads();
    }
    const T* ks = sk(cur);
    const T* vs = sv(cur);

    float s[BN / 8][4];
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int j = 0; j < BN / 8; j += 2) {
        uint32_t r[4];
        ldmatrix_x4(
            r, ks + (j * 8 + (lane & 7) + (lane >> 4) * 8) * P + kk * 16 + ((lane >> 3) & 1) * 8);
        mma16816<T>(s[j], qf[kk], r[0], r[1]);
        mma16816<T>(s[j + 1], qf[kk], r[2], r[3]);
      }
    }

    // Scale into log2 units, mask, and fold the tile into the running max and sum.
    const bool edge = n0 + BN > a.kv_len || (a.causal && n0 + BN - 1 > m0 + a.causal_shift);
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int64_t row = row0 + 8 * r;
      float tile_max = -INFINITY;
#pragma unroll
      for (int j = 0; j < BN / 8; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float x = s[j][2 * r + e] * scale_log2;
          if (edge) {
            int64_t col = n0 + j * 8 + 2 * t + e;
            if (col >= a.kv_len || (a.causal && col > row + a.causal_shift)) x = -INFINITY;
          }
          s[j][2 * r + e] = x;
          tile_max = fmaxf(tile_max, x);
        }
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
      float new_max = fmaxf(row_max[r], tile_max);
      // A row with no allowed key yet keeps max -inf; subtracting 0 keeps its terms at 0.
      float base = new_max == -INFINITY ? 0.0f : new_max;
      float correction = fast_exp2(row_max[r] - base);
      row_max[r] = new_max;
      row_sum[r] *= correction;
#pragma unroll
      for (int j = 0; j < D / 8; ++j) o[j][2 * r] *= correction, o[j][2 * r + 1] *= correction;
#pragma unroll
      for (int j = 0; j < BN / 8; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float p = fast_exp2(s[j][2 * r + e] - base);
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
      for (int j = 0; j < D / 8; j += 2) {
        uint32_t r[4];
        ldmatrix_x4_trans(
            r, vs + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * P + j * 8 + (lane >> 4) * 8);
        mma16816<T>(o[j], af, r[0], r[1]);
        mma16816<T>(o[j + 1], af, r[2], r[3]);
      }
    }
    __syncthreads();  // every warp is done with this buffer before it is refilled
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
  using S = FlashShape<T, D, BN>;
  constexpr size_t smem = S::kSmem;
  cudaError_t status = cudaFuncSetAttribute(
      flash_forward<T, D, BN>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (status != cudaSuccess) return status;
  dim3 grid(static_cast<unsigned>((a.q_len + S::kRows - 1) / S::kRows),
            static_cast<unsigned>(a.q_heads), static_cast<unsigned>(a.batch));
  flash_forward<T, D, BN><<<grid, S::kThreads, smem, stream>>>(a);
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
  if (a.q_heads > 65535 || a.batch > 65535 ||
      (a.q_len + kMinRows - 1) / kMinRows >= (int64_t{1} << 31))
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
