// The CUDA backend: devices, memory, streams and events over the CUDA runtime API, linked
// statically so the same binary starts without a driver (the backend then has no devices).
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>

#include "backends.h"
#include "cuda_check.h"
#include "cuda_kernels.h"
#include "cuda_staging.h"
#include "flagstone/base/error.h"

namespace flagstone::runtime {
namespace cuda {

namespace {
std::atomic<bool> g_exiting{false};
}  // namespace

void throw_cuda_error(cudaError_t status, const char* call, int device, const char* file, int line,
                      std::string_view context) {
  // Clears the runtime's last-error slot so a later, unrelated check does not report this one.
  (void)cudaGetLastError();
  std::string_view path = file;
  if (auto at = path.rfind("src/"); at != std::string_view::npos) path.remove_prefix(at);
  auto category =
      status == cudaErrorMemoryAllocation ? ErrorCategory::kOutOfMemory : ErrorCategory::kBackend;
  std::string where = device >= 0 ? detail::concat(" on cuda:", device) : std::string();
  throw_error(category, call, " failed", where, ": ", cudaGetErrorName(status), " (",
              cudaGetErrorString(status), ")", context.empty() ? "" : "; ", context, " [", path,
              ":", line, "]");
}

bool exiting() noexcept {
  return g_exiting.load(std::memory_order_relaxed);
}

void use_device(int device) {
  // The current device is per host thread; reading it is a thread-local lookup in the runtime,
  // so the common case costs no driver call, and code that calls cudaSetDevice itself (vendor
  // libraries) cannot leave us on the wrong device.
  int current = -1;
  FS_CUDA_CHECK(device, cudaGetDevice(&current));
  if (current != device) FS_CUDA_CHECK(device, cudaSetDevice(device));
}

bool use_device_quietly(int device) noexcept {
  if (exiting()) return false;
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess ||
      (current != device && cudaSetDevice(device) != cudaSuccess)) {
    (void)cudaGetLastError();
    return false;
  }
  return true;
}

// Release calls at exit may find the runtime torn down (cudaErrorCudartUnloading): ignored.
void ignore(cudaError_t status) noexcept {
  if (status != cudaSuccess) (void)cudaGetLastError();
}

}  // namespace cuda

namespace {

using cuda::use_device;

class CudaEvent;

class CudaStream final : public StreamImpl {
 public:
  CudaStream(int device, cudaStream_t stream) : device_(device), stream_(stream) {}
  ~CudaStream() override {
    if (cuda::use_device_quietly(device_)) cuda::ignore(cudaStreamDestroy(stream_));
  }
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;

  void synchronize() override {
    use_device(device_);
    FS_CUDA_CHECK(device_, cudaStreamSynchronize(stream_));
  }
  void wait(EventImpl& event) override;
  void* native_handle() override { return stream_; }

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }

 private:
  int device_;
  cudaStream_t stream_;
};

CudaStream& as_cuda_stream(StreamImpl& stream, int device, const char* op) {
  auto* cuda_stream = dynamic_cast<CudaStream*>(&stream);
  FS_CHECK(cuda_stream != nullptr, kInvalidArgument, "cuda:", device, " ", op,
           ": the stream does not belong to the cuda backend");
  FS_CHECK(cuda_stream->device() == device, kInvalidArgument, "cuda:", device, " ", op,
           ": the stream belongs to cuda:", cuda_stream->device());
  return *cuda_stream;
}

class CudaEvent final : public EventImpl {
 public:
  explicit CudaEvent(int device) : device_(device) {
    use_device(device_);
    // Default flags keep timing on, which elapsed_ms needs.
    FS_CUDA_CHECK(device_, cudaEventCreate(&event_));
  }
  ~CudaEvent() override {
    if (cuda::use_device_quietly(device_)) cuda::ignore(cudaEventDestroy(event_));
  }
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;

