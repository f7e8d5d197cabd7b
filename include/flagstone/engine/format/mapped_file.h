// A read-only view of a whole file, memory-mapped so that model weights are paged in on demand
// from the page cache instead of being copied; it can also wrap in-memory bytes (tests, fuzzing).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace flagstone::engine::format {

class MappedFile {
 public:
  // Maps `path` read-only. Missing file: kNotFound; unreadable or not a regular file: kIo.
  static std::shared_ptr<const MappedFile> open(const std::string& path);
  // Wraps bytes already in memory; `name` stands in for the path in error messages.
  static std::shared_ptr<const MappedFile> from_bytes(std::string name,
                                                      std::vector<std::byte> bytes);

  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const std::byte> bytes() const { return {data_, size_}; }

 private:
  MappedFile() = default;
  std::string path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_size_ = 0;  // 0 when the bytes are owned_ rather than mapped
  std::vector<std::byte> owned_;
};

// Writes `bytes` to `path` through a temporary file in the same folder renamed into place, so a
// failure never leaves a half-written model behind. Failures are kIo naming the path.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();  // removes the temporary file unless commit() ran
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t bytes);
  void write_zeros(size_t bytes);
  uint64_t position() const { return position_; }
  // Flushes, closes and renames the temporary file to the final path.
  void commit();

 private:
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  uint64_t position_ = 0;
  bool committed_ = false;
};

}  // namespace flagstone::engine::format
