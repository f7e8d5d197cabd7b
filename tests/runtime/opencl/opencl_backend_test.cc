// OpenCL-specific checks beyond the conformance suite: discovery against the ICD loader, error
// messages, the interop header, n-d strided copies of every element size and the fill kernel.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "flagstone/base/error.h"
#include "flagstone/runtime/device.h"
#include "flagstone/runtime/opencl_interop.h"
#include "opencl/opencl_device.h"

namespace flagstone::runtime {
namespace {

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

// Device names straight from the ICD loader, in platform then device order.
std::vector<std::string> loader_device_names() {
  cl_uint platform_count = 0;
  if (clGetPlatformIDs(0, nullptr, &platform_count) != CL_SUCCESS) return {};
  std::vector<cl_platform_id> platforms(platform_count);
  clGetPlatformIDs(platform_count, platforms.data(), nullptr);
  std::vector<std::string> names;
  for (cl_platform_id platform : platforms) {
    cl_uint count = 0;
    if (clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 0, nullptr, &count) != CL_SUCCESS) continue;
    std::vector<cl_device_id> ids(count);
    clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, count, ids.data(), nullptr);
    for (cl_device_id id : ids) {
      char name[512] = {};
      clGetDeviceInfo(id, CL_DEVICE_NAME, sizeof(name) - 1, name, nullptr);
      names.emplace_back(name);
    }
  }
  return names;
}

TEST(OpenClDiscovery, MatchesTheIcdLoader) {
  std::vector<std::string> expected = loader_device_names();
  std::vector<Device> devices = devices_of("opencl");
  ASSERT_EQ(devices.size(), expected.size());
  for (size_t i = 0; i < devices.size(); ++i) {
    EXPECT_EQ(devices[i].spec(), "opencl:" + std::to_string(i));
    EXPECT_EQ(devices[i].info().name, expected[i]);
    EXPECT_EQ(devices[i].info().backend, "opencl");
  }
  for (const auto& status : backend_statuses()) {
    if (status.name != "opencl") continue;
    EXPECT_EQ(status.available, !expected.empty()) << status.reason;
    EXPECT_EQ(status.device_count, static_cast<int>(expected.size()));
  }
}

class OpenCl : public ::testing::TestWithParam<Device> {
 protected:
  Device device() const { return GetParam(); }
  Stream stream() const { return Stream::default_stream(device()); }
  cl_device_id id() const { return opencl_device_id(device()); }
};

TEST_P(OpenCl, InfoAgreesWithClGetDeviceInfo) {
  const DeviceInfo& info = device().info();
  cl_ulong memory = 0;
  clGetDeviceInfo(id(), CL_DEVICE_GLOBAL_MEM_SIZE, sizeof(memory), &memory, nullptr);
  EXPECT_EQ(info.memory_bytes, memory);
  cl_device_type type = 0;
  clGetDeviceInfo(id(), CL_DEVICE_TYPE, sizeof(type), &type, nullptr);
  EXPECT_EQ(info.type == DeviceType::kCpu, (type & CL_DEVICE_TYPE_CPU) != 0);
  EXPECT_EQ(info.type == DeviceType::kGpu, (type & CL_DEVICE_TYPE_GPU) != 0);
  EXPECT_EQ(info.arch.rfind("OpenCL ", 0), 0u) << info.arch;
  char extensions[16384] = {};
  clGetDeviceInfo(id(), CL_DEVICE_EXTENSIONS, sizeof(extensions) - 1, extensions, nullptr);
  std::string padded = std::string(" ") + extensions + " ";
  EXPECT_EQ(info.caps.fp16, padded.find(" cl_khr_fp16 ") != std::string::npos);
  if (padded.find(" cl_khr_fp64 ") != std::string::npos) {
    EXPECT_TRUE(info.caps.fp64);
  }
  EXPECT_FALSE(info.caps.host_accessible);
  EXPECT_FALSE(info.extra.at("platform").empty());
  EXPECT_GT(std::stoull(info.extra.at("max_work_group_size")), 0u);
}