  void record(StreamImpl& stream) override {
    CudaStream& s = as_cuda_stream(stream, device_, "event record");
    use_device(device_);
    FS_CUDA_CHECK(device_, cudaEventRecord(event_, s.stream()));
    recorded_ = true;
  }
  void synchronize() override {
    use_device(device_);
    FS_CUDA_CHECK(device_, cudaEventSynchronize(event_));
  }
  bool query() override {
    use_device(device_);
    cudaError_t status = cudaEventQuery(event_);
    if (status == cudaErrorNotReady) {
      (void)cudaGetLastError();  // not an error; keep it out of later checks
      return false;
    }
    FS_CUDA_CHECK(device_, status);
    return true;
  }
  float elapsed_ms(EventImpl& end) override {
    auto* other = dynamic_cast<CudaEvent*>(&end);
    FS_CHECK(other != nullptr, kInvalidArgument, "cuda:", device_,
             " elapsed_ms: the end event does not belong to the cuda backend");
    FS_CHECK(recorded_ && other->recorded_, kInvalidArgument, "cuda:", device_,
             " elapsed_ms: both events must be recorded first (start ",
             recorded_ ? "recorded" : "never recorded", ", end ",
             other->recorded_ ? "recorded" : "never recorded", ")");
    use_device(device_);
    float ms = 0.0f;
    FS_CUDA_CHECK(device_, cudaEventElapsedTime(&ms, event_, other->event_));
    return ms;
  }

  cudaEvent_t event() const { return event_; }

 private:
  int device_;
  cudaEvent_t event_ = nullptr;
  bool recorded_ = false;
};

void CudaStream::wait(EventImpl& event) {
  auto* cuda_event = dynamic_cast<CudaEvent*>(&event);
  FS_CHECK(cuda_event != nullptr, kInvalidArgument, "cuda:", device_,
           " stream wait: the event does not belong to the cuda backend");
  use_device(device_);
  // Events of another device are fine here: CUDA orders across devices through them.
  FS_CUDA_CHECK(device_, cudaStreamWaitEvent(stream_, cuda_event->event(), 0));
}

std::string version_text(int version) {
  return std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
}

int attribute(cudaDeviceAttr attr, int device) {
  int value = 0;
  FS_CUDA_CHECK(device, cudaDeviceGetAttribute(&value, attr, device));
  return value;
}

// Reads the properties without making a context, so listing devices stays cheap.
DeviceInfo query_info(int device) {
  cudaDeviceProp prop{};
  FS_CUDA_CHECK(device, cudaGetDeviceProperties(&prop, device));
  int driver = 0;
  int runtime = 0;
  FS_CUDA_CHECK(device, cudaDriverGetVersion(&driver));
  FS_CUDA_CHECK(device, cudaRuntimeGetVersion(&runtime));
  const int cc = prop.major * 10 + prop.minor;

  DeviceInfo info;
  info.backend = "cuda";
  info.index = device;
  info.name = prop.name;
  info.vendor = "NVIDIA";
  info.arch = "sm_" + std::to_string(prop.major) + std::to_string(prop.minor);
  info.driver_version = "CUDA " + version_text(driver) + " (runtime " + version_text(runtime) + ")";
  info.type = DeviceType::kGpu;
  info.memory_bytes = prop.totalGlobalMem;
  info.max_allocation_bytes = prop.totalGlobalMem;  // CUDA has no per-allocation cap
  info.compute_units = prop.multiProcessorCount;
  info.clock_mhz = attribute(cudaDevAttrClockRate, device) / 1000;
  info.caps.fp64 = true;
  info.caps.fp16 = cc >= 53;
  info.caps.bf16 = cc >= 80;
  info.caps.int8_dot = cc >= 61;  // dp4a
  info.caps.pinned_host = true;
  info.caps.host_accessible = false;
  info.caps.async_copy = true;

  const int memory_clock_khz = attribute(cudaDevAttrMemoryClockRate, device);
  char pci[32] = {};
  FS_CUDA_CHECK(device, cudaDeviceGetPCIBusId(pci, sizeof(pci), device));
  auto& extra = info.extra;
  extra["compute_capability"] = std::to_string(prop.major) + "." + std::to_string(prop.minor);
  extra["pci_bus_id"] = pci;
  extra["l2_cache_bytes"] = std::to_string(prop.l2CacheSize);
  extra["shared_memory_per_block_bytes"] = std::to_string(prop.sharedMemPerBlock);
  extra["shared_memory_per_block_optin_bytes"] = std::to_string(prop.sharedMemPerBlockOptin);
  extra["shared_memory_per_sm_bytes"] = std::to_string(prop.sharedMemPerMultiprocessor);
  extra["registers_per_sm"] = std::to_string(prop.regsPerMultiprocessor);
  extra["warp_size"] = std::to_string(prop.warpSize);
  extra["max_threads_per_block"] = std::to_string(prop.maxThreadsPerBlock);
  extra["max_threads_per_sm"] = std::to_string(prop.maxThreadsPerMultiProcessor);
  extra["memory_bus_width_bits"] = std::to_string(prop.memoryBusWidth);
  extra["memory_clock_mhz"] = std::to_string(memory_clock_khz / 1000);
  // Double data rate: two transfers per clock on each bit of the bus.
  const double peak_gbs = 2.0 * memory_clock_khz * 1e3 * (prop.memoryBusWidth / 8.0) / 1e9;
  extra["memory_peak_bandwidth_gbs"] = std::to_string(static_cast<int>(peak_gbs + 0.5));
  extra["ecc"] = prop.ECCEnabled ? "on" : "off";
  extra["async_engines"] = std::to_string(prop.asyncEngineCount);
  extra["concurrent_kernels"] = prop.concurrentKernels ? "yes" : "no";
  extra["integrated"] = prop.integrated ? "yes" : "no";
  extra["managed_memory"] = prop.managedMemory ? "yes" : "no";
  extra["cooperative_launch"] = prop.cooperativeLaunch ? "yes" : "no";
  extra["multi_gpu_board"] = prop.isMultiGpuBoard ? "yes" : "no";
  return info;
}

