// Shared-memory rings between two processes of one host: one POSIX shm segment per rank pair,
// one single-producer/single-consumer byte ring per direction, with "waiting" flags so that a
// side about to sleep in poll() gets a one-byte doorbell on the pair's TCP socket.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

namespace flagstone::comm {

struct ShmRingHeader {
  alignas(64) std::atomic<uint64_t> head;  // bytes written, ever (producer)
  alignas(64) std::atomic<uint64_t> tail;  // bytes read, ever (consumer)
  alignas(64) std::atomic<uint32_t> consumer_waiting;
  alignas(64) std::atomic<uint32_t> producer_waiting;
};

class ShmRing {
 public:
  ShmRing() = default;
  ShmRing(ShmRingHeader* header, char* data, size_t capacity)
      : header_(header), data_(data), capacity_(capacity) {}
  bool valid() const { return header_ != nullptr; }
  // Copies as much as fits / is there; returns the byte count moved.
  size_t write(const char* src, size_t bytes);
  size_t read(char* dst, size_t bytes);
  bool can_write() const;
  bool can_read() const;
  ShmRingHeader* header() const { return header_; }

 private:
  ShmRingHeader* header_ = nullptr;
  char* data_ = nullptr;
  size_t capacity_ = 0;
};

// One mapped segment holding the two rings of a rank pair.
class ShmPair {
 public:
  ShmPair() = default;
  ~ShmPair();
  ShmPair(const ShmPair&) = delete;
  ShmPair& operator=(const ShmPair&) = delete;

  // The lower rank creates the segment; the higher rank opens it and unlinks the name, so
  // nothing is left behind even if both die later. Return false (with *why) on failure.
  bool create(const std::string& name, size_t ring_bytes, std::string* why);
  bool open(const std::string& name, size_t ring_bytes, std::string* why);
  void unlink_name();
  // Ring `index` 0 carries lower -> higher rank, 1 higher -> lower.
  ShmRing ring(int index) const;

 private:
  bool map(int fd, size_t ring_bytes, bool init, std::string* why);
  void* base_ = nullptr;
  size_t bytes_ = 0;
  size_t ring_bytes_ = 0;
  std::string name_;
};

}  // namespace flagstone::comm
