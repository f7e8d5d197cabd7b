// Strided copies on host memory, and the default DeviceImpl::copy_strided that stages any
// backend's buffers through the host so a new backend works before it has a copy kernel.
#include <cstring>
#include <vector>

#include "flagstone/base/error.h"
#include "flagstone/runtime/backend.h"

namespace flagstone::runtime {

void strided_copy_host(const StridedCopy& copy, const std::byte* src_base, std::byte* dst_base) {
  FS_CHECK(copy.ndim >= 0 && copy.ndim <= kMaxDims, kInvalidArgument, "strided copy of ", copy.ndim,
           " dims (at most ", kMaxDims, ")");
  const int64_t elem = static_cast<int64_t>(copy.element_bytes);
  int64_t total = 1;
  for (int d = 0; d < copy.ndim; ++d) total *= copy.sizes[d];
  if (total == 0) return;
  int64_t index[kMaxDims] = {};
  int64_t src = copy.src_offset;
  int64_t dst = copy.dst_offset;
  const int last = copy.ndim - 1;
  // Copy runs along the innermost dim at once when both sides are contiguous there.
  const bool inner_contiguous =
      copy.ndim > 0 && copy.src_strides[last] == 1 && copy.dst_strides[last] == 1;
  const int64_t run = inner_contiguous ? copy.sizes[last] : 1;
  const int walk_dims = inner_contiguous ? last : copy.ndim;
  for (int64_t done = 0; done < total; done += run) {
    std::memcpy(dst_base + dst * elem, src_base + src * elem, static_cast<size_t>(run * elem));
    for (int d = walk_dims - 1; d >= 0; --d) {
      ++index[d];
      src += copy.src_strides[d];
      dst += copy.dst_strides[d];
      if (index[d] < copy.sizes[d]) break;
      src -= copy.src_strides[d] * copy.sizes[d];
      dst -= copy.dst_strides[d] * copy.sizes[d];
      index[d] = 0;
    }
  }
}

namespace {

// Extent in elements [lo, hi] touched by one side of the copy.
void touched_range(const StridedCopy& copy, const int64_t* strides, int64_t offset, int64_t* lo,
                   int64_t* hi) {
  *lo = offset;
  *hi = offset;
  for (int d = 0; d < copy.ndim; ++d) {
    int64_t span = strides[d] * (copy.sizes[d] - 1);
    if (span < 0)
      *lo += span;
    else
      *hi += span;
  }
}

}  // namespace

void DeviceImpl::copy_strided(StreamImpl& stream, const StridedCopy& copy) {
  int64_t total = 1;
  for (int d = 0; d < copy.ndim; ++d) total *= copy.sizes[d];
  if (total == 0) return;
  const size_t elem = copy.element_bytes;
  int64_t src_lo, src_hi, dst_lo, dst_hi;
  touched_range(copy, copy.src_strides, copy.src_offset, &src_lo, &src_hi);
  touched_range(copy, copy.dst_strides, copy.dst_offset, &dst_lo, &dst_hi);
  FS_CHECK(src_lo >= 0 && dst_lo >= 0, kInvalidArgument, "strided copy reaches before its buffer");
  std::vector<std::byte> src_host(static_cast<size_t>(src_hi - src_lo + 1) * elem);
  std::vector<std::byte> dst_host(static_cast<size_t>(dst_hi - dst_lo + 1) * elem);
  copy_to_host(stream, src_host.data(), copy.src, static_cast<size_t>(src_lo) * elem,
               src_host.size());
  // The destination's gaps must survive, so read it too.
  copy_to_host(stream, dst_host.data(), copy.dst, static_cast<size_t>(dst_lo) * elem,
               dst_host.size());
  stream.synchronize();
  StridedCopy local = copy;
  local.src_offset -= src_lo;
  local.dst_offset -= dst_lo;
  strided_copy_host(local, src_host.data(), dst_host.data());
  copy_to_device(stream, copy.dst, static_cast<size_t>(dst_lo) * elem, dst_host.data(),
                 dst_host.size());
}

}  // namespace flagstone::runtime
