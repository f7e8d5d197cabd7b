// cuda native GEMV for few activation rows (decode's linear): every weight row is streamed once
// with 16-byte loads, several in flight per thread, while the 1 to 8 x rows are re-read from L1;
// f32 accumulation, warp shuffles, then shared memory to combine the warps that split a row.
#include <algorithm>
#include <atomic>
#include <cstdlib>

#include "cuda/device_utils.cuh"
#include "cuda/gemv.h"
#include "cuda/pdl.cuh"

namespace flagstone::ops::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

// Weight bytes are used once: keep them out of L1, where the x rows every warp re-reads live.
__device__ __forceinline__ uint4 load_once(const void* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

template <typename T>
__device__ __forceinline__ float dot_pack(const uint4& w, const uint4& x) {
  const T* wv = reinterpret_cast<const T*>(&w);
  const T* xv = reinterpret_cast<const T*>(&x);
  float s = 0;
#pragma unroll
  for (int i = 0; i < Pack<T>::kCount; ++i) s = fmaf(to_f(wv[i]), to_f(xv[i]), s);
  return s;
}

// A block of kWarps warps serves kWarps / wpr output features; the wpr warps of a feature
// interleave over its row (warp p takes chunks p * 32 + lane + i * 32 * wpr), so each warp load
// covers 512 contiguous bytes and short rows still give every SM enough loads in flight. kVec:
// 16-byte chunks (k, the leading dims and the pointers allow it), else single elements. MB is the
// row count rounded up; rows past a.m are skipped with warp-uniform branches.
template <typename T, int MB, int U, bool kVec>
__global__ void __launch_bounds__(kThreads) gemv_kernel(GemvArgs a, int wpr) {
  __shared__ float partial[kWarps][MB];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int rows_per_block = kWarps / wpr;
  const int64_t n0 = int64_t{blockIdx.x} * rows_per_block;
  const int64_t n = n0 + warp / wpr;
  const int part = warp % wpr;
  const int m = static_cast<int>(a.m);
  const T* x = static_cast<const T*>(a.x);
  float acc[MB];
#pragma unroll
  for (int r = 0; r < MB; ++r) acc[r] = 0;
  const T* w = static_cast<const T*>(a.w) + (n < a.n ? n : 0) * a.ldw;
  const int64_t stride = int64_t{32} * wpr;
  // With early_weights the first step's weight loads go out before the wait below, so under PDL
  // they overlap the previous kernel (weights are never written by it).
  uint4 wv[kVec ? U : 1];
  bool preloaded = false;
  if constexpr (kVec) {
    constexpr int V = Pack<T>::kCount;
    const int64_t c = int64_t{part} * 32 + lane;
    if (a.early_weights && n < a.n && c + (U - 1) * stride < a.k / V) {
#pragma unroll
      for (int u = 0; u < U; ++u) wv[u] = load_once(w + (c + u * stride) * V);
      preloaded = true;
    }
  }
  allow_next_kernel();
  wait_for_previous_kernel();
  if (n < a.n) {
    if constexpr (kVec) {
      constexpr int V = Pack<T>::kCount;
      const int64_t chunks = a.k / V;
      int64_t c = int64_t{part} * 32 + lane;
      // Software pipelined: each step's products run while the next step's loads are in flight,
      // so a warp whose row takes several steps (down, gate/up) never waits with none out.
      if (!preloaded && c + (U - 1) * stride < chunks) {
#pragma unroll
        for (int u = 0; u < U; ++u) wv[u] = load_once(w + (c + u * stride) * V);
      }
      for (; c + (U - 1) * stride < chunks; c += U * stride) {
        const int64_t next = c + U * stride;
        const bool more = next + (U - 1) * stride < chunks;
        uint4 nv[U];
        if (more) {
#pragma unroll
          for (int u = 0; u < U; ++u) nv[u] = load_once(w + (next + u * stride) * V);
        }
#pragma unroll
        for (int u = 0; u < U; ++u) {
#pragma unroll
          for (int r = 0; r < MB; ++r) {
            if (r < m) {
              const T* xr = x + r * a.ldx + (c + u * stride) * V;
              acc[r] += dot_pack<T>(wv[u], __ldg(reinterpret_cast<const uint4*>(xr)));
            }
          }
        }
        if (more) {
#pragma unroll
          for (int u = 0; u < U; ++u) wv[u] = nv[u];
        }
      }
      for (; c < chunks; c += stride) {
        uint4 wv = load_once(w + c * V);
#pragma unroll
        for (int r = 0; r < MB; ++r) {
          if (r < m) {
            const T* xr = x + r * a.ldx + c * V;
            acc[r] += dot_pack<T>(wv, __ldg(reinterpret_cast<const uint4*>(xr)));
          }
        }
      }
    } else {
      for (int64_t i = int64_t{part} * 32 + lane; i < a.k; i += stride) {
        float wv = to_f(w[i]);
#pragma unroll
        for (int r = 0; r < MB; ++r)
          if (r < m) acc[r] = fmaf(wv, to_f(x[r * a.ldx + i]), acc[r]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < MB; ++r) {
    float s = warp_sum(acc[r]);
    if (lane == 0) partial[warp][r] = s;
  }
  __syncthreads();
  if (threadIdx.x < rows_per_block * MB) {
    const int row = threadIdx.x / MB, r = threadIdx.x % MB;
    const int64_t j = n0 + row;
    if (j < a.n && r < m) {
      float s = 0;
      for (int p = 0; p < wpr; ++p) s += partial[row * wpr + p][r];
      if (a.bias) s += to_f(static_cast<const T*>(a.bias)[j]);
      static_cast<T*>(a.out)[r * a.ldo + j] = from_f<T>(s);
    }
  }
}

// Warps per output feature: two while the grid holds fewer than 32 warps per SM (half the
// resident capacity) and each warp still gets two full unrolled steps, else one. In the H200
// sweep of session 11 two warps won for 2048 to 3072 features, and more warps never did.
int pick_warps_per_row(int64_t n, int64_t chunks_per_row, int unroll) {
  const int64_t target = int64_t{current_device_sm_count()} * 32;
  return n < target && chunks_per_row >= int64_t{64} * unroll ? 2 : 1;
}

template <typename T, int MB, int U, bool kVec>
cudaError_t run(const GemvArgs& a, int wpr, cudaStream_t stream) {
  const int64_t rows_per_block = kWarps / wpr;
  const int64_t blocks = (a.n + rows_per_block - 1) / rows_per_block;
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  return launch_with_pdl(gemv_kernel<T, MB, U, kVec>, dim3(static_cast<unsigned>(blocks)),
                         dim3(kThreads), 0, stream, a, wpr);
}

template <typename T, int U>
cudaError_t run_rows(const GemvArgs& a, int wpr, cudaStream_t stream) {
  if (a.m <= 1) return run<T, 1, U, true>(a, wpr, stream);
  if (a.m <= 2) return run<T, 2, U, true>(a, wpr, stream);
  if (a.m <= 4) return run<T, 4, U, true>(a, wpr, stream);
  return run<T, 8, U, true>(a, wpr, stream);
}

bool aligned(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

template <typename T>
cudaError_t launch_typed(const GemvArgs& a, cudaStream_t stream) {
  if (a.m == 0 || a.n == 0) return cudaSuccess;
  if (a.m < 0 || a.m > kGemvMaxRows || a.n < 0 || a.k < 0) return cudaErrorInvalidValue;
  constexpr int V = Pack<T>::kCount;
  const bool vec = a.k % V == 0 && a.ldx % V == 0 && a.ldw % V == 0 && aligned(a.x) && aligned(a.w);
  const int64_t chunks = vec ? a.k / V : a.k;
  int wpr = a.warps_per_row ? a.warps_per_row : pick_warps_per_row(a.n, chunks, 4);
  if (wpr != 1 && wpr != 2 && wpr != 4 && wpr != 8) return cudaErrorInvalidValue;
  if (!vec) return run<T, 8, 1, false>(a, wpr, stream);
  int unroll = a.unroll ? a.unroll : 4;  // 8 was slower on every shape of that sweep
  if (unroll == 4) return run_rows<T, 4>(a, wpr, stream);
  if (unroll == 8) return run_rows<T, 8>(a, wpr, stream);
  return cudaErrorInvalidValue;
}

// ---- The decode step's fused GEMV -------------------------------------------------------------
// A persistent grid (a few blocks per SM) walks tiles of rows_per_block output features. Each
// block first stages the x rows it multiplies into shared memory, applying the prologue (the
// norm or silu * up of the unfused ops, rounded to T as they round), then streams its tiles'
// weight rows with 16-byte loads, kFusedUnroll in flight per thread; the next tile's first loads
// are issued before this tile's reduction, and the first tile's before waiting on the previous
// kernel (weights never depend on it), so a launch's ramp-up hides under its predecessor's tail.
constexpr int kFusedUnroll = 8;

// x rows -> shared memory (m rows of kp packs), with the prologue applied. The loops unroll so
// each thread has several of its (L2-resident) loads in flight: this runs after the wait, on the
// critical path between two kernels.
template <typename T, int MB>
__device__ void stage_x(const FusedGemvArgs& a, uint4* xs, int64_t kp, float (*red)[MB],
                        const uint4& nw0) {
  constexpr int V = Pack<T>::kCount;
  const int m = static_cast<int>(a.m);
  const T* x = static_cast<const T*>(a.x);
  if (a.prologue == GemvPrologue::kSiluMul) {
#pragma unroll
    for (int r = 0; r < MB; ++r) {
      if (r >= m) break;
      const T* g_row = x + r * a.ldx;
#pragma unroll 4
      for (int64_t p = threadIdx.x; p < kp; p += kThreads) {
        float g[V], u[V], o[V];
        unpack<T>(__ldg(reinterpret_cast<const uint4*>(g_row + p * V)), g);
        unpack<T>(__ldg(reinterpret_cast<const uint4*>(g_row + a.k + p * V)), u);
#pragma unroll
        for (int e = 0; e < V; ++e) o[e] = g[e] / (1.0f + expf(-g[e])) * u[e];
        xs[r * kp + p] = pack<T>(o);
      }
    }
    return;
  }
  const bool norm = a.prologue == GemvPrologue::kRmsNorm;
  float ss[MB];
#pragma unroll
  for (int r = 0; r < MB; ++r) {
    ss[r] = 0;
    if (r >= m) continue;
#pragma unroll 4
    for (int64_t p = threadIdx.x; p < kp; p += kThreads) {
      const uint4 raw = __ldg(reinterpret_cast<const uint4*>(x + r * a.ldx + p * V));
      xs[r * kp + p] = raw;
      if (norm) {
        float v[V];
        unpack<T>(raw, v);
#pragma unroll
        for (int e = 0; e < V; ++e) ss[r] = fmaf(v[e], v[e], ss[r]);
      }
    }
  }
  if (!norm) return;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int r = 0; r < MB; ++r) {
    const float s = warp_sum(ss[r]);
    if (lane == 0) red[warp][r] = s;
  }
  __syncthreads();
  const T* nw = static_cast<const T*>(a.norm_weight);
#pragma unroll
  for (int r = 0; r < MB; ++r) {
    if (r >= m) break;
    float s = 0;
    for (int w = 0; w < kWarps; ++w) s += red[w][r];
    const float scale = rsqrtf(s / static_cast<float>(a.k) + a.eps);
#pragma unroll 4
    for (int64_t p = threadIdx.x; p < kp; p += kThreads) {
      float v[V], wv[V];
      unpack<T>(xs[r * kp + p], v);
      // The thread's first pack of the norm weight was loaded before the wait.
      unpack<T>(p == threadIdx.x ? nw0 : __ldg(reinterpret_cast<const uint4*>(nw + p * V)), wv);
#pragma unroll
      for (int e = 0; e < V; ++e) v[e] = v[e] * scale * wv[e];
      xs[r * kp + p] = pack<T>(v);
    }
  }
}

template <typename T, int MB>
__global__ void __launch_bounds__(kThreads, 3)
    fused_gemv_kernel(FusedGemvArgs a, int wpr, int64_t tiles) {
  extern __shared__ uint4 xs[];
  __shared__ float partial[kWarps][MB];
  constexpr int V = Pack<T>::kCount, U = kFusedUnroll;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int rows_per_block = kWarps / wpr, m = static_cast<int>(a.m);
  const int64_t kp = a.k / V, stride = int64_t{32} * wpr;
  const int64_t c0 = int64_t{warp % wpr} * 32 + lane;
  const T* wbase = static_cast<const T*>(a.w);
  uint4 wv[U];
  auto load_group = [&](int64_t row, int64_t c) {
    const T* w = wbase + row * a.ldw;
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (c + u * stride < kp) wv[u] = load_once(w + (c + u * stride) * V);
  };
  int64_t tile = blockIdx.x;
  int64_t row = tile * rows_per_block + warp / wpr;
  if (row < a.n) load_group(row, c0);
  // The norm weight is a model weight too: its first pack loads before the wait as well.
  uint4 nw0 = make_uint4(0, 0, 0, 0);
  if (a.prologue == GemvPrologue::kRmsNorm && threadIdx.x < kp)
    nw0 = __ldg(reinterpret_cast<const uint4*>(static_cast<const T*>(a.norm_weight)) + threadIdx.x);
  wait_for_previous_kernel();
  // Without a prologue x is read where it lies (L1/L2), as the plain GEMV does: no staging.
  const bool staged = a.prologue != GemvPrologue::kNone;
  const uint4* xg = static_cast<const uint4*>(a.x);
  const int64_t xld = a.ldx / V;
  if (staged) stage_x<T, MB>(a, xs, kp, partial, nw0);
  __syncthreads();
  allow_next_kernel();
  for (;;) {
    float acc[MB];
#pragma unroll
    for (int r = 0; r < MB; ++r) acc[r] = 0;
    if (row < a.n) {
      for (int64_t c = c0;;) {
#pragma unroll
        for (int u = 0; u < U; ++u) {
          const int64_t cu = c + u * stride;
          if (cu < kp) {
#pragma unroll
            for (int r = 0; r < MB; ++r)
              if (r < m)
                acc[r] += dot_pack<T>(wv[u], staged ? xs[r * kp + cu] : __ldg(xg + r * xld + cu));
          }
        }
        c += U * stride;
        if (c >= kp) break;
        load_group(row, c);
      }
    }
    const int64_t next = tile + gridDim.x;
    const int64_t next_row = next * rows_per_block + warp / wpr;
    if (next < tiles && next_row < a.n) load_group(next_row, c0);
#pragma unroll
    for (int r = 0; r < MB; ++r) {
      const float s = warp_sum(acc[r]);
      if (lane == 0) partial[warp][r] = s;
    }
    __syncthreads();
    if (threadIdx.x < rows_per_block * MB) {
      const int rb = threadIdx.x / MB, r = threadIdx.x % MB;
      const int64_t j = tile * rows_per_block + rb;
      if (j < a.n && r < m) {
        float s = 0;
        for (int p = 0; p < wpr; ++p) s += partial[rb * wpr + p][r];
        if (a.bias) s += to_f(static_cast<const T*>(a.bias)[j]);
        T* o = static_cast<T*>(a.out) + r * a.ldo + j;
        if (a.residual) {
          // The unfused path rounds the product, then the sum (add_rms_norm's residual).
          s = to_f(from_f<T>(s)) + to_f(static_cast<const T*>(a.residual)[r * a.ldo + j]);
        }
        *o = from_f<T>(s);
      }
    }
    if (next >= tiles) break;
    __syncthreads();  // partial is rewritten by the next tile
    tile = next, row = next_row;
  }
}

template <typename T, int MB>
cudaError_t run_fused(const FusedGemvArgs& a, cudaStream_t stream) {
  constexpr int V = Pack<T>::kCount;
  const int64_t kp = a.k / V;
  const int sms = current_device_sm_count();
  // Warps per output feature: enough warps in the grid to fill every SM (32 each), while each
  // lane keeps at least two 16-byte chunks of its row.
  static const int wpr_env = gemv_env_int("FLAGSTONE_GEMV_WPR");
  int wpr = a.warps_per_row ? a.warps_per_row : wpr_env;
  if (wpr == 0) {
    wpr = 1;
    while (wpr < kWarps && a.n * wpr < int64_t{sms} * 32 && kp >= int64_t{64} * wpr * 2) wpr *= 2;
  }
  if (wpr != 1 && wpr != 2 && wpr != 4 && wpr != 8) return cudaErrorInvalidValue;
  const int64_t rows_per_block = kWarps / wpr;
  const int64_t tiles = (a.n + rows_per_block - 1) / rows_per_block;
  const size_t smem = a.prologue == GemvPrologue::kNone ? 0 : static_cast<size_t>(a.m * kp) * 16;
  static const int bpsm_env = gemv_env_int("FLAGSTONE_GEMV_BPSM");
  int bpsm = a.blocks_per_sm ? a.blocks_per_sm : bpsm_env;
  auto kernel = fused_gemv_kernel<T, MB>;
  // Opting in once per size (also keeps the call out of a graph capture after the warm-up).
  static std::atomic<size_t> opted_in{48 * 1024};
  if (smem > opted_in.load()) {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem));
    if (e != cudaSuccess) return e;
    opted_in.store(smem);
  }
  if (bpsm <= 0) {
    // As many blocks as fit on an SM at once (at most 4): a persistent grid larger than that
    // would leave its last blocks to start after the others finish.
    int fit = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&fit, kernel, kThreads, smem) != cudaSuccess)
      fit = 1;
    bpsm = std::clamp(fit, 1, 4);
  }
  // Every block walks the same number of tiles, so none finishes a tile behind the rest.
  const int64_t cap = int64_t{sms} * bpsm, per_block = (tiles + cap - 1) / cap;
  const int64_t blocks = (tiles + per_block - 1) / per_block;
  const dim3 grid(static_cast<unsigned>(blocks));
  if (a.pdl) return launch_with_pdl(kernel, grid, dim3(kThreads), smem, stream, a, wpr, tiles);
  kernel<<<grid, kThreads, smem, stream>>>(a, wpr, tiles);
  return cudaGetLastError();
}

