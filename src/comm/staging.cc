// Host staging of device buffers for the host transport.
#include "staging.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace flagstone::comm {

namespace {

// Grows a cached page-locked (when the backend can) host buffer of the comm's device.
char* stage_buffer(fsComm* comm, std::unique_ptr<runtime::PinnedHostBuffer>& slot, size_t bytes) {
  if (!slot || slot->size() < bytes)
    slot = std::make_unique<runtime::PinnedHostBuffer>(comm->device, std::max<size_t>(bytes, 1));
  return static_cast<char*>(slot->data());
}

// Copies result chunks back to the device from a helper thread on a stream of its own: the
// runtime's copy_to_device returns only after it has read the host chunk (for large pinned
// chunks, after the copy), so doing it inline would keep the host from the next chunk's exchange.
class Uploader {
 public:
  Uploader(fsComm* comm, const runtime::Stream& after) : device_(comm->device) {
    if (!comm->upload_stream.defined()) comm->upload_stream = runtime::Stream::create(device_);
    stream_ = comm->upload_stream;
    // Nothing may land in the receive buffer before earlier work on the caller's stream is done.
    runtime::Event start(device_);
    start.record(after);
    stream_.wait(start);
    thread_ = std::thread([this] { loop(); });
  }
  ~Uploader() {
    if (!thread_.joinable()) return;
    close();
    thread_.join();
  }
  Uploader(const Uploader&) = delete;
  Uploader& operator=(const Uploader&) = delete;

  void push(runtime::MemHandle dst, size_t offset, const char* src, size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back({dst, offset, src, bytes});
    wake_.notify_one();
  }
  // Waits for every queued copy and orders later work on `stream` after them; rethrows the first
  // failed copy's error.
  void finish(const runtime::Stream& stream) {
    close();
    thread_.join();
    if (error_) std::rethrow_exception(error_);
    runtime::Event done(device_);
    done.record(stream_);
    stream.wait(done);
  }

 private:
  struct Chunk {
    runtime::MemHandle dst;
    size_t offset;
    const char* src;
    size_t bytes;
  };
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    wake_.notify_one();
  }
  void loop() {
    for (;;) {
      Chunk chunk;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return closed_ || !queue_.empty(); });
        if (queue_.empty()) return;
        chunk = queue_.front();
        queue_.pop_front();
      }
      if (error_) continue;  // drain without copying after a failure
      try {
        device_.impl().copy_to_device(stream_.impl(), chunk.dst, chunk.offset, chunk.src,
                                      chunk.bytes);
      } catch (...) {
        error_ = std::current_exception();
      }
    }
  }

  runtime::Device device_;
  runtime::Stream stream_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Chunk> queue_;
  bool closed_ = false;
  std::exception_ptr error_;  // written by the helper thread only, read after join
};

}  // namespace

runtime::Stream resolve_stream(fsComm* comm, fsStream_t stream, const char* op) {
  if (!stream) return runtime::Stream::default_stream(comm->device);
  const auto* given = static_cast<const runtime::Stream*>(stream);
  if (!given->defined() || given->device() != comm->device)
    fail(fsInvalidArgument, op, " (rank ", comm->rank, "): the stream is not a stream of ",
         comm->config.device);
  return *given;
}

View view_of(fsComm* comm, fsBuf buf) {
  if (!buf.on_device) return {static_cast<char*>(buf.ptr) + buf.offset, false};
  if (comm->host_accessible) {
    void* address = comm->device.impl().host_address(buf.ptr, buf.offset);
    if (!address) address = static_cast<char*>(buf.ptr) + buf.offset;
    return {static_cast<char*>(address), false};
  }
  return {nullptr, true};
}

void run_elementwise(fsComm* comm, const runtime::Stream& stream, const fsBuf* send,
                     const fsBuf* recv, size_t count, size_t esize, const ChunkBody& body,
                     size_t chunk_bytes) {
  View in = send ? view_of(comm, *send) : View{};
  View out = recv ? view_of(comm, *recv) : View{};
  runtime::DeviceImpl& device = comm->device.impl();
  // Host-side memory may still be written by earlier work on the stream.
  if ((send && !in.staged) || (recv && !out.staged)) stream.synchronize();
  if (!chunk_bytes) chunk_bytes = comm->config.stage_bytes;
  size_t chunk = comm->any_staged ? std::max<size_t>(1, chunk_bytes / esize) : count;
  if (chunk == 0) chunk = 1;
  size_t bytes = count * esize;
  std::vector<runtime::Event> ready;
  if (in.staged) {
    in.host = stage_buffer(comm, comm->stage_in, bytes);
    // Queue every device-to-host copy now; each chunk's event lets the network start on it
    // while the copies of the following chunks are still running.
    for (size_t first = 0; first < count; first += chunk) {
      size_t n = std::min(chunk, count - first);
      device.copy_to_host(stream.impl(), in.host + first * esize, send->ptr,
                          send->offset + first * esize, n * esize);
      ready.emplace_back(comm->device);
      ready.back().record(stream);
    }
  }
  if (out.staged) out.host = in.staged ? in.host : stage_buffer(comm, comm->stage_out, bytes);
  size_t index = 0;
  if (count == 0) body(in.host, out.host, 0);
  // Several result chunks: upload them from a helper thread while the next ones are exchanged.
  // Each chunk has its own place in the staging buffer, so nothing is overwritten meanwhile.
  std::unique_ptr<Uploader> uploader;
  if (out.staged && count > chunk) uploader = std::make_unique<Uploader>(comm, stream);
  for (size_t first = 0; first < count; first += chunk, ++index) {
    size_t n = std::min(chunk, count - first);
    if (in.staged) ready[index].synchronize();
    body(in.host ? in.host + first * esize : nullptr, out.host ? out.host + first * esize : nullptr,
         n);
    if (uploader)
      uploader->push(recv->ptr, recv->offset + first * esize, out.host + first * esize, n * esize);
    else if (out.staged)
      device.copy_to_device(stream.impl(), recv->ptr, recv->offset + first * esize,
                            out.host + first * esize, n * esize);
  }
  if (uploader) uploader->finish(stream);
}

void run_whole(fsComm* comm, const runtime::Stream& stream, const fsBuf* send, size_t send_bytes,
               const fsBuf* recv, size_t recv_bytes, const WholeBody& body, bool preserve) {
  View in = send ? view_of(comm, *send) : View{};
  View out = recv ? view_of(comm, *recv) : View{};
  runtime::DeviceImpl& device = comm->device.impl();
  if (in.staged) {
    in.host = stage_buffer(comm, comm->stage_in, send_bytes);
    device.copy_to_host(stream.impl(), in.host, send->ptr, send->offset, send_bytes);
  }
  if (out.staged) {
    out.host = stage_buffer(comm, comm->stage_out, recv_bytes);
    if (preserve) device.copy_to_host(stream.impl(), out.host, recv->ptr, recv->offset, recv_bytes);
  }
  stream.synchronize();
  body(in.host, out.host);
  if (out.staged)
    device.copy_to_device(stream.impl(), recv->ptr, recv->offset, out.host, recv_bytes);
}

}  // namespace flagstone::comm
