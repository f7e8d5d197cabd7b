// Device buffers seen from the host path: host-accessible memory is used in place; other device
// memory is staged through host buffers with the runtime's copies, chunked and ordered on the
// caller's stream so device-to-host copies of later chunks overlap the network of earlier ones.
#pragma once

#include <functional>

#include "comm_impl.h"

namespace flagstone::comm {

runtime::Stream resolve_stream(fsComm* comm, fsStream_t stream, const char* op);

// Where the host path can read or write a buffer: `host` is set unless the memory needs staging.
struct View {
  char* host = nullptr;
  bool staged = false;
};
View view_of(fsComm* comm, fsBuf buf);

// Element-wise operations (all-reduce, reduce, broadcast): body(in, out, first, n) runs chunk by
// chunk when any rank of the comm stages (every rank chunks alike, so calls stay matched).
using ChunkBody = std::function<void(const char* in, char* out, size_t n)>;
// `chunk_bytes` (0: FLAGSTONE_COMM_STAGE_BYTES) must be the same on every rank.
void run_elementwise(fsComm* comm, const runtime::Stream& stream, const fsBuf* send,
                     const fsBuf* recv, size_t count, size_t esize, const ChunkBody& body,
                     size_t chunk_bytes = 0);

// Other operations: the whole send buffer comes to the host first, the whole result goes back.
// `preserve` first fetches the receive buffer too, for calls that leave parts of it untouched
// (the gaps between all-to-all-v blocks).
using WholeBody = std::function<void(const char* in, char* out)>;
void run_whole(fsComm* comm, const runtime::Stream& stream, const fsBuf* send, size_t send_bytes,
               const fsBuf* recv, size_t recv_bytes, const WholeBody& body, bool preserve = false);

}  // namespace flagstone::comm
