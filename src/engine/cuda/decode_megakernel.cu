// The persistent decode step (decode_megakernel.h): one block per SM walks every layer. Each
// block owns a slice of the rows of every product; thread 0 streams the block's weight rows, in
// step order, through a ring of shared-memory slots (megakernel_parts.cuh), and the block computes
// from a slot as soon as it lands, so the weights of the next products load while the block waits
// at a grid barrier for activations. The rounding follows the op-by-op step: every product,
// residual sum, norm output and activation is rounded to T where the ops round it.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "../../ops/cuda/attention_decode.cuh"
#include "decode_megakernel.h"
#include "kv_cache_write.h"
#include "megakernel_attention.cuh"
#include "megakernel_parts.cuh"

// Before sm_90 the kernel compiles to a trap (the planner refuses such devices), which leaves
// the device helpers below unreferenced in that pass: no "declared but never referenced" there.
#pragma nv_diag_suppress 177

namespace flagstone::engine::detail {
namespace {

using decode_core::round_to;
using decode_core::to_float;
using decode_core::unpack8;
using mega::kThreads;
using mega::kWarps;
using mega::Rows;

constexpr int kMaxGate = 256;  // gate results a block keeps for its up rows
constexpr int kMaxOwn = 64;    // residual entries a block owns
constexpr int kMaxRows = 16;   // weight rows per chunk
// Barriers, block sums, flag, two sets of row parts, gate, own residual.
constexpr int kFixedBytes =
    128 + 128 + 128 + 2 * kMaxRows * kWarps * 4 + kMaxGate * 4 + kMaxOwn * 4;
static_assert(kFixedBytes % 128 == 0);
constexpr int kMaxSplits = 16;
constexpr int kIssuer = kThreads - 32;  // the thread that asks for weight chunks

__device__ __forceinline__ uint64_t now_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %globaltimer;" : "=l"(t));
  return t;
}

// Block 0's time per part of the step (diagnostics): the phases, and inside the products the
// waits for chunks, the arithmetic, the block barriers and the finishing of split rows.
struct Trace {
  bool on = false;
  uint64_t last = 0;
  long long wait = 0, compute = 0, sync = 0, finish = 0;  // SM cycles
  uint64_t phase[8] = {};
  __device__ void mark(int i) {
    if (!on) return;
    const uint64_t t = now_ns();
    phase[i] += t - last;
    last = t;
  }
};

enum Kind { kQkv = 0, kO = 1, kGate = 2, kUp = 3, kDown = 4, kKinds = 5, kHead = 5 };

// Shared memory, carved from the dynamic allocation in this order.
struct Smem {
  MegaLayer* layers;  // the layer table, copied in at the start
  uint64_t* bars;
  float* red;
  int* flag;
  float* partial;
  float* gate;
  float* own;
  unsigned char* x;     // the product's input (T), or attention's per-warp partials (float)
  unsigned char* ring;  // slots of slot_bytes
};

static_assert(sizeof(MegaLayer) % 16 == 0);  // copied in 16-byte pieces
__host__ __device__ constexpr int64_t table_bytes(int layer_count) {
  return (layer_count * static_cast<int64_t>(sizeof(MegaLayer)) + 127) / 128 * 128;
}

__device__ Smem carve(unsigned char* base, const MegaArgs& a) {
  Smem s;
  s.bars = reinterpret_cast<uint64_t*>(base);
  s.red = reinterpret_cast<float*>(base + 128);
  s.flag = reinterpret_cast<int*>(base + 128 + 128);
  s.partial = reinterpret_cast<float*>(base + 128 + 256);
  s.gate = s.partial + 2 * kMaxRows * kWarps;
  s.own = s.gate + kMaxGate;
  s.layers = reinterpret_cast<MegaLayer*>(base + kFixedBytes);
  s.x = base + kFixedBytes + table_bytes(a.layer_count);
  s.ring = base + a.shared_bytes - static_cast<int64_t>(a.slots) * a.slot_bytes;
  return s;
}

// Segment `index` of the step's weight stream for this block: layer index / 5, product index % 5,
// then the head. Gate and up rows are separate segments over the same rows of the intermediate.
template <typename T>
struct Seg {
  const T* base = nullptr;  // row 0 of the weight
  int64_t k = 0;            // row length
  Rows rows;
  int64_t per_chunk = 1;
};

template <typename T>
__device__ Seg<T> segment(const MegaArgs& a, const Smem& sm, int index) {
  Seg<T> s;
  const int64_t b = blockIdx.x, n_blocks = gridDim.x;
  const int64_t hd = a.q_heads * a.head_dim;
  if (index >= a.layer_count * kKinds) {
    s.base = static_cast<const T*>(a.head), s.k = a.hidden;
    s.rows = mega::rows_of(a.vocab, b, n_blocks);
  } else {
    const MegaLayer& w = sm.layers[index / kKinds];
    switch (index % kKinds) {
      case kQkv:
        s.base = static_cast<const T*>(w.qkv), s.k = a.hidden;
        s.rows = mega::rows_of(hd + 2 * a.kv_heads * a.head_dim, b, n_blocks);
        break;
      case kO:
        s.base = static_cast<const T*>(w.o), s.k = hd;
        s.rows = mega::rows_of(a.hidden, b, n_blocks);
        break;
      case kGate:
      case kUp:
        s.base = static_cast<const T*>(w.gate_up) +
                 (index % kKinds == kUp ? a.intermediate * a.hidden : 0);
        s.k = a.hidden;
        s.rows = mega::rows_of(a.intermediate, b, n_blocks);
        break;
      default:
        s.base = static_cast<const T*>(w.down), s.k = a.intermediate;
        s.rows = mega::rows_of(a.hidden, b, n_blocks);
        break;
    }
  }
  s.per_chunk = min(int64_t{kMaxRows}, a.slot_bytes / (s.k * static_cast<int64_t>(sizeof(T))));
  // 9 to 15 rows would leave some warps one row where others have two.
  if (s.per_chunk > kWarps) s.per_chunk = s.per_chunk / kWarps * kWarps;
  return s;
}

// The issuer's place in the weight stream: the next chunk to ask for, in segment `seg`. One
// copy per chunk (a copy per row cost the issuer about three times as long).
template <typename T>
struct Producer {
  int seg = 0;
  Seg<T> cur;
  int64_t row = 0;
  int64_t issued = 0;  // chunks asked for so far (chunk c goes to slot c % slots)

