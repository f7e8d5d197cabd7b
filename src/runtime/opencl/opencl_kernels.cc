// The opencl backend's own OpenCL C kernels: n-d strided copies (elements of 1 to 16 bytes,
// 32- or 64-bit indexing) and a byte fill for drivers whose clEnqueueFillBuffer refuses a request.
#include <algorithm>
#include <iterator>
#include <string>

#include "flagstone/base/error.h"
#include "opencl/opencl_device.h"

namespace flagstone::runtime::opencl {
namespace {

// Each work item walks a grid-stride loop over the flat element index, decomposing it over the
// sizes from the innermost dimension out. Offsets are signed: views may have negative strides.
// U/S are the unsigned index and signed offset types: 64-bit division costs several times more
// than 32-bit on GPUs, so copies whose every offset fits 31 bits use the narrow variant.
constexpr const char* kSource = R"CLC(
typedef struct {
  long sizes[8];
  long src_strides[8];
  long dst_strides[8];
  long src_offset;
  long dst_offset;
  long total;
  int ndim;
  int unused;
} fs_strided_args;

#define FS_STRIDED_COPY(NAME, T, U, S)                                               \
  __kernel void NAME(__global const T* src, __global T* dst, fs_strided_args a) {  \
    U total = (U)a.total;                                                           \
    U step = (U)get_global_size(0);                                                 \
    for (U i = (U)get_global_id(0); i < total; i += step) {                         \
      U rest = i;                                                                   \
      S s = (S)a.src_offset;                                                        \
      S d = (S)a.dst_offset;                                                        \
      for (int k = a.ndim - 1; k >= 0; --k) {                                       \
        U size = (U)a.sizes[k];                                                     \
        S index = (S)(rest % size);                                                 \
        rest /= size;                                                               \
        s += index * (S)a.src_strides[k];                                           \
        d += index * (S)a.dst_strides[k];                                           \
      }                                                                             \
      dst[d] = src[s];                                                              \
    }                                                                               \
  }

FS_STRIDED_COPY(fs_strided_copy_1, uchar, ulong, long)
FS_STRIDED_COPY(fs_strided_copy_2, ushort, ulong, long)
FS_STRIDED_COPY(fs_strided_copy_4, uint, ulong, long)
FS_STRIDED_COPY(fs_strided_copy_8, ulong, ulong, long)
FS_STRIDED_COPY(fs_strided_copy_16, uint4, ulong, long)
FS_STRIDED_COPY(fs_strided_copy32_1, uchar, uint, int)
FS_STRIDED_COPY(fs_strided_copy32_2, ushort, uint, int)
FS_STRIDED_COPY(fs_strided_copy32_4, uint, uint, int)
FS_STRIDED_COPY(fs_strided_copy32_8, ulong, uint, int)
FS_STRIDED_COPY(fs_strided_copy32_16, uint4, uint, int)

__kernel void fs_fill_u8(__global uchar* dst, ulong offset, ulong count, uchar value) {
  for (ulong i = get_global_id(0); i < count; i += get_global_size(0)) dst[offset + i] = value;
}
)CLC";

// Wide (64-bit) copies first, then narrow (32-bit) ones, each by element size; then the fill.
constexpr const char* kKernelNames[] = {
    "fs_strided_copy_1",   "fs_strided_copy_2",    "fs_strided_copy_4",   "fs_strided_copy_8",
    "fs_strided_copy_16",  "fs_strided_copy32_1",  "fs_strided_copy32_2", "fs_strided_copy32_4",
    "fs_strided_copy32_8", "fs_strided_copy32_16", "fs_fill_u8"};
constexpr int kNarrowKernels = 5;
constexpr int kFillKernel = 10;
static_assert(std::size(kKernelNames) == kFillKernel + 1);

// Must match fs_strided_args in kSource field for field (all naturally aligned, no padding).
struct StridedArgs {
  cl_long sizes[kMaxDims];
  cl_long src_strides[kMaxDims];
  cl_long dst_strides[kMaxDims];
  cl_long src_offset;
  cl_long dst_offset;
  cl_long total;
  cl_int ndim;
  cl_int unused;
};
static_assert(sizeof(StridedArgs) == 27 * 8 + 8, "StridedArgs must match the OpenCL C struct");

int kernel_for_element(size_t element_bytes) {
  switch (element_bytes) {
    case 1:
      return 0;
    case 2:
      return 1;
    case 4:
      return 2;
    case 8:
      return 3;
    case 16:
      return 4;
    default:
      return -1;
  }
}

// Lowest and highest element index a side of the copy touches; false if it overflows int64.
bool extent(const StridedCopy& copy, const int64_t* strides, int64_t offset, int64_t* low,
            int64_t* high) {
  *low = *high = offset;
  for (int k = 0; k < copy.ndim; ++k) {
    int64_t reach = 0;
    if (__builtin_mul_overflow(copy.sizes[k] - 1, strides[k], &reach)) return false;
    int64_t* side = reach < 0 ? low : high;
    if (__builtin_add_overflow(*side, reach, side)) return false;
  }
  return true;
}

// Drops size-1 dimensions and merges neighbours that are contiguous with each other on both
// sides, so the kernel does fewer divisions per element; returns the new ndim.
int merge_dims(const StridedCopy& copy, StridedArgs* args) {
  int ndim = 0;
  for (int k = 0; k < copy.ndim; ++k) {
    int64_t size = copy.sizes[k];
    if (size == 1) continue;
    int64_t src_span = 0;
    int64_t dst_span = 0;
    bool mergeable = ndim > 0 && !__builtin_mul_overflow(copy.src_strides[k], size, &src_span) &&
                     !__builtin_mul_overflow(copy.dst_strides[k], size, &dst_span) &&
                     args->src_strides[ndim - 1] == src_span &&
                     args->dst_strides[ndim - 1] == dst_span;
    if (mergeable) {
      args->sizes[ndim - 1] *= size;  // cannot overflow: bounded by the checked total
    } else {
      args->sizes[ndim] = size;
      ++ndim;
    }
    args->src_strides[ndim - 1] = copy.src_strides[k];
    args->dst_strides[ndim - 1] = copy.dst_strides[k];
  }
  return ndim;
}

size_t buffer_bytes(const DeviceState& state, cl_mem buffer) {
  size_t size = 0;
  FS_CL(state.label, clGetMemObjectInfo, buffer, CL_MEM_SIZE, sizeof(size), &size, nullptr);
  return size;
}

}  // namespace

