// The decode step's q/k/v product, rotary, KV append and attention in one launch: one
// thread-block cluster per GQA group streams that group's q/k/v weight rows (the streamed GEMV's
// ring, ops/cuda/gemv_stream.cuh), the blocks trade their rounded products through distributed
// shared memory, each block attends over its share of the cached keys, and the first block of
// the cluster merges the shares.
//
// Why: as two kernels (the product, then rope_attention) the attention waits for the whole
// product grid to end and then for its own q/k/v loads, some 5 µs a layer on the 1B shape for
// a kernel that moves almost no memory; inside the cluster it waits only for its group's rows.
// Measured slower so far (decode_qkv_attention.cc says by how much), so the engine takes it only
// when asked.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "../../ops/cuda/attention_decode.cuh"
#include "../../ops/cuda/gemv_stream.cuh"
#include "attention_cluster.cuh"
#include "kv_cache_write.h"
#include "qkv_attention.h"
#include "shape_dispatch.cuh"

namespace flagstone::engine::detail {
namespace {

namespace streamed = ops::cuda::streamed;
using decode_core::cluster_arrive;
using decode_core::cluster_start;
using decode_core::cluster_wait;
using decode_core::in_rank;
using decode_core::merge_published;
using decode_core::publish_split;
using decode_core::rescale;

constexpr int kCluster = 16;      // blocks of a group: splits of its keys (a non-portable size)
constexpr int kChunkPacks = 256;  // 4 KiB chunks
constexpr int kSlots = 16;        // a 64 KiB ring (96 KiB measured the same, session 24)

// Floats after the streamed GEMV's shared memory: the group's products and the rotated q heads
// (scaled) and key. The warps' softmax states and (used in the first block) every split's come
// after the cluster barrier that follows every block's last chunk, so they reuse the ring where
// it is large enough.
template <int D, int G>
struct TailLayout {
  static constexpr int kRows = (G + 2) * D;
  static constexpr int kProducts = 0;
  static constexpr int kRotated = kProducts + kRows;
  static constexpr int kFloats = kRotated + (G + 1) * D;
  static constexpr int kWarpStates = 0;  // from the states' base
  static constexpr int kSplitStates = kWarpStates + streamed::kConsumerWarps * G * (D + 2);
  static constexpr int kStateFloats = kSplitStates + kCluster * G * (D + 4);
};

// Whether the softmax states fit in the ring (else they follow the tail).
__host__ __device__ inline bool states_in_ring(const streamed::Layout& l, size_t state_bytes) {
  return state_bytes <= l.x;
}

// Keys a warp loads at once (registers: U rows of K and V of D / 32 elements each).
template <int D>
inline constexpr int kKeysInFlight = D == 64 ? 4 : 2;

template <typename T, int E>
__device__ __forceinline__ void load_row(const T* p, float (&out)[E]) {
  if constexpr (E == 2) {
    const uint32_t raw = *reinterpret_cast<const uint32_t*>(p);
    const T* v = reinterpret_cast<const T*>(&raw);
    out[0] = decode_core::to_float(v[0]), out[1] = decode_core::to_float(v[1]);
  } else {
    const uint2 raw = *reinterpret_cast<const uint2*>(p);
    const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int e = 0; e < E; ++e) out[e] = decode_core::to_float(v[e]);
  }
}

template <typename T, int D, int G>
__global__ void __launch_bounds__(streamed::kThreads, 2)
    qkv_attention(const __grid_constant__ QkvAttentionArgs a) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
  __trap();  // clusters and bulk copies are sm_90's; the host refuses older devices
#else
  using X = TailLayout<D, G>;
  constexpr int V = ops::cuda::Pack<T>::kCount;
  constexpr int E = D / 32;  // elements of a key row a lane holds
  constexpr int U = kKeysInFlight<D>;
  extern __shared__ __align__(128) unsigned char shared[];
  const int64_t row_packs = a.hidden / V;
  constexpr int kRowsMax = (X::kRows + kCluster - 1) / kCluster;
  const streamed::Layout l = streamed::layout_of(kSlots, kChunkPacks, row_packs, kRowsMax, true);
  const streamed::Regions smem = streamed::regions_of(shared, l, kSlots);
  const size_t tail = (l.total + 15) / 16 * 16;
  float* extra = reinterpret_cast<float*>(shared + tail);
  float* products = extra + X::kProducts;
  float* rotated = extra + X::kRotated;
  float* states = reinterpret_cast<float*>(
      shared + (states_in_ring(l, X::kStateFloats * 4) ? 0 : tail + X::kFloats * 4));
  float* warp_states = states + X::kWarpStates;
  float* split_states = states + X::kSplitStates;