  __device__ void start(const MegaArgs& a, const Smem& sm) {
    cur = segment<T>(a, sm, 0);
    row = cur.rows.begin;
  }
  // Asks for the next chunk, if any, into its slot.
  __device__ void issue(const MegaArgs& a, const Smem& sm) {
    const int last = a.layer_count * kKinds;
    while (row >= cur.rows.end) {
      if (++seg > last) return;
      cur = segment<T>(a, sm, seg);
      row = cur.rows.begin;
    }
    const int64_t rows = min(cur.per_chunk, cur.rows.end - row);
    const int slot = static_cast<int>(issued % a.slots);
    mega::load(sm.ring + static_cast<int64_t>(slot) * a.slot_bytes, cur.base + row * cur.k,
               static_cast<uint32_t>(rows * cur.k * sizeof(T)), sm.bars + slot);
    row += rows;
    ++issued;
  }
};

// x (n elements of T, contiguous, written by other blocks) into shared memory.
template <typename T>
__device__ void load_x(const T* src, int64_t n, const Smem& sm) {
  uint4* x = reinterpret_cast<uint4*>(sm.x);
  for (int64_t p = threadIdx.x; p < n / 8; p += kThreads)
    x[p] = __ldcg(reinterpret_cast<const uint4*>(src) + p);
  __syncthreads();
}

// A norm weight's first packs in this thread's registers, asked for before the grid barrier in
// front of the norm so that their latency hides behind it.
constexpr int kNormPacks = 4;
struct NormWeight {
  const uint4* w;
  uint4 v[kNormPacks];
};

template <typename T>
__device__ NormWeight fetch_norm(const T* w, int64_t n) {
  NormWeight r;
  r.w = reinterpret_cast<const uint4*>(w);
#pragma unroll
  for (int i = 0; i < kNormPacks; ++i) {
    const int64_t p = threadIdx.x + int64_t{i} * kThreads;
    r.v[i] = p < n / 8 ? __ldg(r.w + p) : uint4{};
  }
  return r;
}

// rms_norm(src) * w into shared memory, rounded as the ops library's rms_norm rounds.
template <typename T>
__device__ void norm_x(const T* src, const NormWeight& w, int64_t n, float eps, const Smem& sm,
                       float poison = 0) {
  uint4* x = reinterpret_cast<uint4*>(sm.x);
  float ss = 0;
  for (int64_t p = threadIdx.x; p < n / 8; p += kThreads) {
    const uint4 raw = __ldcg(reinterpret_cast<const uint4*>(src) + p);
    float v[8];
    unpack8<T>(raw, v);
#pragma unroll
    for (int e = 0; e < 8; ++e) ss += v[e] * v[e];
    x[p] = raw;
  }
  ss = mega::block_sum(ss, sm.red);
  const float scale = rsqrtf(ss / static_cast<float>(n) + eps) + poison;
  auto apply = [&](int64_t p, const uint4& weight) {
    float v[8], wv[8];
    unpack8<T>(uint4(x[p]), v);  // a 16-byte load, not eight 2-byte ones
    unpack8<T>(weight, wv);
    uint4 out;
    T* o = reinterpret_cast<T*>(&out);
#pragma unroll
    for (int e = 0; e < 8; ++e) o[e] = round_to<T>(v[e] * scale * wv[e]);
    x[p] = out;
  };
#pragma unroll
  for (int i = 0; i < kNormPacks; ++i) {
    const int64_t p = threadIdx.x + int64_t{i} * kThreads;
    if (p < n / 8) apply(p, w.v[i]);
  }
  for (int64_t p = threadIdx.x + int64_t{kNormPacks} * kThreads; p < n / 8; p += kThreads)
    apply(p, __ldg(w.w + p));
  __syncthreads();
}

// The result of row r of product K (dot, in f32) written where the step wants it.
template <typename T, int K>
__device__ __forceinline__ void finish_row(const MegaArgs& a, const Smem& sm, int64_t r, float dot,
                                           int64_t seg_begin, int64_t own_begin) {
  const float y = to_float(round_to<T>(dot));
  if constexpr (K == kQkv) {
    static_cast<T*>(a.qkv_out)[r] = round_to<T>(y);
  } else if constexpr (K == kO || K == kDown) {
    const T sum = round_to<T>(sm.own[r - own_begin] + y);
    sm.own[r - own_begin] = to_float(sum);
    static_cast<T*>(a.residual)[r] = sum;
  } else if constexpr (K == kGate) {
    sm.gate[r - seg_begin] = y;
  } else if constexpr (K == kUp) {
    const float g = sm.gate[r - seg_begin];
    static_cast<T*>(a.act)[r] = round_to<T>(g / (1.0f + expf(-g)) * y);
  } else {
    static_cast<T*>(a.logits)[r] = round_to<T>(y);
  }
}

// Rows `first` and `first + step` of a slot against x, over the packs from `begin` up to
// `packs` in strides of `stride` (lanes take consecutive packs); the warp's sums, reduced into
// every lane. The second row is skipped (its sum is the first row's) when `two` is false.
template <typename T>
__device__ __forceinline__ float2 dot_rows(const uint4* w, const uint4* x, int packs, int first,
                                           int step, bool two, int begin, int stride) {
  const uint4* w0 = w + first * packs;
  const uint4* w1 = w + (two ? first + step : first) * packs;
  float a0 = 0, a1 = 0;
#pragma unroll 1
  for (int p = begin; p < packs; p += stride) {
    float xv[8], u[8], v[8];
    unpack8<T>(x[p], xv);
    unpack8<T>(w0[p], u);
    unpack8<T>(w1[p], v);
#pragma unroll
    for (int e = 0; e < 8; ++e) a0 += u[e] * xv[e], a1 += v[e] * xv[e];
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    a0 += __shfl_xor_sync(0xffffffffu, a0, o);
    a1 += __shfl_xor_sync(0xffffffffu, a1, o);
  }
  return make_float2(a0, a1);
}

// The block's rows of product `index` against x in shared memory, chunk by chunk as they land.
// FMA on unpacked values: on the H200 this beats the tensor cores' mma.sync, whose rate (about
// 4.4 cycles an m16n8k16 per SM) and the bank conflicts of eight rows at a 4 KiB stride made a
// chunk slower (tools/gpu/micro/product_smem.cu: 1422 against 1812 cycles for 64 KiB).
// A full chunk (kMaxRows rows) gives warp w rows w and w + kWarps over the whole of k: each sum
// stays in one warp, whose lane 0 finishes the rows at once. A shorter chunk (the down product's
// long rows, the last chunk of a range) splits each row over `wpr` warps, whose parts meet in
// shared memory after the block's barrier. After that barrier the issuer refills the slot.
template <typename T, int K>
__device__ void product(const MegaArgs& a, const Smem& sm, Producer<T>& producer, int64_t& chunk,
                        int index, Trace& trace) {
  const Seg<T> s = segment<T>(a, sm, index);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int packs = static_cast<int>(s.k / 8);
  const uint4* x = reinterpret_cast<const uint4*>(sm.x);
  const int64_t own_begin = mega::rows_of(a.hidden, blockIdx.x, gridDim.x).begin;
  for (int64_t r0 = s.rows.begin; r0 < s.rows.end; r0 += s.per_chunk) {
    const int rows = static_cast<int>(min(s.per_chunk, s.rows.end - r0));
    const int slot = static_cast<int>(chunk % a.slots);
    const long long t0 = trace.on ? clock64() : 0;
    mega::bar_wait(sm.bars + slot, static_cast<uint32_t>((chunk / a.slots) & 1));
    if (trace.on) trace.wait += clock64() - t0;
    const long long c0 = trace.on ? clock64() : 0;
    const uint4* w =
        reinterpret_cast<const uint4*>(sm.ring + static_cast<int64_t>(slot) * a.slot_bytes);
    // Rows of a chunk over warps: wpr warps a row, `lines` rows a round, two rounds.
    const int wpr = rows > kWarps ? 1 : rows > kWarps / 2 ? 2 : rows > kWarps / 4 ? 4 : 8;
    const int lines = kWarps / wpr, part = warp % wpr, first = warp / wpr;
    float* partial = sm.partial + (chunk & 1) * kMaxRows * kWarps;
    if (first < rows) {
      const bool two = first + lines < rows;
      const float2 d = dot_rows<T>(w, x, packs, first, lines, two, part * 32 + lane, 32 * wpr);
      if (lane == 0) {
        if (wpr == 1) {
          finish_row<T, K>(a, sm, r0 + first, d.x, s.rows.begin, own_begin);
          if (two) finish_row<T, K>(a, sm, r0 + first + lines, d.y, s.rows.begin, own_begin);
        } else {
          partial[first * kWarps + part] = d.x;
          if (two) partial[(first + lines) * kWarps + part] = d.y;
        }
      }
    }
    const long long c1 = trace.on ? clock64() : 0;
    __syncthreads();
    if (trace.on) {
      const long long c2 = clock64();
      trace.compute += c1 - c0, trace.sync += c2 - c1;
    }
    // No proxy fence before a refill: the block's reads of the slot completed before the
    // barrier (their values are in registers), as CUTLASS's TMA pipelines release a buffer. The
    // issuer is in the last warp, so that issuing overlaps warp 0's finishing of split rows.
    if (threadIdx.x == kIssuer) producer.issue(a, sm);
    const long long t3 = trace.on ? clock64() : 0;
    // Split rows meet here (the sets alternate by chunk, so the next chunk's writes cannot
    // overtake these reads).
    if (wpr > 1 && threadIdx.x < rows) {
      float v = 0;
      for (int q = 0; q < wpr; ++q) v += partial[threadIdx.x * kWarps + q];
      finish_row<T, K>(a, sm, r0 + threadIdx.x, v, s.rows.begin, own_begin);
    }
    if (trace.on) trace.finish += clock64() - t3;
    ++chunk;
  }
}

template <typename T, int D, int G>
__global__ void __launch_bounds__(kThreads, 1)
    decode_step_kernel(const __grid_constant__ MegaArgs a) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
  // Bulk copies and transaction barriers are sm_90's; the planner refuses older devices.
  __trap();
#else
  extern __shared__ __align__(128) unsigned char shared[];
  const Smem sm = carve(shared, a);
  Producer<T> producer;
  // The layer table and the weights are constant: they load before waiting on the kernel in
  // front.
  {
    const auto* from = reinterpret_cast<const uint4*>(a.layers);
    auto* to = reinterpret_cast<uint4*>(sm.layers);
    const int n = a.layer_count * static_cast<int>(sizeof(MegaLayer) / 16);
    for (int i = threadIdx.x; i < n; i += kThreads) to[i] = from[i];
  }
  if (threadIdx.x == 0) {
    for (int s = 0; s < a.slots; ++s) mega::bar_init(sm.bars + s);
    mega::bar_init_fence();
  }
  __syncthreads();
  if (threadIdx.x == kIssuer) {
    producer.start(a, sm);
    for (int s = 0; s < a.slots; ++s) producer.issue(a, sm);
  }
  __syncthreads();
  decode_core::wait_for_previous_kernel();
  const int64_t token = a.token[0], p = a.step[0];
  const int64_t h = a.hidden;
  // A token outside the vocabulary turns the step's outputs into NaN, as the ops library's
  // embedding does (a device cannot raise); row 0 is read instead, so no read goes astray.
  const bool bad_token = token < 0 || token >= a.vocab;
  const float poison = bad_token ? NAN : 0.0f;
  const T* embed_row = static_cast<const T*>(a.embed) + (bad_token ? 0 : token) * h;
  const Rows own = mega::rows_of(h, blockIdx.x, gridDim.x);
  for (int64_t i = threadIdx.x; i < own.end - own.begin; i += kThreads)
    sm.own[i] = to_float(embed_row[own.begin + i]) + poison;
  int64_t chunk = 0;
  unsigned arrivals = 0;
  Trace trace;
  trace.on = blockIdx.x == 0 && threadIdx.x == 0 && p == a.trace_position;
  trace.last = trace.on ? now_ns() : 0;
  auto barrier = [&] {
    arrivals += gridDim.x;
    mega::grid_barrier(a.barrier, arrivals);
  };
  const T* residual = static_cast<const T*>(a.residual);
  NormWeight norm = fetch_norm(static_cast<const T*>(sm.layers[0].input_norm), h);
  for (int l = 0; l < a.layer_count; ++l) {
    const MegaLayer& w = sm.layers[l];
    norm_x<T>(l == 0 ? embed_row : residual, norm, h, a.eps, sm, l == 0 ? poison : 0.0f);
    trace.mark(0);
    product<T, kQkv>(a, sm, producer, chunk, l * kKinds + kQkv, trace);
    mega::AttnItem item = mega::attention_plan<T, D, G>(a, w, p);
    trace.mark(1);
    barrier();
    trace.mark(2);
    mega::attention<T, D, G>(a, w, item, reinterpret_cast<float*>(sm.x), sm.flag);
    trace.mark(3);
    barrier();
    trace.mark(2);
    load_x<T>(static_cast<const T*>(a.attn_out), a.q_heads * D, sm);
    trace.mark(0);
    product<T, kO>(a, sm, producer, chunk, l * kKinds + kO, trace);
    trace.mark(4);
    norm = fetch_norm(static_cast<const T*>(w.post_norm), h);
    barrier();
    trace.mark(2);
    norm_x<T>(residual, norm, h, a.eps, sm);
    trace.mark(0);
    product<T, kGate>(a, sm, producer, chunk, l * kKinds + kGate, trace);
    product<T, kUp>(a, sm, producer, chunk, l * kKinds + kUp, trace);
    trace.mark(5);
    barrier();
    trace.mark(2);
    load_x<T>(static_cast<const T*>(a.act), a.intermediate, sm);
    trace.mark(0);
    product<T, kDown>(a, sm, producer, chunk, l * kKinds + kDown, trace);
    trace.mark(6);
    norm = fetch_norm(
        static_cast<const T*>(l + 1 < a.layer_count ? sm.layers[l + 1].input_norm : a.final_norm),
        h);
    barrier();
    trace.mark(2);
  }
  decode_core::allow_next_kernel();
  norm_x<T>(residual, norm, h, a.eps, sm);
  trace.mark(0);
  product<T, kHead>(a, sm, producer, chunk, a.layer_count * kKinds, trace);
  trace.mark(7);
  if (trace.on)
    printf(
        "persistent step trace (block 0, us): norms/x loads %.1f, qkv %.1f, barriers %.1f, "
        "attention %.1f, o %.1f, gate/up %.1f, down %.1f, head %.1f; %lld chunks, kcycles in "
        "them: waits %lld, compute %lld, sync %lld, finishing split rows %lld\n",
        trace.phase[0] / 1e3, trace.phase[1] / 1e3, trace.phase[2] / 1e3, trace.phase[3] / 1e3,
        trace.phase[4] / 1e3, trace.phase[5] / 1e3, trace.phase[6] / 1e3, trace.phase[7] / 1e3,
        static_cast<long long>(chunk), trace.wait / 1000, trace.compute / 1000, trace.sync / 1000,
        trace.finish / 1000);
#endif
}

