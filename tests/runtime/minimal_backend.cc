// A minimal vendor-style backend ("minimal") that implements only what backend.h requires: no
// copy_strided, no pinned memory, memory not host-accessible. Registered before the tests run,
// it takes the conformance and tensor suites through the contract's default paths, proving a
// vendor can add a device by implementing the contract alone.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "flagstone/base/error.h"
#include "flagstone/runtime/backend.h"

namespace flagstone::runtime {
namespace {

// Device memory is a heap block the host never touches directly; the handle is an opaque token.
struct Allocation {
  std::byte* bytes;
};

class MinimalStream final : public StreamImpl {
 public:
  void synchronize() override {}
  void wait(EventImpl&) override {}
};

class MinimalEvent final : public EventImpl {
 public:
  void record(StreamImpl&) override { time_ = std::chrono::steady_clock::now(); }
  void synchronize() override {}
  bool query() override { return true; }
  float elapsed_ms(EventImpl& end) override {
    return std::chrono::duration<float, std::milli>(static_cast<MinimalEvent&>(end).time_ - time_)
        .count();
  }

 private:
  std::chrono::steady_clock::time_point time_{};
};

std::byte* bytes_of(MemHandle handle) {
  return static_cast<Allocation*>(handle)->bytes;
}

class MinimalDevice final : public DeviceImpl {
 public:
  MinimalDevice() {
    info_.backend = "minimal";
    info_.name = "minimal test device";
    info_.vendor = "flagstone tests";
    info_.type = DeviceType::kAccelerator;
    info_.memory_bytes = info_.max_allocation_bytes = uint64_t{1} << 32;
    info_.compute_units = 1;
  }
  const DeviceInfo& info() const override { return info_; }
  MemHandle allocate(size_t bytes) override {
    FS_CHECK(bytes <= info_.max_allocation_bytes, kOutOfMemory, "minimal:0 cannot allocate ", bytes,
             " bytes");
    auto* allocation = new Allocation{static_cast<std::byte*>(std::malloc(bytes + 1))};
    return allocation;
  }
  void deallocate(MemHandle handle) noexcept override {
    std::free(bytes_of(handle));
    delete static_cast<Allocation*>(handle);
  }
  StreamImpl& default_stream() override { return stream_; }
  std::unique_ptr<StreamImpl> create_stream() override { return std::make_unique<MinimalStream>(); }
  std::unique_ptr<EventImpl> create_event() override { return std::make_unique<MinimalEvent>(); }
  void synchronize() override {}
  void copy_to_device(StreamImpl&, MemHandle dst, size_t dst_offset, const void* src,
                      size_t bytes) override {
    std::memmove(bytes_of(dst) + dst_offset, src, bytes);
  }
  void copy_to_host(StreamImpl&, void* dst, MemHandle src, size_t src_offset,
                    size_t bytes) override {
    std::memmove(dst, bytes_of(src) + src_offset, bytes);
  }
  void copy_on_device(StreamImpl&, MemHandle dst, size_t dst_offset, MemHandle src,
                      size_t src_offset, size_t bytes) override {
    std::memmove(bytes_of(dst) + dst_offset, bytes_of(src) + src_offset, bytes);
  }
  void fill_bytes(StreamImpl&, MemHandle dst, size_t offset, size_t bytes, uint8_t value) override {
    std::memset(bytes_of(dst) + offset, value, bytes);
  }

 private:
  DeviceInfo info_;
  MinimalStream stream_;
};

class MinimalBackend final : public Backend {
 public:
  std::string_view name() const override { return "minimal"; }
  std::string status() const override { return ""; }
  int device_count() const override { return 1; }
  std::shared_ptr<DeviceImpl> device(int) override {
    if (!device_) device_ = std::make_shared<MinimalDevice>();
    return device_;
  }

 private:
  std::shared_ptr<MinimalDevice> device_;
};

}  // namespace
}  // namespace flagstone::runtime

int main(int argc, char** argv) {
  // Registered before InitGoogleTest, which is when the device-parameterized suites enumerate.
  flagstone::runtime::register_backend(std::make_unique<flagstone::runtime::MinimalBackend>());
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::GTEST_FLAG(filter) += ":-*cpu_0*:*opencl*:*cuda*";
  return RUN_ALL_TESTS();
}
