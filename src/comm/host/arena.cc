// The shared-memory arena: segment setup shared by all members, counters with futex sleeps, and
// the chunked all-reduce in which each host member reduces one portion of every chunk with the
// process's thread pool, straight out of the other members' slots.
#include "arena.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <new>
#include <thread>

#include "flagstone/runtime/thread_pool.h"
#include "reduce.h"

namespace flagstone::comm {

namespace {

// Three chunks in flight per member: one being reduced, the next two being filled (by a device
// copy of the CUDA leader, which runs ahead) while the previous result drains.
constexpr int kSlots = 3;
// Block of one thread-pool task: large enough to amortize the dispatch, small enough that the
// partial sums stay in the core's cache between reducing and copying to the result slot.
constexpr size_t kBlockBytes = 256 << 10;

struct alignas(64) Line {
  std::atomic<uint32_t> value;
};

struct CallDesc {
  uint64_t count;
  uint8_t dtype, redop, pad[6];
};

}  // namespace

// One member's part of the segment header; only its owner writes it.
struct ArenaMember {
  Line counters[3];  // published, reduced, consumed: chunks done, ever
  Line sleepers;     // members asleep on one of these counters
  uint32_t device_member;
  CallDesc desc[kSlots];  // the call of the chunk in each slot, for mismatch checks
};

namespace {

long futex(std::atomic<uint32_t>* word, int op, uint32_t value, const timespec* timeout) {
  // Not FUTEX_PRIVATE_FLAG: the word lives in a segment shared with other processes.
  return ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), op, value, timeout, nullptr, 0);
}

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// a >= b for counters that may wrap.
bool reached(uint32_t a, uint32_t b) {
  return static_cast<int32_t>(a - b) >= 0;
}

// Memcpy of [first, end) elements on the thread pool.
void parallel_copy(char* dst, const char* src, size_t first, size_t end, size_t esize) {
  if (end <= first) return;
  size_t block = std::max<size_t>(1, kBlockBytes / esize);
  int64_t blocks = static_cast<int64_t>((end - first + block - 1) / block);
  runtime::cpu_thread_pool().parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    size_t s = first + static_cast<size_t>(b0) * block;
    size_t e = std::min(end, first + static_cast<size_t>(b1) * block);
    std::memcpy(dst + s * esize, src + s * esize, (e - s) * esize);
  });
}

size_t header_bytes(int members) {
  return (sizeof(ArenaMember) * static_cast<size_t>(members) + 4095) / 4096 * 4096;
}

}  // namespace

std::unique_ptr<Arena> Arena::open(HostOp& op, const std::string& name, size_t slot_bytes,
                                   bool device_member, const ArenaPin* pin) {
  std::unique_ptr<Arena> arena(new Arena());
  Arena& a = *arena;
  a.members_ = op.nranks();
  a.me_ = op.rank();
  a.slots_ = kSlots;
  // Chunks are at most slot_bytes (see chunk_for); slots start on cache lines.
  a.slot_bytes_ = slot_bytes;
  a.stride_ = (slot_bytes + 63) / 64 * 64;
  a.bytes_ = header_bytes(a.members_) +
             a.stride_ * static_cast<size_t>(kSlots) * static_cast<size_t>(a.members_ + 1);
  bool creator = a.me_ == 0;
  auto map = [&](int fd) {
    void* base = ::mmap(nullptr, a.bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (base == MAP_FAILED) return false;
    a.base_ = base;
    return true;
  };
  // A slot size of 0 is how a member says it cannot take part (a peer not on shared memory).
  int64_t ok = slot_bytes > 0;
  if (creator && ok) {
    int fd = ::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    // posix_fallocate, not only ftruncate: a full /dev/shm must fail here, not as SIGBUS later.
    ok = fd >= 0 && ::ftruncate(fd, static_cast<off_t>(a.bytes_)) == 0 &&
         ::posix_fallocate(fd, 0, static_cast<off_t>(a.bytes_)) == 0;
    if (fd >= 0 && !ok) ::close(fd);
    if (ok) ok = map(fd);
    if (ok) {
      for (int m = 0; m < a.members_; ++m)
        new (static_cast<char*>(a.base_) + m * sizeof(ArenaMember)) ArenaMember{};
    } else if (fd >= 0) {
      ::shm_unlink(name.c_str());
    }
  }
  // A vote that throws (a peer died or hung during setup) must not leave the name behind.
  auto vote = [&](const int64_t* mine, int64_t* all, size_t count) {
    try {
      host_all_reduce(op, mine, all, count, fsInt64, fsMin);
    } catch (...) {
      if (creator) ::shm_unlink(name.c_str());
      throw;
    }
  };
  // First vote: the segment exists and everyone asks for the same slot size.
  int64_t mine[3] = {ok, static_cast<int64_t>(a.slot_bytes_), -static_cast<int64_t>(a.slot_bytes_)};
  int64_t all[3] = {0, 0, 0};
  vote(mine, all, 3);
  auto give_up = [&] {
    if (a.pinned_ && a.pin_.unpin) a.pin_.unpin(a.base_);
    a.pinned_ = false;
    if (creator) ::shm_unlink(name.c_str());
    return nullptr;
  };
  if (!all[0] || all[1] != -all[2]) return give_up();
  ok = 1;
  if (!creator) {
    int fd = ::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0600);
    struct stat info {};
    ok = fd >= 0 && ::fstat(fd, &info) == 0 && static_cast<size_t>(info.st_size) == a.bytes_;
    if (fd >= 0 && !ok) ::close(fd);
    if (ok) ok = map(fd);
  }
  if (ok && device_member && pin) {
    a.pin_ = *pin;
    a.pinned_ = a.pin_.pin(a.base_, a.bytes_);
    ok = a.pinned_;
  }
  a.header_ = static_cast<ArenaMember*>(a.base_);
  if (ok) a.header_[a.me_].device_member = device_member ? 1 : 0;
  // Second vote: everyone mapped (and pinned) it; only then may the name go.
  int64_t ready = ok, all_ready = 0;
  vote(&ready, &all_ready, 1);
  if (!all_ready) return give_up();
  if (creator) ::shm_unlink(name.c_str());
  a.data_ = static_cast<char*>(a.base_) + header_bytes(a.members_);
  for (int m = 0; m < a.members_; ++m)
    if (!a.header_[m].device_member) a.host_members_.push_back(m);
  // Someone must reduce: device members only feed and drain (every member sees the same flags).
  if (a.host_members_.empty()) return give_up();
  return arena;
}

