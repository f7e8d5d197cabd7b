// `flagstone compile`: reads a kernel in the IR text form and shows what the compiler makes of
// it (optimized IR, generated CUDA C++ / OpenCL C / C++), or compiles it for a device so that
// the disk cache is warm before a job starts.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "flagstone/base/error.h"
#include "flagstone/compiler/kernel.h"
#include "flagstone/compiler/passes.h"
#include "flagstone/compiler/target.h"
#include "flagstone/runtime/device.h"

namespace flagstone::cli {
namespace {

namespace ir = compiler::ir;

struct Options {
  std::string file;
  std::string target = "cuda";
  std::string emit = "source";
  std::string device;
  int64_t threads = 0;
  int arch = 0;
  bool json = false;
};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  FS_CHECK(in.good(), kNotFound, "flagstone compile: cannot open kernel file '", path, "'");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void run(const Options& o) {
  ir::Function fn = [&] {
    try {
      return ir::parse(read_text(o.file));
    } catch (const Error& e) {
      if (e.category() == ErrorCategory::kNotFound) throw;
      throw Error(e.category(), "flagstone compile: " + o.file + ": " + e.message());
    }
  }();
  if (o.emit == "ir") {
    std::cout << ir::print(fn);
    return;
  }
  ir::Function optimized = fn.clone();
  compiler::passes::optimize(optimized);
  if (o.emit == "optimized") {
    std::cout << ir::print(optimized);
    return;
  }
  if (!o.device.empty()) {
    // Compile (or find in the cache) for a real device, as a launch would.
    runtime::Device device = runtime::Device::get(o.device);
    compiler::Kernel kernel(fn.clone());
    int64_t before = compiler::compiler_invocations();
    auto t0 = std::chrono::steady_clock::now();
    kernel.compiled({}, device);
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    bool compiled = compiler::compiler_invocations() > before;
    if (o.json) {
      std::cout << nlohmann::json{{"kernel", fn.name},
                                  {"device", device.spec()},
                                  {"compiled", compiled},
                                  {"ms", ms},
                                  {"cache_dir", compiler::cache_dir()}}
                       .dump(2)
                << "\n";
    } else {
      std::printf("%s: %s for %s in %.1f ms (cache %s)\n", fn.name.c_str(),
                  compiled ? "compiled" : "found in the cache", device.spec().c_str(), ms,
                  compiler::cache_dir().c_str());
    }
    return;
  }
  const compiler::Target& target = compiler::target_for(o.target);
  compiler::CodegenOptions options;
  // Without a device the thread count is the target's usual one for the kernel's num_warps.
  options.threads = o.threads > 0 ? o.threads : o.target == "cpu" ? 1 : optimized.num_warps() * 32;
  options.arch = o.arch;
  std::cout << target.codegen(optimized, options);
}

}  // namespace

void register_compile_command(CLI::App& app) {
  auto options = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "compile",
      "Show the optimized IR or generated source of a kernel, or compile it for a device.");
  cmd->add_option("kernel", options->file, "Kernel in the IR text form (ir::print output)")
      ->required();
  cmd->add_option("-t,--target", options->target, "Code generator: cuda, opencl or cpu")
      ->check(CLI::IsMember({"cuda", "opencl", "cpu"}))
      ->default_val("cuda");
  cmd->add_option("-e,--emit", options->emit,
                  "What to print: source (generated code), optimized (IR after the passes), ir "
                  "(the parsed IR)")
      ->check(CLI::IsMember({"source", "optimized", "ir"}))
      ->default_val("source");
  cmd->add_option("--threads", options->threads,
                  "Threads per program for GPU code (default num_warps x 32)")
      ->check(CLI::Range(int64_t{1}, int64_t{4096}));
  cmd->add_option("-d,--device", options->device,
                  "Compile for this device (e.g. cuda:0) and store the result in the disk cache "
                  "($FLAGSTONE_CACHE_DIR) instead of printing")
      ->excludes("--threads");
  cmd->add_option("--arch", options->arch,
                  "Device architecture the source is for, as the target numbers it (cuda: 90 for "
                  "sm_90, whose GEMM loops use warpgroup MMA; default: generic)")
      ->excludes("--device");
  cmd->add_flag("--json", options->json, "With --device: print the result as JSON");
  cmd->footer(
      "Kernels are stored with ir::print(kernel.optimized(config)) or written by hand.\n"
      "Examples:\n"
      "  flagstone compile softmax.ir --target cuda           generated CUDA C++\n"
      "  flagstone compile gemm.ir --arch 90                  CUDA C++ for sm_90 (Hopper)\n"
      "  flagstone compile softmax.ir --emit optimized        IR after folding, CSE, masks\n"
      "  flagstone compile softmax.ir --device cuda:0         warm the compile cache");
  cmd->callback([options] { run(*options); });
}

}  // namespace flagstone::cli
