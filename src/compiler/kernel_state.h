// Per-kernel caches shared by the launch driver and the autotuner (internal).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "flagstone/compiler/kernel.h"

namespace flagstone::compiler {

struct Kernel::State {
  std::mutex mutex;
  std::map<std::string, ir::Function> optimized;                    // by config
  std::map<std::string, std::shared_ptr<CompiledKernel>> compiled;  // by config|device
  std::map<std::string, Config> tuned;                              // by device|bucket
};

}  // namespace flagstone::compiler