size_t Arena::slot_for(size_t wanted, int members) {
  size_t cap = (size_t{256} << 20) / (static_cast<size_t>(kSlots) * (members + 1));
  return std::max<size_t>(4096, std::min(wanted, cap) / 4096 * 4096);
}

size_t Arena::chunk_for(size_t slot_bytes, size_t total_bytes, size_t esize) {
  size_t bytes =
      std::min(slot_bytes, std::max(std::min<size_t>(slot_bytes, 1 << 20), total_bytes / 8));
  return std::max<size_t>(1, bytes / esize) * esize;
}

Arena::~Arena() {
  if (pinned_ && pin_.unpin) pin_.unpin(base_);
  if (base_) ::munmap(base_, bytes_);
}

char* Arena::slot(int member, uint32_t chunk) const {
  size_t index = static_cast<size_t>(chunk % kSlots) * static_cast<size_t>(members_ + 1) +
                 static_cast<size_t>(member);
  return data_ + index * stride_;
}

char* Arena::result(uint32_t chunk) const {
  return slot(members_, chunk);
}

std::atomic<uint32_t>& Arena::counter(int member, Counter which) const {
  return header_[member].counters[which].value;
}

Arena::Portion Arena::portion(int member, size_t n) const {
  auto it = std::find(host_members_.begin(), host_members_.end(), member);
  if (it == host_members_.end()) return {};
  size_t h = static_cast<size_t>(it - host_members_.begin()), parts = host_members_.size();
  return {n * h / parts, n * (h + 1) / parts};
}

void Arena::post(Counter which, uint32_t value) {
  std::atomic<uint32_t>& word = counter(me_, which);
  word.store(value);
  if (header_[me_].sleepers.value.load() > 0) futex(&word, FUTEX_WAKE, INT32_MAX, nullptr);
}

void Arena::check_alive(HostOp& op, const char* what, int member,
                        const std::function<bool()>& still_waiting) {
  pollfd abort{op.transport.abort_fd(), POLLIN, 0};
  if (abort.fd >= 0 && ::poll(&abort, 1, 0) > 0 && (abort.revents & POLLIN))
    fail(fsAborted, op.name, ": rank ", op.transport.rank(), ": the communicator was aborted");
  // A member that posted what we wait for and then exited is done, not dead: its post may have
  // become visible after the caller last looked, so the caller looks again once it is gone.
  if (member >= 0 && member != me_ && op.transport.peer_gone(op.global(member)) && still_waiting())
    fail(fsRemoteError, op.name, ": rank ", op.transport.rank(), " lost its connection to rank ",
         op.global(member), " while waiting for its ", what, ": that rank died, aborted or failed");
  if (op.deadline.expired()) {
    std::string who = member >= 0 ? detail::concat("rank ", op.global(member)) : "its device";
    fail(fsTimeout, op.name, ": rank ", op.transport.rank(), " timed out after ",
         op.deadline.timeout_ms, " ms waiting for ", who, " (", what,
         "; a peer is hung, dead, or did not call the same operation)");
  }
}

