// The C++ face of the comm library: a move-only Communicator over fsComm_t whose calls take
// runtime Buffers (with byte offsets) or host spans and throw flagstone::Error on failure.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "flagstone/base/dtype.h"
#include "flagstone/base/error.h"
#include "flagstone/base/half.h"
#include "flagstone/comm.h"
#include "flagstone/runtime/device.h"

namespace flagstone::comm {

// Throws flagstone::Error (category from the status) with fsGetLastError()'s message.
void throw_on_error(fsResult_t result);

// Maps a runtime dtype to the comm datatype; throws kUnsupported for types comm does not move.
fsDataType_t to_comm_dtype(DType dtype);

// A device buffer region (the buffer's device must be the communicator's) or host memory.
inline fsBuf device_buf(const runtime::Buffer& buffer, size_t byte_offset = 0) {
  return fsDeviceBuf(buffer.handle(), byte_offset);
}
inline fsBuf host_buf(const void* data) {
  return fsHostBuf(data);
}

struct CommOptions {
  std::string device;      // "" : $FLAGSTONE_DEVICE or cpu
  int64_t timeout_ms = 0;  // 0 : $FLAGSTONE_COMM_TIMEOUT_MS or 60 s
  std::string algo;        // "" : auto
  std::string engine;      // "" : auto
};

class Communicator {
 public:
  Communicator() = default;
  explicit Communicator(fsComm_t comm) : comm_(comm) {}
  ~Communicator();
  Communicator(Communicator&& other) noexcept : comm_(other.comm_) { other.comm_ = nullptr; }
  Communicator& operator=(Communicator&& other) noexcept;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  // Rank 0's process creates the id (and serves the rendezvous); share it with the others.
  static fsUniqueId unique_id();
  static Communicator init(int nranks, const fsUniqueId& id, int rank,
                           const CommOptions& options = {});
  // From `flagstone launch`, mpirun or srun environment variables.
  static Communicator from_env(const CommOptions& options = {});

  bool valid() const { return comm_ != nullptr; }
  fsComm_t get() const { return comm_; }
  int rank() const;
  int size() const;
  std::string device() const;
  Communicator split(int color, int key) const;
  void abort() const;  // safe from any thread
  fsResult_t async_error() const;

  // Streams: nullptr (the device's default stream) or a stream of the communicator's device.
  void all_reduce(fsBuf send, fsBuf recv, size_t count, fsDataType_t dtype, fsRedOp_t op,
                  const runtime::Stream* stream = nullptr) const;
  void reduce(fsBuf send, fsBuf recv, size_t count, fsDataType_t dtype, fsRedOp_t op, int root,
              const runtime::Stream* stream = nullptr) const;
  void broadcast(fsBuf send, fsBuf recv, size_t count, fsDataType_t dtype, int root,
                 const runtime::Stream* stream = nullptr) const;
  void all_gather(fsBuf send, fsBuf recv, size_t count, fsDataType_t dtype,
                  const runtime::Stream* stream = nullptr) const;
  void reduce_scatter(fsBuf send, fsBuf recv, size_t count, fsDataType_t dtype, fsRedOp_t op,
                      const runtime::Stream* stream = nullptr) const;
  void gather(fsBuf send, fsBuf recv, size_t count, fsDataType_t dtype, int root,
              const runtime::Stream* stream = nullptr) const;
  void scatter(fsBuf send, fsBuf recv, size_t count, fsDataType_t dtype, int root,
               const runtime::Stream* stream = nullptr) const;
  void all_to_all(fsBuf send, fsBuf recv, size_t count, fsDataType_t dtype,
                  const runtime::Stream* stream = nullptr) const;
  void send(fsBuf data, size_t count, fsDataType_t dtype, int peer,
            const runtime::Stream* stream = nullptr) const;
  void recv(fsBuf data, size_t count, fsDataType_t dtype, int peer,
            const runtime::Stream* stream = nullptr) const;
  void barrier(const runtime::Stream* stream = nullptr) const;

  // Host-memory conveniences.
  template <typename T>
  void all_reduce(std::span<const T> send, std::span<T> recv, fsRedOp_t op) const {
    FS_CHECK(send.size() == recv.size(), kInvalidArgument, "all_reduce: send has ", send.size(),
             " elements but recv has ", recv.size());
    all_reduce(host_buf(send.data()), host_buf(recv.data()), send.size(),
               to_comm_dtype(DTypeOf<T>::value), op);
  }

 private:
  fsComm_t comm_ = nullptr;
};

}  // namespace flagstone::comm
