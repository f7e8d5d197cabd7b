// When an all-reduce takes the shared-memory arena instead of the ring, and the arenas' lazy,
// collective setup; a failed setup is remembered so that later calls go straight to the ring.
#include <cstdio>

#include "comm_impl.h"
#include "host/arena.h"

namespace flagstone::comm {

namespace {

// Every input of this decision is the same on all members (configuration and call), so they all
// reach the collective setup together.
bool wanted(const ResolvedConfig& config, int members, size_t total_bytes) {
  if (config.arena_bytes < 0 || config.algo != Algo::kAuto || !config.use_shm) return false;
  if (total_bytes == 0 || total_bytes < static_cast<size_t>(config.arena_bytes)) return false;
  return members >= 2;
}

}  // namespace

size_t arena_chunk_bytes(fsComm* comm, int members, size_t total_bytes, size_t esize) {
  if (!wanted(comm->config, members, total_bytes)) return 0;
  return Arena::chunk_for(Arena::slot_for(comm->config.arena_slot_bytes, members), total_bytes,
                          esize);
}

Arena* arena_for(fsComm* comm, HostOp& op, bool cross, size_t total_bytes, bool device_member,
                 const ArenaPin* pin) {
  const ResolvedConfig& config = comm->config;
  if (!wanted(config, op.nranks(), total_bytes)) return nullptr;
  std::shared_ptr<Arena>& arena = cross ? comm->cross_arena : comm->arena;
  bool& failed = cross ? comm->cross_arena_failed : comm->arena_failed;
  if (arena) return arena.get();
  if (failed) return nullptr;
  // Members whose pairs run over TCP (another host, or shm refused) cannot share a segment;
  // fold that into the setup's vote by asking for an impossible slot size.
  bool local = true;
  for (int m = 0; m < op.nranks(); ++m)
    if (m != op.rank()) local = local && op.transport.uses_shm(op.global(m));
  char name[96];
  std::snprintf(name, sizeof(name), "/flagstone-arena-%016llx-%d",
                static_cast<unsigned long long>(comm->peers[0].magic), cross ? 1 : 0);
  size_t slot = local ? Arena::slot_for(config.arena_slot_bytes, op.nranks()) : 0;
  HostOp setup = op;
  setup.name = op.name + " (shared-memory arena setup)";
  arena = Arena::open(setup, name, slot, device_member, pin);
  failed = !arena;
  return arena.get();
}

}  // namespace flagstone::comm