void Arena::wait_until(HostOp& op, const std::function<bool()>& ready, std::atomic<uint32_t>* word,
                       const char* what, int member) {
  if (ready()) return;
  Clock::time_point now = Clock::now();
  Clock::time_point spin_end = now + std::chrono::microseconds(op.transport.spin_us());
  Clock::time_point next_check = now;
  for (;;) {
    if (ready()) return;
    now = Clock::now();
    if (now < spin_end) {
      cpu_relax();
      continue;
    }
    if (now >= next_check) {
      check_alive(op, what, member, [&] { return !ready(); });
      next_check = now + std::chrono::milliseconds(1);
      // Something the peer did may have become visible while the check ran.
      if (ready()) return;
    }
    std::atomic<uint32_t>& sleepers = header_[member].sleepers.value;
    sleepers.fetch_add(1);
    uint32_t seen = word->load();
    timespec slice{0, 1000000};
    if (!ready()) futex(word, FUTEX_WAIT, seen, &slice);
    sleepers.fetch_sub(1);
  }
}

void Arena::wait_all(HostOp& op, Counter which, uint32_t value) {
  static const char* const kWhat[] = {"data of this chunk", "part of the reduction",
                                      "copy of an earlier result"};
  for (int m = 0; m < members_; ++m) {
    if (m == me_) continue;
    std::atomic<uint32_t>* word = &counter(m, which);
    wait_until(
        op, [word, value] { return reached(word->load(), value); }, word, kWhat[which], m);
  }
}

void Arena::describe(uint32_t chunk, size_t n, fsDataType_t dtype, fsRedOp_t redop) {
  CallDesc& desc = header_[me_].desc[chunk % kSlots];
  desc.count = n;
  desc.dtype = static_cast<uint8_t>(dtype);
  desc.redop = static_cast<uint8_t>(redop);
}

void Arena::compare_calls(HostOp& op, uint32_t chunk) {
  auto fields = [chunk](const ArenaMember& member) {
    const CallDesc& desc = member.desc[chunk % kSlots];
    return ReductionFields{desc.count, static_cast<fsDataType_t>(desc.dtype),
                           static_cast<fsRedOp_t>(desc.redop)};
  };
  for (int m = 0; m < members_; ++m)
    check_same_fields(detail::concat(op.name, ": rank ", op.global(me_), " and rank ", op.global(m),
                                     " (counts of one arena chunk)"),
                      fields(header_[me_]), fields(header_[m]));
}

void Arena::reduce_portion(uint32_t chunk, const char* in, char* out, size_t first, size_t end,
                           fsDataType_t dtype, fsRedOp_t redop, int avg_divisor) {
  if (end <= first) return;
  size_t esize = dtype_bytes(dtype);
  size_t block = std::max<size_t>(1, kBlockBytes / esize);
  int64_t blocks = static_cast<int64_t>((end - first + block - 1) / block);
  char* res = result(chunk);
  runtime::cpu_thread_pool().parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      size_t s = first + static_cast<size_t>(b) * block, n = std::min(end, s + block) - s;
      size_t at = s * esize;
      char* acc = out + at;
      bool started = false;
      for (int m = 0; m < members_; ++m) {
        if (m == me_) continue;
        if (!started)
          reduce_pair(acc, in + at, slot(m, chunk) + at, n, dtype, redop);
        else
          reduce_into(acc, slot(m, chunk) + at, n, dtype, redop);
        started = true;
      }
      if (!started) std::memmove(acc, in + at, n * esize);
      if (redop == fsAvg) finish_average(acc, n, dtype, avg_divisor);
      std::memcpy(res + at, acc, n * esize);
    }
  });
}