TEST_P(OpenCl, InteropObjectsAreTheQueuesOwn) {
  cl_command_queue queue = opencl_queue(stream());
  EXPECT_EQ(queue, stream().impl().native_handle());
  cl_context context = nullptr;
  cl_device_id queue_device = nullptr;
  ASSERT_EQ(clGetCommandQueueInfo(queue, CL_QUEUE_CONTEXT, sizeof(context), &context, nullptr),
            CL_SUCCESS);
  ASSERT_EQ(
      clGetCommandQueueInfo(queue, CL_QUEUE_DEVICE, sizeof(queue_device), &queue_device, nullptr),
      CL_SUCCESS);
  EXPECT_EQ(context, opencl_context(device()));
  EXPECT_EQ(queue_device, opencl_device_id(device()));
  cl_command_queue_properties properties = 0;
  clGetCommandQueueInfo(queue, CL_QUEUE_PROPERTIES, sizeof(properties), &properties, nullptr);
  EXPECT_NE(properties & CL_QUEUE_PROFILING_ENABLE, 0u);
  EXPECT_EQ(properties & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE, 0u);
}

// What the compiler layer will do: build its own kernel in the runtime's context and run it on
// a runtime Buffer through the runtime's queue.
TEST_P(OpenCl, ForeignKernelRunsOnRuntimeBuffers) {
  const char* source = "kernel void add_one(global int* x) { x[get_global_id(0)] += 1; }";
  cl_int status = CL_SUCCESS;
  cl_program program =
      clCreateProgramWithSource(opencl_context(device()), 1, &source, nullptr, &status);
  ASSERT_EQ(status, CL_SUCCESS);
  cl_device_id device_id = id();
  ASSERT_EQ(clBuildProgram(program, 1, &device_id, "", nullptr, nullptr), CL_SUCCESS);
  cl_kernel kernel = clCreateKernel(program, "add_one", &status);
  ASSERT_EQ(status, CL_SUCCESS);
  std::vector<int32_t> values(1000);
  std::iota(values.begin(), values.end(), -500);
  Buffer buffer = Buffer::allocate(device(), values.size() * sizeof(int32_t));
  copy_host_to_device(stream(), buffer, 0, values.data(), values.size() * sizeof(int32_t));
  auto mem = static_cast<cl_mem>(buffer.handle());
  ASSERT_EQ(clSetKernelArg(kernel, 0, sizeof(mem), &mem), CL_SUCCESS);
  size_t global = values.size();
  ASSERT_EQ(clEnqueueNDRangeKernel(opencl_queue(stream()), kernel, 1, nullptr, &global, nullptr, 0,
                                   nullptr, nullptr),
            CL_SUCCESS);
  std::vector<int32_t> back(values.size());
  copy_device_to_host(stream(), back.data(), buffer, 0, back.size() * sizeof(int32_t));
  stream().synchronize();
  for (size_t i = 0; i < values.size(); ++i) ASSERT_EQ(back[i], values[i] + 1) << i;
  clReleaseKernel(kernel);
  clReleaseProgram(program);
}

TEST_P(OpenCl, InteropRejectsOtherBackends) {
  try {
    opencl_context(Device());
    FAIL() << "the cpu device has no cl_context";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("cpu"), std::string::npos) << e.what();
  }
  EXPECT_THROW(opencl_queue(Stream::default_stream(Device())), Error);
  EXPECT_THROW(opencl_queue(Stream()), Error);
}

// Below the Buffer layer's bounds checks the driver itself rejects the copy; the error must
// name the call, the symbolic code, the device and our source line.
TEST_P(OpenCl, DriverErrorsNameCallCodeDeviceAndLine) {
  Buffer buffer = Buffer::allocate(device(), 100);
  std::vector<uint8_t> host(64);
  try {
    device().impl().copy_to_device(stream().impl(), buffer.handle(), size_t{1} << 40, host.data(),
                                   host.size());
    FAIL() << "a write past the end of the buffer succeeded";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_EQ(e.category(), ErrorCategory::kBackend);
    EXPECT_NE(what.find("clEnqueueWriteBuffer"), std::string::npos) << what;
    EXPECT_NE(what.find("CL_INVALID_VALUE"), std::string::npos) << what;
    EXPECT_NE(what.find(device().spec()), std::string::npos) << what;
    EXPECT_NE(what.find(device().info().name), std::string::npos) << what;
    EXPECT_NE(what.find("opencl_device.cc:"), std::string::npos) << what;
  }
}

TEST_P(OpenCl, ZeroByteAllocationsAreDistinctHandles) {
  DeviceImpl& impl = device().impl();
  MemHandle a = impl.allocate(0);
  MemHandle b = impl.allocate(0);
  EXPECT_NE(a, nullptr);
  EXPECT_NE(a, b);
  impl.deallocate(a);
  impl.deallocate(b);
}

