// Disk side of the compile cache and the toolchain-run counter.
#include "cache.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "flagstone/base/error.h"
#include "flagstone/compiler/kernel.h"

namespace flagstone::compiler {

namespace {
std::atomic<int64_t> g_invocations{0};
}

void note_compiler_invocation() {
  g_invocations.fetch_add(1);
}
int64_t compiler_invocations() {
  return g_invocations.load();
}

std::string cache_dir() {
  if (const char* dir = std::getenv("FLAGSTONE_CACHE_DIR"); dir && *dir) return dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return std::string(xdg) + "/flagstone";
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::string(home) + "/.cache/flagstone";
  return (std::filesystem::temp_directory_path() / "flagstone-cache").string();
}

std::string hash_hex(std::string_view data) {
  uint64_t a = 0xcbf29ce484222325ull;
  uint64_t b = 0x84222325cbf29ce4ull ^ data.size();
  for (unsigned char c : data) {
    a = (a ^ c) * 0x100000001b3ull;
    b = (b ^ (c + 0x9eu)) * 0x00000100000001b3ull + 0x9e3779b97f4a7c15ull;
  }
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(a),
                static_cast<unsigned long long>(b));
  return buf;
}

std::optional<std::vector<uint8_t>> read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  if (in.bad()) return std::nullopt;
  return bytes;
}

void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path target(path);
  fs::create_directories(target.parent_path(), ec);
  FS_CHECK(!ec, kIo, "compile cache: cannot create folder ", target.parent_path().string(), ": ",
           ec.message(), " (set FLAGSTONE_CACHE_DIR to a writable folder)");
  std::random_device rd;
  std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rd());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    FS_CHECK(static_cast<bool>(out), kIo, "compile cache: cannot write ", tmp);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      fs::remove(tmp, ec);
      throw_error(ErrorCategory::kIo, "compile cache: writing ", tmp, " failed (disk full?)");
    }
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw_error(ErrorCategory::kIo, "compile cache: cannot rename into ", path, ": ", ec.message());
  }
}

}  // namespace flagstone::compiler
