// Internal classes of the opencl backend: a context per device, streams as in-order profiling
// command queues, events as markers, and the device's lazily built helper kernels.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "flagstone/runtime/backend.h"
#include "opencl/opencl_check.h"

namespace flagstone::runtime::opencl {

// What a device's streams and events share. Streams and events keep it alive, so a Stream that
// outlives the registry at exit still releases its queue into a valid context.
struct DeviceState {
  DeviceState(cl_platform_id platform_id, cl_device_id device_id, std::string device_label,
              bool has_queue_properties);
  ~DeviceState();
  DeviceState(const DeviceState&) = delete;
  DeviceState& operator=(const DeviceState&) = delete;

  // An in-order queue with profiling, remembered for synchronize_all().
  cl_command_queue create_queue();
  void release_queue(cl_command_queue queue) noexcept;
  // clFinish on every live queue of the device.
  void synchronize_all();

  cl_platform_id platform = nullptr;
  cl_device_id device = nullptr;
  cl_context context = nullptr;
  std::string label;  // "opencl:0 (pthread-haswell-AMD EPYC)": names the device in errors
  bool queue_properties = true;  // clCreateCommandQueueWithProperties exists (OpenCL >= 2.0)

 private:
  std::mutex mutex_;
  std::set<cl_command_queue> queues_;
};

class OpenClStream final : public StreamImpl {
 public:
  explicit OpenClStream(std::shared_ptr<DeviceState> state);
  ~OpenClStream() override;
  void synchronize() override;
  void wait(EventImpl& event) override;
  void* native_handle() override { return queue_; }

  cl_command_queue queue() const { return queue_; }
  DeviceState& state() const { return *state_; }
  const std::shared_ptr<DeviceState>& shared_state() const { return state_; }

 private:
  std::shared_ptr<DeviceState> state_;
  cl_command_queue queue_ = nullptr;
};

class OpenClEvent final : public EventImpl {
 public:
  explicit OpenClEvent(std::shared_ptr<DeviceState> state) : state_(std::move(state)) {}
  ~OpenClEvent() override;
  void record(StreamImpl& stream) override;
  void synchronize() override;
  bool query() override;
  float elapsed_ms(EventImpl& end) override;

  // nullptr until recorded.
  cl_event event() const { return event_; }
  const DeviceState& recorded_on() const { return *recorded_state_; }

 private:
  uint64_t end_time_ns();
  std::shared_ptr<DeviceState> state_;
  std::shared_ptr<DeviceState> recorded_state_;  // device of the stream it was recorded on
  cl_event event_ = nullptr;
};

// The device's OpenCL C helpers (strided copy, byte fill), compiled on first use.
class DeviceKernels {
 public:
  explicit DeviceKernels(DeviceState& state, int compute_units)
      : state_(state), compute_units_(compute_units) {}
  ~DeviceKernels();
  DeviceKernels(const DeviceKernels&) = delete;
  DeviceKernels& operator=(const DeviceKernels&) = delete;

  // allow_narrow=false forces 64-bit index math (tests use it to cover that path).
  void strided_copy(cl_command_queue queue, const StridedCopy& copy, bool allow_narrow = true);
  void fill(cl_command_queue queue, cl_mem dst, size_t offset, size_t bytes, uint8_t value);

 private:
  // Strided copies of 1/2/4/8/16-byte elements with 64- and with 32-bit indexing; byte fill.
  static constexpr int kKernelCount = 11;
  void build_locked();
  // Sets no arguments itself; picks a global size that covers `items` with a grid-stride loop.
  void launch_locked(cl_command_queue queue, cl_kernel kernel, uint64_t items);
  DeviceState& state_;
  int compute_units_;
  std::mutex mutex_;  // cl_kernel arguments are not thread-safe: set and enqueue under it
  cl_program program_ = nullptr;
  cl_kernel kernels_[kKernelCount] = {};
  size_t work_group_ = 0;
};

class OpenClDevice final : public DeviceImpl {
 public:
  // queue_properties: the platform has clCreateCommandQueueWithProperties (OpenCL >= 2.0).
  OpenClDevice(int index, cl_platform_id platform, cl_device_id device, bool queue_properties);
  ~OpenClDevice() override;

  const DeviceInfo& info() const override { return info_; }
  MemHandle allocate(size_t bytes) override;
  void deallocate(MemHandle handle) noexcept override;
  // Page-locked memory on GPUs and accelerators; nullptr on CPU devices, whose "device" memory
  // is ordinary host memory already, so pinning would promise a speed-up that does not exist.
  void* allocate_pinned_host(size_t bytes) override;
  void free_pinned_host(void* ptr) noexcept override;
  // The mechanism behind allocate_pinned_host on any device: a CL_MEM_ALLOC_HOST_PTR buffer
  // mapped for its lifetime. Released by free_pinned_host.
  void* allocate_mapped_host(size_t bytes);

  StreamImpl& default_stream() override;
  std::unique_ptr<StreamImpl> create_stream() override;
  std::unique_ptr<EventImpl> create_event() override;
  void synchronize() override;

  void copy_to_device(StreamImpl& stream, MemHandle dst, size_t dst_offset, const void* src,
                      size_t bytes) override;
  void copy_to_host(StreamImpl& stream, void* dst, MemHandle src, size_t src_offset,
                    size_t bytes) override;
  void copy_on_device(StreamImpl& stream, MemHandle dst, size_t dst_offset, MemHandle src,
                      size_t src_offset, size_t bytes) override;
  void fill_bytes(StreamImpl& stream, MemHandle dst, size_t offset, size_t bytes,
                  uint8_t value) override;
  void copy_strided(StreamImpl& stream, const StridedCopy& copy) override;

  // The context and queues, created on first use.
  DeviceState& state() { return ready(); }
  bool has_context() const { return is_ready_.load(std::memory_order_acquire); }

 private:
  // Creates the context, default stream, service queue and kernel cache once. Listing devices
  // (`flagstone info`) must not create contexts: on a GPU each costs memory and time.
  DeviceState& ready();
  // The stream as this device's queue; kInvalidArgument for another backend's or device's.
  cl_command_queue queue_of(StreamImpl& stream, const char* op);

  cl_platform_id platform_;
  cl_device_id device_;
  bool queue_properties_;
  std::string label_;
  DeviceInfo info_;
  std::once_flag ready_once_;
  std::atomic<bool> is_ready_{false};
  std::shared_ptr<DeviceState> state_;
  std::unique_ptr<OpenClStream> default_stream_;
  // Private queue for allocation residency and pinned map/unmap, so they never wait behind
  // user work on the default stream.
  cl_command_queue service_queue_ = nullptr;
  std::unique_ptr<DeviceKernels> kernels_;
  std::mutex pinned_mutex_;
  struct PinnedBlock {
    cl_mem buffer;
    size_t bytes;
  };
  std::map<const std::byte*, PinnedBlock> pinned_;  // by mapped host address
};

// Fills name, vendor, memory, caps... of one device from clGetDeviceInfo/clGetPlatformInfo.
DeviceInfo query_device_info(int index, cl_platform_id platform, cl_device_id device);
// "opencl:<index> (<device name>)".
std::string device_label(int index, cl_device_id device);

}  // namespace flagstone::runtime::opencl
