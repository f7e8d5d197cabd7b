// Collective algorithms over the host transport on host memory: pipelined ring, recursive
// doubling, binomial tree, chain and direct exchanges, plus the cost model that picks among them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "flagstone/comm.h"
#include "transport.h"

namespace flagstone::comm {

enum class Algo { kAuto, kRing, kTree, kRhd, kDirect };
Algo parse_algo(const std::string& text);  // throws fsInvalidArgument naming the text
const char* algo_name(Algo algo);

enum class OpKind : uint8_t {
  kAllReduce,
  kReduce,
  kBroadcast,
  kAllGather,
  kReduceScatter,
  kGather,
  kScatter,
  kAllToAll,
  kAllToAllv,
  kSend,
  kBarrier,
  kSplit,
  kRecv,
};
const char* op_name(OpKind kind);  // "fsAllReduce"...

// One collective call as the algorithms see it.
struct HostOp {
  Transport& transport;
  Deadline deadline;
  std::string name;  // "fsAllReduce(rank 1 of 4)" for messages
  uint32_t seq = 0;
  Algo algo = Algo::kAuto;
  size_t chunk_bytes = 256 << 10;
  bool check = true;  // exchange a header with the ring neighbours to catch mismatched calls
  // The ranks taking part, in order (empty: all of the transport's); ranks below are indices
  // into this list, so an algorithm can run over a subset such as one rank per device cluster.
  std::vector<int> members;
  int member_index = 0;

  int rank() const { return members.empty() ? transport.rank() : member_index; }
  int nranks() const {
    return members.empty() ? transport.nranks() : static_cast<int>(members.size());
  }
  int global(int index) const { return members.empty() ? index : members[index]; }
  void send(int peer, const void* data, size_t bytes, Transport::Callback done = {}) {
    transport.send(global(peer), data, bytes, std::move(done));
  }
  void recv(int peer, void* data, size_t bytes, Transport::Callback done = {}) {
    transport.recv(global(peer), data, bytes, std::move(done));
  }
  void wait() { transport.wait(deadline, name); }
};

// The fields of a reduction call that every rank must pass alike; differing ones throw
// fsInvalidArgument starting with `who` (which names the two ranks).
struct ReductionFields {
  uint64_t count = 0;
  fsDataType_t dtype = fsFloat32;
  fsRedOp_t redop = fsSum;
};
void check_same_fields(const std::string& who, const ReductionFields& mine,
                       const ReductionFields& theirs);

// Describes the call to the ring neighbours and compares theirs: count/dtype/op/root mismatches
// become fsInvalidArgument naming both ranks. Fields that legitimately differ are passed as 0.
void check_call(HostOp& op, OpKind kind, uint64_t count, fsDataType_t dtype, fsRedOp_t redop,
                int root);

// The algorithm the cost model (or the user's override) picks for a message of `bytes`.
Algo choose_allreduce(const HostOp& op, size_t bytes);

void host_all_reduce(HostOp& op, const void* send, void* recv, size_t count, fsDataType_t dtype,
                     fsRedOp_t redop);
void host_reduce(HostOp& op, const void* send, void* recv, size_t count, fsDataType_t dtype,
                 fsRedOp_t redop, int root);
void host_broadcast(HostOp& op, const void* send, void* recv, size_t count, fsDataType_t dtype,
                    int root);
void host_all_gather(HostOp& op, const void* send, void* recv, size_t count, fsDataType_t dtype);
void host_reduce_scatter(HostOp& op, const void* send, void* recv, size_t count, fsDataType_t dtype,
                         fsRedOp_t redop);
void host_gather(HostOp& op, const void* send, void* recv, size_t count, fsDataType_t dtype,
                 int root);
void host_scatter(HostOp& op, const void* send, void* recv, size_t count, fsDataType_t dtype,
                  int root);
// Counts and displacements in elements, one per rank; pairs exchange and check counts first.
void host_all_to_allv(HostOp& op, const void* send, const size_t* send_counts,
                      const size_t* send_displs, void* recv, const size_t* recv_counts,
                      const size_t* recv_displs, fsDataType_t dtype);
void host_barrier(HostOp& op);

// Point-to-point: each entry moves `count` elements to or from `peer`, all at once.
struct P2p {
  bool send = true;
  int peer = 0;
  void* data = nullptr;
  size_t count = 0;
  fsDataType_t dtype = fsUint8;
};
void host_p2p(HostOp& op, std::vector<P2p>& ops);

}  // namespace flagstone::comm
