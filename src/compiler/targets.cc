// The target registry: built-in targets plus any a vendor registers at run time.
#include <mutex>
#include <vector>

#include "flagstone/base/error.h"
#include "targets_internal.h"

namespace flagstone::compiler {
namespace {

struct Registry {
  std::mutex mutex;
  std::vector<std::unique_ptr<Target>> targets;
  bool builtins = false;

  void ensure_builtins() {
    if (builtins) return;
    builtins = true;
    targets.push_back(create_cpu_target());
#ifdef FLAGSTONE_HAVE_OPENCL
    targets.push_back(create_opencl_target());
#endif
    targets.push_back(create_cuda_target());
  }
};

Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: kernels may outlive statics
  return *r;
}

}  // namespace

void register_target(std::unique_ptr<Target> target) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.ensure_builtins();
  for (const auto& t : r.targets)
    FS_CHECK(t->name() != target->name(), kInvalidArgument, "compiler target '", target->name(),
             "' is already registered");
  r.targets.push_back(std::move(target));
}

const Target& target_for(std::string_view backend) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.ensure_builtins();
  for (const auto& t : r.targets)
    if (t->name() == backend) return *t;
  std::string names;
  for (const auto& t : r.targets) names += (names.empty() ? "" : ", ") + std::string(t->name());
  throw_error(ErrorCategory::kUnsupported, "no compiler target for backend '", backend,
              "' (targets in this build: ", names, ")");
}

std::vector<std::string> target_names() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.ensure_builtins();
  std::vector<std::string> names;
  for (const auto& t : r.targets) names.emplace_back(t->name());
  return names;
}

void marshal_args(const std::vector<LaunchArg>& args, std::vector<ArgSlot>* slots,
                  std::vector<void*>* addresses) {
  slots->assign(args.size(), ArgSlot{});
  addresses->assign(args.size(), nullptr);
  for (size_t i = 0; i < args.size(); ++i) {
    const LaunchArg& a = args[i];
    ArgSlot& s = (*slots)[i];
    if (a.kind == LaunchArg::Kind::kBuffer)
      s.ptr = static_cast<char*>(a.handle) + a.byte_offset;
    else if (a.kind == LaunchArg::Kind::kInt && a.dtype == DType::kI32)
      s.i32 = static_cast<int32_t>(a.i);
    else if (a.kind == LaunchArg::Kind::kInt)
      s.i64 = a.i;
    else if (a.dtype == DType::kF32)
      s.f32 = static_cast<float>(a.f);
    else
      s.f64 = a.f;
    (*addresses)[i] = &s;
  }
}

}  // namespace flagstone::compiler
