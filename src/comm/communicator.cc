// The C++ wrapper: each method forwards to the C API and turns a failed status into Error.
#include "flagstone/comm/communicator.h"

#include "internal.h"

namespace flagstone::comm {

namespace {

void* stream_handle(const runtime::Stream* stream) {
  return const_cast<runtime::Stream*>(stream);
}

fsConfig make_config(const CommOptions& options) {
  fsConfig config;
  throw_on_error(fsConfigInit(&config));
  config.device = options.device.empty() ? nullptr : options.device.c_str();
  config.timeout_ms = options.timeout_ms;
  config.algo = options.algo.empty() ? nullptr : options.algo.c_str();
  config.engine = options.engine.empty() ? nullptr : options.engine.c_str();
  return config;
}
}  // namespace

void throw_on_error(fsResult_t result) {
  if (result == fsSuccess) return;
  throw Error(error_category(result),
              std::string(fsGetErrorString(result)) + ": " + fsGetLastError());
}

fsDataType_t to_comm_dtype(DType dtype) {
  switch (dtype) {
    case DType::kI8:
      return fsInt8;
    case DType::kU8:
      return fsUint8;
    case DType::kI32:
      return fsInt32;
    case DType::kI64:
      return fsInt64;
    case DType::kF16:
      return fsFloat16;
    case DType::kBF16:
      return fsBfloat16;
    case DType::kF32:
      return fsFloat32;
    case DType::kF64:
      return fsFloat64;
    case DType::kBool:
      return fsUint8;
    default:
      throw_error(ErrorCategory::kUnsupported, "comm cannot reduce tensors of dtype ",
                  dtype_name(dtype));
  }
}

Communicator::~Communicator() {
  if (comm_) fsCommDestroy(comm_);
}

Communicator& Communicator::operator=(Communicator&& other) noexcept {
  if (this != &other) {
    if (comm_) fsCommDestroy(comm_);
    comm_ = other.comm_;
    other.comm_ = nullptr;
  }
  return *this;
}

fsUniqueId Communicator::unique_id() {
  fsUniqueId id;
  throw_on_error(fsGetUniqueId(&id));
  return id;
}

Communicator Communicator::init(int nranks, const fsUniqueId& id, int rank,
                                const CommOptions& options) {
  fsConfig config = make_config(options);
  fsComm_t comm = nullptr;
  throw_on_error(fsCommInitRankConfig(&comm, nranks, id, rank, &config));
  return Communicator(comm);
}

Communicator Communicator::from_env(const CommOptions& options) {
  fsConfig config = make_config(options);
  fsComm_t comm = nullptr;
  throw_on_error(fsCommInitFromEnv(&comm, &config));
  return Communicator(comm);
}

int Communicator::rank() const {
  int value = 0;
  throw_on_error(fsCommUserRank(comm_, &value));
  return value;
}

int Communicator::size() const {
  int value = 0;
  throw_on_error(fsCommCount(comm_, &value));
  return value;
}

std::string Communicator::device() const {
  char spec[64];
  throw_on_error(fsCommDevice(comm_, spec, sizeof(spec)));
  return spec;
}

Communicator Communicator::split(int color, int key) const {
  fsComm_t comm = nullptr;
  throw_on_error(fsCommSplit(comm_, color, key, &comm, nullptr));
  return Communicator(comm);
}

void Communicator::abort() const {
  throw_on_error(fsCommAbort(comm_));
}

fsResult_t Communicator::async_error() const {
  fsResult_t error = fsSuccess;
  throw_on_error(fsCommGetAsyncError(comm_, &error));
  return error;
}

void Communicator::all_reduce(fsBuf send, fsBuf recv, size_t count, fsDataType_t dtype,
                              fsRedOp_t op, const runtime::Stream* stream) const {
  throw_on_error(fsAllReduce(send, recv, count, dtype, op, comm_, stream_handle(stream)));
}

void Communicator::reduce(fsBuf send, fsBuf recv, size_t count, fsDataType_t dtype, fsRedOp_t op,
                          int root, const runtime::Stream* stream) const {
  throw_on_error(fsReduce(send, recv, count, dtype, op, root, comm_, stream_handle(stream)));
}

void Communicator::broadcast(fsBuf send, fsBuf recv, size_t count, fsDataType_t dtype, int root,
                             const runtime::Stream* stream) const {
  throw_on_error(fsBroadcast(send, recv, count, dtype, root, comm_, stream_handle(stream)));
}

void Communicator::all_gather(fsBuf send, fsBuf recv, size_t count, fsDataType_t dtype,
                              const runtime::Stream* stream) const {
  throw_on_error(fsAllGather(send, recv, count, dtype, comm_, stream_handle(stream)));
}

void Communicator::reduce_scatter(fsBuf send, fsBuf recv, size_t count, fsDataType_t dtype,
                                  fsRedOp_t op, const runtime::Stream* stream) const {
  throw_on_error(fsReduceScatter(send, recv, count, dtype, op, comm_, stream_handle(stream)));
}

void Communicator::gather(fsBuf send, fsBuf recv, size_t count, fsDataType_t dtype, int root,
                          const runtime::Stream* stream) const {
  throw_on_error(fsGather(send, recv, count, dtype, root, comm_, stream_handle(stream)));
}

void Communicator::scatter(fsBuf send, fsBuf recv, size_t count, fsDataType_t dtype, int root,
                           const runtime::Stream* stream) const {
  throw_on_error(fsScatter(send, recv, count, dtype, root, comm_, stream_handle(stream)));
}

void Communicator::all_to_all(fsBuf send, fsBuf recv, size_t count, fsDataType_t dtype,
                              const runtime::Stream* stream) const {
  throw_on_error(fsAllToAll(send, recv, count, dtype, comm_, stream_handle(stream)));
}

void Communicator::send(fsBuf data, size_t count, fsDataType_t dtype, int peer,
                        const runtime::Stream* stream) const {
  throw_on_error(fsSend(data, count, dtype, peer, comm_, stream_handle(stream)));
}

void Communicator::recv(fsBuf data, size_t count, fsDataType_t dtype, int peer,
                        const runtime::Stream* stream) const {
  throw_on_error(fsRecv(data, count, dtype, peer, comm_, stream_handle(stream)));
}

void Communicator::barrier(const runtime::Stream* stream) const {
  throw_on_error(fsBarrier(comm_, stream_handle(stream)));
}

}  // namespace flagstone::comm