TEST_P(OpenCl, OverlappingDeviceCopiesBehaveLikeMemmove) {
  const size_t bytes = 10000;
  for (auto [dst, src] : {std::pair<size_t, size_t>{100, 0}, {0, 100}, {3, 4}, {4, 3}}) {
    auto data = random_bytes(bytes, static_cast<uint32_t>(dst * 7 + src));
    Buffer buffer = Buffer::allocate(device(), bytes);
    copy_host_to_device(stream(), buffer, 0, data.data(), bytes);
    const size_t count = bytes - 100;
    device().impl().copy_on_device(stream().impl(), buffer.handle(), dst, buffer.handle(), src,
                                   count);
    std::vector<uint8_t> back(bytes);
    copy_device_to_host(stream(), back.data(), buffer, 0, bytes);
    stream().synchronize();
    std::memmove(data.data() + dst, data.data() + src, count);
    ASSERT_EQ(back, data) << "dst=" << dst << " src=" << src;
  }
}

TEST_P(OpenCl, UnrecordedEventsAreCompleteButHaveNoTime) {
  Event start(device());
  Event end(device());
  EXPECT_TRUE(start.query());
  start.synchronize();
  EXPECT_THROW(start.elapsed_ms(end), Error);
  end.record(stream());
  end.synchronize();
  EXPECT_THROW(start.elapsed_ms(end), Error);
}

// Pinned memory is only offered off the CPU, but its mechanism (a mapped buffer) is exercised
// on every device, and used as the source and destination of copies while mapped.
TEST_P(OpenCl, MappedHostMemoryServesCopies) {
  const DeviceInfo& info = device().info();
  EXPECT_EQ(info.caps.pinned_host, info.type != DeviceType::kCpu);
  auto* impl = dynamic_cast<opencl::OpenClDevice*>(&device().impl());
  ASSERT_NE(impl, nullptr);
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{1} << 16}) {
    auto* data = static_cast<uint8_t*>(impl->allocate_mapped_host(bytes));
    ASSERT_NE(data, nullptr);
    auto expected = random_bytes(bytes, static_cast<uint32_t>(bytes));
    if (bytes > 0) std::memcpy(data, expected.data(), bytes);
    Buffer buffer = Buffer::allocate(device(), bytes);
    copy_host_to_device(stream(), buffer, 0, data, bytes);
    std::memset(data, 0, bytes);
    copy_device_to_host(stream(), data, buffer, 0, bytes);
    stream().synchronize();
    EXPECT_EQ(0, bytes == 0 ? 0 : std::memcmp(data, expected.data(), bytes));
    impl->free_pinned_host(data);
  }
  void* pinned = impl->allocate_pinned_host(64);
  EXPECT_EQ(pinned != nullptr, info.caps.pinned_host);
  impl->free_pinned_host(pinned);
}

// One n-d strided copy, with the expected result computed by an odometer walk on the host.
struct StridedCase {
  std::vector<int64_t> sizes, src_strides, dst_strides;
  int64_t src_offset = 0, dst_offset = 0;
  size_t src_elements = 0, dst_elements = 0;
};

// With `kernels`, the copy runs there with 64-bit indexing forced instead of through the device.
void run_strided_case(const Device& device, const StridedCase& c, size_t elem, uint32_t seed,
                      opencl::DeviceKernels* kernels = nullptr) {
  auto src_data = random_bytes(c.src_elements * elem, seed);
  auto dst_data = random_bytes(c.dst_elements * elem, seed + 1);
  auto expected = dst_data;
  int ndim = static_cast<int>(c.sizes.size());
  int64_t total = 1;
  for (int64_t size : c.sizes) total *= size;
  std::vector<int64_t> index(c.sizes.size(), 0);
  for (int64_t n = 0; n < total; ++n) {
    int64_t s = c.src_offset, d = c.dst_offset;
    for (int k = 0; k < ndim; ++k) {
      s += index[k] * c.src_strides[k];
      d += index[k] * c.dst_strides[k];
    }
    std::memcpy(&expected[static_cast<size_t>(d) * elem], &src_data[static_cast<size_t>(s) * elem],
                elem);
    for (int k = ndim - 1; k >= 0 && ++index[k] == c.sizes[k]; --k) index[k] = 0;
  }

  Stream stream = Stream::default_stream(device);
  Buffer src = Buffer::allocate(device, src_data.size());
  Buffer dst = Buffer::allocate(device, dst_data.size());
  copy_host_to_device(stream, src, 0, src_data.data(), src_data.size());
  copy_host_to_device(stream, dst, 0, dst_data.data(), dst_data.size());
  StridedCopy copy;
  copy.ndim = ndim;
  for (int k = 0; k < ndim; ++k) {
    copy.sizes[k] = c.sizes[k];
    copy.src_strides[k] = c.src_strides[k];
    copy.dst_strides[k] = c.dst_strides[k];
  }
  copy.element_bytes = elem;
  copy.src = src.handle();
  copy.src_offset = c.src_offset;
  copy.dst = dst.handle();
  copy.dst_offset = c.dst_offset;
  if (kernels != nullptr) {
    kernels->strided_copy(opencl_queue(stream), copy, /*allow_narrow=*/false);
  } else {
    device.impl().copy_strided(stream.impl(), copy);
  }
  std::vector<uint8_t> back(dst_data.size());
  copy_device_to_host(stream, back.data(), dst, 0, back.size());
  stream.synchronize();
  ASSERT_EQ(back, expected) << "element size " << elem << ", " << ndim << " dims";
}