  const int rank = static_cast<int>(blockIdx.x);
  const int64_t h = blockIdx.y, hk = a.kv_heads;
  const int first_local = rank * X::kRows / kCluster;
  const int rows = (rank + 1) * X::kRows / kCluster - first_local;
  const int64_t first = h * X::kRows + first_local;
  const int64_t chunks = rows * (row_packs / kChunkPacks);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  cluster_start();
  if (threadIdx.x == streamed::kConsumers) streamed::init_ring(smem.full, smem.empty, kSlots);
  __syncthreads();
  ops::cuda::allow_next_kernel();
  if (warp == streamed::kConsumerWarps) {
    // The copy-issuing warp leaves once its copies are asked for (an exited thread counts as
    // arrived at every cluster barrier).
    if (lane == 0)
      streamed::issue_chunks(static_cast<const uint4*>(a.w), first * row_packs, chunks, chunks, 0,
                             kChunkPacks, kSlots, smem.ring, smem.full, smem.empty,
                             ops::cuda::bulk::evict_first_policy());
    return;
  }
  // The position (the previous step's pick wrote it), the norm weight and this split's cached rows
  // are not written by the kernel in front: asked for before the wait.
  const int64_t p = *a.start;
  const bool bad = p < 0 || p >= a.capacity || p >= a.max_positions;
  const int64_t end = bad ? 0 : p + 1;
  const int64_t keys_per_split = (end + kCluster - 1) / kCluster;
  const int64_t begin = min(end, rank * keys_per_split), stop = min(end, begin + keys_per_split);
  const T* kc = static_cast<const T*>(a.k_cache) + h * D;
  const T* vc = static_cast<const T*>(a.v_cache) + h * D;
  {
    const int64_t lines = (stop - begin) * (D * sizeof(T) / 128);  // 128-byte lines per row set
    for (int64_t i = threadIdx.x; i < 2 * lines; i += streamed::kConsumers) {
      const int64_t j = begin + (i % lines) / (D * sizeof(T) / 128);
      const int64_t byte = (i % lines) % (D * sizeof(T) / 128) * 128;
      const T* base = i < lines ? kc : vc;
      const char* at = reinterpret_cast<const char*>(base + j * hk * D) + byte;
      asm volatile("prefetch.global.L2 [%0];" ::"l"(at));
    }
  }
  const auto* nw = static_cast<const uint4*>(a.norm_weight);
  for (int64_t i = threadIdx.x; i < row_packs; i += streamed::kConsumers)
    smem.nws[i] = __ldg(nw + i);
  ops::cuda::wait_for_previous_kernel();
  ops::cuda::FusedGemvArgs fa;
  fa.x = a.x, fa.k = a.hidden, fa.eps = a.eps, fa.prologue = ops::cuda::GemvPrologue::kRmsNorm;
  streamed::stage_x<T>(fa, smem.xs, smem.nws, row_packs, smem.red);
  for (int r = threadIdx.x; r < rows; r += streamed::kConsumers) smem.sums[r] = 0;
  streamed::consumers_sync();
  streamed::consume_chunks<T>(smem.ring, smem.xs, smem.sums, chunks, row_packs, kChunkPacks, kSlots,
                              smem.full, smem.empty);
  streamed::consumers_sync();

  // Every block of the cluster gets the group's products, rounded as the product's output is.
  cluster_wait();
  for (int i = threadIdx.x; i < rows * kCluster; i += streamed::kConsumers) {
    const int r = i % rows;
    const float v = ops::cuda::to_f(ops::cuda::from_f<T>(smem.sums[r]));
    *in_rank(products + first_local + r, static_cast<unsigned>(i / rows)) = v;
  }
  cluster_arrive();
  cluster_wait();

