// The device core of decode attention (one query per head over cached keys), shared by the ops
// library's decode kernel (attention_decode.cu) and the engine's fused rotary + attention kernel.
//
// One block of kThreads serves the G query heads of one kv head (a GQA group) over one split of
// the live keys, so each K/V row is read once, 16 bytes per lane (a row spread over D / 8 lanes),
// U rows per thread in flight. Softmax runs online in f32 in the log2 domain (the caller folds
// log2 e into q). A block holding the whole sequence writes the output; otherwise each split
// leaves (max, sum, flag, unnormalized values) in a workspace and the last split of the group to
// finish (an atomic ticket) merges them: one launch, no second kernel.
//
// Self-contained (no ops-library headers) so the engine can include it by path.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "cuda/pdl.cuh"

namespace flagstone::decode_core {

inline constexpr int kThreads = 128;  // four warps
inline constexpr int kWarps = kThreads / 32;
inline constexpr int kMaxGroup = 8;
inline constexpr int kMaxSplits = 128;
inline constexpr float kLog2e = 1.4426950408889634f;

// Rows per thread whose loads are issued together (fewer for large groups: registers).
__host__ __device__ constexpr int unroll_of(int group) {
  return group >= 8 ? 2 : 4;
}
// Keys one block covers in one pass of loads: the smallest share a split is given.
__host__ __device__ constexpr int64_t keys_per_pass(int64_t head_dim, int64_t group) {
  return unroll_of(static_cast<int>(group)) * kWarps * (256 / head_dim);
}
// Workspace floats per (sequence, query head) for `splits` splits: D values per split, then a
// 4-float header (max, sum, flag, unused) per split, so both load as aligned vectors.
__host__ __device__ constexpr int64_t partial_floats(int64_t splits, int64_t head_dim) {
  return splits * (head_dim + 4);
}

// Lanes sharing one key row, rows per warp and per block step, keys per pass.
template <int D, int G>
struct Tile {
  static constexpr int kLanes = D / 8;
  static constexpr int kRows = 32 / kLanes;
  static constexpr int kStep = kWarps * kRows;
  static constexpr int kUnroll = unroll_of(G);
  static constexpr int kPass = kUnroll * kStep;
};

__device__ __forceinline__ float to_float(float v) {
  return v;
}
__device__ __forceinline__ float to_float(__half v) {
  return __half2float(v);
}
__device__ __forceinline__ float to_float(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
template <typename T>
__device__ __forceinline__ T round_to(float v);
template <>
__device__ __forceinline__ __half round_to<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 round_to<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
// Eight packed values to floats with the fewest instructions: a bf16 is the top half of an f32
// (a shift or a mask each), two f16 widen in one conversion. Exact, as the per-element casts.
template <typename T>
__device__ __forceinline__ void unpack8(const uint4& raw, float (&out)[8]) {
  static_assert(std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>);
  const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if constexpr (std::is_same_v<T, __half>) {
      const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&w[i]));
      out[2 * i] = f.x, out[2 * i + 1] = f.y;
    } else {
      out[2 * i] = __uint_as_float(w[i] << 16);
      out[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
  }
}

// Programmatic dependent launch: the waits and releases of cuda/pdl.cuh.
using ops::cuda::allow_next_kernel;
using ops::cuda::wait_for_previous_kernel;

// exp2(x - m) for an online softmax whose running max may still be -inf (then 0, not NaN).
__device__ __forceinline__ float rescale(float x, float m) {
  return m == -INFINITY ? 0.0f : exp2f(x - m);
}

// Merges the online-softmax states (max m, sum l, unnormalized values acc of this lane's 8
// elements, per group head) of the rows a warp holds: lanes kLanes apart hold the same elements
// of different rows. Afterwards every lane holds the warp's merged state for its elements.
template <int kLanes, int G>
__device__ __forceinline__ void merge_warp_rows(float (&m)[G], float (&l)[G], float (&acc)[G][8]) {
#pragma unroll
  for (int o = kLanes; o < 32; o <<= 1) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const float mo = __shfl_xor_sync(0xffffffffu, m[g], o);
      const float lo = __shfl_xor_sync(0xffffffffu, l[g], o);
      const float mx = fmaxf(m[g], mo);
      const float ca = rescale(m[g], mx), cb = rescale(mo, mx);
      l[g] = l[g] * ca + lo * cb;
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const float ao = __shfl_xor_sync(0xffffffffu, acc[g][e], o);
        acc[g][e] = acc[g][e] * ca + ao * cb;
      }
      m[g] = mx;
    }
  }
}

