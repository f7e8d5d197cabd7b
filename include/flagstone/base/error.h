// The one error type of Flagstone: a category plus a message that names the culprit.
// Every layer throws flagstone::Error; the CLI catches it, prints it and exits non-zero.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace flagstone {

enum class ErrorCategory {
  kInvalidArgument,  // a caller passed a bad shape, dtype, name, option...
  kNotFound,         // a device, file, op or backend that does not exist
  kUnsupported,      // valid request that this backend/build cannot serve
  kOutOfMemory,      // an allocation failed
  kBackend,          // the driver or vendor library reported a failure
  kIo,               // file system or network
  kFormat,           // a file's contents are malformed (safetensors, GGUF, JSON...)
  kTimeout,          // an operation did not finish in time
  kInternal,         // a broken invariant inside Flagstone: a bug
};

std::string_view category_name(ErrorCategory category);

class Error : public std::runtime_error {
 public:
  Error(ErrorCategory category, const std::string& message);

  ErrorCategory category() const { return category_; }
  // The message without the "[category] " prefix that what() carries.
  const std::string& message() const { return message_; }

 private:
  ErrorCategory category_;
  std::string message_;
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}
}  // namespace detail

// Builds the message from any streamable parts: throw_error(kInvalidArgument, "op ", name, ...).
template <typename... Args>
[[noreturn]] void throw_error(ErrorCategory category, const Args&... args) {
  throw Error(category, detail::concat(args...));
}

}  // namespace flagstone

// Checks a user-facing condition; the message parts are only formatted on failure.
#define FS_CHECK(cond, category, ...)                                       \
  do {                                                                      \
    if (!(cond)) ::flagstone::throw_error(::flagstone::ErrorCategory::category, __VA_ARGS__); \
  } while (0)

// Checks an internal invariant: failing it is a Flagstone bug, reported with the location.
#define FS_ASSERT(cond)                                                                    \
  do {                                                                                     \
    if (!(cond))                                                                           \
      ::flagstone::throw_error(::flagstone::ErrorCategory::kInternal, "assertion `", #cond, \
                               "` failed at ", __FILE__, ":", __LINE__);                   \
  } while (0)
