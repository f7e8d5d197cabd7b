// One OpenCL device: its context and queues, buffers as cl_mem, copies and fills, pinned host
// memory, and events as profiled markers.
#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "flagstone/base/error.h"
#include "opencl/opencl_device.h"

namespace flagstone::runtime::opencl {

DeviceState::DeviceState(cl_platform_id platform_id, cl_device_id device_id,
                         std::string device_label, bool has_queue_properties)
    : platform(platform_id),
      device(device_id),
      label(std::move(device_label)),
      queue_properties(has_queue_properties) {
  cl_context_properties properties[] = {CL_CONTEXT_PLATFORM,
                                        reinterpret_cast<cl_context_properties>(platform), 0};
  context = FS_CL_CREATE(label, clCreateContext, properties, 1, &device, nullptr, nullptr);
}

DeviceState::~DeviceState() {
  if (context != nullptr) clReleaseContext(context);
}

cl_command_queue DeviceState::create_queue() {
  cl_command_queue queue = nullptr;
  if (queue_properties) {
    cl_queue_properties properties[] = {CL_QUEUE_PROPERTIES, CL_QUEUE_PROFILING_ENABLE, 0};
    queue = FS_CL_CREATE(label, clCreateCommandQueueWithProperties, context, device, properties);
  } else {
    queue = FS_CL_CREATE(label, clCreateCommandQueue, context, device, CL_QUEUE_PROFILING_ENABLE);
  }
  std::lock_guard lock(mutex_);
  queues_.insert(queue);
  return queue;
}

void DeviceState::release_queue(cl_command_queue queue) noexcept {
  {
    std::lock_guard lock(mutex_);
    queues_.erase(queue);
  }
  // Finish first: pending reads write into host memory the caller may free right after.
  clFinish(queue);
  clReleaseCommandQueue(queue);
}

void DeviceState::synchronize_all() {
  std::vector<cl_command_queue> queues;
  {
    std::lock_guard lock(mutex_);
    for (cl_command_queue queue : queues_) {
      clRetainCommandQueue(queue);  // a stream destroyed meanwhile must not free it under us
      queues.push_back(queue);
    }
  }
  cl_int first_failure = CL_SUCCESS;
  for (cl_command_queue queue : queues) {
    cl_int code = clFinish(queue);
    if (first_failure == CL_SUCCESS) first_failure = code;
    clReleaseCommandQueue(queue);
  }
  FS_CL_CHECK_CODE(first_failure, "clFinish", label, kOrdinary);
}

OpenClStream::OpenClStream(std::shared_ptr<DeviceState> state)
    : state_(std::move(state)), queue_(state_->create_queue()) {}

OpenClStream::~OpenClStream() {
  state_->release_queue(queue_);
}

void OpenClStream::synchronize() {
  FS_CL(state_->label, clFinish, queue_);
}

void OpenClStream::wait(EventImpl& event) {
  auto* cl_event_impl = dynamic_cast<OpenClEvent*>(&event);
  FS_CHECK(cl_event_impl != nullptr, kInvalidArgument, "stream wait on ", state_->label,
           ": the event belongs to another backend");
  cl_event marker = cl_event_impl->event();
  if (marker == nullptr) return;  // never recorded: nothing to wait for
  if (cl_event_impl->recorded_on().context == state_->context) {
    FS_CL(state_->label, clEnqueueBarrierWithWaitList, queue_, 1, &marker, nullptr);
  } else {
    // Events of another context cannot enter this queue's wait list; waiting on the host keeps
    // the ordering promise at the cost of blocking.
    FS_CL(state_->label, clWaitForEvents, 1, &marker);
  }
}

OpenClEvent::~OpenClEvent() {
  if (event_ != nullptr) clReleaseEvent(event_);
}

void OpenClEvent::record(StreamImpl& stream) {
  auto* cl_stream = dynamic_cast<OpenClStream*>(&stream);
  FS_CHECK(cl_stream != nullptr, kInvalidArgument, "event record on ", state_->label,
           ": the stream belongs to another backend");
  const std::string& where = cl_stream->state().label;
  cl_event marker = nullptr;
  FS_CL(where, clEnqueueMarkerWithWaitList, cl_stream->queue(), 0, nullptr, &marker);
  // Without a flush some drivers never start the marker, and query() would poll forever.
  cl_int flushed = clFlush(cl_stream->queue());
  if (flushed != CL_SUCCESS) clReleaseEvent(marker);
  FS_CL_CHECK_CODE(flushed, "clFlush", where, kOrdinary);
  if (event_ != nullptr) clReleaseEvent(event_);
  event_ = marker;
  // The stream may belong to another OpenCL device than the one that created this event.
  recorded_state_ = cl_stream->shared_state();
}

void OpenClEvent::synchronize() {
  if (event_ != nullptr) FS_CL(recorded_state_->label, clWaitForEvents, 1, &event_);
}

bool OpenClEvent::query() {
  if (event_ == nullptr) return true;
  cl_int status = CL_COMPLETE;
  FS_CL(recorded_state_->label, clGetEventInfo, event_, CL_EVENT_COMMAND_EXECUTION_STATUS,
        sizeof(status), &status, nullptr);
  // A negative status is the error that aborted the command (or one it waited on).
  FS_CL_CHECK_CODE(status < 0 ? status : CL_SUCCESS, "event marker", recorded_state_->label,
                   kOrdinary);
  return status == CL_COMPLETE;
}

uint64_t OpenClEvent::end_time_ns() {
  cl_ulong end = 0;
  FS_CL(recorded_state_->label, clGetEventProfilingInfo, event_, CL_PROFILING_COMMAND_END,
        sizeof(end), &end, nullptr);
  return end;
}

float OpenClEvent::elapsed_ms(EventImpl& end) {
  auto* end_event = dynamic_cast<OpenClEvent*>(&end);
  FS_CHECK(end_event != nullptr, kInvalidArgument, "elapsed_ms on ", state_->label,
           ": the end event belongs to another backend");
  FS_CHECK(event_ != nullptr && end_event->event_ != nullptr, kInvalidArgument, "elapsed_ms on ",
           state_->label, ": both events must be recorded first");
  FS_CHECK(query() && end_event->query(), kInvalidArgument, "elapsed_ms on ", state_->label,
           ": an event has not completed yet; synchronize on it first");
  double start_ns = static_cast<double>(end_time_ns());
  double end_ns = static_cast<double>(end_event->end_time_ns());
  return static_cast<float>((end_ns - start_ns) / 1e6);
}

OpenClDevice::OpenClDevice(int index, cl_platform_id platform, cl_device_id device,
                           bool queue_properties)
    : platform_(platform),
      device_(device),
      queue_properties_(queue_properties),
      label_(device_label(index, device)),
      info_(query_device_info(index, platform, device)) {}

DeviceState& OpenClDevice::ready() {
  // call_once retries after an exception, so a transient failure is not remembered forever.
  std::call_once(ready_once_, [this] {
    auto state = std::make_shared<DeviceState>(platform_, device_, label_, queue_properties_);
    auto stream = std::make_unique<OpenClStream>(state);
    service_queue_ = state->create_queue();
    kernels_ = std::make_unique<DeviceKernels>(*state, info_.compute_units);
    default_stream_ = std::move(stream);
    state_ = std::move(state);
    is_ready_.store(true, std::memory_order_release);
  });
  return *state_;
}

StreamImpl& OpenClDevice::default_stream() {
  ready();
  return *default_stream_;
}

void OpenClDevice::synchronize() {
  if (is_ready_.load(std::memory_order_acquire)) state_->synchronize_all();
}

OpenClDevice::~OpenClDevice() {
  if (!is_ready_) return;
  for (auto& [ptr, block] : pinned_) {
    clEnqueueUnmapMemObject(service_queue_, block.buffer, const_cast<std::byte*>(ptr), 0, nullptr,
                            nullptr);
    clReleaseMemObject(block.buffer);
  }
  state_->release_queue(service_queue_);
}

namespace {

// Waits for a command and reports the status it ended with (its own error, not the generic
// CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST of clWaitForEvents).
cl_int wait_and_release(cl_event event) {
  cl_int code = clWaitForEvents(1, &event);
  if (code == CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST) {
    cl_int status = CL_SUCCESS;
    if (clGetEventInfo(event, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof(status), &status,
                       nullptr) == CL_SUCCESS &&
        status < 0) {
      code = status;
    }
  }
  clReleaseEvent(event);
  return code;
}

}  // namespace

MemHandle OpenClDevice::allocate(size_t bytes) {
  ready();
  // A zero-byte cl_mem is invalid; one byte gives every allocation a distinct handle.
  size_t size = std::max<size_t>(bytes, 1);
  FS_CHECK(size <= info_.max_allocation_bytes, kOutOfMemory, "allocate of ", bytes, " bytes on ",
           label_, " exceeds the device's largest allocation of ", info_.max_allocation_bytes,
           " bytes (CL_DEVICE_MAX_MEM_ALLOC_SIZE)");
  cl_mem buffer =
      FS_CL_ALLOC(label_, clCreateBuffer, state_->context, CL_MEM_READ_WRITE, size, nullptr);
  // Drivers back buffers lazily; migrating now makes a full device fail here, as kOutOfMemory
  // the caching allocator can handle, instead of inside some later copy or kernel.
  cl_event migrated = nullptr;
  cl_int code = clEnqueueMigrateMemObjects(
      service_queue_, 1, &buffer, CL_MIGRATE_MEM_OBJECT_CONTENT_UNDEFINED, 0, nullptr, &migrated);
  if (code == CL_SUCCESS) code = wait_and_release(migrated);
  if (code != CL_SUCCESS) clReleaseMemObject(buffer);
  FS_CL_CHECK_CODE(code, "clEnqueueMigrateMemObjects", label_, kAllocation);
  return buffer;
}

void OpenClDevice::deallocate(MemHandle handle) noexcept {
  // OpenCL reference-counts buffers, so commands still queued on it complete safely.
  if (handle != nullptr) clReleaseMemObject(static_cast<cl_mem>(handle));
}

void* OpenClDevice::allocate_pinned_host(size_t bytes) {
  return info_.caps.pinned_host ? allocate_mapped_host(bytes) : nullptr;
}

void* OpenClDevice::allocate_mapped_host(size_t bytes) {
  ready();
  size_t size = std::max<size_t>(bytes, 1);
  cl_mem buffer = FS_CL_ALLOC(label_, clCreateBuffer, state_->context,
                              CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR, size, nullptr);
  void* host = nullptr;
  try {
    host = FS_CL_ALLOC(label_, clEnqueueMapBuffer, service_queue_, buffer, CL_TRUE,
                       CL_MAP_READ | CL_MAP_WRITE, 0, size, 0, nullptr, nullptr);
  } catch (...) {
    clReleaseMemObject(buffer);
    throw;
  }
  std::lock_guard lock(pinned_mutex_);
  pinned_[static_cast<const std::byte*>(host)] = PinnedBlock{buffer, size};
  return host;
}

void OpenClDevice::free_pinned_host(void* ptr) noexcept {
  PinnedBlock block{};
  {
    std::lock_guard lock(pinned_mutex_);
    auto it = pinned_.find(static_cast<const std::byte*>(ptr));
    if (it == pinned_.end()) return;
    block = it->second;
    pinned_.erase(it);
  }
  clEnqueueUnmapMemObject(service_queue_, block.buffer, ptr, 0, nullptr, nullptr);
  clFinish(service_queue_);
  clReleaseMemObject(block.buffer);
}

std::unique_ptr<StreamImpl> OpenClDevice::create_stream() {
  ready();
  return std::make_unique<OpenClStream>(state_);
}

std::unique_ptr<EventImpl> OpenClDevice::create_event() {
  ready();
  return std::make_unique<OpenClEvent>(state_);
}

cl_command_queue OpenClDevice::queue_of(StreamImpl& stream, const char* op) {
  ready();
  auto* cl_stream = dynamic_cast<OpenClStream*>(&stream);
  FS_CHECK(cl_stream != nullptr, kInvalidArgument, op, " on ", label_,
           ": the stream belongs to another backend");
  FS_CHECK(&cl_stream->state() == state_.get(), kInvalidArgument, op, " on ", label_,
           ": the stream belongs to ", cl_stream->state().label);
  return cl_stream->queue();
}

void OpenClDevice::copy_to_device(StreamImpl& stream, MemHandle dst, size_t dst_offset,
                                  const void* src, size_t bytes) {
  cl_command_queue queue = queue_of(stream, "copy_to_device");
  if (bytes == 0) return;
  // Blocking even from pinned memory: the contract lets the caller reuse `src` on return.
  // Pinned sources still gain, since the driver can DMA from them without a staging copy.
  FS_CL(label_, clEnqueueWriteBuffer, queue, static_cast<cl_mem>(dst), CL_TRUE, dst_offset, bytes,
        src, 0, nullptr, nullptr);
}

void OpenClDevice::copy_to_host(StreamImpl& stream, void* dst, MemHandle src, size_t src_offset,
                                size_t bytes) {
  cl_command_queue queue = queue_of(stream, "copy_to_host");
  if (bytes == 0) return;
  FS_CL(label_, clEnqueueReadBuffer, queue, static_cast<cl_mem>(src), CL_FALSE, src_offset, bytes,
        dst, 0, nullptr, nullptr);
}

void OpenClDevice::copy_on_device(StreamImpl& stream, MemHandle dst, size_t dst_offset,
                                  MemHandle src, size_t src_offset, size_t bytes) {
  cl_command_queue queue = queue_of(stream, "copy_on_device");
  if (bytes == 0) return;
  auto* dst_mem = static_cast<cl_mem>(dst);
  auto* src_mem = static_cast<cl_mem>(src);
  bool overlap = dst == src && dst_offset < src_offset + bytes && src_offset < dst_offset + bytes;
  if (!overlap) {
    FS_CL(label_, clEnqueueCopyBuffer, queue, src_mem, dst_mem, src_offset, dst_offset, bytes, 0,
          nullptr, nullptr);
    return;
  }
  if (dst_offset == src_offset) return;
  // clEnqueueCopyBuffer rejects overlapping ranges (CL_MEM_COPY_OVERLAP); memmove semantics
  // through a scratch buffer, released at once since OpenCL keeps it alive for the queue.
  cl_mem scratch = static_cast<cl_mem>(allocate(bytes));
  try {
    FS_CL(label_, clEnqueueCopyBuffer, queue, src_mem, scratch, src_offset, 0, bytes, 0, nullptr,
          nullptr);
    FS_CL(label_, clEnqueueCopyBuffer, queue, scratch, dst_mem, 0, dst_offset, bytes, 0, nullptr,
          nullptr);
  } catch (...) {
    clReleaseMemObject(scratch);
    throw;
  }
  clReleaseMemObject(scratch);
}

void OpenClDevice::fill_bytes(StreamImpl& stream, MemHandle dst, size_t offset, size_t bytes,
                              uint8_t value) {
  cl_command_queue queue = queue_of(stream, "fill_bytes");
  if (bytes == 0) return;
  cl_uchar pattern = value;
  cl_int code = clEnqueueFillBuffer(queue, static_cast<cl_mem>(dst), &pattern, sizeof(pattern),
                                    offset, bytes, 0, nullptr, nullptr);
  // Some drivers reject small patterns or odd offsets; the byte kernel has no such limits.
  if (code == CL_INVALID_VALUE || code == CL_INVALID_OPERATION) {
    size_t size = 0;
    FS_CL(label_, clGetMemObjectInfo, static_cast<cl_mem>(dst), CL_MEM_SIZE, sizeof(size), &size,
          nullptr);
    FS_CHECK(offset <= size && bytes <= size - offset, kInvalidArgument, "fill_bytes on ", label_,
             ": bytes [", offset, ", ", offset + bytes, ") outside the ", size, "-byte buffer");
    kernels_->fill(queue, static_cast<cl_mem>(dst), offset, bytes, value);
    return;
  }
  FS_CL_CHECK_CODE(code, "clEnqueueFillBuffer", label_, kOrdinary);
}

void OpenClDevice::copy_strided(StreamImpl& stream, const StridedCopy& copy) {
  cl_command_queue queue = queue_of(stream, "copy_strided");
  kernels_->strided_copy(queue, copy);
}

}  // namespace flagstone::runtime::opencl