  // Rotary of the q heads (then scaled, log2 domain) and of the key, rounded to T as
  // rope_attention rounds them.
  const T* cos = static_cast<const T*>(a.cos) + (bad ? 0 : p) * (D / 2);
  const T* sin = static_cast<const T*>(a.sin) + (bad ? 0 : p) * (D / 2);
  for (int i = threadIdx.x; i < (G + 1) * D; i += streamed::kConsumers) {
    const int head = i / D, e = i % D;
    const float x = products[i];
    float out = x;
    if (!bad) {
      const int half = D / 2;
      const int angle = a.neox ? e % half : e / 2;
      const float c = decode_core::to_float(cos[angle]), s = decode_core::to_float(sin[angle]);
      const float other = a.neox ? products[head * D + (e < half ? e + half : e - half)]
                                 : products[head * D + (e ^ 1)];
      const bool low = a.neox ? e < half : (e & 1) == 0;
      out = low ? x * c - other * s : x * c + other * s;
    }
    const float rounded = decode_core::to_float(decode_core::round_to<T>(out));
    rotated[i] = head < G ? rounded * (a.scale * decode_core::kLog2e) : rounded;
  }
  streamed::consumers_sync();
  if (!bad && begin <= p && p < stop) {
    T* kw = static_cast<T*>(a.k_cache) + (p * hk + h) * D;
    T* vw = static_cast<T*>(a.v_cache) + (p * hk + h) * D;
    for (int e = threadIdx.x; e < D; e += streamed::kConsumers) {
      kw[e] = decode_core::round_to<T>(rotated[G * D + e]);
      vw[e] = decode_core::round_to<T>(products[(G + 1) * D + e]);
    }
  }

  // This split's keys: U rows a warp loaded together, so their L2 round trips overlap (one key
  // at a time would chain them); lane holds elements lane * E...
  float q[G][E], m[G], sum[G], acc[G][E];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -INFINITY, sum[g] = 0;
#pragma unroll
    for (int e = 0; e < E; ++e) q[g][e] = rotated[g * D + lane * E + e], acc[g][e] = 0;
  }
  for (int64_t base = begin + warp; base < stop; base += int64_t{U} * streamed::kConsumerWarps) {
    float kf[U][E], vf[U][E];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t j = base + int64_t{u} * streamed::kConsumerWarps;
#pragma unroll
      for (int e = 0; e < E; ++e) kf[u][e] = 0, vf[u][e] = 0;
      if (j < stop && j != p) {
        load_row<T, E>(kc + j * hk * D + lane * E, kf[u]);
        load_row<T, E>(vc + j * hk * D + lane * E, vf[u]);
      } else if (j == p) {
#pragma unroll
        for (int e = 0; e < E; ++e)
          kf[u][e] = rotated[G * D + lane * E + e], vf[u][e] = products[(G + 1) * D + lane * E + e];
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (base + int64_t{u} * streamed::kConsumerWarps >= stop)
        break;  // the same for the whole warp
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float dot = 0;
#pragma unroll
        for (int e = 0; e < E; ++e) dot = fmaf(q[g][e], kf[u][e], dot);
        dot = ops::cuda::warp_sum(dot);
        const float mx = fmaxf(m[g], dot);
        const float correction = rescale(m[g], mx), w = exp2f(dot - mx);
        sum[g] = sum[g] * correction + w;
#pragma unroll
        for (int e = 0; e < E; ++e) acc[g][e] = acc[g][e] * correction + w * vf[u][e];
        m[g] = mx;
      }
    }
  }
#pragma unroll
  for (int g = 0; g < G; ++g) {
    float* mine = warp_states + (warp * G + g) * (D + 2);
    if (lane == 0) mine[0] = m[g], mine[1] = sum[g];
#pragma unroll
    for (int e = 0; e < E; ++e) mine[2 + lane * E + e] = acc[g][e];
  }
  streamed::consumers_sync();

  // The split's state into the first block's shared memory, which merges every split's.
  publish_split<streamed::kConsumerWarps, G, D>(warp_states, split_states, rank, bad,
                                                streamed::kConsumers);
  cluster_arrive();
  if (rank != 0) return;
  cluster_wait();
  merge_published<T, G, D>(split_states, kCluster, static_cast<T*>(a.out) + h * G * D, D, 1, false,
                           streamed::kConsumers);
#endif
}

