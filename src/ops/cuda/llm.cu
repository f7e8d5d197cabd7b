// cuda native large-model kernels: rotary embedding (neox and gpt-j, partial rotary, any table
// dtype), embedding row gather, and the launcher of softmax cross entropy (cross_entropy.cuh).
// Indices that are out of range cannot raise on the device: their outputs become NaN (0xff bytes
// for embedding rows), so a bad position or token is visible rather than a silent wrong value.
#include <algorithm>
#include <type_traits>

#include "cuda/cross_entropy.cuh"
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace flagstone::ops::cuda {
namespace {

// Default rotary variant (tuning_variant), the fastest correct one of session 12's first H200
// window: 4 (four heads per thread, streaming loads and stores: 85.7% of copy bf16, 85.5% f16,
// against 84.0 / 85.1% without the hint) for f16/bf16 and 0 (one head) for f32.
template <typename T>
constexpr int kRotaryVariant = sizeof(T) == 2 ? 4 : 0;

// Block of (threads.x, rows): threadIdx.y picks a (token, head) row, threadIdx.x walks its
// rotation pairs (then the pass-through tail in pairs), so a warp reads consecutive pairs.
template <typename T>
__global__ void rotary_kernel(T* out, const T* x, RotaryArgs a) {
  const int64_t row = int64_t{blockIdx.x} * blockDim.y + threadIdx.y;
  if (row >= a.tokens * a.heads) return;
  const int64_t t = row / a.heads;
  const T* xi = x + row * a.head_dim;
  T* o = out + row * a.head_dim;
  const int64_t p = load_index(a.positions, a.positions_i64, t);
  const bool bad = p < 0 || p >= a.max_positions;
  const int64_t pairs = a.head_dim / 2;
  for (int64_t i = threadIdx.x; i < pairs; i += blockDim.x) {
    int64_t lo, hi;  // the two elements of pair i
    if (i >= a.half) {
      lo = 2 * i, hi = 2 * i + 1;  // pass-through tail (past the rotary dims), copied in pairs
      o[lo] = xi[lo], o[hi] = xi[hi];
      continue;
    }
    if (a.neox)
      lo = i, hi = i + a.half;
    else
      lo = 2 * i, hi = 2 * i + 1;
    float x1 = to_f(xi[lo]), x2 = to_f(xi[hi]);
    float c = bad ? NAN : load_any(a.cos, a.table_dtype, p * a.half + i);
    float s = bad ? NAN : load_any(a.sin, a.table_dtype, p * a.half + i);
    o[lo] = from_f<T>(x1 * c - x2 * s);
    o[hi] = from_f<T>(x2 * c + x1 * s);
  }
  if ((a.head_dim & 1) && threadIdx.x == 0) o[a.head_dim - 1] = xi[a.head_dim - 1];
}

// N table entries from `at`: 16-byte loads when the launcher found the table aligned and f32 or
// of the activation dtype, else element by element.
template <typename T, int N>
__device__ __forceinline__ void load_table(const void* base, DType dtype, bool vec, int64_t at,
                                           float (&out)[N]) {
  if (vec && dtype == DType::kF32 && N % 4 == 0) {
    const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(base) + at);
#pragma unroll
    for (int q = 0; q < N / 4; ++q) {
      float4 f = p[q];
      out[4 * q] = f.x, out[4 * q + 1] = f.y, out[4 * q + 2] = f.z, out[4 * q + 3] = f.w;
    }
  } else if (vec && sizeof(T) == 2 && N == 8 &&
             dtype == (std::is_same_v<T, __half> ? DType::kF16 : DType::kBF16)) {
    load_pack(static_cast<const T*>(base) + at, out);
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j) out[j] = load_any(base, dtype, at + j);
  }
}

