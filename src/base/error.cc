// flagstone::Error: category names and the "[category] message" form of what().
#include "flagstone/base/error.h"

namespace flagstone {

std::string_view category_name(ErrorCategory category) {
  switch (category) {
    case ErrorCategory::kInvalidArgument:
      return "invalid argument";
    case ErrorCategory::kNotFound:
      return "not found";
    case ErrorCategory::kUnsupported:
      return "unsupported";
    case ErrorCategory::kOutOfMemory:
      return "out of memory";
    case ErrorCategory::kBackend:
      return "backend error";
    case ErrorCategory::kIo:
      return "i/o error";
    case ErrorCategory::kFormat:
      return "format error";
    case ErrorCategory::kTimeout:
      return "timeout";
    case ErrorCategory::kInternal:
      return "internal error";
  }
  return "error";
}

Error::Error(ErrorCategory category, const std::string& message)
    : std::runtime_error(std::string(category_name(category)) + ": " + message),
      category_(category),
      message_(message) {}

}  // namespace flagstone
