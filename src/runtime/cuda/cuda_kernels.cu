// Device code of the CUDA backend: the n-d strided copy behind DeviceImpl::copy_strided.
// The host half normalizes the layout (drop size-1 dims, merge contiguous dims, widen words).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>

#include "cuda_kernels.h"

namespace flagstone::runtime::cuda {
namespace {

// The element becomes the innermost dimension (in bytes), so one more than kMaxDims.
constexpr int kDims = kMaxDims + 1;
constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1 << 16;

template <typename Index>
struct Layout {
  int ndim;
  Index sizes[kDims];
  Index src_strides[kDims];
  Index dst_strides[kDims];
};

// One element per thread and grid-stride loop; strides are in units of T. Index is int32_t when
// every offset fits, since 64-bit division costs several times more than 32-bit.
template <typename T, typename Index>
__global__ void strided_copy_kernel(const T* __restrict__ src, T* __restrict__ dst,
                                    Layout<Index> layout, Index count) {
  const Index step = static_cast<Index>(gridDim.x) * blockDim.x;
  for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += step) {
    Index rest = i;
    Index src_offset = 0;
    Index dst_offset = 0;
    for (int d = layout.ndim - 1; d > 0; --d) {
      const Index size = layout.sizes[d];
      const Index q = rest / size;
      const Index idx = rest - q * size;
      rest = q;
      src_offset += idx * layout.src_strides[d];
      dst_offset += idx * layout.dst_strides[d];
    }
    src_offset += rest * layout.src_strides[0];
    dst_offset += rest * layout.dst_strides[0];
    dst[dst_offset] = src[src_offset];
  }
}

// A layout in bytes, outermost dimension first.
struct ByteLayout {
  int ndim = 0;
  int64_t sizes[kDims] = {};
  int64_t src_strides[kDims] = {};
  int64_t dst_strides[kDims] = {};
};

template <typename T, typename Index>
cudaError_t launch(const std::byte* src, std::byte* dst, const ByteLayout& bytes, int64_t count,
                   cudaStream_t stream) {
  // The innermost dimension has stride 1 byte on both sides and becomes a run of words of T;
  // a run of one word adds nothing but a division per element, so it is dropped.
  const int inner = bytes.ndim - 1;
  const int64_t inner_words = bytes.sizes[inner] / int64_t{sizeof(T)};
  Layout<Index> layout{};
  layout.ndim = inner_words == 1 ? inner : bytes.ndim;
  for (int d = 0; d < layout.ndim; ++d) {
    layout.sizes[d] = static_cast<Index>(d == inner ? inner_words : bytes.sizes[d]);
    layout.src_strides[d] =
        static_cast<Index>(d == inner ? 1 : bytes.src_strides[d] / int64_t{sizeof(T)});
    layout.dst_strides[d] =
        static_cast<Index>(d == inner ? 1 : bytes.dst_strides[d] / int64_t{sizeof(T)});
  }
  int64_t blocks = (count + kThreads - 1) / kThreads;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  strided_copy_kernel<T, Index><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      reinterpret_cast<const T*>(src), reinterpret_cast<T*>(dst), layout,
      static_cast<Index>(count));
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_sized(const std::byte* src, std::byte* dst, const ByteLayout& bytes,
                         cudaStream_t stream) {
  int64_t count = bytes.sizes[bytes.ndim - 1] / int64_t{sizeof(T)};
  int64_t src_extent = 0;
  int64_t dst_extent = 0;
  for (int d = 0; d < bytes.ndim - 1; ++d) {
    count *= bytes.sizes[d];
    src_extent += (bytes.sizes[d] - 1) * std::llabs(bytes.src_strides[d] / int64_t{sizeof(T)});
    dst_extent += (bytes.sizes[d] - 1) * std::llabs(bytes.dst_strides[d] / int64_t{sizeof(T)});
  }
  src_extent += count;  // loose bound including the inner run
  dst_extent += count;
  // The grid-stride loop adds up to kMaxBlocks * kThreads past the last index before it stops.
  constexpr int64_t kLimit = std::numeric_limits<int32_t>::max() - int64_t{kMaxBlocks} * kThreads;
  if (count < kLimit && src_extent < kLimit && dst_extent < kLimit) {
    return launch<T, int32_t>(src, dst, bytes, count, stream);
  }
  return launch<T, int64_t>(src, dst, bytes, count, stream);
}

}  // namespace