class CudaDevice final : public DeviceImpl {
 public:
  explicit CudaDevice(int device) : device_(device), info_(query_info(device)) {}
  ~CudaDevice() override {
    default_stream_.reset();
    staging_.release();
  }
  CudaDevice(const CudaDevice&) = delete;
  CudaDevice& operator=(const CudaDevice&) = delete;

  const DeviceInfo& info() const override { return info_; }

  MemHandle allocate(size_t bytes) override {
    use_device(device_);
    void* ptr = nullptr;
    // cudaMalloc(0) may hand back nullptr; a real (tiny) block keeps handles distinct.
    cudaError_t status = cudaMalloc(&ptr, bytes == 0 ? 1 : bytes);
    if (status != cudaSuccess) {
      size_t free_bytes = 0;
      size_t total_bytes = 0;
      std::string context = detail::concat("allocating ", bytes, " bytes");
      if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
        context += detail::concat(" (", free_bytes, " of ", total_bytes, " bytes free)");
      }
      cuda::throw_cuda_error(status, "cudaMalloc(&ptr, bytes)", device_, __FILE__, __LINE__,
                             context);
    }
    return ptr;
  }
  void deallocate(MemHandle handle) noexcept override {
    if (handle == nullptr || !cuda::use_device_quietly(device_)) return;
    cuda::ignore(cudaFree(handle));
  }
  void* allocate_pinned_host(size_t bytes) override {
    use_device(device_);
    void* ptr = nullptr;
    cudaError_t status = cudaHostAlloc(&ptr, bytes == 0 ? 1 : bytes, cudaHostAllocPortable);
    if (status != cudaSuccess) {
      cuda::throw_cuda_error(status, "cudaHostAlloc(&ptr, bytes, cudaHostAllocPortable)", device_,
                             __FILE__, __LINE__, detail::concat("allocating ", bytes, " bytes"));
    }
    return ptr;
  }
  void free_pinned_host(void* ptr) noexcept override {
    if (ptr == nullptr || cuda::exiting()) return;
    cuda::ignore(cudaFreeHost(ptr));
  }

  StreamImpl& default_stream() override {
    std::lock_guard lock(mutex_);
    if (!default_stream_) default_stream_ = make_stream();
    return *default_stream_;
  }
  std::unique_ptr<StreamImpl> create_stream() override { return make_stream(); }
  std::unique_ptr<EventImpl> create_event() override {
    return std::make_unique<CudaEvent>(device_);
  }
  void synchronize() override {
    use_device(device_);
    FS_CUDA_CHECK(device_, cudaDeviceSynchronize());
  }

  void copy_to_device(StreamImpl& stream, MemHandle dst, size_t dst_offset, const void* src,
                      size_t bytes) override {
    CudaStream& s = as_cuda_stream(stream, device_, "copy_to_device");
    if (bytes == 0) return;
    use_device(device_);
    auto* target = static_cast<std::byte*>(dst) + dst_offset;
    cudaPointerAttributes attributes{};
    FS_CUDA_CHECK(device_, cudaPointerGetAttributes(&attributes, src));
    // The contract lets the caller reuse `src` as soon as we return. Pageable memory (and small
    // pinned copies) go through our pinned staging ring, which keeps the upload asynchronous
    // with respect to the device; large pinned or device sources are copied straight by DMA and
    // waited for, which is faster than a host memcpy into staging.
    const bool direct = attributes.type == cudaMemoryTypeDevice ||
                        (attributes.type == cudaMemoryTypeHost && bytes >= kDirectPinnedBytes);
    if (!direct &&
        staging_.upload(device_, s.stream(), target, static_cast<const std::byte*>(src), bytes)) {
      return;
    }
    FS_CUDA_CHECK(device_, cudaMemcpyAsync(target, src, bytes, cudaMemcpyDefault, s.stream()));
    FS_CUDA_CHECK(device_, cudaStreamSynchronize(s.stream()));
  }
  void copy_to_host(StreamImpl& stream, void* dst, MemHandle src, size_t src_offset,
                    size_t bytes) override {
    CudaStream& s = as_cuda_stream(stream, device_, "copy_to_host");
    if (bytes == 0) return;
    use_device(device_);
    FS_CUDA_CHECK(device_, cudaMemcpyAsync(dst, static_cast<const std::byte*>(src) + src_offset,
                                           bytes, cudaMemcpyDeviceToHost, s.stream()));
  }
  void copy_on_device(StreamImpl& stream, MemHandle dst, size_t dst_offset, MemHandle src,
                      size_t src_offset, size_t bytes) override {
    CudaStream& s = as_cuda_stream(stream, device_, "copy_on_device");
    auto* target = static_cast<std::byte*>(dst) + dst_offset;
    const auto* source = static_cast<const std::byte*>(src) + src_offset;
    if (bytes == 0 || target == source) return;
    use_device(device_);
    if (target >= source + bytes || source >= target + bytes) {
      FS_CUDA_CHECK(device_,
                    cudaMemcpyAsync(target, source, bytes, cudaMemcpyDeviceToDevice, s.stream()));
      return;
    }
    // cudaMemcpy leaves overlapping ranges undefined; memmove semantics go through a temporary,
    // stream-ordered where the device has memory pools.
    void* temp = nullptr;
    const bool pooled = cudaMallocAsync(&temp, bytes, s.stream()) == cudaSuccess;
    if (!pooled) {
      (void)cudaGetLastError();
      temp = allocate(bytes);
    }
    FS_CUDA_CHECK(device_,
                  cudaMemcpyAsync(temp, source, bytes, cudaMemcpyDeviceToDevice, s.stream()));
    FS_CUDA_CHECK(device_,
                  cudaMemcpyAsync(target, temp, bytes, cudaMemcpyDeviceToDevice, s.stream()));
    if (pooled) {
      FS_CUDA_CHECK(device_, cudaFreeAsync(temp, s.stream()));
    } else {
      FS_CUDA_CHECK(device_, cudaStreamSynchronize(s.stream()));
      deallocate(temp);
    }
  }
  void fill_bytes(StreamImpl& stream, MemHandle dst, size_t offset, size_t bytes,
                  uint8_t value) override {
    CudaStream& s = as_cuda_stream(stream, device_, "fill_bytes");
    if (bytes == 0) return;
    use_device(device_);
    FS_CUDA_CHECK(device_,
                  cudaMemsetAsync(static_cast<std::byte*>(dst) + offset, value, bytes, s.stream()));
  }
  void copy_strided(StreamImpl& stream, const StridedCopy& copy) override {
    CudaStream& s = as_cuda_stream(stream, device_, "copy_strided");
    FS_CHECK(copy.ndim >= 0 && copy.ndim <= kMaxDims, kInvalidArgument, "cuda:", device_,
             " copy_strided: ndim ", copy.ndim, " is outside [0, ", kMaxDims, "]");
    FS_CHECK(copy.element_bytes > 0, kInvalidArgument, "cuda:", device_,
             " copy_strided: element_bytes is 0");
    int64_t src_low = copy.src_offset;
    int64_t dst_low = copy.dst_offset;
    bool empty = false;
    int64_t count = 1;
    for (int d = 0; d < copy.ndim; ++d) {
      FS_CHECK(copy.sizes[d] >= 0, kInvalidArgument, "cuda:", device_,
               " copy_strided: negative size ", copy.sizes[d], " in dimension ", d);
      empty = empty || copy.sizes[d] == 0;
      FS_CHECK(copy.sizes[d] == 0 || count <= INT64_MAX / copy.sizes[d], kInvalidArgument,
               "cuda:", device_, " copy_strided: the element count overflows 64 bits");
      count *= std::max<int64_t>(copy.sizes[d], 1);
      if (copy.sizes[d] > 0) {
        src_low += std::min<int64_t>(0, copy.src_strides[d] * (copy.sizes[d] - 1));
        dst_low += std::min<int64_t>(0, copy.dst_strides[d] * (copy.sizes[d] - 1));
      }
    }
    if (empty) return;
    FS_CHECK(src_low >= 0 && dst_low >= 0, kInvalidArgument, "cuda:", device_,
             " copy_strided: the copy reaches before the start of its ",
             src_low < 0 ? "source" : "destination", " buffer");
    use_device(device_);
    FS_CUDA_CHECK(device_, cuda::launch_strided_copy(copy, s.stream()));
  }

 private:
  static constexpr size_t kDirectPinnedBytes = size_t{1} << 20;

  std::unique_ptr<CudaStream> make_stream() {
    use_device(device_);
    cudaStream_t stream = nullptr;
    // Non-blocking: our streams never serialize with the legacy NULL stream that other code
    // in the process may use.
    FS_CUDA_CHECK(device_, cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    return std::make_unique<CudaStream>(device_, stream);
  }

  int device_;
  DeviceInfo info_;
  std::mutex mutex_;
  std::unique_ptr<CudaStream> default_stream_;
  cuda::StagingRing staging_;
};