TEST_P(OpenCl, StridedCopiesOfEightDimsAndEveryElementSize) {
  // Source: a permuted, sliced layout with one reversed (negative stride) dimension.
  // Destination: contiguous except for a gap after each innermost row.
  StridedCase c;
  c.sizes = {2, 3, 1, 2, 3, 2, 2, 3};
  std::vector<int64_t> dense(8);
  int64_t stride = 1;
  for (int k = 7; k >= 0; --k) {
    dense[k] = stride;
    stride *= c.sizes[k] + 1;  // one spare slot per dimension: a sliced view
  }
  c.src_strides = {dense[3], dense[0], dense[2], dense[1], -dense[4], dense[5], dense[7], dense[6]};
  c.src_offset = dense[4] * (c.sizes[4] - 1) + 5;  // reversed dim starts at its far end
  c.src_elements = static_cast<size_t>(stride) * 4 + 16;
  stride = 1;
  c.dst_strides.assign(8, 0);
  for (int k = 7; k >= 0; --k) {
    c.dst_strides[k] = stride;
    stride *= c.sizes[k] + (k == 7 ? 2 : 0);
  }
  c.dst_offset = 3;
  c.dst_elements = static_cast<size_t>(stride) + 8;
  uint32_t seed = 1;
  for (size_t elem : {1, 2, 4, 8, 16}) run_strided_case(device(), c, elem, seed += 2);
  // The same copies through the 64-bit kernels, which large tensors need.
  auto* impl = dynamic_cast<opencl::OpenClDevice*>(&device().impl());
  ASSERT_NE(impl, nullptr);
  opencl::DeviceKernels wide(impl->state(), device().info().compute_units);
  for (size_t elem : {1, 2, 4, 8, 16}) run_strided_case(device(), c, elem, seed += 2, &wide);
}

TEST_P(OpenCl, StridedCopiesOfScalarsAndBroadcasts) {
  StridedCase scalar;
  scalar.src_offset = 7;
  scalar.dst_offset = 2;
  scalar.src_elements = 8;
  scalar.dst_elements = 4;
  run_strided_case(device(), scalar, 4, 50);
  StridedCase broadcast;  // stride 0 repeats the source row
  broadcast.sizes = {1000, 3};
  broadcast.src_strides = {0, 1};
  broadcast.dst_strides = {3, 1};
  broadcast.src_elements = 3;
  broadcast.dst_elements = 3000;
  run_strided_case(device(), broadcast, 2, 60);
}

// Layouts the backend simplifies before launching: fully contiguous (one driver copy) and
// partly mergeable dimensions, with size-1 dimensions in between.
TEST_P(OpenCl, StridedCopiesOfMergeableLayouts) {
  StridedCase contiguous;
  contiguous.sizes = {4, 1, 5, 6};
  contiguous.src_strides = {30, 999, 6, 1};
  contiguous.dst_strides = {30, 7, 6, 1};
  contiguous.src_offset = 11;
  contiguous.dst_offset = 3;
  contiguous.src_elements = 11 + 120 + 5;
  contiguous.dst_elements = 3 + 120 + 2;
  run_strided_case(device(), contiguous, 8, 70);
  StridedCase rows;  // inner two dims merge on both sides; the outer one has a padded source
  rows.sizes = {3, 4, 5};
  rows.src_strides = {23, 5, 1};
  rows.dst_strides = {20, 5, 1};
  rows.src_elements = 3 * 23;
  rows.dst_elements = 60;
  run_strided_case(device(), rows, 2, 80);
}