// The 16-byte path: one thread per group of N rotation pairs (neox: a pack from each half;
// gpt-j: two adjacent packs of interleaved pairs) or per pack of the pass-through tail, in K
// consecutive heads of one token (the table entries are loaded once for the K heads and all 2K
// packs are in flight together). Needs half and the tail to be whole packs, x/out aligned,
// heads a multiple of K and fewer than 2^31 items (32-bit index arithmetic), which the launcher
// checks.
// kStream: x read and out written with the evict-first hint (each byte is touched once).
template <typename T, int K, bool kStream = false>
__global__ void rotary_packed(T* out, const T* x, RotaryArgs a, uint32_t items, bool table_vec) {
  constexpr int N = Pack<T>::kCount;
  const uint32_t rot_groups = static_cast<uint32_t>(a.half / N);
  const uint32_t groups = rot_groups + static_cast<uint32_t>((a.head_dim - 2 * a.half) / N);
  const uint32_t head_blocks = static_cast<uint32_t>(a.heads) / K;
  const uint32_t hd = static_cast<uint32_t>(a.head_dim), half = static_cast<uint32_t>(a.half);
  for (uint32_t it = blockIdx.x * blockDim.x + threadIdx.x; it < items;
       it += gridDim.x * blockDim.x) {
    const uint32_t rest = it / groups, g = it - rest * groups;
    const uint32_t token = rest / head_blocks;
    const size_t row0 = size_t{rest} * K;  // first of the K rows (token * heads + head)
    if (g >= rot_groups) {
      const uint32_t c = 2 * half + (g - rot_groups) * N;
      uint4 t[K];
#pragma unroll
      for (int k = 0; k < K; ++k) t[k] = load16<kStream>(x + (row0 + k) * hd + c);
#pragma unroll
      for (int k = 0; k < K; ++k) store16<kStream>(out + (row0 + k) * hd + c, t[k]);
      continue;
    }
    // Offsets of the two packs of this group within a row.
    const uint32_t o1 = a.neox ? g * N : 2 * g * N, o2 = a.neox ? half + g * N : 2 * g * N + N;
    uint4 u[K], v[K];
#pragma unroll
    for (int k = 0; k < K; ++k) {
      u[k] = load16<kStream>(x + (row0 + k) * hd + o1);
      v[k] = load16<kStream>(x + (row0 + k) * hd + o2);
    }
    const int64_t p = load_index(a.positions, a.positions_i64, token);
    const bool bad = p < 0 || p >= a.max_positions;
    float c[N], s[N];
    if (bad) {
#pragma unroll
      for (int j = 0; j < N; ++j) c[j] = s[j] = NAN;
    } else {
      load_table<T, N>(a.cos, a.table_dtype, table_vec, p * a.half + int64_t{g} * N, c);
      load_table<T, N>(a.sin, a.table_dtype, table_vec, p * a.half + int64_t{g} * N, s);
    }
#pragma unroll
    for (int k = 0; k < K; ++k) {
      float fu[N], fv[N], ru[N], rv[N];
      unpack<T>(u[k], fu);
      unpack<T>(v[k], fv);
      if (a.neox) {
        // Pair i = g*N + j is (first[i], second[i]) with second = first + half.
#pragma unroll
        for (int j = 0; j < N; ++j) {
          ru[j] = fu[j] * c[j] - fv[j] * s[j];
          rv[j] = fv[j] * c[j] + fu[j] * s[j];
        }
      } else {
        // Pairs g*N .. g*N+N-1 are the 2N elements from 2*g*N: N/2 pairs in each pack.
#pragma unroll
        for (int j = 0; j < N / 2; ++j) {
          ru[2 * j] = fu[2 * j] * c[j] - fu[2 * j + 1] * s[j];
          ru[2 * j + 1] = fu[2 * j + 1] * c[j] + fu[2 * j] * s[j];
          rv[2 * j] = fv[2 * j] * c[N / 2 + j] - fv[2 * j + 1] * s[N / 2 + j];
          rv[2 * j + 1] = fv[2 * j + 1] * c[N / 2 + j] + fv[2 * j] * s[N / 2 + j];
        }
      }
      store16<kStream>(out + (row0 + k) * hd + o1, pack<T>(ru));
      store16<kStream>(out + (row0 + k) * hd + o2, pack<T>(rv));
    }
  }
}

// One block per output row; words of W bytes.
template <typename W>
__global__ void embedding_kernel(char* out, const char* weight, const void* index, bool i64,
                                 int64_t table_rows, int64_t row_bytes) {
  int64_t r = blockIdx.x;
  int64_t k = load_index(index, i64, r);
  auto* dst = reinterpret_cast<W*>(out + r * row_bytes);
  int64_t words = row_bytes / static_cast<int64_t>(sizeof(W));
  if (k < 0 || k >= table_rows) {
    W bad;
    memset(&bad, 0xff, sizeof(W));
    for (int64_t w = threadIdx.x; w < words; w += blockDim.x) dst[w] = bad;
    return;
  }
  auto* src = reinterpret_cast<const W*>(weight + k * row_bytes);
  for (int64_t w = threadIdx.x; w < words; w += blockDim.x) dst[w] = src[w];
}

