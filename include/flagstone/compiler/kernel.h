// Kernels at run time: define once with a builder function, launch on any device with tensors
// and scalars. Compiles through the target of the stream's device, with an in-memory and
// on-disk compile cache and an autotuner over the kernel's candidate configs.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include "flagstone/compiler/builder.h"
#include "flagstone/compiler/target.h"
#include "flagstone/runtime/tensor.h"

namespace flagstone::compiler {

// A launch argument as the caller gives it: a tensor for a pointer parameter, a number for a
// scalar parameter.
class Arg {
 public:
  Arg(const Tensor& tensor) : value_(tensor) {}  // NOLINT
  template <typename T, std::enable_if_t<std::is_integral_v<T>, int> = 0>
  Arg(T v) : value_(static_cast<int64_t>(v)) {}  // NOLINT
  template <typename T, std::enable_if_t<std::is_floating_point_v<T>, int> = 0>
  Arg(T v) : value_(static_cast<double>(v)) {}  // NOLINT
  const std::variant<Tensor, int64_t, double>& value() const { return value_; }

 private:
  std::variant<Tensor, int64_t, double> value_;
};

using GridFn = std::function<Grid(const Config&)>;

// Counts toolchain runs (g++, clBuildProgram, NVRTC) in this process, for tests and logs.
int64_t compiler_invocations();
// The disk cache folder: $FLAGSTONE_CACHE_DIR, else ~/.cache/flagstone.
std::string cache_dir();

class Kernel {
 public:
  // `configs` are the autotuner's candidates; the first is the default config.
  Kernel(std::string name, BuildFn build, std::vector<Config> configs = {Config{}});
  // A kernel read back from its text form (ir::parse): its one config is the meta-parameters
  // the text records.
  explicit Kernel(ir::Function fn);
  ~Kernel();
  Kernel(const Kernel&) = delete;
  Kernel& operator=(const Kernel&) = delete;

  const std::string& name() const { return name_; }
  const std::vector<Config>& configs() const { return configs_; }

  // The verified IR of one config, before and after the optimization passes.
  ir::Function build(const Config& config) const;
  ir::Function optimized(const Config& config) const;
  // Generated source for a device's target (for inspection and tests).
  std::string source(const Config& config, const Device& device) const;

  // Launches with `config` (the default config when empty) on `stream`. Arguments bind to
  // the pointer and scalar parameters in declaration order; dtypes, devices, ranks and counts
  // are checked and a mismatch throws kInvalidArgument naming the parameter.
  void launch(const Stream& stream, const Grid& grid, const std::vector<Arg>& args,
              const Config& config = {}) const;
  // Picks the fastest config for (device, shape_bucket) - timing every candidate on first use,
  // remembering the winner in memory and on disk - then launches it.
  void launch_tuned(const Stream& stream, const GridFn& grid, const std::vector<Arg>& args,
                    const std::string& shape_bucket) const;
  // The config the tuner chose (tuning now if needed), without launching.
  Config tune(const Stream& stream, const GridFn& grid, const std::vector<Arg>& args,
              const std::string& shape_bucket) const;

  // Compiles (or fetches from the caches) the kernel for `config` on `device`.
  std::shared_ptr<CompiledKernel> compiled(const Config& config, const Device& device) const;

 private:
  struct State;
  std::string name_;
  BuildFn build_;
  std::vector<Config> configs_;
  std::shared_ptr<const ir::Function> ir_;  // set for kernels made from IR
  std::unique_ptr<State> state_;
};

}  // namespace flagstone::compiler
