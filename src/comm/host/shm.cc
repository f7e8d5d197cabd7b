// POSIX shared-memory segments and the lock-free byte rings inside them.
#include "shm.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

namespace flagstone::comm {

size_t ShmRing::write(const char* src, size_t bytes) {
  uint64_t head = header_->head.load(std::memory_order_relaxed);
  uint64_t tail = header_->tail.load(std::memory_order_acquire);
  size_t space = capacity_ - static_cast<size_t>(head - tail);
  size_t n = std::min(space, bytes);
  if (n == 0) return 0;
  size_t at = static_cast<size_t>(head % capacity_);
  size_t first = std::min(n, capacity_ - at);
  std::memcpy(data_ + at, src, first);
  if (n > first) std::memcpy(data_, src + first, n - first);
  // seq_cst so that the consumer's "waiting" flag is read after the data is published.
  header_->head.store(head + n, std::memory_order_seq_cst);
  return n;
}

size_t ShmRing::read(char* dst, size_t bytes) {
  uint64_t tail = header_->tail.load(std::memory_order_relaxed);
  uint64_t head = header_->head.load(std::memory_order_acquire);
  size_t n = std::min(static_cast<size_t>(head - tail), bytes);
  if (n == 0) return 0;
  size_t at = static_cast<size_t>(tail % capacity_);
  size_t first = std::min(n, capacity_ - at);
  std::memcpy(dst, data_ + at, first);
  if (n > first) std::memcpy(dst + first, data_, n - first);
  header_->tail.store(tail + n, std::memory_order_seq_cst);
  return n;
}

bool ShmRing::can_write() const {
  return header_->head.load() - header_->tail.load() < capacity_;
}

bool ShmRing::can_read() const {
  return header_->head.load() != header_->tail.load();
}

ShmPair::~ShmPair() {
  if (base_) ::munmap(base_, bytes_);
}

bool ShmPair::map(int fd, size_t ring_bytes, bool init, std::string* why) {
  ring_bytes_ = ring_bytes;
  bytes_ = 2 * (sizeof(ShmRingHeader) + ring_bytes);
  if (init && ::ftruncate(fd, static_cast<off_t>(bytes_)) != 0) {
    *why = std::string("ftruncate: ") + std::strerror(errno);
    ::close(fd);
    return false;
  }
  void* base = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (base == MAP_FAILED) {
    *why = std::string("mmap: ") + std::strerror(errno);
    return false;
  }
  base_ = base;
  if (init) {
    for (int i = 0; i < 2; ++i) {
      auto* header = reinterpret_cast<ShmRingHeader*>(static_cast<char*>(base_) +
                                                      i * (sizeof(ShmRingHeader) + ring_bytes));
      new (header) ShmRingHeader{};
      header->head.store(0);
      header->tail.store(0);
      header->consumer_waiting.store(0);
      header->producer_waiting.store(0);
    }
  }
  return true;
}

bool ShmPair::create(const std::string& name, size_t ring_bytes, std::string* why) {
  name_ = name;
  int fd = ::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    *why = "shm_open(" + name + "): " + std::strerror(errno);
    return false;
  }
  if (!map(fd, ring_bytes, true, why)) {
    unlink_name();
    return false;
  }
  return true;
}

bool ShmPair::open(const std::string& name, size_t ring_bytes, std::string* why) {
  name_ = name;
  int fd = ::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    *why = "shm_open(" + name + "): " + std::strerror(errno);
    return false;
  }
  return map(fd, ring_bytes, false, why);
}

void ShmPair::unlink_name() {
  if (!name_.empty()) ::shm_unlink(name_.c_str());
  name_.clear();
}

ShmRing ShmPair::ring(int index) const {
  char* at = static_cast<char*>(base_) + index * (sizeof(ShmRingHeader) + ring_bytes_);
  return ShmRing(reinterpret_cast<ShmRingHeader*>(at), at + sizeof(ShmRingHeader), ring_bytes_);
}

}  // namespace flagstone::comm
