// The cpu target: C++ compiled by the system compiler ($CXX, else c++) into a shared object
// loaded with dlopen; programs of the grid are spread over the runtime's cpu thread pool.
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cache.h"
#include "codegen.h"
#include "flagstone/base/error.h"
#include "flagstone/runtime/thread_pool.h"
#include "targets_internal.h"

namespace flagstone::compiler {
namespace {

using EntryFn = void (*)(void* const*, int64_t, int64_t, int64_t, int64_t, int64_t);

constexpr const char* kFlags = "-O3 -march=native -fno-math-errno -std=c++17 -shared -fPIC -w";

std::string compiler_command() {
  const char* cxx = std::getenv("CXX");
  return cxx && *cxx ? cxx : "c++";
}

// Identifies the compiler binary without running it: resolved path, size and mtime.
std::string compiler_identity() {
  std::string cmd = compiler_command();
  std::string exe = cmd.substr(0, cmd.find(' '));
  std::string path = exe;
  if (exe.find('/') == std::string::npos) {
    const char* env = std::getenv("PATH");
    std::string dirs = env ? env : "/usr/bin:/bin";
    size_t start = 0;
    while (start <= dirs.size()) {
      size_t end = dirs.find(':', start);
      if (end == std::string::npos) end = dirs.size();
      std::string candidate = dirs.substr(start, end - start) + "/" + exe;
      if (::access(candidate.c_str(), X_OK) == 0) {
        path = candidate;
        break;
      }
      start = end + 1;
    }
  }
  std::error_code ec;
  std::string real = std::filesystem::canonical(path, ec).string();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return cmd;
  return cmd + "=" + real + ":" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtime);
}

class CpuKernel final : public CompiledKernel {
 public:
  CpuKernel(void* handle, EntryFn entry, std::string name)
      : handle_(handle), entry_(entry), name_(std::move(name)) {}
  ~CpuKernel() override { ::dlclose(handle_); }

  void launch(const runtime::Stream& stream, const Grid& grid,
              const std::vector<LaunchArg>& args) override {
    (void)stream;  // the cpu stream runs work in issue order on the calling thread
    std::vector<ArgSlot> slots;
    std::vector<void*> ptrs;
    marshal_args(args, &slots, &ptrs);
    EntryFn entry = entry_;
    void* const* argv = ptrs.data();
    int64_t gx = grid.x, gy = grid.y, gz = grid.z;
    runtime::cpu_thread_pool().parallel_for(
        grid.count(), 1, [&](int64_t begin, int64_t end) { entry(argv, begin, end, gx, gy, gz); });
  }

 private:
  void* handle_;
  EntryFn entry_;
  std::string name_;
};

class CpuTarget final : public Target {
 public:
  std::string_view name() const override { return "cpu"; }

  TargetLimits limits(const runtime::Device&) const override {
    TargetLimits l;
    l.warp_size = 1;
    l.max_threads_per_program = 1;
    l.local_memory_bytes = 0;
    l.max_grid[0] = l.max_grid[1] = l.max_grid[2] = std::numeric_limits<int32_t>::max();
    return l;
  }

  std::string cache_tag(const runtime::Device& device) const override {
    return device.info().name + "|" + device.info().arch + "|" + compiler_identity() + "|" + kFlags;
  }

  std::string codegen(const ir::Function& fn, const CodegenOptions&) const override {
    int64_t local = 0;
    return emit_source(fn, Dialect::kCpu, 1, &local);
  }

  std::vector<uint8_t> compile(const std::string& source, const ir::Function& fn,
                               const runtime::Device&) const override {
    namespace fs = std::filesystem;
    std::string tmpl = (fs::temp_directory_path() / "flagstone-cc-XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    FS_CHECK(::mkdtemp(buf.data()) != nullptr, kIo,
             "cpu target: cannot create a temporary folder in ",
             fs::temp_directory_path().string());
    std::string dir = buf.data();
    std::string src = dir + "/kernel.cc";
    std::string so = dir + "/kernel.so";
    {
      std::ofstream out(src);
      out << source;
    }
    std::string cmd = compiler_command() + " " + kFlags + " -o '" + so + "' '" + src + "' 2>&1";
    std::string log;
    int status = -1;
    if (FILE* pipe = ::popen(cmd.c_str(), "r")) {
      char chunk[512];
      while (size_t n = std::fread(chunk, 1, sizeof(chunk), pipe)) log.append(chunk, n);
      status = ::pclose(pipe);
    }
    std::optional<std::vector<uint8_t>> bytes;
    if (status == 0) bytes = read_file_bytes(so);
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (status != 0 || !bytes) {
      if (log.size() > 4000) log = log.substr(0, 4000) + "...";
      throw_error(ErrorCategory::kBackend, "cpu target: `", compiler_command(),
                  "` failed on kernel '", fn.name, "' (exit status ", status,
                  "); set CXX to a working C++ compiler. Output:\n", log);
    }
    return *bytes;
  }

  std::unique_ptr<CompiledKernel> load(const std::vector<uint8_t>&, const std::string& path,
                                       const ir::Function& fn, const CodegenOptions&,
                                       const runtime::Device&) const override {
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char* err = ::dlerror();
      throw_error(ErrorCategory::kBackend, "cpu target: dlopen of kernel '", fn.name, "' from ",
                  path, " failed: ", err ? err : "unknown error");
    }
    auto entry = reinterpret_cast<EntryFn>(::dlsym(handle, "fs_kernel"));
    if (!entry) {
      ::dlclose(handle);
      throw_error(ErrorCategory::kBackend, "cpu target: ", path, " has no fs_kernel symbol");
    }
    return std::make_unique<CpuKernel>(handle, entry, fn.name);
  }
};

}  // namespace

std::unique_ptr<Target> create_cpu_target() {
  return std::make_unique<CpuTarget>();
}

}  // namespace flagstone::compiler