TEST_P(OpenCl, StridedCopyOutOfBoundsIsRejected) {
  Buffer src = Buffer::allocate(device(), 64 * 4);
  Buffer dst = Buffer::allocate(device(), 64 * 4);
  StridedCopy copy;
  copy.ndim = 2;
  copy.sizes[0] = 8;
  copy.sizes[1] = 8;
  copy.src_strides[0] = 1000;  // reaches far past the source buffer
  copy.src_strides[1] = 1;
  copy.dst_strides[0] = 8;
  copy.dst_strides[1] = 1;
  copy.element_bytes = 4;
  copy.src = src.handle();
  copy.dst = dst.handle();
  try {
    device().impl().copy_strided(stream().impl(), copy);
    FAIL() << "an out-of-bounds strided copy was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("source"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(device().spec()), std::string::npos) << e.what();
  }
  copy.src_strides[0] = 8;
  copy.element_bytes = 3;
  EXPECT_THROW(device().impl().copy_strided(stream().impl(), copy), Error);
  copy.element_bytes = 4;
  copy.ndim = kMaxDims + 1;
  EXPECT_THROW(device().impl().copy_strided(stream().impl(), copy), Error);
}

// The fallback for drivers that refuse clEnqueueFillBuffer, exercised directly.
TEST_P(OpenCl, FillKernelWritesExactlyTheRange) {
  auto* impl = dynamic_cast<opencl::OpenClDevice*>(&device().impl());
  ASSERT_NE(impl, nullptr);
  opencl::DeviceKernels kernels(impl->state(), device().info().compute_units);
  const size_t bytes = 100003;
  auto data = random_bytes(bytes, 99);
  Buffer buffer = Buffer::allocate(device(), bytes);
  copy_host_to_device(stream(), buffer, 0, data.data(), bytes);
  kernels.fill(opencl_queue(stream()), static_cast<cl_mem>(buffer.handle()), 7, 90001, 0xC3);
  std::vector<uint8_t> back(bytes);
  copy_device_to_host(stream(), back.data(), buffer, 0, bytes);
  stream().synchronize();
  std::memset(data.data() + 7, 0xC3, 90001);
  EXPECT_EQ(back, data);
}

// A second context on the same OpenCL device stands in for a second device: its streams are
// rejected by the first device, and waiting on its events works (on the host).
TEST_P(OpenCl, SecondContextStreamsAndEvents) {
  auto other = std::make_shared<opencl::OpenClDevice>(
      7, opencl_platform_id(device()), opencl_device_id(device()), /*queue_properties=*/true);
  EXPECT_EQ(other->info().name, device().info().name);
  other->synchronize();  // nothing issued yet: must not need (or create) a context
  EXPECT_FALSE(other->has_context()) << "describing a device must not create its context";
  const size_t bytes = 1 << 20;
  auto data = random_bytes(bytes, 123);
  Buffer buffer = Buffer::allocate(device(), bytes);
  std::vector<uint8_t> host(16);
  try {
    device().impl().copy_to_device(other->default_stream(), buffer.handle(), 0, host.data(), 16);
    FAIL() << "a stream of another context was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("opencl:7"), std::string::npos) << e.what();
  }
  copy_host_to_device(stream(), buffer, 0, data.data(), bytes);
  std::unique_ptr<EventImpl> done = other->create_event();
  done->record(stream().impl());  // an event of one context recorded on the other's stream
  other->default_stream().wait(*done);
  EXPECT_TRUE(done->query());
  MemHandle copy = other->allocate(bytes);
  other->copy_to_device(other->default_stream(), copy, 0, data.data(), bytes);
  std::vector<uint8_t> back(bytes);
  other->copy_to_host(other->default_stream(), back.data(), copy, 0, bytes);
  other->synchronize();
  EXPECT_EQ(back, data);
  other->deallocate(copy);
}

std::string device_test_name(const ::testing::TestParamInfo<Device>& info) {
  std::string name = info.param.spec();
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(OpenClDevices, OpenCl, ::testing::ValuesIn(devices_of("opencl")),
                         device_test_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(OpenCl);

}  // namespace
}  // namespace flagstone::runtime
