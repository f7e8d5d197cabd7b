// Shared internals of the comm library: the exception that carries an fsResult_t code inside the
// library (turned into a status at the C boundary), deadlines, and datatype facts.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "flagstone/base/error.h"
#include "flagstone/comm.h"

namespace flagstone::comm {

// The flagstone::Error category that matches a comm status (C++ wrapper and CommError alike).
ErrorCategory error_category(fsResult_t code);

// Thrown inside the library only; api.cc catches it and returns `code`.
class CommError : public Error {
 public:
  CommError(fsResult_t code, const std::string& message);
  fsResult_t code() const { return code_; }

 private:
  fsResult_t code_;
};

template <typename... Args>
[[noreturn]] void fail(fsResult_t code, const Args&... args) {
  throw CommError(code, detail::concat(args...));
}

using Clock = std::chrono::steady_clock;

// The end of one operation's time budget.
struct Deadline {
  Clock::time_point at;
  int64_t timeout_ms = 0;
  static Deadline after_ms(int64_t ms) {
    return {Clock::now() + std::chrono::milliseconds(ms), ms};
  }
  // Milliseconds left, at least 0, at most `cap` (poll() takes an int).
  int remaining_ms(int cap = 1 << 30) const;
  bool expired() const { return Clock::now() >= at; }
};

size_t dtype_bytes(fsDataType_t dtype);
const char* dtype_name(fsDataType_t dtype);
const char* redop_name(fsRedOp_t op);
bool valid_dtype(int dtype);
bool valid_redop(int op);

// Environment helpers: the value or `fallback` when unset or empty.
std::string env_string(const char* name, const std::string& fallback);
int64_t env_int(const char* name, int64_t fallback);

}  // namespace flagstone::comm
