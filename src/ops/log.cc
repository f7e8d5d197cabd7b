// The ops log hook: silent unless a sink is installed, and log_once keeps fallbacks in loops
// from flooding the sink.
#include "flagstone/ops/log.h"

#include <cstdio>
#include <mutex>
#include <set>

namespace flagstone::ops {
namespace {

struct LogState {
  std::mutex mutex;
  LogSink sink;
  std::set<std::string> seen;
};

LogState& state() {
  static LogState s;
  return s;
}

}  // namespace

void set_log_sink(LogSink sink) {
  std::lock_guard<std::mutex> lock(state().mutex);
  state().sink = std::move(sink);
}

LogSink stderr_log_sink(LogLevel min_level) {
  return [min_level](LogLevel level, std::string_view message) {
    if (level < min_level) return;
    std::fprintf(stderr, "flagstone ops: %.*s\n", static_cast<int>(message.size()), message.data());
  };
}

void log(LogLevel level, std::string_view message) {
  LogSink sink;
  {
    std::lock_guard<std::mutex> lock(state().mutex);
    sink = state().sink;
  }
  if (sink) sink(level, message);
}

void log_once(const std::string& key, LogLevel level, std::string_view message) {
  {
    std::lock_guard<std::mutex> lock(state().mutex);
    if (!state().seen.insert(key).second) return;
  }
  log(level, message);
}

void reset_log_once() {
  std::lock_guard<std::mutex> lock(state().mutex);
  state().seen.clear();
}

}  // namespace flagstone::ops
