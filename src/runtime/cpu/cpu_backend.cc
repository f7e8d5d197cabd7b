// The cpu backend: host memory, streams that run work as it is issued (so issue order is
// execution order), and events that take a timestamp when recorded.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "backends.h"
#include "flagstone/base/error.h"
#include "flagstone/runtime/cpu_features.h"
#include "flagstone/runtime/thread_pool.h"

namespace flagstone::runtime {
namespace {

class CpuStream final : public StreamImpl {
 public:
  void synchronize() override {}
  void wait(EventImpl&) override {}
};

class CpuEvent final : public EventImpl {
 public:
  void record(StreamImpl&) override {
    time_ = std::chrono::steady_clock::now();
    recorded_ = true;
  }
  void synchronize() override {}
  bool query() override { return true; }
  float elapsed_ms(EventImpl& end) override {
    auto* other = dynamic_cast<CpuEvent*>(&end);
    FS_CHECK(other != nullptr, kInvalidArgument,
             "elapsed_ms between a cpu event and an event of "
             "another backend");
    FS_CHECK(recorded_ && other->recorded_, kInvalidArgument,
             "elapsed_ms on a cpu event that was never recorded");
    return std::chrono::duration<float, std::milli>(other->time_ - time_).count();
  }

 private:
  std::chrono::steady_clock::time_point time_{};
  bool recorded_ = false;
};

std::string read_cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown cpu";
}

int read_cpu_mhz() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("cpu MHz", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return std::atoi(line.c_str() + colon + 1);
    }
  }
  return 0;
}

class CpuDevice final : public DeviceImpl {
 public:
  CpuDevice() {
    info_.backend = "cpu";
    info_.index = 0;
    info_.name = read_cpu_model();
    info_.vendor = "host";
#if defined(__x86_64__)
    info_.arch = "x86_64";
#elif defined(__aarch64__)
    info_.arch = "aarch64";
#else
    info_.arch = "unknown";
#endif
    info_.driver_version = "n/a";
    info_.type = DeviceType::kCpu;
    long pages = sysconf(_SC_PHYS_PAGES);
    long page_size = sysconf(_SC_PAGE_SIZE);
    info_.memory_bytes = pages > 0 && page_size > 0 ? uint64_t(pages) * uint64_t(page_size) : 0;
    info_.max_allocation_bytes = info_.memory_bytes;
    info_.compute_units = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    info_.clock_mhz = read_cpu_mhz();
    info_.caps.fp64 = info_.caps.fp16 = info_.caps.bf16 = info_.caps.int8_dot = true;
    info_.caps.host_accessible = true;
    info_.extra["threads"] = std::to_string(cpu_threads());
    info_.extra["simd"] = cpu_isa_name(cpu_isa());  // what the cpu kernels run with
  }

  const DeviceInfo& info() const override {
    return info_;
  }

  MemHandle allocate(size_t bytes) override {
    // Refuse what cannot exist before asking malloc (and before the rounding could wrap).
    FS_CHECK(bytes <= info_.memory_bytes, kOutOfMemory, "cpu:0 cannot allocate ", bytes,
             " bytes: the machine has ", info_.memory_bytes);
    size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
    void* ptr = std::aligned_alloc(64, rounded);
    FS_CHECK(ptr != nullptr, kOutOfMemory, "cpu:0 cannot allocate ", bytes, " bytes");
    return ptr;
  }
  void deallocate(MemHandle handle) noexcept override {
    std::free(handle);
  }
  void* host_address(MemHandle handle, size_t offset) override {
    return static_cast<std::byte*>(handle) + offset;
  }

  StreamImpl& default_stream() override {
    return stream_;
  }
  std::unique_ptr<StreamImpl> create_stream() override {
    return std::make_unique<CpuStream>();
  }
  std::unique_ptr<EventImpl> create_event() override {
    return std::make_unique<CpuEvent>();
  }
  void synchronize() override {}

  void copy_to_device(StreamImpl&, MemHandle dst, size_t dst_offset, const void* src,
                      size_t bytes) override {
    std::memmove(static_cast<std::byte*>(dst) + dst_offset, src, bytes);
  }
  void copy_to_host(StreamImpl&, void* dst, MemHandle src, size_t src_offset,
                    size_t bytes) override {
    std::memmove(dst, static_cast<const std::byte*>(src) + src_offset, bytes);
  }
  void copy_on_device(StreamImpl&, MemHandle dst, size_t dst_offset, MemHandle src,
                      size_t src_offset, size_t bytes) override {
    std::memmove(static_cast<std::byte*>(dst) + dst_offset,
                 static_cast<const std::byte*>(src) + src_offset, bytes);
  }
  void fill_bytes(StreamImpl&, MemHandle dst, size_t offset, size_t bytes, uint8_t value) override {
    std::memset(static_cast<std::byte*>(dst) + offset, value, bytes);
  }
  void copy_strided(StreamImpl&, const StridedCopy& copy) override {
    strided_copy_host(copy, static_cast<const std::byte*>(copy.src),
                      static_cast<std::byte*>(copy.dst));
  }

 private:
  DeviceInfo info_;
  CpuStream stream_;
};

class CpuBackend final : public Backend {
 public:
  std::string_view name() const override { return "cpu"; }
  std::string status() const override { return ""; }
  int device_count() const override { return 1; }
  std::shared_ptr<DeviceImpl> device(int index) override {
    FS_CHECK(index == 0, kNotFound, "cpu:", index, " does not exist (only cpu:0)");
    if (!device_) device_ = std::make_shared<CpuDevice>();
    return device_;
  }

 private:
  std::shared_ptr<CpuDevice> device_;
};

}  // namespace

std::unique_ptr<Backend> create_cpu_backend() {
  return std::make_unique<CpuBackend>();
}

}  // namespace flagstone::runtime
