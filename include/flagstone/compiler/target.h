// The compiler target plug-in interface: what a chip vendor implements so that every kernel
// written in the tile language runs on its device. See docs/adding-a-compiler-target.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "flagstone/compiler/ir.h"
#include "flagstone/runtime/device.h"

namespace flagstone::compiler {

// Up to three grid dimensions of programs, as in CUDA and Triton.
struct Grid {
  int64_t x = 1, y = 1, z = 1;
  Grid() = default;
  Grid(int64_t gx, int64_t gy = 1, int64_t gz = 1) : x(gx), y(gy), z(gz) {}  // NOLINT
  int64_t count() const { return x * y * z; }
};

// What a target can run; the driver rejects kernels that exceed it before codegen.
struct TargetLimits {
  int warp_size = 1;                    // threads of one warp / sub-group (1 on the cpu)
  int64_t max_threads_per_program = 1;  // threads one program (work-group, block) may use
  int64_t local_memory_bytes = 0;       // shared/local memory per program (0: unlimited, cpu)
  int64_t max_grid[3] = {INT32_MAX, 65535, 65535};
  bool fp64 = true;
  // The device's architecture where codegen depends on it (cuda: 90 for sm_90, whose GEMMs use
  // warpgroup MMA); 0: generic code.
  int arch = 0;
};

// One launch argument after binding: a buffer (handle + byte offset) or a scalar.
struct LaunchArg {
  enum class Kind { kBuffer, kInt, kFloat } kind = Kind::kInt;
  DType dtype = DType::kI32;
  runtime::MemHandle handle = nullptr;
  size_t byte_offset = 0;
  int64_t i = 0;
  double f = 0;
};

// A compiled, loaded kernel ready to launch on one device.
class CompiledKernel {
 public:
  virtual ~CompiledKernel() = default;
  // Enqueues the grid on `stream`; arguments follow the kernel's parameter order.
  virtual void launch(const runtime::Stream& stream, const Grid& grid,
                      const std::vector<LaunchArg>& args) = 0;
};

// Codegen options the driver picks from the limits and the kernel's meta-parameters.
struct CodegenOptions {
  int64_t threads = 1;             // threads per program that share one tile
  int64_t local_memory_limit = 0;  // bytes of local/shared memory a program may use (0: any)
  int arch = 0;                    // TargetLimits::arch of the device the code is for
};

class Target {
 public:
  virtual ~Target() = default;
  // Target name, equal to the runtime backend it serves: "cpu", "opencl", "cuda".
  virtual std::string_view name() const = 0;
  virtual TargetLimits limits(const runtime::Device& device) const = 0;
  // Everything besides the IR that changes the artifact: device arch, toolchain version and
  // flags. Part of the compile-cache key.
  virtual std::string cache_tag(const runtime::Device& device) const = 0;
  // Source code (C++, OpenCL C, CUDA C++...) for a verified, optimized kernel.
  virtual std::string codegen(const ir::Function& fn, const CodegenOptions& options) const = 0;
  // Runs the toolchain; the artifact (shared object, binary, cubin) as bytes. Throws
  // Error(kBackend) with the toolchain's log on failure.
  virtual std::vector<uint8_t> compile(const std::string& source, const ir::Function& fn,
                                       const runtime::Device& device) const = 0;
  // Loads an artifact that compile() produced (possibly in another process; `path` is where
  // the cache keeps it on disk).
  virtual std::unique_ptr<CompiledKernel> load(const std::vector<uint8_t>& artifact,
                                               const std::string& path, const ir::Function& fn,
                                               const CodegenOptions& options,
                                               const runtime::Device& device) const = 0;
};

// Registers a target; a second one of the same name throws kInvalidArgument.
void register_target(std::unique_ptr<Target> target);
// The target for a runtime backend name; throws kUnsupported naming the backend if none.
const Target& target_for(std::string_view backend);
std::vector<std::string> target_names();

}  // namespace flagstone::compiler