DeviceKernels::~DeviceKernels() {
  for (cl_kernel kernel : kernels_) {
    if (kernel != nullptr) clReleaseKernel(kernel);
  }
  if (program_ != nullptr) clReleaseProgram(program_);
}

void DeviceKernels::build_locked() {
  if (program_ != nullptr) return;
  const char* source = kSource;
  cl_program program =
      FS_CL_CREATE(state_.label, clCreateProgramWithSource, state_.context, 1, &source, nullptr);
  cl_int code = clBuildProgram(program, 1, &state_.device, "", nullptr, nullptr);
  if (code != CL_SUCCESS) {
    std::string log;
    size_t size = 0;
    if (clGetProgramBuildInfo(program, state_.device, CL_PROGRAM_BUILD_LOG, 0, nullptr, &size) ==
        CL_SUCCESS) {
      log.resize(size);
      clGetProgramBuildInfo(program, state_.device, CL_PROGRAM_BUILD_LOG, size, log.data(),
                            nullptr);
      while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
    }
    clReleaseProgram(program);
    FS_CL_CHECK_CODE(code, "clBuildProgram (flagstone copy kernels)",
                     state_.label + "; build log: " + (log.empty() ? "(empty)" : log), kOrdinary);
  }
  cl_kernel kernels[kKernelCount] = {};
  try {
    for (int k = 0; k < kKernelCount; ++k) {
      kernels[k] = FS_CL_CREATE(state_.label, clCreateKernel, program, kKernelNames[k]);
    }
    size_t limit = 0;
    FS_CL(state_.label, clGetKernelWorkGroupInfo, kernels[0], state_.device,
          CL_KERNEL_WORK_GROUP_SIZE, sizeof(limit), &limit, nullptr);
    work_group_ = std::clamp<size_t>(limit, 1, 256);
  } catch (...) {
    for (cl_kernel kernel : kernels) {
      if (kernel != nullptr) clReleaseKernel(kernel);
    }
    clReleaseProgram(program);
    throw;
  }
  program_ = program;
  std::copy(std::begin(kernels), std::end(kernels), kernels_);
}

void DeviceKernels::launch_locked(cl_command_queue queue, cl_kernel kernel, uint64_t items) {
  // Enough groups to fill the device several times over; the grid-stride loop covers the rest.
  uint64_t groups = (items + work_group_ - 1) / work_group_;
  uint64_t max_groups = static_cast<uint64_t>(std::max(compute_units_, 1)) * 64;
  size_t global = static_cast<size_t>(std::min(groups, max_groups)) * work_group_;
  size_t local = work_group_;
  FS_CL(state_.label, clEnqueueNDRangeKernel, queue, kernel, 1, nullptr, &global, &local, 0,
        nullptr, nullptr);
}

