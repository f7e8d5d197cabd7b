// cuda streamed GEMV for one activation row (decode's products): each block owns a run of whole
// weight rows and streams it through a ring of shared-memory chunks (4 KiB) with bulk copies;
// the gate/up product can finish as silu(gate) * up (GemvEpilogue::kSiluMul).
//
// Why a second GEMV: the register-streaming kernel of gemv.cu keeps a few 16-byte loads in flight
// per thread, so a product of 16 to 64 MiB spends several memory round trips per warp, and only
// its first loads can start before the previous kernel ends. Here one thread asks the bulk-copy
// engine for whole chunks: the ring (tens of KiB per SM) is in flight at once, and it is asked
// for before the kernel waits on its predecessor (PDL), since weights are constant in a step.
// Each consumer warp multiplies whole chunks on its own (one reduction per chunk), so a warp that
// is slow to get its chunk holds up no other.
#include <algorithm>
#include <atomic>
#include <cstdlib>

#include "cuda/gemv_stream.cuh"
#include "cuda/greedy_order.cuh"
#include "cuda/pdl.cuh"

namespace flagstone::ops::cuda {
namespace {

using streamed::consumers_sync;
using streamed::kConsumers;
using streamed::kConsumerWarps;
using streamed::kMaxChunkPacks;
using streamed::kSmallChunkPacks;
using streamed::kThreads;
using streamed::Layout;
using streamed::layout_of;
constexpr int kDefaultChunkKiB = 4;
constexpr int kDefaultRingKiB = 64;
constexpr int kDefaultBlocksPerSm = 2;  // two rings an SM

// The consumer threads' best, in every consumer thread (`scratch`: kConsumerWarps entries).
__device__ Pick consumers_best(Pick p, Pick* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  p = warp_best(p);
  if (lane == 0) scratch[warp] = p;
  consumers_sync();
  Pick best = scratch[0];
#pragma unroll
  for (int w = 1; w < kConsumerWarps; ++w)
    if (picked_before(scratch[w], best)) best = scratch[w];
  consumers_sync();  // scratch may be written again
  return best;
}

// GemvPick: every block's best into the scratch, the last block to take a ticket picks among
// them (the threadFenceReduction pattern: fence, ticket, fence, read).
__device__ void finish_pick(const GemvPick& g, Pick mine) {
  __shared__ Pick scratch[kConsumerWarps];
  __shared__ bool last;
  auto* picks = static_cast<Pick*>(g.scratch);
  mine = consumers_best(mine, scratch);
  if (threadIdx.x == 0) {
    picks[blockIdx.x] = mine;
    __threadfence();
    last = atomicAdd(g.ticket, 1u) == gridDim.x - 1;
    if (last) atomicExch(g.ticket, 0u);
  }
  consumers_sync();
  if (!last) return;
  __threadfence();
  Pick best{0, -1};
  for (unsigned b = threadIdx.x; b < gridDim.x; b += kConsumers) {
    const volatile Pick* theirs = picks + b;
    const Pick q{theirs->value, theirs->index};
    if (picked_before(q, best)) best = q;
  }
  best = consumers_best(best, scratch);
  if (threadIdx.x != 0) return;
  g.out[0] = best.index;
  if (!g.advance) return;
  const int64_t position = g.advance[0];
  if (g.host) g.host[position % g.host_slots] = best.index;
  for (int c = 0; c < g.advance_count; ++c) g.advance[c] += 1;
}

template <typename T>
__global__ void __launch_bounds__(kThreads, 1)
    streamed_gemv_kernel(const __grid_constant__ FusedGemvArgs a, int slots, int chunk_packs,
                         int64_t rows_max) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
  __trap();  // bulk copies are sm_90's; streamed_gemv_refusal turns older devices away
#else
  extern __shared__ __align__(128) unsigned char shared[];
  constexpr int V = Pack<T>::kCount;
  const int64_t row_packs = a.k / V;  // a multiple of chunk_packs (the launcher picks it so)
  const bool norm = a.prologue == GemvPrologue::kRmsNorm;
  const Layout l = layout_of(slots, chunk_packs, row_packs, rows_max, norm);
  const streamed::Regions smem = streamed::regions_of(shared, l, slots);
  // With the silu epilogue a block owns rows first.. of the gate half and the same rows of the
  // up half: two runs, streamed one after the other, summed into 2 * rows sums.
  const bool pairs = a.epilogue == GemvEpilogue::kSiluMul;
  const int64_t half = a.n / 2;
  // 32-bit row arithmetic: the launcher keeps n * blocks below 2^32.
  const auto units = static_cast<uint32_t>(pairs ? half : a.n), blocks = gridDim.x;
  const int64_t first = int64_t{blockIdx.x * units / blocks};
  const int64_t rows = int64_t{(blockIdx.x + 1) * units / blocks} - first;
  const int64_t run_chunks = rows * (row_packs / chunk_packs);
  const int64_t chunks = pairs ? 2 * run_chunks : run_chunks;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (threadIdx.x == kConsumers) streamed::init_ring(smem.full, smem.empty, slots);
  __syncthreads();
  allow_next_kernel();
  if (warp == kConsumerWarps) {
    if (lane == 0) {
      const uint64_t policy = a.keep_in_l2 ? bulk::evict_last_policy() : bulk::evict_first_policy();
      streamed::issue_chunks(static_cast<const uint4*>(a.w), first * row_packs, chunks,
                             pairs ? run_chunks : chunks, (half + first) * row_packs, chunk_packs,
                             slots, smem.ring, smem.full, smem.empty, policy);
    }
    return;
  }
  if (norm) {
    // The norm weight is constant too: into shared memory before the wait (llama-1b decode
    // 1.011x, llama-8b 1.009x against an L1 prefetch; H200, session 22).
    const auto* nw = static_cast<const uint4*>(a.norm_weight);
    for (int64_t p = threadIdx.x; p < row_packs; p += kConsumers) smem.nws[p] = __ldg(nw + p);
  }
  wait_for_previous_kernel();
  streamed::stage_x<T>(a, smem.xs, smem.nws, row_packs, smem.red);
  for (int64_t r = threadIdx.x; r < (pairs ? 2 * rows : rows); r += kConsumers) smem.sums[r] = 0;
  consumers_sync();
  streamed::consume_chunks<T>(smem.ring, smem.xs, smem.sums, chunks, row_packs, chunk_packs, slots,
                              smem.full, smem.empty);
  consumers_sync();
  T* out = static_cast<T*>(a.out);
  const T* bias = static_cast<const T*>(a.bias);
  const T* residual = static_cast<const T*>(a.residual);
  Pick best{0, -1};
  for (int64_t r = threadIdx.x; r < rows; r += kConsumers) {
    if (pairs) {  // silu_and_mul's formula on the rounded products
      float g = smem.sums[r], u = smem.sums[rows + r];
      if (bias) g += to_f(bias[first + r]), u += to_f(bias[half + first + r]);
      g = to_f(from_f<T>(g));
      u = to_f(from_f<T>(u));
      out[first + r] = from_f<T>(g / (1.0f + expf(-g)) * u);
      continue;
    }
    float v = smem.sums[r];
    if (bias) v += to_f(bias[first + r]);
    // The unfused path rounds the product, then the sum (add_rms_norm's residual).
    if (residual) v = to_f(from_f<T>(v)) + to_f(residual[first + r]);
    const T rounded = from_f<T>(v);
    out[first + r] = rounded;
    if (a.pick.out) {
      const Pick here{to_f(rounded), first + r};
      if (picked_before(here, best)) best = here;
    }
  }
  if (a.pick.out) finish_pick(a.pick, best);
#endif
}

struct Plan {
  int slots = 0, chunk_packs = 0;
  bool norm = false;
  int64_t blocks = 0, rows_max = 0;
  Layout layout;
};

// The sums a block keeps: its share of the n rows (of the n / 2 row pairs with the silu
// epilogue, two sums each).
int64_t sums_per_block(int64_t n, int64_t blocks, bool pairs) {
  const int64_t units = pairs ? n / 2 : n;
  return (units + blocks - 1) / blocks * (pairs ? 2 : 1);
}

// Chunk size: the largest of 2, 4, 8 or 16 KiB up to the asked size that divides the row; ring
// slots from the budget (8 to 64 chunks); blocks_per_sm blocks per SM, never more blocks than
// rows (row pairs with the silu epilogue). Small products (weights of at most 16 MiB) and those
// with long rows (k at least twice n: down) can be tuned on their own for sweeps
// (FLAGSTONE_GEMV_SMALL_RING_KIB / _SMALL_BPSM, _LONG_RING_KIB / _LONG_BPSM / _LONG_CHUNK_KIB):
// with one block of down an SM, the next layer's q/k/v block fits beside it and fills its ring
// during down.
Plan plan_of(int64_t n, int64_t k, int64_t row_packs, bool pairs, bool norm, StreamedGemvTuning t) {
  Plan p;
  static const int ring_env = gemv_env_int("FLAGSTONE_GEMV_RING_KIB");
  static const int bpsm_env = gemv_env_int("FLAGSTONE_GEMV_STREAM_BPSM");
  static const int chunk_env = gemv_env_int("FLAGSTONE_GEMV_CHUNK_KIB");
  static const int small_ring_env = gemv_env_int("FLAGSTONE_GEMV_SMALL_RING_KIB");
  static const int small_bpsm_env = gemv_env_int("FLAGSTONE_GEMV_SMALL_BPSM");
  static const int long_ring_env = gemv_env_int("FLAGSTONE_GEMV_LONG_RING_KIB");
  static const int long_bpsm_env = gemv_env_int("FLAGSTONE_GEMV_LONG_BPSM");
  static const int long_chunk_env = gemv_env_int("FLAGSTONE_GEMV_LONG_CHUNK_KIB");
  const bool small = n * row_packs * 16 <= (int64_t{16} << 20), long_rows = k >= 2 * n;
  const int class_ring = small ? small_ring_env : long_rows ? long_ring_env : 0;
  const int class_bpsm = small ? small_bpsm_env : long_rows ? long_bpsm_env : 0;
  const int ring_kib = t.ring_kib > 0   ? t.ring_kib
                       : class_ring > 0 ? class_ring
                       : ring_env > 0   ? ring_env
                                        : kDefaultRingKiB;
  // Two rings an SM for long products; one for weights of at most 16 MiB (the 1B shape's q/k/v
  // and o), which measured faster so (H200, tools/gpu/stream.sh).
  const int by_size = small ? 1 : kDefaultBlocksPerSm;
  // 4 KiB chunks: llama-1b decode 1.02-1.03x and llama-8b 1.01x faster than 8 KiB (H200,
  // session 21; 2 KiB: 0.9x).
  const int blocks_per_sm = t.blocks_per_sm > 0 ? t.blocks_per_sm
                            : class_bpsm > 0    ? class_bpsm
                            : bpsm_env > 0      ? bpsm_env
                                                : by_size;
  const int class_chunk = !small && long_rows ? long_chunk_env : 0;
  const int chunk_kib = t.chunk_kib > 0   ? t.chunk_kib
                        : class_chunk > 0 ? class_chunk
                        : chunk_env > 0   ? chunk_env
                                          : kDefaultChunkKiB;
  p.chunk_packs = kSmallChunkPacks;
  while (p.chunk_packs * 2 * 16 <= chunk_kib * 1024 && p.chunk_packs < kMaxChunkPacks &&
         row_packs % (p.chunk_packs * 2) == 0)
    p.chunk_packs *= 2;
  // A multiple of the consumer warps, so each slot has one consumer, which waits on its phases
  // in order (a parity wait cannot tell a phase from the one two ahead).
  const int slots = ring_kib * 1024 / (p.chunk_packs * 16) / kConsumerWarps * kConsumerWarps;
  p.slots = std::clamp(slots, kConsumerWarps, 64);
  p.blocks =
      std::min<int64_t>(pairs ? n / 2 : n, int64_t{current_device_sm_count()} * blocks_per_sm);
  p.rows_max = sums_per_block(n, p.blocks, pairs);
  p.norm = norm;
  p.layout = layout_of(p.slots, p.chunk_packs, row_packs, p.rows_max, norm);
  return p;
}

// Opts the kernel in to `bytes` of dynamic shared memory on `device`, once per size and device
// (so a graph capture after the warm-up makes no such call); the attribute is per device.
template <typename T>
cudaError_t opt_in(int device, size_t bytes) {
  static std::atomic<size_t> opted_in[64];
  if (device < 0 || device >= 64) return cudaErrorInvalidDevice;
  if (bytes <= 48 * 1024 || bytes <= opted_in[device].load()) return cudaSuccess;
  cudaError_t e =
      cudaFuncSetAttribute(streamed_gemv_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(bytes));
  if (e == cudaSuccess) opted_in[device].store(bytes);
  return e;
}

template <typename T>
cudaError_t launch_typed(const FusedGemvArgs& a, cudaStream_t stream, StreamedGemvTuning t) {
  const bool pairs = a.epilogue == GemvEpilogue::kSiluMul;
  Plan p = plan_of(a.n, a.k, a.k / Pack<T>::kCount, pairs, a.prologue == GemvPrologue::kRmsNorm, t);
  int device = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e == cudaSuccess) e = opt_in<T>(device, p.layout.total);
  if (e != cudaSuccess) return e;
  // Never more blocks than fit at once (registers or a large x can leave room for one an SM):
  // a second wave would start its copies only after the first wave ends.
  int fit = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&fit, streamed_gemv_kernel<T>, kThreads,
                                                    p.layout.total) == cudaSuccess &&
      fit >= 1 && p.blocks > int64_t{fit} * current_device_sm_count()) {
    p.blocks = int64_t{fit} * current_device_sm_count();
    p.rows_max = sums_per_block(a.n, p.blocks, pairs);
    p.layout = layout_of(p.slots, p.chunk_packs, a.k / Pack<T>::kCount, p.rows_max, p.norm);
  }
  if (a.n * p.blocks >= (int64_t{1} << 32) || (a.pick.out && p.blocks > a.pick.scratch_blocks))
    return cudaErrorInvalidValue;
  return launch_with_pdl(streamed_gemv_kernel<T>, dim3(static_cast<unsigned>(p.blocks)),
                         dim3(kThreads), p.layout.total, stream, a, p.slots, p.chunk_packs,
                         p.rows_max);
}