std::string probe_failure(cudaError_t status) {
  int driver = 0;
  (void)cudaDriverGetVersion(&driver);
  (void)cudaGetLastError();
  std::string cause = detail::concat("cudaGetDeviceCount: ", cudaGetErrorName(status), ": ",
                                     cudaGetErrorString(status));
  if (status == cudaErrorNoDevice) return "no CUDA device found (" + cause + ")";
  if (driver == 0) return "no CUDA driver found (" + cause + ")";
  int runtime = 0;
  (void)cudaRuntimeGetVersion(&runtime);
  if (status == cudaErrorInsufficientDriver) {
    return detail::concat("CUDA driver ", version_text(driver),
                          " is older than this build's runtime ", version_text(runtime), " (",
                          cause, ")");
  }
  return detail::concat("CUDA initialization failed with driver ", version_text(driver), " (",
                        cause, ")");
}

class CudaBackend final : public Backend {
 public:
  CudaBackend() {
    int count = 0;
    cudaError_t status = cudaGetDeviceCount(&count);
    // Registered after the runtime's own teardown handler (the call above initialized it), so
    // it runs first: from then on no release path calls into CUDA, whatever order objects die.
    static std::once_flag once;
    std::call_once(once, [] { std::atexit([] { cuda::g_exiting.store(true); }); });
    if (status != cudaSuccess) {
      status_ = probe_failure(status);
      return;
    }
    // Reading properties makes no context, so probing every device stays cheap. A device
    // whose properties cannot be read ends the list (indices must stay CUDA's ordinals), and
    // the registry never sees an exception.
    for (int index = 0; index < count; ++index) {
      try {
        devices_.push_back(std::make_shared<CudaDevice>(index));
      } catch (const Error& error) {
        status_ = detail::concat("cuda:", index, " is unusable, so only ", index, " of ", count,
                                 " CUDA devices are listed: ", error.message());
        break;
      }
    }
  }

  std::string_view name() const override { return "cuda"; }
  // A partial list is still usable: only report a reason when there is no device at all.
  std::string status() const override { return devices_.empty() ? status_ : std::string(); }
  int device_count() const override { return static_cast<int>(devices_.size()); }
  std::shared_ptr<DeviceImpl> device(int index) override {
    FS_CHECK(index >= 0 && index < device_count(), kNotFound, "cuda:", index,
             " does not exist: ", device_count(), " CUDA device(s)", status_.empty() ? "" : " (",
             status_, status_.empty() ? "" : ")");
    return devices_[static_cast<size_t>(index)];
  }

 private:
  std::string status_;
  std::vector<std::shared_ptr<CudaDevice>> devices_;
};

}  // namespace

std::unique_ptr<Backend> create_cuda_backend() {
  return std::make_unique<CudaBackend>();
}

}  // namespace flagstone::runtime
