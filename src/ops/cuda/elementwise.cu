// cuda native elementwise kernels: add/mul (contiguous 128-bit path and an n-d strided path for
// broadcast and views), f32/f16/bf16 casts, and the fused gated activations of MLP blocks.
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"
#include "cuda/pdl.cuh"

namespace flagstone::ops::cuda {
namespace {

constexpr int kThreads = 256;
// Default variant of the contiguous add/mul (tuning_variant): 0 one pack per thread, 1 two, 2 four.
constexpr int kBinaryVariant = 0;
// Variants of the gated activations: 0 one pack per thread with 64-bit indices (the session-10
// code); 1, 2, 3: 1, 2, 4 packs per thread with 32-bit indices and activate_fast. Default (session
// 12 window 1, 8192 x 11008): 1 for 16-bit (96.3% of copy bf16, 95.7% f16, against 89.9%),
// 0 for f32 (102.7% against 97.6%).
template <typename T>
constexpr int kActVariant = std::is_same_v<T, float> ? 0 : 1;

template <BinaryKind K>
__device__ __forceinline__ float apply(float a, float b, float alpha) {
  if constexpr (K == BinaryKind::kAdd)
    return a + alpha * b;
  else
    return a * b;
}

// All contiguous: packs of 16 bytes per thread, grid-stride, 64-bit indices. With b_period > 0,
// b is a contiguous row of that many elements repeated (a bias or scale over the last dims).
template <typename T, BinaryKind K>
__global__ void binary_packed(T* out, const T* a, const T* b, float alpha, int64_t packs,
                              int64_t b_period) {
  constexpr int N = Pack<T>::kCount;
  for (int64_t p = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; p < packs;
       p += int64_t{gridDim.x} * blockDim.x) {
    float x[N], y[N], r[N];
    load_pack(a + p * N, x);
    load_pack(b + (b_period > 0 ? (p * N) % b_period : p * N), y);
#pragma unroll
    for (int i = 0; i < N; ++i) r[i] = apply<K>(x[i], y[i], alpha);
    store_pack(out + p * N, r);
  }
}

// Same, without a period and with U packs per thread loaded before any is used (more bytes in
// flight per thread) and 32-bit pack indices (the launcher checks packs < 2^32).
template <typename T, BinaryKind K, int U>
__global__ void binary_packed_u(T* out, const T* a, const T* b, float alpha, uint32_t packs) {
  constexpr int N = Pack<T>::kCount;
  const uint32_t base = blockIdx.x * (U * blockDim.x) + threadIdx.x;
  uint4 ra[U], rb[U];
#pragma unroll
  for (int u = 0; u < U; ++u) {
    uint32_t p = base + u * blockDim.x;
    if (p < packs) {
      ra[u] = *reinterpret_cast<const uint4*>(a + size_t{p} * N);
      rb[u] = *reinterpret_cast<const uint4*>(b + size_t{p} * N);
    }
  }
#pragma unroll
  for (int u = 0; u < U; ++u) {
    uint32_t p = base + u * blockDim.x;
    if (p >= packs) continue;
    float x[N], y[N];
    unpack<T>(ra[u], x);
    unpack<T>(rb[u], y);
#pragma unroll
    for (int i = 0; i < N; ++i) x[i] = apply<K>(x[i], y[i], alpha);
    *reinterpret_cast<uint4*>(out + size_t{p} * N) = pack<T>(x);
  }
}

template <typename T, BinaryKind K>
__global__ void binary_tail(T* out, const T* a, const T* b, float alpha, int64_t begin, int64_t n,
                            int64_t b_period) {
  for (int64_t i = begin + blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    out[i] = from_f<T>(apply<K>(to_f(a[i]), to_f(b[b_period > 0 ? i % b_period : i]), alpha));
}

// Any strides (0 for broadcast dims): the linear index is split into coordinates per element,
// in 32-bit arithmetic (I = int32_t) when every index and offset fits, else 64-bit.
template <typename T, BinaryKind K, typename I>
__global__ void binary_strided(T* out, const T* a, const T* b, float alpha, int64_t n,
                               NdLayout layout) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    I rem = static_cast<I>(i), oo = 0, oa = 0, ob = 0;
    for (int d = layout.ndim - 1; d >= 0; --d) {
      I size = static_cast<I>(layout.sizes[d]);
      I c = rem % size;
      rem /= size;
      oo += c * static_cast<I>(layout.strides[0][d]);
      oa += c * static_cast<I>(layout.strides[1][d]);
      ob += c * static_cast<I>(layout.strides[2][d]);
    }
    out[oo] = from_f<T>(apply<K>(to_f(a[oa]), to_f(b[ob]), alpha));
  }
}

// True when every linear index and every operand offset of `layout` fits in int32.
bool fits_int32(const NdLayout& layout, int64_t n) {
  if (n >= (int64_t{1} << 31)) return false;
  for (int k = 0; k < 3; ++k) {
    int64_t reach = 0;
    for (int d = 0; d < layout.ndim; ++d) {
      int64_t s = layout.strides[k][d];
      reach += (layout.sizes[d] - 1) * (s < 0 ? -s : s);
    }
    if (reach >= (int64_t{1} << 31)) return false;
  }
  return true;
}

template <typename T, BinaryKind K>
cudaError_t binary_typed(void* out, const void* a, const void* b, float alpha, int64_t n,
                         const NdLayout* layout, int64_t b_period, cudaStream_t stream) {
  auto* o = static_cast<T*>(out);
  auto* x = static_cast<const T*>(a);
  auto* y = static_cast<const T*>(b);
  if (n == 0) return cudaSuccess;
  if (layout) {
    if (fits_int32(*layout, n))
      binary_strided<T, K, int32_t>
          <<<grid_for(n, kThreads), kThreads, 0, stream>>>(o, x, y, alpha, n, *layout);
    else
      binary_strided<T, K, int64_t>
          <<<grid_for(n, kThreads), kThreads, 0, stream>>>(o, x, y, alpha, n, *layout);
    return cudaGetLastError();
  }
  constexpr int N = Pack<T>::kCount;
  bool aligned = ((reinterpret_cast<uintptr_t>(o) | reinterpret_cast<uintptr_t>(x) |
                   reinterpret_cast<uintptr_t>(y)) &
                  15u) == 0;
  // Packs need b's period to be a whole number of packs too.
  int64_t packs = aligned && b_period % N == 0 ? n / N : 0;
  int v = tuning_variant(kBinaryVariant);
  if (packs > 0 && b_period == 0 && packs <= (int64_t{1} << 28) && (v == 1 || v == 2)) {
    auto up = static_cast<uint32_t>(packs);
    if (v == 1)
      binary_packed_u<T, K, 2>
          <<<grid_for((packs + 1) / 2, kThreads), kThreads, 0, stream>>>(o, x, y, alpha, up);
    else
      binary_packed_u<T, K, 4>
          <<<grid_for((packs + 3) / 4, kThreads), kThreads, 0, stream>>>(o, x, y, alpha, up);
  } else if (packs > 0)
    binary_packed<T, K>
        <<<grid_for(packs, kThreads), kThreads, 0, stream>>>(o, x, y, alpha, packs, b_period);
  if (packs * N < n)
    binary_tail<T, K><<<grid_for(n - packs * N, kThreads), kThreads, 0, stream>>>(
        o, x, y, alpha, packs * N, n, b_period);
  return cudaGetLastError();
}

template <typename T>
cudaError_t binary_kind(BinaryKind kind, void* out, const void* a, const void* b, float alpha,
                        int64_t n, const NdLayout* layout, int64_t b_period, cudaStream_t stream) {
  if (kind == BinaryKind::kAdd)
    return binary_typed<T, BinaryKind::kAdd>(out, a, b, alpha, n, layout, b_period, stream);
  return binary_typed<T, BinaryKind::kMul>(out, a, b, alpha, n, layout, b_period, stream);
}

template <typename From, typename To>
__global__ void cast_kernel(To* out, const From* in, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    out[i] = from_f<To>(to_f(in[i]));
}

template <typename From>
cudaError_t cast_from(DType to, void* out, const void* in, int64_t n, cudaStream_t stream) {
  auto* src = static_cast<const From*>(in);
  unsigned grid = grid_for(n, kThreads);
  switch (to) {
    case DType::kF32:
      cast_kernel<<<grid, kThreads, 0, stream>>>(static_cast<float*>(out), src, n);
      break;
    case DType::kF16:
      cast_kernel<<<grid, kThreads, 0, stream>>>(static_cast<__half*>(out), src, n);
      break;
    case DType::kBF16:
      cast_kernel<<<grid, kThreads, 0, stream>>>(static_cast<__nv_bfloat16*>(out), src, n);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

template <ActKind A>
__device__ __forceinline__ float activate(float x) {
  if constexpr (A == ActKind::kSilu) {
    return x / (1.0f + expf(-x));
  } else if constexpr (A == ActKind::kGeluErf) {
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
  } else {
    return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
  }
}

// d a multiple of the pack size and every row 16-byte aligned: one pack of outputs per step.
template <typename T, ActKind A>
__global__ void act_mul_packed(T* out, const T* x, int64_t rows, int64_t d) {
  constexpr int N = Pack<T>::kCount;
  int64_t per_row = d / N, packs = rows * per_row;
  for (int64_t p = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; p < packs;
       p += int64_t{gridDim.x} * blockDim.x) {
    int64_t r = p / per_row, c = (p - r * per_row) * N;
    float g[N], u[N], o[N];
    load_pack(x + r * 2 * d + c, g);
    load_pack(x + r * 2 * d + d + c, u);
#pragma unroll
    for (int i = 0; i < N; ++i) o[i] = activate<A>(g[i]) * u[i];
    store_pack(out + r * d + c, o);
  }
}

// The activation with fewer instructions per element: silu as x / (1 + 2^(-x log2e)) with the
// MUFU exp2 and a fast divide (both within a few ulp of f32; x below -88 gives -0 where the
// exact value is under 1e-36); the gelus as activate.
template <ActKind A>
__device__ __forceinline__ float activate_fast(float x) {
  if constexpr (A == ActKind::kSilu)
    return __fdividef(x, 1.0f + exp2_ftz(-x * kLog2e));
  else
    return activate<A>(x);
}

// U packs of outputs per thread with all 2U input packs in flight before any is used, 32-bit
// pack indices (the launcher checks rows * d / N <= 2^28) and the fast activation.
template <typename T, ActKind A, int U>
__global__ void act_mul_u(T* out, const T* x, uint32_t per_row, uint32_t packs) {
  constexpr int N = Pack<T>::kCount;
  const uint32_t base = blockIdx.x * (U * blockDim.x) + threadIdx.x;
  const size_t d = size_t{per_row} * N;
  // Launched with PDL (a decode step's one-row activation): wait for the kernel that wrote x.
  allow_next_kernel();
  wait_for_previous_kernel();
  uint4 g[U], u[U];
  size_t at[U];
#pragma unroll
  for (int k = 0; k < U; ++k) {
    const uint32_t p = base + k * blockDim.x;
    if (p >= packs) continue;
    const uint32_t r = p / per_row, c = p - r * per_row;
    at[k] = size_t{r} * 2 * d + size_t{c} * N;
    g[k] = load16<true>(x + at[k]);
    u[k] = load16<true>(x + at[k] + d);
  }
#pragma unroll
  for (int k = 0; k < U; ++k) {
    const uint32_t p = base + k * blockDim.x;
    if (p >= packs) continue;
    float a[N], b[N];
    unpack<T>(g[k], a);
    unpack<T>(u[k], b);
#pragma unroll
    for (int i = 0; i < N; ++i) a[i] = activate_fast<A>(a[i]) * b[i];
    store16<false>(out + size_t{p} * N, pack<T>(a));
  }
}

template <typename T, ActKind A>
__global__ void act_mul_scalar(T* out, const T* x, int64_t rows, int64_t d) {
  int64_t n = rows * d;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    int64_t r = i / d, c = i - r * d;
    out[i] = from_f<T>(activate<A>(to_f(x[r * 2 * d + c])) * to_f(x[r * 2 * d + d + c]));
  }
}

template <typename T, ActKind A>
cudaError_t act_typed(void* out, const void* x, int64_t rows, int64_t d, cudaStream_t stream) {
  if (rows == 0 || d == 0) return cudaSuccess;
  auto* o = static_cast<T*>(out);
  auto* in = static_cast<const T*>(x);
  constexpr int N = Pack<T>::kCount;
  bool packed =
      d % N == 0 && ((reinterpret_cast<uintptr_t>(o) | reinterpret_cast<uintptr_t>(in)) & 15u) == 0;
  const int64_t packs = packed ? rows * (d / N) : 0;
  const int v = tuning_variant(kActVariant<T>);
  // No grid stride: grid_for's 2^20 blocks of one pack each per thread cover 2^28 packs.
  if (packed && packs <= (int64_t{1} << 28) && v >= 1 && v <= 3) {
    const auto per_row = static_cast<uint32_t>(d / N), up = static_cast<uint32_t>(packs);
    const unsigned per = v == 1 ? 1 : v == 2 ? 2 : 4;
    const dim3 grid = grid_for((packs + per - 1) / per, kThreads);
    if (v == 1)
      return launch_with_pdl(act_mul_u<T, A, 1>, grid, dim3(kThreads), 0, stream, o, in, per_row,
                             up);
    if (v == 2)
      return launch_with_pdl(act_mul_u<T, A, 2>, grid, dim3(kThreads), 0, stream, o, in, per_row,
                             up);
    return launch_with_pdl(act_mul_u<T, A, 4>, grid, dim3(kThreads), 0, stream, o, in, per_row, up);
  } else if (packed)
    act_mul_packed<T, A>
        <<<grid_for(rows * (d / N), kThreads), kThreads, 0, stream>>>(o, in, rows, d);
  else
    act_mul_scalar<T, A><<<grid_for(rows * d, kThreads), kThreads, 0, stream>>>(o, in, rows, d);
  return cudaGetLastError();
}

template <typename T>
cudaError_t act_kind(ActKind act, void* out, const void* x, int64_t rows, int64_t d,
                     cudaStream_t stream) {
  switch (act) {
    case ActKind::kSilu:
      return act_typed<T, ActKind::kSilu>(out, x, rows, d, stream);
    case ActKind::kGeluErf:
      return act_typed<T, ActKind::kGeluErf>(out, x, rows, d, stream);
    default:
      return act_typed<T, ActKind::kGeluTanh>(out, x, rows, d, stream);
  }
}

}  // namespace

cudaError_t launch_binary(BinaryKind kind, DType dtype, void* out, const void* a, const void* b,
                          float alpha, int64_t n, const NdLayout* layout, int64_t b_period,
                          cudaStream_t stream) {
  switch (dtype) {
    case DType::kF32:
      return binary_kind<float>(kind, out, a, b, alpha, n, layout, b_period, stream);
    case DType::kF16:
      return binary_kind<__half>(kind, out, a, b, alpha, n, layout, b_period, stream);
    case DType::kBF16:
      return binary_kind<__nv_bfloat16>(kind, out, a, b, alpha, n, layout, b_period, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

cudaError_t launch_cast(DType from, DType to, void* out, const void* in, int64_t n,
                        cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  switch (from) {
    case DType::kF32:
      return cast_from<float>(to, out, in, n, stream);
    case DType::kF16:
      return cast_from<__half>(to, out, in, n, stream);
    case DType::kBF16:
      return cast_from<__nv_bfloat16>(to, out, in, n, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

cudaError_t launch_act_and_mul(ActKind act, DType dtype, void* out, const void* x, int64_t rows,
                               int64_t d, cudaStream_t stream) {
  switch (dtype) {
    case DType::kF32:
      return act_kind<float>(act, out, x, rows, d, stream);
    case DType::kF16:
      return act_kind<__half>(act, out, x, rows, d, stream);
    case DType::kBF16:
      return act_kind<__nv_bfloat16>(act, out, x, rows, d, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace flagstone::ops::cuda
