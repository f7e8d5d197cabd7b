// The ops layer's log hook: dispatch reports fallbacks and policy decisions here. The library
// never prints by itself; a sink (the CLI installs one writing to stderr) decides where lines go.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace flagstone::ops {

enum class LogLevel { kDebug, kInfo, kWarning };

using LogSink = std::function<void(LogLevel level, std::string_view message)>;

// Installs the sink (an empty function removes it); thread-safe.
void set_log_sink(LogSink sink);
// A sink that writes "flagstone ops: <message>" lines to stderr, for command-line tools.
LogSink stderr_log_sink(LogLevel min_level = LogLevel::kInfo);
void log(LogLevel level, std::string_view message);
// Logs `message` the first time `key` is seen in this process; later calls are dropped, so a
// fallback taken in a loop is reported once.
void log_once(const std::string& key, LogLevel level, std::string_view message);
// Forgets the keys seen by log_once (for tests).
void reset_log_once();

}  // namespace flagstone::ops
