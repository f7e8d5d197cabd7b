// The greedy pick's order on the device, shared by the streamed GEMV's pick (gemv_stream.cu) and
// the engine's greedy-pick kernel: NaN first, then the larger value, ties by the lower index.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace flagstone::ops::cuda {

// 16 bytes, as the picks' scratch holds them; index -1 is no pick.
struct Pick {
  float value;
  int64_t index;
};

// ops::argmax's order, so a pick on the device gives the id argmax over the logits would.
__device__ __forceinline__ bool picked_before(const Pick& a, const Pick& b) {
  if (a.index < 0) return false;
  if (b.index < 0) return true;
  const bool an = isnan(a.value), bn = isnan(b.value);
  if (an != bn) return an;
  if (!an && a.value != b.value) return a.value > b.value;
  return a.index < b.index;
}

// The warp's best, in every lane.
__device__ __forceinline__ Pick warp_best(Pick p) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const Pick q{__shfl_xor_sync(0xffffffffu, p.value, o),
                 __shfl_xor_sync(0xffffffffu, p.index, o)};
    if (picked_before(q, p)) p = q;
  }
  return p;
}

}  // namespace flagstone::ops::cuda