template <typename T, int D, int G>
cudaError_t launch_shape(const MegaArgs& a, cudaStream_t stream, bool configure) {
  auto kernel = decode_step_kernel<T, D, G>;
  if (configure)
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                a.shared_bytes);
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(a.blocks));
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = static_cast<size_t>(a.shared_bytes);
  config.stream = stream;
  cudaLaunchAttribute attribute[1];
  // Cooperative: the launch fails rather than hang if the grid cannot be resident at once.
  attribute[0].id = cudaLaunchAttributeCooperative;
  attribute[0].val.cooperative = 1;
  config.attrs = attribute, config.numAttrs = 1;
  return cudaLaunchKernelEx(&config, kernel, a);
}

template <typename T>
cudaError_t dispatch(const MegaArgs& a, cudaStream_t stream, bool configure) {
  const int64_t g = a.q_heads / a.kv_heads;
  if (a.head_dim == 64) {
    if (g == 1) return launch_shape<T, 64, 1>(a, stream, configure);
    if (g == 2) return launch_shape<T, 64, 2>(a, stream, configure);
    if (g == 4) return launch_shape<T, 64, 4>(a, stream, configure);
    if (g == 8) return launch_shape<T, 64, 8>(a, stream, configure);
  } else if (a.head_dim == 128) {
    if (g == 1) return launch_shape<T, 128, 1>(a, stream, configure);
    if (g == 2) return launch_shape<T, 128, 2>(a, stream, configure);
    if (g == 4) return launch_shape<T, 128, 4>(a, stream, configure);
  }
  return cudaErrorInvalidValue;
}