// One warp's merged state into shared memory at merge[(warp * G + g) * (2 + D)]: max, sum, then
// the D values (called by the lanes holding row 0 of the warp, lane = part).
template <int G, int D>
__device__ __forceinline__ void store_warp_state(float* merge, int warp, int part,
                                                 const float (&m)[G], const float (&l)[G],
                                                 const float (&acc)[G][8]) {
#pragma unroll
  for (int g = 0; g < G; ++g) {
    float* mine = merge + (warp * G + g) * (2 + D);
    if (part == 0) mine[0] = m[g], mine[1] = l[g];
#pragma unroll
    for (int e = 0; e < 8; ++e) mine[2 + part * 8 + e] = acc[g][e];
  }
}

// The W warps' states of head g merged for column c: the common max, the rescaled sum and value.
template <int W, int G, int D>
__device__ __forceinline__ void combine_warps(const float* merge, int g, int c, float& big,
                                              float& sum, float& value) {
  big = -INFINITY;
#pragma unroll
  for (int w = 0; w < W; ++w) big = fmaxf(big, merge[(w * G + g) * (2 + D)]);
  value = 0, sum = 0;
#pragma unroll
  for (int w = 0; w < W; ++w) {
    const float* theirs = merge + (w * G + g) * (2 + D);
    const float f = rescale(theirs[0], big);
    sum += theirs[1] * f;
    value += theirs[2 + c] * f;
  }
}

// The finished value of an output element: NaN for a bad length or block index, zeros for a
// sequence with no keys, NaN when every key was masked.
__device__ __forceinline__ float finish(float value, float total, bool bad, bool empty) {
  if (bad) return NAN;
  if (total > 0) return value / total;
  return empty ? 0.0f : NAN;
}

// The keys of one split: [begin, end) of the `end_all` live keys. Every block computes the same
// plan from the live length (read on the device, so a recorded launch follows it): shares of at
// least one pass of loads, rounded to whole block steps; splits past `active` have nothing to do.
struct Split {
  int64_t begin = 0, end = 0, active = 1;
};
__device__ __forceinline__ Split split_of(int64_t end_all, int64_t splits, int64_t split,
                                          int64_t pass, int64_t step) {
  int64_t chunk = max(pass, (end_all + splits - 1) / splits);
  chunk = (chunk + step - 1) / step * step;
  Split s;
  s.active = max(int64_t{1}, (end_all + chunk - 1) / chunk);
  s.begin = split * chunk;
  s.end = min(end_all, s.begin + chunk);
  return s;
}

// Offsets (elements) of key row j in K and in V, k < 0 when the row's block index is bad.
struct RowAt {
  int64_t k, v;
};

// One block's work beside the query: where the group's K/V rows and outputs live.
template <typename T>
struct GroupTask {
  const T* k = nullptr;  // this lane's pack of the group's row 0 (row offsets from RowAt added)
  const T* v = nullptr;
  Split split;
  int64_t index = 0;   // this block's split
  int64_t splits = 1;  // splits launched (partial rows per head)
  bool bad = false, empty = false;
  T* out = nullptr;  // element c of group head g at out[g * out_head + c * out_elem]
  int64_t out_head = 0, out_elem = 1;
  float* partials = nullptr;    // the group's G heads, partial_floats(splits, D) each
  unsigned* counter = nullptr;  // the group's ticket, zero between launches
  // A row not read from memory but taken from registers (the fused kernel's new key and value,
  // this lane's pack of each), or -1.
  int64_t fresh = -1;
  uint4 fresh_k = {}, fresh_v = {};
};

// One pass of loads: U rows per thread, issued together.
template <int U>
struct Pass {
  uint4 k[U], v[U];
  bool has[U];
};

// The slot (row within a block step) and pack of this thread.
template <int D, int G>
__device__ __forceinline__ int slot_of() {
  using S = Tile<D, G>;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  return warp * S::kRows + lane / S::kLanes;
}

// Issues the loads of the pass starting at row `base` (rows past the split masked, the fresh row
// left for attend to fill in, a bad block index sets `bad`).
template <typename T, int D, int G, typename RowFn>
__device__ __forceinline__ void load_pass(const GroupTask<T>& t, RowFn row_at, int64_t base,
                                          Pass<Tile<D, G>::kUnroll>& p, bool& bad) {
  using S = Tile<D, G>;
  const int slot = slot_of<D, G>();
#pragma unroll
  for (int u = 0; u < S::kUnroll; ++u) {
    const int64_t j = base + u * S::kStep + slot;
    p.has[u] = j < t.split.end;
    p.k[u] = make_uint4(0, 0, 0, 0), p.v[u] = make_uint4(0, 0, 0, 0);
    if (p.has[u] && j != t.fresh) {
      const RowAt r = row_at(j);
      p.has[u] = r.k >= 0;
      bad |= !p.has[u];
      if (p.has[u]) {
        p.k[u] = *reinterpret_cast<const uint4*>(t.k + r.k);
        p.v[u] = *reinterpret_cast<const uint4*>(t.v + r.v);
      }
    }
  }
}