// Whether this build carries sm_90 code for the kernel: a build for older GPUs only would run
// their code (the trapping body) on a Hopper GPU through its PTX.
bool built_for_sm90() {
  static const bool yes = [] {
    cudaFuncAttributes attributes{};
    return cudaFuncGetAttributes(&attributes, streamed_gemv_kernel<__nv_bfloat16>) == cudaSuccess &&
           attributes.binaryVersion >= 90;
  }();
  return yes;
}

}  // namespace

const char* streamed_gemv_refusal(DType dtype, const FusedGemvArgs& a) {
  if (dtype != DType::kF32 && dtype != DType::kF16 && dtype != DType::kBF16)
    return "dtype is not f32, f16 or bf16";
  if (a.m != 1) return "not one activation row";
  if (a.n < 1 || a.k < 1) return "an empty product";
  const auto row_bytes = a.k * static_cast<int64_t>(dtype_size(dtype));
  if (row_bytes % (kSmallChunkPacks * 16)) return "a weight row is not a multiple of 2 KiB";
  if (a.ldw != a.k) return "weight rows are not contiguous";
  if ((reinterpret_cast<uintptr_t>(a.x) | reinterpret_cast<uintptr_t>(a.w) |
       reinterpret_cast<uintptr_t>(a.norm_weight)) &
      15u)
    return "x, the weight or the norm weight not 16-byte aligned";
  if (a.prologue == GemvPrologue::kRmsNorm && !a.norm_weight) return "no norm weight";
  if (a.prologue == GemvPrologue::kSiluMul && a.ldx < 2 * a.k) return "x rows narrower than 2k";
  int device = 0, major = 0, optin = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) !=
          cudaSuccess)
    return "device attributes unavailable";
  if (major < 9) return "needs compute capability 9.0 (bulk copies)";
  if (!built_for_sm90()) return "this build has no sm_90 code for it";
  if (a.epilogue == GemvEpilogue::kSiluMul && (a.n % 2 || a.residual))
    return "the silu epilogue needs an even row count and no residual";
  const Plan p = plan_of(a.n, a.k, row_bytes / 16, a.epilogue == GemvEpilogue::kSiluMul,
                         a.prologue == GemvPrologue::kRmsNorm, StreamedGemvTuning{});
  if (a.n * p.blocks >= (int64_t{1} << 32)) return "too many rows for the grid";
  if (a.x_index && (a.prologue == GemvPrologue::kSiluMul || a.x_rows < 1 ||
                    (reinterpret_cast<uintptr_t>(a.x_out) & 15u)))
    return "the embedding gather needs no silu prologue, a table and a 16-byte aligned x_out";
  if (a.pick.out && (a.epilogue != GemvEpilogue::kNone || !a.pick.scratch || !a.pick.ticket ||
                     p.blocks > a.pick.scratch_blocks || (a.pick.host && a.pick.host_slots < 1)))
    return "the greedy pick needs no epilogue, a ticket and scratch for every block";
  if (p.layout.total > static_cast<size_t>(optin)) return "x and the ring exceed shared memory";
  return "";
}

cudaError_t launch_streamed_gemv(DType dtype, const FusedGemvArgs& args, cudaStream_t stream,
                                 StreamedGemvTuning tuning) {
  if (*streamed_gemv_refusal(dtype, args)) return cudaErrorInvalidValue;
  switch (dtype) {
    case DType::kF32:
      return launch_typed<float>(args, stream, tuning);
    case DType::kF16:
      return launch_typed<__half>(args, stream, tuning);
    default:
      return launch_typed<__nv_bfloat16>(args, stream, tuning);
  }
}

}  // namespace flagstone::ops::cuda