void DeviceKernels::strided_copy(cl_command_queue queue, const StridedCopy& copy,
                                 bool allow_narrow) {
  FS_CHECK(copy.ndim >= 0 && copy.ndim <= kMaxDims, kInvalidArgument, "copy_strided on ",
           state_.label, ": ndim ", copy.ndim, " outside [0, ", kMaxDims, "]");
  int kernel_index = kernel_for_element(copy.element_bytes);
  FS_CHECK(kernel_index >= 0, kInvalidArgument, "copy_strided on ", state_.label, ": element size ",
           copy.element_bytes, " bytes is not 1, 2, 4, 8 or 16");
  StridedArgs args{};
  args.total = 1;
  for (int k = 0; k < copy.ndim; ++k) {
    FS_CHECK(copy.sizes[k] >= 0, kInvalidArgument, "copy_strided on ", state_.label, ": size ",
             copy.sizes[k], " of dimension ", k, " is negative");
    FS_CHECK(!__builtin_mul_overflow(args.total, copy.sizes[k], &args.total), kInvalidArgument,
             "copy_strided on ", state_.label, ": element count overflows 64 bits");
  }
  if (args.total == 0) return;

  // A kernel reading past a buffer corrupts memory silently (on PoCL, the host's), so both sides
  // are checked against the buffers' real sizes first.
  int64_t highest = 0;  // the largest element index either side reaches
  auto check_side = [&](const char* side, cl_mem buffer, const int64_t* strides, int64_t offset) {
    FS_CHECK(buffer != nullptr, kInvalidArgument, "copy_strided on ", state_.label, ": ", side,
             " buffer is null");
    int64_t low = 0;
    int64_t high = 0;
    bool fits = extent(copy, strides, offset, &low, &high);
    auto elements = static_cast<int64_t>(buffer_bytes(state_, buffer) / copy.element_bytes);
    FS_CHECK(fits && low >= 0 && high < elements, kInvalidArgument, "copy_strided on ",
             state_.label, ": ", side, " elements [", low, ", ", high, "] outside the ", elements,
             "-element buffer");
    highest = std::max(highest, high);
  };
  auto* src = static_cast<cl_mem>(copy.src);
  auto* dst = static_cast<cl_mem>(copy.dst);
  check_side("source", src, copy.src_strides, copy.src_offset);
  check_side("destination", dst, copy.dst_strides, copy.dst_offset);
  args.src_offset = copy.src_offset;
  args.dst_offset = copy.dst_offset;
  args.ndim = merge_dims(copy, &args);

  // Contiguous on both sides (after merging): the driver's copy beats any kernel. Overlapping
  // ranges of one buffer stay on the kernel, which clEnqueueCopyBuffer would refuse.
  bool contiguous =
      args.ndim == 0 || (args.ndim == 1 && args.src_strides[0] == 1 && args.dst_strides[0] == 1);
  auto bytes = static_cast<size_t>(args.total) * copy.element_bytes;
  auto src_byte = static_cast<size_t>(args.src_offset) * copy.element_bytes;
  auto dst_byte = static_cast<size_t>(args.dst_offset) * copy.element_bytes;
  bool overlap = src == dst && src_byte < dst_byte + bytes && dst_byte < src_byte + bytes;
  if (contiguous && !overlap) {
    FS_CL(state_.label, clEnqueueCopyBuffer, queue, src, dst, src_byte, dst_byte, bytes, 0, nullptr,
          nullptr);
    return;
  }

  // Every partial sum of index * stride lies between the lowest and highest reached element,
  // so 31 bits for those (and for the loop counter plus a grid step) make 32-bit math exact.
  constexpr int64_t kNarrowLimit = int64_t{1} << 31;
  if (allow_narrow && highest < kNarrowLimit && args.total <= kNarrowLimit / 2) {
    kernel_index += kNarrowKernels;
  }
  std::lock_guard lock(mutex_);
  build_locked();
  cl_kernel kernel = kernels_[kernel_index];
  FS_CL(state_.label, clSetKernelArg, kernel, 0, sizeof(cl_mem), &src);
  FS_CL(state_.label, clSetKernelArg, kernel, 1, sizeof(cl_mem), &dst);
  FS_CL(state_.label, clSetKernelArg, kernel, 2, sizeof(args), &args);
  launch_locked(queue, kernel, static_cast<uint64_t>(args.total));
}

void DeviceKernels::fill(cl_command_queue queue, cl_mem dst, size_t offset, size_t bytes,
                         uint8_t value) {
  std::lock_guard lock(mutex_);
  build_locked();
  cl_kernel kernel = kernels_[kFillKernel];
  cl_ulong first = offset;
  cl_ulong count = bytes;
  cl_uchar pattern = value;
  FS_CL(state_.label, clSetKernelArg, kernel, 0, sizeof(cl_mem), &dst);
  FS_CL(state_.label, clSetKernelArg, kernel, 1, sizeof(first), &first);
  FS_CL(state_.label, clSetKernelArg, kernel, 2, sizeof(count), &count);
  FS_CL(state_.label, clSetKernelArg, kernel, 3, sizeof(pattern), &pattern);
  launch_locked(queue, kernel, count);
}

}  // namespace flagstone::runtime::opencl
