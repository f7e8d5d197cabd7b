// Datatype tables, deadlines and environment parsing shared by the comm library.
#include "internal.h"

#include <algorithm>
#include <cstdlib>

namespace flagstone::comm {

ErrorCategory error_category(fsResult_t code) {
  switch (code) {
    case fsInvalidArgument:
    case fsInvalidUsage:
      return ErrorCategory::kInvalidArgument;
    case fsTimeout:
      return ErrorCategory::kTimeout;
    case fsUnsupported:
      return ErrorCategory::kUnsupported;
    case fsSystemError:
    case fsRemoteError:
    case fsAborted:
      return ErrorCategory::kIo;
    default:
      return ErrorCategory::kInternal;
  }
}

CommError::CommError(fsResult_t code, const std::string& message)
    : Error(error_category(code), message), code_(code) {}

int Deadline::remaining_ms(int cap) const {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(at - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, cap));
}

size_t dtype_bytes(fsDataType_t dtype) {
  switch (dtype) {
    case fsInt8:
    case fsUint8:
      return 1;
    case fsFloat16:
    case fsBfloat16:
      return 2;
    case fsInt32:
    case fsUint32:
    case fsFloat32:
      return 4;
    case fsInt64:
    case fsUint64:
    case fsFloat64:
      return 8;
    default:
      return 0;
  }
}

const char* dtype_name(fsDataType_t dtype) {
  static const char* const kNames[] = {"i8",  "u8",  "i32",  "u32", "i64",
                                       "u64", "f16", "bf16", "f32", "f64"};
  return valid_dtype(dtype) ? kNames[dtype] : "invalid-dtype";
}

const char* redop_name(fsRedOp_t op) {
  static const char* const kNames[] = {"sum", "prod", "max", "min", "avg"};
  return valid_redop(op) ? kNames[op] : "invalid-redop";
}

bool valid_dtype(int dtype) {
  return dtype >= 0 && dtype < fsNumTypes;
}
bool valid_redop(int op) {
  return op >= 0 && op < fsNumOps;
}

std::string env_string(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value && *value ? std::string(value) : fallback;
}

int64_t env_int(const char* name, int64_t fallback) {
  const char* value = std::getenv(name);
  if (!value || !*value) return fallback;
  char* end = nullptr;
  long long parsed = std::strtoll(value, &end, 10);
  FS_CHECK(end && *end == '\0', kInvalidArgument, "environment variable ", name, "='", value,
           "' is not an integer");
  return parsed;
}

}  // namespace flagstone::comm
