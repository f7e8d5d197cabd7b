// The persistent decode kernel's attention phase (decode_megakernel.cu): one block per (kv
// head, split) item, rotary and the KV append folded in, splits merged by the last to finish.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "../../ops/cuda/attention_decode.cuh"
#include "decode_megakernel.h"
#include "megakernel_parts.cuh"
#include "rotate_pack.cuh"

namespace flagstone::engine::detail::mega {

using decode_core::finish;
using decode_core::kLog2e;
using decode_core::rescale;
using decode_core::round_to;
using decode_core::to_float;
using decode_core::unpack8;

// The attention work of this block: GQA group kh over keys [begin, end) of the live `total`.
struct AttnItem {
  bool work = false, bad = false;
  int64_t kh = 0, split = 0, begin = 0, end = 0, active = 1, p = 0, total = 0;
  uint4 k0 = {}, v0 = {};  // this thread's first cached row, loaded before the barrier
};

template <typename T, int D, int G>
__device__ AttnItem attention_plan(const MegaArgs& a, const MegaLayer& w, int64_t p) {
  constexpr int kLanes = D / 8, kPass = kWarps * (32 / kLanes);
  AttnItem it;
  it.p = p;
  it.bad = p < 0 || p >= a.capacity || p >= a.max_positions;
  it.total = it.bad ? 0 : p + 1;
  const int64_t item = blockIdx.x;
  if (item >= a.kv_heads * a.splits) return it;
  it.kh = item / a.splits, it.split = item % a.splits;
  int64_t chunk = max(int64_t{kPass}, (it.total + a.splits - 1) / a.splits);
  chunk = (chunk + kPass - 1) / kPass * kPass;
  it.active = max(int64_t{1}, (it.total + chunk - 1) / chunk);
  it.begin = it.split * chunk;
  it.end = min(it.total, it.begin + chunk);
  it.work = it.split < it.active;
  if (!it.work) return it;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t j = it.begin + warp * (32 / kLanes) + lane / kLanes;
  if (j < it.end && j != p) {
    const int64_t row = a.kv_heads * D;
    const int64_t off = j * row + it.kh * D + (lane % kLanes) * 8;
    it.k0 = *reinterpret_cast<const uint4*>(static_cast<const T*>(w.k_cache) + off);
    it.v0 = *reinterpret_cast<const uint4*>(static_cast<const T*>(w.v_cache) + off);
  }
  return it;
}

// Attention of the block's item: the group's query heads and the new key turned by rotary, the
// new key and value appended to the cache by the split holding the newest position and used from
// registers, an online softmax per thread over one row per pass, then the warps merge through
// shared memory. A split leaves (max, sum, values) per head; the group's last split to finish (a
// ticket) merges them.
template <typename T, int D, int G>
__device__ void attention(const MegaArgs& a, const MegaLayer& w, const AttnItem& it, float* merge,
                          int* flag) {
  if (!it.work) return;
  constexpr int kLanes = D / 8, kRows = 32 / kLanes, kPass = kWarps * kRows, kWidth = D + 2;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int part = lane % kLanes, slot = warp * kRows + lane / kLanes;
  const int64_t hq = a.q_heads, hk = a.kv_heads, kh = it.kh, p = it.p;
  const T* heads = static_cast<const T*>(a.qkv_out);
  auto pack_at = [&](int64_t head) {
    return __ldcg(reinterpret_cast<const uint4*>(heads + head * D + part * 8));
  };
  uint4 qraw[G];
#pragma unroll
  for (int g = 0; g < G; ++g) qraw[g] = pack_at(kh * G + g);
  const uint4 kraw = pack_at(hq + kh), fresh_v = pack_at(hq + hk + kh);
  float c[8] = {}, s[8] = {};
  if (!it.bad) load_angles<T, D>(a.cos, a.sin, p, part, a.neox, c, s);
  float q[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    unpack8<T>(qraw[g], q[g]);
    if (!it.bad) rotate_pack<T, D>(q[g], c, s, part, a.neox);
#pragma unroll
    for (int e = 0; e < 8; ++e) q[g][e] *= a.scale * kLog2e;
  }
  float kf[8];
  unpack8<T>(kraw, kf);
  rotate_pack<T, D>(kf, c, s, part, a.neox);
  uint4 fresh_k;
  T* packed = reinterpret_cast<T*>(&fresh_k);
#pragma unroll
  for (int e = 0; e < 8; ++e) packed[e] = round_to<T>(kf[e]);
  const int64_t row = hk * D;
  T* kc = static_cast<T*>(w.k_cache) + kh * D + part * 8;
  T* vc = static_cast<T*>(w.v_cache) + kh * D + part * 8;
  if (!it.bad && it.end == it.total && slot == 0) {
    *reinterpret_cast<uint4*>(kc + p * row) = fresh_k;
    *reinterpret_cast<uint4*>(vc + p * row) = fresh_v;
  }

  float m[G], l[G], acc[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -INFINITY, l[g] = 0;
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[g][e] = 0;
  }
  uint4 kr = it.k0, vr = it.v0;
  for (int64_t base = it.begin; base < it.end; base += kPass) {
    const int64_t j = base + slot, next = j + kPass;
    const bool has = j < it.end;
    if (j == p) kr = fresh_k, vr = fresh_v;
    uint4 kn = {}, vn = {};
    if (next < it.end && next != p) {
      kn = *reinterpret_cast<const uint4*>(kc + next * row);
      vn = *reinterpret_cast<const uint4*>(vc + next * row);
    }
    float kv[8], vv[8];
    unpack8<T>(kr, kv);
    unpack8<T>(vr, vv);
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float dot = 0;
#pragma unroll
      for (int e = 0; e < 8; ++e) dot += q[g][e] * kv[e];
#pragma unroll
      for (int o = kLanes / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
      const float score = has ? dot : -INFINITY;
      const float mx = fmaxf(m[g], score);
      const float correction = rescale(m[g], mx), weight = rescale(score, mx);
      l[g] = l[g] * correction + weight;
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[g][e] = acc[g][e] * correction + weight * vv[e];
      m[g] = mx;
    }
    kr = kn, vr = vn;
  }
  // The rows of a warp merge by shuffles, then the warps through shared memory.
  decode_core::merge_warp_rows<kLanes, G>(m, l, acc);
  if (lane < kLanes) decode_core::store_warp_state<G, D>(merge, warp, part, m, l, acc);
  __syncthreads();
  T* out = static_cast<T*>(a.attn_out) + kh * G * D;
  float* partials = a.partials + kh * G * a.splits * kWidth;
  for (int idx = threadIdx.x; idx < G * D; idx += kThreads) {
    const int g = idx / D, col = idx % D;
    float big, sum, value;
    decode_core::combine_warps<kWarps, G, D>(merge, g, col, big, sum, value);
    if (it.active == 1) {
      out[idx] = round_to<T>(finish(value, sum, it.bad, it.total == 0));
    } else {
      float* mine = partials + (g * a.splits + it.split) * kWidth;
      mine[2 + col] = value;
      if (col == 0) mine[0] = big, mine[1] = sum;
    }
  }
  if (it.active == 1) return;
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    const unsigned ticket = atomicAdd(a.tickets + kh, 1u);
    const bool last = ticket == static_cast<unsigned>(it.active - 1);
    if (last) {
      a.tickets[kh] = 0;
      __threadfence();
    }
    *flag = last;
  }
  __syncthreads();
  if (!*flag) return;
  for (int idx = threadIdx.x; idx < G * D; idx += kThreads) {
    const int g = idx / D, col = idx % D;
    const float* head = partials + g * a.splits * kWidth;
    float big = -INFINITY;
    for (int64_t v = 0; v < it.active; ++v) big = fmaxf(big, __ldcg(head + v * kWidth));
    float value = 0, sum = 0;
    for (int64_t v = 0; v < it.active; ++v) {
      const float f = rescale(__ldcg(head + v * kWidth), big);
      sum += __ldcg(head + v * kWidth + 1) * f;
      value += __ldcg(head + v * kWidth + 2 + col) * f;
    }
    out[idx] = round_to<T>(finish(value, sum, it.bad, false));
  }
}

}  // namespace flagstone::engine::detail::mega
