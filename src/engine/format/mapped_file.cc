// Memory mapping of model files and crash-safe writing of new ones.
#include "flagstone/engine/format/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "flagstone/base/error.h"

namespace flagstone::engine::format {

namespace {

std::string errno_text(int err) {
  return std::strerror(err);
}

}  // namespace

std::shared_ptr<const MappedFile> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    FS_CHECK(err != ENOENT, kNotFound, "model file '", path, "' does not exist");
    throw_error(ErrorCategory::kIo, "cannot open '", path, "': ", errno_text(err));
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    int err = errno;
    ::close(fd);
    throw_error(ErrorCategory::kIo, "cannot stat '", path, "': ", errno_text(err));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    throw_error(ErrorCategory::kIo, "'", path, "' is not a regular file");
  }
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  file->size_ = static_cast<size_t>(info.st_size);
  if (file->size_ > 0) {
    void* address = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (address == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      throw_error(ErrorCategory::kIo, "cannot memory-map '", path, "' (", file->size_,
                  " bytes): ", errno_text(err));
    }
    file->data_ = static_cast<const std::byte*>(address);
    file->mapped_size_ = file->size_;
  }
  ::close(fd);  // the mapping keeps the file alive
  return file;
}

std::shared_ptr<const MappedFile> MappedFile::from_bytes(std::string name,
                                                         std::vector<std::byte> bytes) {
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = std::move(name);
  file->owned_ = std::move(bytes);
  file->data_ = file->owned_.data();
  file->size_ = file->owned_.size();
  return file;
}

MappedFile::~MappedFile() {
  if (mapped_size_ > 0) ::munmap(const_cast<std::byte*>(data_), mapped_size_);
}

AtomicFileWriter::AtomicFileWriter(std::string path)
    : path_(std::move(path)), temp_path_(path_ + ".tmp-" + std::to_string(::getpid())) {
  fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    int err = errno;
    throw_error(ErrorCategory::kIo, "cannot create '", temp_path_, "' to write '", path_,
                "': ", errno_text(err));
  }
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_path_.c_str());
}

void AtomicFileWriter::write(const void* data, size_t bytes) {
  FS_ASSERT(fd_ >= 0);
  const char* cursor = static_cast<const char*>(data);
  size_t left = bytes;
  while (left > 0) {
    ssize_t done = ::write(fd_, cursor, left);
    if (done < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      throw_error(ErrorCategory::kIo, "cannot write '", path_, "' at byte ", position_, ": ",
                  errno_text(err));
    }
    cursor += done;
    left -= static_cast<size_t>(done);
    position_ += static_cast<uint64_t>(done);
  }
}

void AtomicFileWriter::write_zeros(size_t bytes) {
  static const char kZeros[256] = {};
  while (bytes > 0) {
    size_t chunk = bytes < sizeof(kZeros) ? bytes : sizeof(kZeros);
    write(kZeros, chunk);
    bytes -= chunk;
  }
}

void AtomicFileWriter::commit() {
  FS_ASSERT(fd_ >= 0);
  if (::fsync(fd_) != 0 && errno != EINVAL) {
    int err = errno;
    throw_error(ErrorCategory::kIo, "cannot flush '", path_, "': ", errno_text(err));
  }
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) {
    int err = errno;
    throw_error(ErrorCategory::kIo, "cannot close '", path_, "': ", errno_text(err));
  }
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    int err = errno;
    throw_error(ErrorCategory::kIo, "cannot rename '", temp_path_, "' to '", path_,
                "': ", errno_text(err));
  }
  committed_ = true;
}

}  // namespace flagstone::engine::format