cudaError_t launch_strided_copy(const StridedCopy& copy, cudaStream_t stream) {
  const auto element = static_cast<int64_t>(copy.element_bytes);
  // Byte layout, outermost first, without size-1 dimensions; the element is the last dimension.
  ByteLayout raw;
  for (int d = 0; d < copy.ndim; ++d) {
    if (copy.sizes[d] == 0) return cudaSuccess;
    if (copy.sizes[d] == 1) continue;
    raw.sizes[raw.ndim] = copy.sizes[d];
    raw.src_strides[raw.ndim] = copy.src_strides[d] * element;
    raw.dst_strides[raw.ndim] = copy.dst_strides[d] * element;
    ++raw.ndim;
  }
  raw.sizes[raw.ndim] = element;
  raw.src_strides[raw.ndim] = 1;
  raw.dst_strides[raw.ndim] = 1;
  ++raw.ndim;

  // Merge each dimension into the one inside it when both sides step over it contiguously.
  ByteLayout merged;  // built innermost first, reversed below
  for (int d = raw.ndim - 1; d >= 0; --d) {
    if (merged.ndim > 0) {
      const int in = merged.ndim - 1;
      if (raw.src_strides[d] == merged.src_strides[in] * merged.sizes[in] &&
          raw.dst_strides[d] == merged.dst_strides[in] * merged.sizes[in]) {
        merged.sizes[in] *= raw.sizes[d];
        continue;
      }
    }
    merged.sizes[merged.ndim] = raw.sizes[d];
    merged.src_strides[merged.ndim] = raw.src_strides[d];
    merged.dst_strides[merged.ndim] = raw.dst_strides[d];
    ++merged.ndim;
  }
  ByteLayout layout;
  layout.ndim = merged.ndim;
  for (int d = 0; d < merged.ndim; ++d) {
    layout.sizes[d] = merged.sizes[merged.ndim - 1 - d];
    layout.src_strides[d] = merged.src_strides[merged.ndim - 1 - d];
    layout.dst_strides[d] = merged.dst_strides[merged.ndim - 1 - d];
  }

  const auto* src = static_cast<const std::byte*>(copy.src) + copy.src_offset * element;
  auto* dst = static_cast<std::byte*>(copy.dst) + copy.dst_offset * element;
  if (layout.ndim == 1) {
    return cudaMemcpyAsync(dst, src, static_cast<size_t>(layout.sizes[0]), cudaMemcpyDeviceToDevice,
                           stream);
  }

  // The widest word that divides the inner run, every outer stride and both start addresses.
  int64_t word = 16;
  for (; word > 1; word /= 2) {
    bool fits = layout.sizes[layout.ndim - 1] % word == 0 &&
                reinterpret_cast<uintptr_t>(src) % word == 0 &&
                reinterpret_cast<uintptr_t>(dst) % word == 0;
    for (int d = 0; fits && d < layout.ndim - 1; ++d) {
      fits = layout.src_strides[d] % word == 0 && layout.dst_strides[d] % word == 0;
    }
    if (fits) break;
  }
  switch (word) {
    case 16:
      return launch_sized<uint4>(src, dst, layout, stream);
    case 8:
      return launch_sized<uint64_t>(src, dst, layout, stream);
    case 4:
      return launch_sized<uint32_t>(src, dst, layout, stream);
    case 2:
      return launch_sized<uint16_t>(src, dst, layout, stream);
    default:
      return launch_sized<uint8_t>(src, dst, layout, stream);
  }
}

}  // namespace flagstone::runtime::cuda