template <typename T>
cudaError_t fused_typed(const FusedGemvArgs& a, cudaStream_t stream) {
  if (a.m <= 1) return run_fused<T, 1>(a, stream);
  return run_fused<T, 8>(a, stream);
}

// Staged x rows above this do not fit beside a second block on the SM.
constexpr int64_t kMaxStagedBytes = 112 * 1024;

}  // namespace

int gemv_env_int(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : 0;
}

int current_device_sm_count() {
  static std::atomic<int> counts[64];
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) return 108;
  int c = counts[dev].load(std::memory_order_relaxed);
  if (c == 0) {
    if (cudaDeviceGetAttribute(&c, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || c <= 0)
      c = 108;
    counts[dev].store(c, std::memory_order_relaxed);
  }
  return c;
}

cudaError_t launch_gemv(DType dtype, const GemvArgs& args, cudaStream_t stream) {
  switch (dtype) {
    case DType::kF32:
      return launch_typed<float>(args, stream);
    case DType::kF16:
      return launch_typed<__half>(args, stream);
    case DType::kBF16:
      return launch_typed<__nv_bfloat16>(args, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace flagstone::ops::cuda

namespace flagstone::ops::cuda {

const char* fused_gemv_refusal(DType dtype, const FusedGemvArgs& a) {
  if (dtype != DType::kF32 && dtype != DType::kF16 && dtype != DType::kBF16)
    return "dtype is not f32, f16 or bf16";
  if (a.m < 1 || a.m > kGemvMaxRows) return "1 to 8 rows";
  if (a.n < 1 || a.k < 1) return "an empty product";
  if (a.pick.out) return "the greedy pick is the streamed GEMV's";
  if (a.x_index) return "the embedding gather is the streamed GEMV's";
  const int64_t v = 16 / static_cast<int64_t>(dtype_size(dtype));
  if (a.k % v || a.ldx % v || a.ldw % v) return "k or a row stride not a multiple of 16 bytes";
  if (!aligned(a.x) || !aligned(a.w) || (a.norm_weight && !aligned(a.norm_weight)))
    return "an operand not 16-byte aligned";
  if (a.prologue == GemvPrologue::kRmsNorm && !a.norm_weight) return "no norm weight";
  if (a.prologue == GemvPrologue::kSiluMul && a.ldx < 2 * a.k) return "x rows narrower than 2k";
  if (a.epilogue != GemvEpilogue::kNone) return "the silu epilogue is the streamed GEMV's";
  if (a.m * a.k * static_cast<int64_t>(dtype_size(dtype)) > kMaxStagedBytes)
    return "the x rows do not fit in shared memory";
  return "";
}

cudaError_t launch_fused_gemv(DType dtype, const FusedGemvArgs& args, cudaStream_t stream) {
  if (*fused_gemv_refusal(dtype, args)) return cudaErrorInvalidValue;
  switch (dtype) {
    case DType::kF32:
      return fused_typed<float>(args, stream);
    case DType::kF16:
      return fused_typed<__half>(args, stream);
    default:
      return fused_typed<__nv_bfloat16>(args, stream);
  }
}

}  // namespace flagstone::ops::cuda