void Arena::all_reduce(HostOp& op, const char* in, char* out, size_t count, fsDataType_t dtype,
                       fsRedOp_t redop, int avg_divisor, size_t total) {
  if (broken_)
    fail(fsInvalidUsage, op.name, ": the shared-memory arena is unusable after an earlier error");
  size_t esize = dtype_bytes(dtype);
  size_t per = chunk_for(slot_bytes_, (total ? total : count) * esize, esize) / esize;
  try {
    for (size_t first = 0; first < count; first += per) {
      size_t n = std::min(per, count - first);
      uint32_t chunk = next_chunk_++;
      const char* src = in + first * esize;
      char* dst = out + first * esize;
      Portion own = portion(me_, n);
      // The call descriptor and the result slot of this chunk's slot are free once every member
      // has taken the chunk that used them before (a device member compares calls only then).
      if (chunk + 1 > static_cast<uint32_t>(kSlots)) wait_all(op, kConsumed, chunk + 1 - kSlots);
      describe(chunk, n, dtype, redop);
      char* mine = slot(me_, chunk);
      parallel_copy(mine, src, 0, own.first, esize);
      parallel_copy(mine, src, own.end, n, esize);
      post(kPublished, chunk + 1);
      wait_all(op, kPublished, chunk + 1);
      if (op.check) compare_calls(op, chunk);
      reduce_portion(chunk, src, dst, own.first, own.end, dtype, redop, avg_divisor);
      post(kReduced, chunk + 1);
      wait_all(op, kReduced, chunk + 1);
      parallel_copy(dst, result(chunk), 0, own.first, esize);
      parallel_copy(dst, result(chunk), own.end, n, esize);
      post(kConsumed, chunk + 1);
    }
  } catch (...) {
    broken_ = true;
    throw;
  }
}

void Arena::all_reduce(HostOp& op, ArenaDevice& device, size_t count, fsDataType_t dtype,
                       fsRedOp_t redop) {
  if (broken_)
    fail(fsInvalidUsage, op.name, ": the shared-memory arena is unusable after an earlier error");
  size_t esize = dtype_bytes(dtype), per = chunk_for(slot_bytes_, count * esize, esize) / esize;
  size_t chunks = (count + per - 1) / per;
  uint32_t base = next_chunk_;
  next_chunk_ += static_cast<uint32_t>(chunks);
  auto elements = [&](size_t i) { return std::min(per, count - i * per); };
  auto chunk_of = [&](size_t i) { return base + static_cast<uint32_t>(i); };
  // Chunk indices of this call: copied out (issued), handed to the others (published), result
  // copy issued (finished), result on the device (drained). A device member reduces nothing, so
  // it never waits in lockstep with the host members: it publishes each chunk as soon as its
  // copy lands and takes each result as soon as every host member has reduced it.
  size_t issued = 0, published = 0, finished = 0, drained = 0;
  auto issue_until = [&](size_t limit) {
    for (; issued < chunks && issued < limit; ++issued)
      device.copy_out(issued, slot(me_, chunk_of(issued)), issued * per, elements(issued));
  };
  // The first member that has not reduced chunk `index` yet, or -1.
  auto lagging = [&](size_t index) {
    for (int m = 0; m < members_; ++m)
      if (m != me_ && !reached(counter(m, kReduced).load(), chunk_of(index) + 1)) return m;
    return -1;
  };
  try {
    // A slot is free once every member has reduced the chunk that used it before, so the
    // device-to-host copies run up to kSlots chunks ahead.
    issue_until(kSlots);
    Clock::time_point idle_since = Clock::now(), next_check = idle_since;
    while (drained < chunks) {
      bool progress = false;
      for (; published < issued && device.out_done(published); ++published, progress = true) {
        describe(chunk_of(published), elements(published), dtype, redop);
        post(kPublished, chunk_of(published) + 1);
        post(kReduced, chunk_of(published) + 1);  // nothing of it to reduce here
      }
      // The result copy of a chunk reuses the copy events of the chunk kSlots before it.
      for (; finished < published && lagging(finished) < 0 &&
             finished < drained + static_cast<size_t>(kSlots);
           ++finished, progress = true) {
        if (op.check) compare_calls(op, chunk_of(finished));
        device.copy_in(finished, result(chunk_of(finished)), finished * per, elements(finished));
        issue_until(finished + 1 + kSlots);
      }
      // Results on the device free their result slot for the host members.
      for (; drained < finished && device.in_done(drained); ++drained, progress = true)
        post(kConsumed, chunk_of(drained) + 1);
      Clock::time_point now = Clock::now();
      if (progress) {
        idle_since = now;
        continue;
      }
      if (now - idle_since < std::chrono::microseconds(op.transport.spin_us())) {
        cpu_relax();
        continue;
      }
      if (now >= next_check) {
        int member = finished < published ? lagging(finished) : -1;
        check_alive(op, member >= 0 ? "part of the reduction" : "device copies", member,
                    [&] { return lagging(finished) == member; });
        next_check = now + std::chrono::milliseconds(1);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  } catch (...) {
    broken_ = true;
    throw;
  }
}

}  // namespace flagstone::comm
