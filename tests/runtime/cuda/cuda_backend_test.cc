// CUDA-specific checks beyond the conformance suite: the no-driver probe, error messages, the
// staging path of uploads, and the strided-copy kernel against a plain host reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "flagstone/base/error.h"
#include "flagstone/runtime/device.h"

namespace flagstone::runtime {
namespace {

BackendStatus cuda_status() {
  for (const BackendStatus& status : backend_statuses()) {
    if (status.name == "cuda") return status;
  }
  ADD_FAILURE() << "this build has the cuda backend, but the registry does not list it";
  return {};
}

#define REQUIRE_CUDA()                                                            \
  do {                                                                            \
    BackendStatus status_ = cuda_status();                                        \
    if (!status_.available) GTEST_SKIP() << "no CUDA device: " << status_.reason; \
  } while (0)

TEST(CudaBackend, ProbeGivesDevicesOrOneLineReason) {
  BackendStatus status = cuda_status();
  EXPECT_EQ(status.device_count, static_cast<int>(devices_of("cuda").size()));
  if (status.device_count == 0) {
    ASSERT_FALSE(status.reason.empty());
    EXPECT_EQ(status.reason.find('\n'), std::string::npos) << status.reason;
    EXPECT_NE(status.reason.find("CUDA"), std::string::npos) << status.reason;
    try {
      Device::get("cuda:0");
      ADD_FAILURE() << "cuda:0 exists although the backend reports no devices";
    } catch (const Error& error) {
      EXPECT_EQ(error.category(), ErrorCategory::kNotFound);
      EXPECT_NE(error.message().find("cuda:0"), std::string::npos) << error.message();
    }
  } else {
    EXPECT_TRUE(status.reason.empty()) << status.reason;
  }
}

TEST(CudaBackend, DeviceInfo) {
  REQUIRE_CUDA();
  for (const Device& device : devices_of("cuda")) {
    const DeviceInfo& info = device.info();
    EXPECT_EQ(info.vendor, "NVIDIA");
    EXPECT_EQ(info.arch.rfind("sm_", 0), 0u) << info.arch;
    EXPECT_GT(info.memory_bytes, 0u);
    EXPECT_GT(info.compute_units, 0);
    EXPECT_GT(info.clock_mhz, 0);
    EXPECT_TRUE(info.caps.pinned_host);
    EXPECT_FALSE(info.caps.host_accessible);
    EXPECT_EQ(info.extra.count("compute_capability"), 1u);
    EXPECT_EQ(info.extra.count("pci_bus_id"), 1u);
    EXPECT_NE(info.driver_version.find("runtime"), std::string::npos) << info.driver_version;
  }
}

TEST(CudaBackend, OutOfMemoryNamesCallDeviceAndSource) {
  REQUIRE_CUDA();
  Device device = Device::get("cuda:0");
  try {
    device.impl().allocate(size_t{1} << 60);
    FAIL() << "allocating 1 EiB succeeded";
  } catch (const Error& error) {
    EXPECT_EQ(error.category(), ErrorCategory::kOutOfMemory);
    const std::string& m = error.message();
    EXPECT_NE(m.find("cudaMalloc"), std::string::npos) << m;
    EXPECT_NE(m.find("cudaErrorMemoryAllocation"), std::string::npos) << m;
    EXPECT_NE(m.find("cuda:0"), std::string::npos) << m;
    EXPECT_NE(m.find("cuda_backend.cc:"), std::string::npos) << m;
  }
  // The failure must not poison later calls.
  Buffer buffer = Buffer::allocate(device, 1024);
  fill_bytes(Stream::default_stream(device), buffer, 0, 1024, 7);
  std::vector<uint8_t> host(1024);
  copy_device_to_host(Stream::default_stream(device), host.data(), buffer, 0, 1024);
  Stream::default_stream(device).synchronize();
  EXPECT_EQ(std::count(host.begin(), host.end(), 7), 1024);
}

TEST(CudaBackend, ForeignStreamIsRejected) {
  REQUIRE_CUDA();
  Device device = Device::get("cuda:0");
  Device cpu = Device::get("cpu");
  Buffer buffer = Buffer::allocate(device, 16);
  uint8_t byte = 0;
  try {
    device.impl().copy_to_device(cpu.impl().default_stream(), buffer.handle(), 0, &byte, 1);
    FAIL() << "a cpu stream was accepted by the cuda backend";
  } catch (const Error& error) {
    EXPECT_EQ(error.category(), ErrorCategory::kInvalidArgument);
  }
}

// The source may be overwritten as soon as copy_to_device returns, for pageable and pinned
// sources, small and larger than the staging ring, at odd offsets.
TEST(CudaBackend, UploadSourceIsReusableAtOnce) {
  REQUIRE_CUDA();
  Device device = Device::get("cuda:0");
  Stream stream = Stream::create(device);
  std::mt19937 rng(7);
  for (size_t bytes : {size_t{1}, size_t{3}, size_t{1000}, size_t{5} << 20, size_t{41} << 20}) {
    for (bool pinned : {false, true}) {
      const size_t offset = 13;
      std::vector<uint8_t> expected(bytes);
      for (auto& b : expected) b = static_cast<uint8_t>(rng());
      PinnedHostBuffer pinned_src(device, pinned ? bytes : 0);
      std::vector<uint8_t> pageable_src(pinned ? 0 : bytes);
      auto* src = pinned ? static_cast<uint8_t*>(pinned_src.data()) : pageable_src.data();
      std::memcpy(src, expected.data(), bytes);
      Buffer buffer = Buffer::allocate(device, bytes + offset);
      // Keep the stream busy so a late read of `src` would see the overwrite below.
      Buffer busy = Buffer::allocate(device, size_t{64} << 20);
      for (int i = 0; i < 8; ++i) fill_bytes(stream, busy, 0, busy.size(), 1);
      copy_host_to_device(stream, buffer, offset, src, bytes);
      std::memset(src, 0xAB, bytes);
      std::vector<uint8_t> back(bytes);
      copy_device_to_host(stream, back.data(), buffer, offset, bytes);
      stream.synchronize();
      ASSERT_EQ(back, expected) << bytes << " bytes, pinned " << pinned;
    }
  }
}

// Overlapping device copies behave like memmove, in both directions.
TEST(CudaBackend, OverlappingDeviceCopyIsMemmove) {
  REQUIRE_CUDA();
  Device device = Device::get("cuda:0");
  Stream stream = Stream::default_stream(device);
  std::mt19937 rng(11);
  const size_t bytes = 1 << 20;
  for (auto [dst_offset, src_offset] : {std::pair<size_t, size_t>{0, 1000}, {1000, 0}, {5, 6}}) {
    std::vector<uint8_t> data(bytes);
    for (auto& b : data) b = static_cast<uint8_t>(rng());
    Buffer buffer = Buffer::allocate(device, bytes);
    copy_host_to_device(stream, buffer, 0, data.data(), bytes);
    const size_t n = bytes - std::max(dst_offset, src_offset);
    device.impl().copy_on_device(stream.impl(), buffer.handle(), dst_offset, buffer.handle(),
                                 src_offset, n);
    std::memmove(data.data() + dst_offset, data.data() + src_offset, n);
    std::vector<uint8_t> back(bytes);
    copy_device_to_host(stream, back.data(), buffer, 0, bytes);
    stream.synchronize();
    ASSERT_EQ(back, data) << "dst " << dst_offset << ", src " << src_offset;
  }
}

// Reference: walk every index and copy element by element, the plainest possible way.
void reference_copy(const StridedCopy& c, const std::vector<uint8_t>& src,
                    std::vector<uint8_t>& dst) {
  int64_t total = 1;
  for (int d = 0; d < c.ndim; ++d) total *= c.sizes[d];
  for (int64_t linear = 0; linear < total; ++linear) {
    int64_t rest = linear;
    int64_t s = c.src_offset;
    int64_t t = c.dst_offset;
    for (int d = c.ndim - 1; d >= 0; --d) {
      int64_t i = rest % c.sizes[d];
      rest /= c.sizes[d];
      s += i * c.src_strides[d];
      t += i * c.dst_strides[d];
    }
    std::memcpy(&dst[static_cast<size_t>(t) * c.element_bytes],
                &src[static_cast<size_t>(s) * c.element_bytes], c.element_bytes);
  }
}

// Bytes spanned by one side: the highest element reached plus one.
int64_t span(const StridedCopy& c, const int64_t* strides, int64_t offset) {
  int64_t high = offset;
  for (int d = 0; d < c.ndim; ++d) high += std::max<int64_t>(0, strides[d] * (c.sizes[d] - 1));
  return high + 1;
}

void check_strided(const Device& device, StridedCopy c, std::mt19937& rng) {
  const size_t src_bytes =
      static_cast<size_t>(span(c, c.src_strides, c.src_offset)) * c.element_bytes;
  const size_t dst_bytes =
      static_cast<size_t>(span(c, c.dst_strides, c.dst_offset)) * c.element_bytes;
  std::vector<uint8_t> src(src_bytes);
  std::vector<uint8_t> dst(dst_bytes);
  for (auto& b : src) b = static_cast<uint8_t>(rng());
  for (auto& b : dst) b = static_cast<uint8_t>(rng());
  Stream stream = Stream::default_stream(device);
  Buffer src_buffer = Buffer::allocate(device, src_bytes);
  Buffer dst_buffer = Buffer::allocate(device, dst_bytes);
  copy_host_to_device(stream, src_buffer, 0, src.data(), src_bytes);
  copy_host_to_device(stream, dst_buffer, 0, dst.data(), dst_bytes);
  c.src = src_buffer.handle();
  c.dst = dst_buffer.handle();
  device.impl().copy_strided(stream.impl(), c);
  reference_copy(c, src, dst);
  std::vector<uint8_t> back(dst_bytes);
  copy_device_to_host(stream, back.data(), dst_buffer, 0, dst_bytes);
  stream.synchronize();
  std::string shape;
  for (int d = 0; d < c.ndim; ++d) {
    shape += std::to_string(c.sizes[d]) + "(" + std::to_string(c.src_strides[d]) + "," +
             std::to_string(c.dst_strides[d]) + ") ";
  }
  ASSERT_EQ(back, dst) << "element " << c.element_bytes << " bytes, dims " << shape << "offsets "
                       << c.src_offset << "," << c.dst_offset;
}

TEST(CudaBackend, StridedCopyMatchesHostReference) {
  REQUIRE_CUDA();
  Device device = Device::get("cuda:0");
  std::mt19937 rng(42);
  const size_t element_sizes[] = {1, 2, 3, 4, 8, 12, 16};
  for (int trial = 0; trial < 300; ++trial) {
    StridedCopy c;
    c.element_bytes = element_sizes[trial % 7];
    c.ndim = static_cast<int>(rng() % (kMaxDims + 1));
    int64_t total = 1;
    for (int d = 0; d < c.ndim; ++d) {
      c.sizes[d] = 1 + static_cast<int64_t>(rng() % (c.ndim > 4 ? 3 : 9));
      total *= c.sizes[d];
    }
    // Destination: contiguous in a random dim order (a permuted tensor); source: contiguous,
    // padded, broadcast (stride 0) or reversed (negative stride) per dimension.
    std::vector<int> order(static_cast<size_t>(c.ndim));
    for (int d = 0; d < c.ndim; ++d) order[static_cast<size_t>(d)] = d;
    std::shuffle(order.begin(), order.end(), rng);
    int64_t stride = 1;
    for (int d : order) {
      c.dst_strides[d] = stride;
      stride *= c.sizes[d];
    }
    stride = 1;
    int64_t reverse_shift = 0;
    for (int d = c.ndim - 1; d >= 0; --d) {
      switch (rng() % 5) {
        case 0:
          c.src_strides[d] = 0;
          break;
        case 1:
          c.src_strides[d] = -stride;
          reverse_shift += stride * (c.sizes[d] - 1);
          break;
        case 2:
          c.src_strides[d] = stride;
          stride *= c.sizes[d] + 1;
          break;
        default:
          c.src_strides[d] = stride;
          stride *= c.sizes[d];
          break;
      }
    }
    c.src_offset = reverse_shift + static_cast<int64_t>(rng() % 3);
    c.dst_offset = static_cast<int64_t>(rng() % 3);
    check_strided(device, c, rng);
  }
  // Shapes with a zero-size dimension copy nothing.
  StridedCopy empty;
  empty.ndim = 2;
  empty.sizes[0] = 0;
  empty.sizes[1] = 5;
  empty.src_strides[0] = 5;
  empty.src_strides[1] = 1;
  empty.dst_strides[0] = 5;
  empty.dst_strides[1] = 1;
  empty.element_bytes = 4;
  check_strided(device, empty, rng);
}

TEST(CudaBackend, StridedCopyLargeTransposeUsesWideWords) {
  REQUIRE_CUDA();
  Device device = Device::get("cuda:0");
  std::mt19937 rng(3);
  // [rows, cols, 4 floats]: the inner 16 bytes stay contiguous, rows and cols swap.
  StridedCopy c;
  c.ndim = 3;
  c.element_bytes = 4;
  c.sizes[0] = 300;
  c.sizes[1] = 517;
  c.sizes[2] = 4;
  c.src_strides[0] = 517 * 4;
  c.src_strides[1] = 4;
  c.src_strides[2] = 1;
  c.dst_strides[0] = 4;
  c.dst_strides[1] = 300 * 4;
  c.dst_strides[2] = 1;
  check_strided(device, c, rng);
}

// More than 2^31 elements: offsets must not wrap around 32 bits.
TEST(CudaBackend, StridedCopyBeyond32BitIndices) {
  REQUIRE_CUDA();
  Device device = Device::get("cuda:0");
  const int64_t n = (int64_t{1} << 31) + 4099;
  if (device.info().memory_bytes < static_cast<uint64_t>(n) * 3) {
    GTEST_SKIP() << "needs " << 3 * n << " bytes of device memory";
  }
  std::vector<uint8_t> src(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    src[static_cast<size_t>(i)] = static_cast<uint8_t>((i * 2654435761u) >> 13);
  Stream stream = Stream::default_stream(device);
  Buffer src_buffer = Buffer::allocate(device, static_cast<size_t>(n));
  Buffer dst_buffer = Buffer::allocate(device, static_cast<size_t>(n));
  copy_host_to_device(stream, src_buffer, 0, src.data(), src.size());
  StridedCopy c;  // dst[i] = src[n - 1 - i]
  c.ndim = 1;
  c.element_bytes = 1;
  c.sizes[0] = n;
  c.src_strides[0] = -1;
  c.dst_strides[0] = 1;
  c.src_offset = n - 1;
  c.src = src_buffer.handle();
  c.dst = dst_buffer.handle();
  device.impl().copy_strided(stream.impl(), c);
  std::vector<uint8_t> back(static_cast<size_t>(n));
  copy_device_to_host(stream, back.data(), dst_buffer, 0, back.size());
  stream.synchronize();
  int64_t wrong = 0;
  for (int64_t i = 0; i < n; ++i) {
    wrong += back[static_cast<size_t>(i)] != src[static_cast<size_t>(n - 1 - i)];
  }
  EXPECT_EQ(wrong, 0);
}

TEST(CudaBackend, StreamsOrderThroughEvents) {
  REQUIRE_CUDA();
  Device device = Device::get("cuda:0");
  Stream producer = Stream::create(device);
  Stream consumer = Stream::create(device);
  const size_t bytes = size_t{256} << 20;
  Buffer a = Buffer::allocate(device, bytes);
  Buffer b = Buffer::allocate(device, bytes);
  fill_bytes(producer, a, 0, bytes, 0);
  for (int value = 1; value <= 20; ++value)
    fill_bytes(producer, a, 0, bytes, static_cast<uint8_t>(value));
  Event start(device);
  Event done(device);
  start.record(producer);
  copy_device_to_device(producer, b, 0, a, 0, bytes);
  done.record(producer);
  consumer.wait(done);
  std::vector<uint8_t> head(4096);
  copy_device_to_host(consumer, head.data(), b, bytes - head.size(), head.size());
  consumer.synchronize();
  EXPECT_EQ(std::count(head.begin(), head.end(), 20), static_cast<long>(head.size()));
  EXPECT_TRUE(done.query());
  EXPECT_GT(start.elapsed_ms(done), 0.0f);
  Event never(device);
  EXPECT_TRUE(never.query());
  EXPECT_THROW(never.elapsed_ms(done), Error);
}

}  // namespace
}  // namespace flagstone::runtime