template <typename T>
cudaError_t rotary_typed(const RotaryArgs& a, cudaStream_t stream) {
  int64_t rows = a.tokens * a.heads, pairs = a.head_dim / 2;
  if (rows == 0 || pairs == 0) return cudaSuccess;
  constexpr int N = Pack<T>::kCount;
  bool aligned =
      ((reinterpret_cast<uintptr_t>(a.out) | reinterpret_cast<uintptr_t>(a.x)) & 15u) == 0;
  int64_t items = rows * (a.half / N + (a.head_dim - 2 * a.half) / N);
  if (aligned && a.half % N == 0 && (a.head_dim - 2 * a.half) % N == 0 &&
      items < (int64_t{1} << 31)) {
    if (items == 0) return cudaSuccess;
    bool table_vec =
        ((reinterpret_cast<uintptr_t>(a.cos) | reinterpret_cast<uintptr_t>(a.sin)) & 15u) == 0;
    auto* o = static_cast<T*>(a.out);
    auto* xi = static_cast<const T*>(a.x);
    int v = tuning_variant(kRotaryVariant<T>);
    int k = v == 1 || v == 5 ? 2 : v == 2 || v == 4 || v == 6 ? 4 : v == 3 ? 8 : 1;
    if (a.heads % k != 0) k = 1;
    auto it = static_cast<uint32_t>(items / k);
    // 4, 5: streaming hints; 6: a resident grid (four blocks per SM) walking the items.
    if (k == 4 && v == 4) {
      rotary_packed<T, 4, true><<<grid_for(it, 256), 256, 0, stream>>>(o, xi, a, it, table_vec);
      return cudaGetLastError();
    }
    if (k == 2 && v == 5) {
      rotary_packed<T, 2, true><<<grid_for(it, 256), 256, 0, stream>>>(o, xi, a, it, table_vec);
      return cudaGetLastError();
    }
    if (k == 4 && v == 6) {
      int dev = 0, sms = 0;
      cudaGetDevice(&dev);
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
      unsigned grid = std::min(grid_for(it, 256), static_cast<unsigned>(std::max(sms, 1) * 4));
      rotary_packed<T, 4><<<grid, 256, 0, stream>>>(o, xi, a, it, table_vec);
      return cudaGetLastError();
    }
    if (k == 2) rotary_packed<T, 2><<<grid_for(it, 256), 256, 0, stream>>>(o, xi, a, it, table_vec);
    if (k == 4) rotary_packed<T, 4><<<grid_for(it, 256), 256, 0, stream>>>(o, xi, a, it, table_vec);
    if (k == 8) rotary_packed<T, 8><<<grid_for(it, 256), 256, 0, stream>>>(o, xi, a, it, table_vec);
    if (k == 1) rotary_packed<T, 1><<<grid_for(it, 256), 256, 0, stream>>>(o, xi, a, it, table_vec);
    return cudaGetLastError();
  }
  int tx = 32;
  while (tx < 256 && tx < pairs) tx *= 2;
  int ty = 256 / tx;
  int64_t blocks = (rows + ty - 1) / ty;
  if (blocks >= (int64_t{1} << 31)) return cudaErrorInvalidValue;
  rotary_kernel<T><<<static_cast<unsigned>(blocks), dim3(tx, ty), 0, stream>>>(
      static_cast<T*>(a.out), static_cast<const T*>(a.x), a);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_rotary(DType dtype, const RotaryArgs& args, cudaStream_t stream) {
  switch (dtype) {
    case DType::kF32:
      return rotary_typed<float>(args, stream);
    case DType::kF16:
      return rotary_typed<__half>(args, stream);
    case DType::kBF16:
      return rotary_typed<__nv_bfloat16>(args, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

cudaError_t launch_embedding(void* out, const void* weight, const void* index, bool index_i64,
                             int64_t count, int64_t table_rows, int64_t row_bytes,
                             cudaStream_t stream) {
  if (count == 0 || row_bytes == 0) return cudaSuccess;
  auto* o = static_cast<char*>(out);
  auto* w = static_cast<const char*>(weight);
  uintptr_t bits = reinterpret_cast<uintptr_t>(o) | reinterpret_cast<uintptr_t>(w) |
                   static_cast<uintptr_t>(row_bytes);
  auto grid = static_cast<unsigned>(count);
  if ((bits & 15u) == 0)
    embedding_kernel<uint4>
        <<<grid, 128, 0, stream>>>(o, w, index, index_i64, table_rows, row_bytes);
  else if ((bits & 3u) == 0)
    embedding_kernel<uint32_t>
        <<<grid, 128, 0, stream>>>(o, w, index, index_i64, table_rows, row_bytes);
  else
    embedding_kernel<uint8_t>
        <<<grid, 128, 0, stream>>>(o, w, index, index_i64, table_rows, row_bytes);
  return cudaGetLastError();
}

cudaError_t launch_cross_entropy(DType dtype, const CrossEntropyArgs& args, cudaStream_t stream) {
  switch (dtype) {
    case DType::kF32:
      return ce::cross_entropy_typed<float>(args, stream);
    case DType::kF16:
      return ce::cross_entropy_typed<__half>(args, stream);
    case DType::kBF16:
      return ce::cross_entropy_typed<__nv_bfloat16>(args, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace flagstone::ops::cuda
