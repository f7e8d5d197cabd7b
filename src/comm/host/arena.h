// The shared-memory arena of the ranks of one host: one segment mapped by every member, with a
// few chunk slots per member and shared result slots, so all-reduce runs without a ring.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "algorithms.h"

namespace flagstone::comm {

// Page-locks the mapping for a member whose device copies land in the arena directly (the CUDA
// cluster leader registers it with cudaHostRegister); `unpin` runs before it is unmapped.
struct ArenaPin {
  std::function<bool(void* base, size_t bytes)> pin;
  std::function<void(void* base)> unpin;
};

// A member that feeds and drains its chunks by asynchronous device copies straight into its slot
// and out of the result slot, instead of host memcpy. Indices count chunks of one call.
class ArenaDevice {
 public:
  virtual ~ArenaDevice() = default;
  virtual void copy_out(size_t index, char* slot, size_t first, size_t n) = 0;
  virtual bool out_done(size_t index) = 0;
  virtual void copy_in(size_t index, const char* result, size_t first, size_t n) = 0;
  virtual bool in_done(size_t index) = 0;
};

struct ArenaMember;

class Arena {
 public:
  // Collective over op's members: the lowest creates `name` sized for `slots` chunk slots of
  // `slot_bytes` per member plus as many shared result slots, the others map it. Every member
  // gets nullptr alike when any of them could not (no space in /dev/shm, pinning refused,
  // different slot sizes), and the caller keeps its ring path.
  static std::unique_ptr<Arena> open(HostOp& op, const std::string& name, size_t slot_bytes,
                                     bool device_member, const ArenaPin* pin);
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  size_t slot_bytes() const { return slot_bytes_; }
  int slots() const { return slots_; }
  // The slot size for `members` that want `wanted` bytes: the whole segment stays within
  // 256 MiB. The same on every member.
  static size_t slot_for(size_t wanted, int members);
  // The chunk of an all-reduce of `total_bytes`: an eighth of it, at least 1 MiB (or the slot),
  // at most the slot, a multiple of `esize`; small calls pipeline, large ones amortize the
  // hand-offs. Every member computes it alike.
  static size_t chunk_for(size_t slot_bytes, size_t total_bytes, size_t esize);

  // One all-reduce over the members. Host members pass their input and output (may alias);
  // fsAvg divides by `avg_divisor`. Every member must call with the same count, dtype and redop
  // (checked when op.check). A member that stages may feed a call of `total` elements in parts
  // of chunk_for(...) elements, one call each. Any failure throws CommError and leaves the arena
  // unusable.
  void all_reduce(HostOp& op, const char* in, char* out, size_t count, fsDataType_t dtype,
                  fsRedOp_t redop, int avg_divisor, size_t total = 0);
  // The same call for a device member, whose data moves through `device` (the host members
  // reduce, fsAvg included).
  void all_reduce(HostOp& op, ArenaDevice& device, size_t count, fsDataType_t dtype,
                  fsRedOp_t redop);

 private:
  Arena() = default;
  enum Counter { kPublished, kReduced, kConsumed };
  struct Portion {
    size_t first = 0, end = 0;
  };
  char* slot(int member, uint32_t chunk) const;
  char* result(uint32_t chunk) const;
  std::atomic<uint32_t>& counter(int member, Counter which) const;
  Portion portion(int member, size_t n) const;
  void post(Counter which, uint32_t value);
  // Blocks until every member's `which` counter reaches `value`, checking for abort, dead
  // peers and the deadline while it waits.
  void wait_all(HostOp& op, Counter which, uint32_t value);
  void wait_until(HostOp& op, const std::function<bool()>& ready, std::atomic<uint32_t>* word,
                  const char* what, int member);
  // Throws when the communicator was aborted, the deadline passed, or `member` has gone while
  // `still_waiting()` (asked after the liveness check) says its part has not arrived.
  void check_alive(HostOp& op, const char* what, int member,
                   const std::function<bool()>& still_waiting);
  void describe(uint32_t chunk, size_t n, fsDataType_t dtype, fsRedOp_t redop);
  void compare_calls(HostOp& op, uint32_t chunk);
  void reduce_portion(uint32_t chunk, const char* in, char* out, size_t first, size_t end,
                      fsDataType_t dtype, fsRedOp_t redop, int avg_divisor);

  void* base_ = nullptr;
  size_t bytes_ = 0;
  size_t slot_bytes_ = 0;
  size_t stride_ = 0;
  int slots_ = 0;
  int members_ = 0;
  int me_ = 0;
  std::vector<int> host_members_;  // members that reduce a portion, in member order
  ArenaMember* header_ = nullptr;
  char* data_ = nullptr;
  uint32_t next_chunk_ = 0;  // chunks run so far, the same on every member
  bool broken_ = false;
  ArenaPin pin_;
  bool pinned_ = false;
};

}  // namespace flagstone::comm
