// NVRTC through dlopen: the handful of entry points the cuda target needs, declared here with
// NVRTC's C ABI so that building needs no toolkit headers.
#include "cuda/nvrtc.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

#include "flagstone/base/error.h"

namespace flagstone::compiler::cuda {
namespace {

using Program = void*;
using Result = int;  // nvrtcResult; 0 is NVRTC_SUCCESS

struct Nvrtc {
  void* handle = nullptr;
  std::string error;
  Result (*version)(int*, int*) = nullptr;
  Result (*create)(Program*, const char*, const char*, int, const char* const*,
                   const char* const*) = nullptr;
  Result (*compile)(Program, int, const char* const*) = nullptr;
  Result (*cubin_size)(Program, size_t*) = nullptr;
  Result (*cubin)(Program, char*) = nullptr;
  Result (*log_size)(Program, size_t*) = nullptr;
  Result (*log)(Program, char*) = nullptr;
  Result (*destroy)(Program*) = nullptr;
  const char* (*error_string)(Result) = nullptr;
};

const Nvrtc& nvrtc() {
  static Nvrtc* lib = [] {
    auto* n = new Nvrtc();
    const char* names[] = {"libnvrtc.so.13",
                           "libnvrtc.so.12",
                           "libnvrtc.so",
                           "/usr/local/cuda/lib64/libnvrtc.so.13",
                           "/usr/local/cuda/lib64/libnvrtc.so.12",
                           "/usr/local/cuda/lib64/libnvrtc.so"};
    for (const char* name : names) {
      n->handle = ::dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (n->handle) break;
    }
    if (!n->handle) {
      n->error =
          "libnvrtc.so.13/.12 not found (install the CUDA toolkit's NVRTC or add its lib64 "
          "folder to LD_LIBRARY_PATH)";
      return n;
    }
    auto sym = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(n->handle, name));
      if (!fn && n->error.empty()) n->error = std::string("libnvrtc lacks ") + name;
    };
    sym(n->version, "nvrtcVersion");
    sym(n->create, "nvrtcCreateProgram");
    sym(n->compile, "nvrtcCompileProgram");
    sym(n->cubin_size, "nvrtcGetCUBINSize");
    sym(n->cubin, "nvrtcGetCUBIN");
    sym(n->log_size, "nvrtcGetProgramLogSize");
    sym(n->log, "nvrtcGetProgramLog");
    sym(n->destroy, "nvrtcDestroyProgram");
    sym(n->error_string, "nvrtcGetErrorString");
    return n;
  }();
  return *lib;
}

const Nvrtc& checked() {
  const Nvrtc& n = nvrtc();
  FS_CHECK(n.error.empty(), kUnsupported, "cuda target: ", n.error);
  return n;
}

}  // namespace

bool nvrtc_available(std::string* why) {
  const Nvrtc& n = nvrtc();
  if (why) *why = n.error;
  return n.error.empty();
}

std::string nvrtc_version() {
  const Nvrtc& n = checked();
  int major = 0, minor = 0;
  n.version(&major, &minor);
  return std::to_string(major) + "." + std::to_string(minor);
}

bool needs_arch_specific(const std::string& source) {
  // FLAGSTONE_COMPILER_SM90A=1 builds every sm_90 kernel for sm_90a (an A/B switch; it is part
  // of the cache tag).
  static const bool all = [] {
    const char* env = std::getenv("FLAGSTONE_COMPILER_SM90A");
    return env && std::string(env) == "1";
  }();
  return all || source.find("wgmma.") != std::string::npos;
}

std::vector<uint8_t> nvrtc_compile(const std::string& source, const std::string& kernel, int arch,
                                   std::string* info) {
  const Nvrtc& n = checked();
  Program prog = nullptr;
  Result r = n.create(&prog, source.c_str(), (kernel + ".cu").c_str(), 0, nullptr, nullptr);
  FS_CHECK(r == 0, kBackend, "cuda target: nvrtcCreateProgram failed for kernel '", kernel,
           "': ", n.error_string(r));
  // Kernels with warpgroup MMA are built for sm_90a, the arch-specific variant that has it;
  // the rest for plain sm_90, so that ptxas schedules them as every other sm_90 kernel.
  std::string arch_flag = "--gpu-architecture=sm_" + std::to_string(arch) +
                          (arch == 90 && needs_arch_specific(source) ? "a" : "");
  const char* options[] = {arch_flag.c_str(), "-std=c++17", "--fmad=true", "--ptxas-options=-v"};
  r = n.compile(prog, info ? 4 : 3, options);
  size_t log_size = 0;
  n.log_size(prog, &log_size);
  std::string log(log_size, '\0');
  if (log_size) n.log(prog, log.data());
  if (r != 0) {
    n.destroy(&prog);
    if (log.size() > 4000) log = log.substr(0, 4000) + "...";
    throw_error(ErrorCategory::kBackend, "cuda target: NVRTC failed on kernel '", kernel,
                "' for sm_", arch, ": ", n.error_string(r), "\n", log);
  }
  if (info) *info = log;
  size_t size = 0;
  n.cubin_size(prog, &size);
  std::vector<uint8_t> cubin(size);
  if (size) n.cubin(prog, reinterpret_cast<char*>(cubin.data()));
  n.destroy(&prog);
  FS_CHECK(!cubin.empty(), kBackend, "cuda target: NVRTC produced no cubin for kernel '", kernel,
           "'");
  return cubin;
}

}  // namespace flagstone::compiler::cuda