// Pulls the first pass's rows into L2 without reading them (safe before waiting on the kernel
// that may still write them: L2 is where writes land).
template <typename T, int D, int G, typename RowFn>
__device__ __forceinline__ void prefetch_pass(const GroupTask<T>& t, RowFn row_at) {
  using S = Tile<D, G>;
  const int slot = slot_of<D, G>();
#pragma unroll
  for (int u = 0; u < S::kUnroll; ++u) {
    const int64_t j = t.split.begin + u * S::kStep + slot;
    if (j < t.split.end) {
      const RowAt r = row_at(j);
      if (r.k >= 0) {
        asm volatile("prefetch.global.L2 [%0];" ::"l"(t.k + r.k));
        asm volatile("prefetch.global.L2 [%0];" ::"l"(t.v + r.v));
      }
    }
  }
}

// Adds one to a ticket counter at device scope with acquire-release ordering; the old value.
__device__ __forceinline__ unsigned ticket_acq_rel(unsigned* counter) {
  unsigned old;
  asm volatile("atom.add.acq_rel.gpu.global.u32 %0, [%1], 1;"
               : "=r"(old)
               : "l"(counter)
               : "memory");
  return old;
}

// Vector of C consecutive floats (C = 2 or 4), loaded through L2 only: written by other blocks
// of this launch.
template <int C>
__device__ __forceinline__ void load_cols(const float* p, float (&out)[C]) {
  if constexpr (C == 4) {
    const float4 v = __ldcg(reinterpret_cast<const float4*>(p));
    out[0] = v.x, out[1] = v.y, out[2] = v.z, out[3] = v.w;
  } else {
    const float2 v = __ldcg(reinterpret_cast<const float2*>(p));
    out[0] = v.x, out[1] = v.y;
  }
}

// The last split's merge: warp w takes heads w, w + kWarps, ...; lane i holds header i of a chunk
// of 16 splits and columns i * D/32 ...; the headers and the chunk's columns load together, so up
// to 16 splits cost one round trip to L2.
template <typename T, int D, int G>
__device__ __forceinline__ void merge_splits(const GroupTask<T>& t) {
  constexpr int C = D / 32;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t active = t.split.active;
  for (int g = warp; g < G; g += kWarps) {
    const float* head = t.partials + g * partial_floats(t.splits, D);
    const float* headers = head + t.splits * D;
    float big = -INFINITY, total = 0, value[C] = {};
    bool flagged = false;
    for (int64_t s0 = 0; s0 < active; s0 += 16) {
      const int64_t count = min(int64_t{16}, active - s0);
      float4 h = make_float4(-INFINITY, 0, 0, 0);
      if (lane < count) h = __ldcg(reinterpret_cast<const float4*>(headers) + s0 + lane);
      float cols[16][C];
#pragma unroll
      for (int s = 0; s < 16; ++s) {
#pragma unroll
        for (int c = 0; c < C; ++c) cols[s][c] = 0;
        if (s < count) load_cols<C>(head + (s0 + s) * D + lane * C, cols[s]);
      }
      float mx = h.x;
#pragma unroll
      for (int o = 8; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      mx = __shfl_sync(0xffffffffu, mx, 0);
      const float next = fmaxf(big, mx);
      const float correction = rescale(big, next);
      const float w = rescale(h.x, next);
      float part = h.y * w;
#pragma unroll
      for (int o = 8; o > 0; o >>= 1) part += __shfl_xor_sync(0xffffffffu, part, o);
      total = total * correction + __shfl_sync(0xffffffffu, part, 0);
      flagged |= __any_sync(0xffffffffu, h.z != 0.0f);
#pragma unroll
      for (int c = 0; c < C; ++c) value[c] *= correction;
#pragma unroll
      for (int s = 0; s < 16; ++s) {
        const float ws = __shfl_sync(0xffffffffu, w, s);
#pragma unroll
        for (int c = 0; c < C; ++c) value[c] += ws * cols[s][c];
      }
      big = next;
    }
#pragma unroll
    for (int c = 0; c < C; ++c)
      t.out[g * t.out_head + (lane * C + c) * t.out_elem] =
          round_to<T>(finish(value[c], total, flagged, t.empty));
  }
}

// Floats of the block's per-warp states (attend_states): per warp and head m, l, D values.
__host__ __device__ constexpr int merge_floats(int head_dim, int group) {
  return kWarps * group * (2 + head_dim);
}

// The block's attention over its split, up to the per-warp online-softmax states in `merge`
// (merge_floats(D, G), combine_warps reads them): q holds this lane's 8 elements of each group
// head, scaled by scale * log2 e. `row_at(j)` gives row j's offsets; `first`, when set, is the
// first pass already loaded (load_pass before the wait). Called by every thread of the block (it
// synchronizes); returns whether any thread met a bad row.
template <typename T, int D, int G, typename RowFn>
__device__ __forceinline__ bool attend_states(const float (&q)[G][8], const GroupTask<T>& t,
                                              RowFn row_at, const Pass<Tile<D, G>::kUnroll>* first,
                                              float* merge) {
  using S = Tile<D, G>;
  constexpr int U = S::kUnroll;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int sub = lane / S::kLanes, part = lane % S::kLanes;
  const int slot = warp * S::kRows + sub;
  bool bad = t.bad;

  float m[G], l[G], acc[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -INFINITY, l[g] = 0;
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[g][e] = 0;
  }
  // U rows per thread per pass, all loads issued before any is used. The pass count is the same
  // for every thread (rows past the end are masked), so the row-group shuffles see every lane.
  // Software-pipelined: the next pass's loads are issued before this pass's arithmetic, so a
  // long split keeps two passes in flight.
  Pass<U> ps;
  if (first)
    ps = *first;
  else
    load_pass<T, D, G>(t, row_at, t.split.begin, ps, bad);
  for (int64_t base = t.split.begin; base < t.split.end; base += S::kPass) {
    Pass<U> next;
    const bool more = base + S::kPass < t.split.end;
    if (more) load_pass<T, D, G>(t, row_at, base + S::kPass, next, bad);
    uint4(&kraw)[U] = ps.k;
    uint4(&vraw)[U] = ps.v;
    bool(&has)[U] = ps.has;
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (base + u * S::kStep + slot == t.fresh) kraw[u] = t.fresh_k, vraw[u] = t.fresh_v;
    float s[U][G];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      float kf[8];
      unpack8<T>(kraw[u], kf);
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float dot = 0;
#pragma unroll
        for (int e = 0; e < 8; ++e) dot += q[g][e] * kf[e];
#pragma unroll
        for (int o = S::kLanes / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
        s[u][g] = has[u] ? dot : -INFINITY;
      }
    }
    // One rescale per pass: the new max over the pass's rows, then their weights.
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float mx = m[g];
#pragma unroll
      for (int u = 0; u < U; ++u) mx = fmaxf(mx, s[u][g]);
      const float correction = rescale(m[g], mx);
      l[g] *= correction;
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[g][e] *= correction;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        s[u][g] = rescale(s[u][g], mx);
        l[g] += s[u][g];
      }
      m[g] = mx;
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      float vf[8];
      unpack8<T>(vraw[u], vf);
#pragma unroll
      for (int g = 0; g < G; ++g)
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[g][e] += s[u][g] * vf[e];
    }
    if (more) ps = next;
  }

  // The rows of a warp merge by shuffles, then the warps through shared memory.
  merge_warp_rows<S::kLanes, G>(m, l, acc);
  if (sub == 0) store_warp_state<G, D>(merge, warp, part, m, l, acc);
  return __syncthreads_or(bad);
}

