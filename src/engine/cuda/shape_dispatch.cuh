// The engine's attention kernels are instantiated per head dim and GQA group size: this picks the
// instantiation for a call's shape at run time.
#pragma once

#include <cuda_runtime.h>

#include <type_traits>

#include "kv_cache_write.h"

namespace flagstone::engine::detail {

// Calls f(D, G) with a's head dim and group size as std::integral_constant values (head dims 64
// and 128, groups 1, 2, 4 and 8); cudaErrorInvalidValue for any other shape.
template <typename F>
cudaError_t with_shape(const RopeCacheArgs& a, F f) {
  auto by_group = [&](auto d) -> cudaError_t {
    switch (a.kv_heads > 0 ? a.q_heads / a.kv_heads : 0) {
      case 1:
        return f(d, std::integral_constant<int, 1>{});
      case 2:
        return f(d, std::integral_constant<int, 2>{});
      case 4:
        return f(d, std::integral_constant<int, 4>{});
      case 8:
        return f(d, std::integral_constant<int, 8>{});
      default:
        return cudaErrorInvalidValue;
    }
  };
  if (a.head_dim == 64) return by_group(std::integral_constant<int, 64>{});
  if (a.head_dim == 128) return by_group(std::integral_constant<int, 128>{});
  return cudaErrorInvalidValue;
}

}  // namespace flagstone::engine::detail
