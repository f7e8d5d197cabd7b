// The architecture registry, filled with the built-in architectures on first use.
#include "flagstone/engine/model/architecture.h"

#include <memory>
#include <mutex>
#include <sstream>

#include "architectures.h"
#include "flagstone/base/error.h"

namespace flagstone::engine {
namespace {

struct ArchitectureRegistry {
  std::mutex mutex;
  std::vector<std::unique_ptr<Architecture>> items;  // stable addresses for callers
};

void add_locked(ArchitectureRegistry& registry, Architecture arch) {
  for (const auto& existing : registry.items)
    for (const std::string& type : arch.model_types)
      for (const std::string& taken : existing->model_types)
        FS_CHECK(type != taken, kInvalidArgument, "architecture '", arch.name, "': model type '",
                 type, "' is already served by '", existing->name, "'");
  registry.items.push_back(std::make_unique<Architecture>(std::move(arch)));
}

ArchitectureRegistry& registry() {
  static ArchitectureRegistry* instance = [] {
    auto* r = new ArchitectureRegistry();
    for (auto make : {detail::llama_architecture, detail::mistral_architecture,
                      detail::qwen2_architecture, detail::qwen3_architecture})
      add_locked(*r, make());
    return r;
  }();
  return *instance;
}

}  // namespace

void register_architecture(Architecture architecture) {
  FS_CHECK(!architecture.name.empty() && !architecture.model_types.empty() && architecture.traits,
           kInvalidArgument, "architecture '", architecture.name,
           "' needs a name, model types and a traits function");
  ArchitectureRegistry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  add_locked(r, std::move(architecture));
}

const Architecture& architecture_for(const ModelConfig& config) {
  ArchitectureRegistry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::ostringstream known;
  for (const auto& arch : r.items) {
    for (const std::string& type : arch->model_types) {
      if (type == config.model_type) return *arch;
      known << (known.tellp() > 0 ? ", " : "") << type;
    }
  }
  throw_error(ErrorCategory::kUnsupported, "model '", config.source, "' has model type '",
              config.model_type, "', which no architecture serves (supported: ", known.str(), ")");
}

std::vector<const Architecture*> architectures() {
  ArchitectureRegistry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<const Architecture*> out;
  for (const auto& arch : r.items) out.push_back(arch.get());
  return out;
}

}  // namespace flagstone::engine