template <int D, int G>
size_t shared_bytes(int64_t hidden, int element_bytes) {
  using X = TailLayout<D, G>;
  const int64_t row_packs = hidden * element_bytes / 16;
  constexpr int kRowsMax = (X::kRows + kCluster - 1) / kCluster;
  const streamed::Layout l = streamed::layout_of(kSlots, kChunkPacks, row_packs, kRowsMax, true);
  const size_t tail_end = (l.total + 15) / 16 * 16 + size_t{X::kFloats} * 4;
  const size_t state_bytes = size_t{X::kStateFloats} * 4;
  return tail_end + (states_in_ring(l, state_bytes) ? 0 : state_bytes);
}

// Opts `kernel` in to `bytes` of shared memory (per device, set at every launch: the step records
// once, so this is no per-token cost).
template <typename Kernel>
cudaError_t opt_in(Kernel kernel, size_t bytes) {
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(bytes));
}

// What a launch would need: its shared memory and how many of its clusters fit at once.
struct LaunchNeeds {
  size_t bytes = 0;
  int clusters = 0;
};

// Launches the kernel, or with `check` set only fills it in.
template <typename T, int D, int G>
cudaError_t launch_typed(const QkvAttentionArgs& a, cudaStream_t stream, LaunchNeeds* check) {
  auto kernel = qkv_attention<T, D, G>;
  const size_t bytes = shared_bytes<D, G>(a.hidden, sizeof(T));
  const dim3 grid(kCluster, static_cast<unsigned>(a.kv_heads));
  if (check) {
    // How many clusters fit at once (0: none, so it cannot run).
    check->bytes = bytes;
    check->clusters = opt_in(kernel, bytes) == cudaSuccess
                          ? ops::cuda::max_active_clusters(kernel, grid, dim3(streamed::kThreads),
                                                           bytes, kCluster)
                          : 0;
    return cudaSuccess;
  }
  if (const cudaError_t e = opt_in(kernel, bytes); e != cudaSuccess) return e;
  return ops::cuda::launch_clusters_with_pdl(kernel, grid, dim3(streamed::kThreads), bytes, stream,
                                             kCluster, a);
}

template <typename T>
cudaError_t dispatch(const QkvAttentionArgs& a, cudaStream_t stream, LaunchNeeds* check) {
  return with_shape(a, [&](auto d, auto g) {
    return launch_typed<T, decltype(d)::value, decltype(g)::value>(a, stream, check);
  });
}

}  // namespace

const char* qkv_attention_refusal(const QkvAttentionArgs& a, int element_bytes, int device) {
  const int64_t g = a.kv_heads > 0 ? a.q_heads / a.kv_heads : 0;
  if (element_bytes != 2) return "not f16 or bf16";
  if (a.head_dim != 64 && a.head_dim != 128) return "head_dim not 64 or 128";
  if (g < 1 || g > 8 || (g & (g - 1)) || g * a.kv_heads != a.q_heads) return "unsupported group";
  if (a.hidden < 1 || (a.hidden * element_bytes) % (kChunkPacks * 16))
    return "a row of hidden elements is not a multiple of 4 KiB";
  if ((reinterpret_cast<uintptr_t>(a.x) | reinterpret_cast<uintptr_t>(a.w) |
       reinterpret_cast<uintptr_t>(a.norm_weight) | reinterpret_cast<uintptr_t>(a.k_cache) |
       reinterpret_cast<uintptr_t>(a.v_cache)) &
      15u)
    return "an operand not 16-byte aligned";
  if (const char* error = use_cuda_device(device); *error) return error;
  int major = 0, optin = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) !=
          cudaSuccess)
    return "device attributes unavailable";
  if (major < 9) return "needs compute capability 9.0 (clusters, bulk copies)";
  LaunchNeeds check;
  if (dispatch<__nv_bfloat16>(a, nullptr, &check) != cudaSuccess) return "unsupported shape";
  if (check.bytes > static_cast<size_t>(optin)) return "x and the ring exceed shared memory";
  if (check.clusters < 1) return "the device cannot hold one cluster of 16 blocks";
  return "";
}

const char* launch_qkv_attention(const QkvAttentionArgs& a, bool bf16, int device,
                                 void* stream_handle) {
  if (const char* error = use_cuda_device(device); *error) return error;
  auto stream = static_cast<cudaStream_t>(stream_handle);
  const cudaError_t status =
      bf16 ? dispatch<__nv_bfloat16>(a, stream, nullptr) : dispatch<__half>(a, stream, nullptr);
  return status == cudaSuccess ? "" : cudaGetErrorString(status);
}

}  // namespace flagstone::engine::detail
