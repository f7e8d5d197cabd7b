// One way for a provider to register a kernel, so the cpu and cuda providers fill an
// Implementation the same way and only name their backend.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "flagstone/ops/registry.h"

namespace flagstone::ops {

void add_backend_implementation(Registry& r, const std::string& backend, const std::string& op,
                                std::vector<DType> dtypes, KernelFn fn, bool strided,
                                std::function<std::string(const KernelArgs&)> supports,
                                Provider provider);

}  // namespace flagstone::ops