int64_t round_up(int64_t v, int64_t to) {
  return (v + to - 1) / to * to;
}

}  // namespace

const char* plan_decode_megakernel(MegaArgs& a, bool bf16, int device) {
  const int64_t d = a.head_dim, g = a.kv_heads > 0 ? a.q_heads / a.kv_heads : 0;
  if (d != 64 && d != 128) return "head_dim is not 64 or 128";
  if (g < 1 || g * a.kv_heads != a.q_heads || (g & (g - 1)) != 0 || g * d > 512)
    return "query heads per kv head not 1, 2, 4 or 8 (at most 4 for head_dim 128)";
  if (a.hidden % 8 || a.intermediate % 8) return "hidden or intermediate size not a multiple of 8";
  if (const char* error = use_cuda_device(device); *error) return error;
  int sms = 0, optin = 0, major = 0;
  if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) !=
          cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess)
    return "device attributes unavailable";
  if (major < 9) return "needs compute capability 9.0 (bulk copies)";
  a.blocks = sms;
  if (a.vocab * sms >= (int64_t{1} << 32)) return "vocabulary too large for the grid";
  if ((a.hidden + sms - 1) / sms > kMaxOwn || (a.intermediate + sms - 1) / sms > kMaxGate)
    return "hidden or intermediate size too large for the grid";
  a.splits = static_cast<int>(std::clamp<int64_t>(sms / a.kv_heads, 1, kMaxSplits));
  const int64_t widest = std::max({a.hidden, a.q_heads * d, a.intermediate});
  const int64_t x_bytes = round_up(std::max(widest * 2, int64_t{kWarps} * g * (d + 2) * 4), 128);
  const char* env = std::getenv("FLAGSTONE_MEGA_SLOTS");
  a.slots = std::clamp(env && *env ? std::atoi(env) : 3, 2, mega::kMaxSlots);
  const int64_t fixed = kFixedBytes + table_bytes(a.layer_count) + x_bytes;
  a.slot_bytes = static_cast<int>((optin - fixed) / a.slots / 128 * 128);
  if (a.slot_bytes < widest * 2) return "a weight row does not fit a shared-memory slot";
  a.shared_bytes = static_cast<int>(fixed + int64_t{a.slots} * a.slot_bytes);
  auto status =
      bf16 ? dispatch<__nv_bfloat16>(a, nullptr, true) : dispatch<__half>(a, nullptr, true);
  if (status != cudaSuccess) return cudaGetErrorString(status);
  return "";
}

const char* launch_decode_megakernel(const MegaArgs& a, bool bf16, int device,
                                     void* stream_handle) {
  if (const char* error = use_cuda_device(device); *error) return error;
  auto stream = static_cast<cudaStream_t>(stream_handle);
  cudaError_t status = cudaMemsetAsync(a.barrier, 0, sizeof(unsigned), stream);
  if (status == cudaSuccess)
    status = bf16 ? dispatch<__nv_bfloat16>(a, stream, false) : dispatch<__half>(a, stream, false);
  return status == cudaSuccess ? "" : cudaGetErrorString(status);
}

}  // namespace flagstone::engine::detail
