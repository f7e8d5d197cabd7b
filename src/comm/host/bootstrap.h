// Bootstrap: the unique id names a rendezvous server (a TCP listener plus a random magic); every
// rank reports its own listener, host and device there, gets the table back, then connects a mesh.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "socket.h"

namespace flagstone::comm {

// What each rank tells the others at bootstrap; fixed layout because it travels as bytes.
struct PeerInfo {
  uint64_t magic = 0;
  int32_t rank = -1;
  int32_t nranks = 0;
  int32_t pid = 0;
  uint16_t port = 0;       // the rank's mesh listener
  uint16_t use_shm = 0;    // both sides of a same-host pair must agree to use shared memory
  char ip[48] = {};        // filled by the server from the connection's source address
  char host[64] = {};      // hostname: ranks with equal hosts may use shared memory
  char device[32] = {};    // "cpu", "cuda:0", "opencl:0"
  uint64_t host_hash = 0;  // boot id + hostname, so containers with equal names stay apart
  // Hash of the physical device (the PCI bus id of a GPU), 0 when unknown: "cuda:0" in two
  // processes with different CUDA_VISIBLE_DEVICES may be two GPUs, or one under two names.
  uint64_t device_uid = 0;
};

struct UniqueIdParts {
  std::string host;
  uint16_t port = 0;
  uint64_t magic = 0;
};

UniqueIdParts parse_unique_id(const fsUniqueId& id);
fsUniqueId make_unique_id(const UniqueIdParts& parts);

// Starts a detached rendezvous server for one communicator on `port` (0: any free port) and
// returns its id. The server lives until all ranks registered or `timeout_ms` passed. magic 0
// draws a random one.
fsUniqueId start_rendezvous(uint16_t port, int64_t timeout_ms, uint64_t magic = 0);

// Registers `self` (rank, nranks, port, host, device) and returns every rank's PeerInfo.
std::vector<PeerInfo> rendezvous(const fsUniqueId& id, PeerInfo self, const Deadline& deadline,
                                 int abort_fd);

// Connects one socket to each other rank: rank r connects to lower ranks and accepts higher
// ones on `listener`. fds[rank] stays invalid for self.
std::vector<Fd> connect_mesh(const std::vector<PeerInfo>& peers, int rank, int listener,
                             uint64_t magic, const Deadline& deadline, int abort_fd);

uint64_t this_host_hash();

}  // namespace flagstone::comm