// The block's attention over its split (attend_states), then the output, or, split, the partials
// of the split, and the last split of the group merges them.
template <typename T, int D, int G, typename RowFn>
__device__ __forceinline__ void attend(const float (&q)[G][8], const GroupTask<T>& t, RowFn row_at,
                                       const Pass<Tile<D, G>::kUnroll>* first = nullptr) {
  __shared__ float merge[merge_floats(D, G)];
  __shared__ bool last;
  const bool bad = attend_states<T, D, G>(q, t, row_at, first, merge);
  const bool whole = t.split.active == 1;
  for (int idx = threadIdx.x; idx < G * D; idx += kThreads) {
    const int g = idx / D, c = idx % D;
    float big, sum, value;
    combine_warps<kWarps, G, D>(merge, g, c, big, sum, value);
    if (whole) {
      t.out[g * t.out_head + c * t.out_elem] = round_to<T>(finish(value, sum, bad, t.empty));
    } else {
      float* head = t.partials + g * partial_floats(t.splits, D);
      head[t.index * D + c] = value;
      if (c == 0)
        *reinterpret_cast<float4*>(head + t.splits * D + t.index * 4) =
            make_float4(big, sum, bad ? 1.0f : 0.0f, 0.0f);
    }
  }
  if (whole) return;

  // Publish this split, then take a ticket; the last of the group's splits merges and leaves the
  // ticket at zero for the next launch. The barrier orders the block's writes before thread 0's
  // release, and its acquire before the block's reads (one fenced atomic instead of a fence per
  // thread, as CUTLASS's split-K semaphore does).
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned ticket = ticket_acq_rel(t.counter);
    last = ticket == static_cast<unsigned>(t.split.active - 1);
    if (last) atomicExch(t.counter, 0u);
  }
  __syncthreads();
  if (!last) return;
  merge_splits<T, D, G>(t);
}

}  // namespace flagstone::decode_core
