// Host staging of device buffers for the host transport.
#include "staging.h"

#include <algorithm>
#include <memory>
#include <vector>

namespace flagstone::comm {

namespace {

// Grows a cached page-locked (when the backend can) host buffer of the comm's device.
char* stage_buffer(fsComm* comm, std::unique_ptr<runtime::PinnedHostBuffer>& slot, size_t bytes) {
  if (!slot || slot->size() < bytes)
    slot = std::make_unique<runtime::PinnedHostBuffer>(comm->device, std::max<size_t>(bytes, 1));
  return static_cast<char*>(slot->data());
}

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
                     const fsBuf* recv, size_t count, size_t esize, const ChunkBody& body) {
  View in = send ? view_of(comm, *send) : View{};
  View out = recv ? view_of(comm, *recv) : View{};
  runtime::DeviceImpl& device = comm->device.impl();
  // Host-side memory may still be written by earlier work on the stream.
  if ((send && !in.staged) || (recv && !out.staged)) stream.synchronize();
  size_t chunk = comm->any_staged ? std::max<size_t>(1, comm->config.stage_bytes / esize) : count;
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
  for (size_t first = 0; first < count; first += chunk, ++index) {
    size_t n = std::min(chunk, count - first);
    if (in.staged) ready[index].synchronize();
    body(in.host ? in.host + first * esize : nullptr, out.host ? out.host + first * esize : nullptr,
         n);
    // copy_to_device reads the host chunk before it returns, so the buffer is free afterwards.
    if (out.staged)
      device.copy_to_device(stream.impl(), recv->ptr, recv->offset + first * esize,
                            out.host + first * esize, n * esize);
  }
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
