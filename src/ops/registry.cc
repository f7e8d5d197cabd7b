// The registry of op schemas and implementations; each op's reference becomes its cpu
// implementation of provider "reference".
#include "flagstone/ops/registry.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <shared_mutex>

#include "add_impl.h"
#include "internal.h"

namespace flagstone::ops {

struct Registry::State {
  mutable std::shared_mutex mutex;
  std::map<std::string, OpSchema, std::less<>> schemas;
  std::map<std::string, std::vector<std::unique_ptr<Implementation>>, std::less<>> impls;
};

namespace {

// Edit distance for "did you mean" suggestions in unknown-op errors.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

void register_builtin_ops(Registry& r) {
  register_unary_ops(r);
  register_binary_ops(r);
  register_reduction_ops(r);
  register_norm_ops(r);
  register_llm_ops(r);
  register_attention_ops(r);
  register_sort_sample_ops(r);
  register_linalg_ops(r);
  register_movement_ops(r);
  register_factory_ops(r);
  register_cpu_elementwise(r);
  register_cpu_norm(r);
  register_cpu_llm(r);
  register_cpu_gemm(r);
  register_cpu_attention(r);
  register_cpu_reduction(r);
  register_cpu_sample(r);
  register_cpu_movement(r);
  register_copy_ops(r);
#ifdef FLAGSTONE_HAVE_CUDA
  register_cuda_ops(r);  // src/ops/cuda/
#endif
#ifdef FLAGSTONE_HAVE_CLBLAST
  register_opencl_gemm(r);
#endif
#ifdef FLAGSTONE_OPS_GENERATED
  register_generated(r);  // last: on cuda it only fills ops without a native kernel
#endif
}

}  // namespace

bool Implementation::has_dtype(DType dtype) const {
  return std::find(dtypes.begin(), dtypes.end(), dtype) != dtypes.end();
}

Registry::Registry() : state_(std::make_shared<State>()) {}

Registry& Registry::global() {
  // Never destroyed: kernels may run from other static destructors.
  static Registry* registry = [] {
    auto* r = new Registry();
    register_builtin_ops(*r);
    return r;
  }();
  return *registry;
}

void Registry::add_schema(OpSchema schema) {
  FS_CHECK(!schema.name.empty(), kInvalidArgument, "op schema without a name");
  FS_CHECK(schema.infer && schema.reference, kInvalidArgument, "op '", schema.name,
           "' needs shape rules and a reference implementation");
  std::unique_lock lock(state_->mutex);
  FS_CHECK(!state_->schemas.count(schema.name), kInvalidArgument, "op '", schema.name,
           "' is registered twice");
  auto ref = std::make_unique<Implementation>();
  ref->op = schema.name;
  ref->backend = "cpu";
  ref->provider = Provider::kReference;
  ref->dtypes = schema.dtypes;
  ref->fn = schema.reference;
  ref->name = "cpu/reference/" + schema.name;
  state_->impls[schema.name].push_back(std::move(ref));
  std::string name = schema.name;
  state_->schemas.emplace(name, std::move(schema));
}

void Registry::add_implementation(Implementation impl) {
  std::unique_lock lock(state_->mutex);
  FS_CHECK(state_->schemas.count(impl.op), kNotFound, "implementation for unknown op '", impl.op,
           "'");
  FS_CHECK(impl.provider != Provider::kReference, kInvalidArgument, "op '", impl.op,
           "' already has its reference; register other providers");
  FS_CHECK(impl.fn, kInvalidArgument, "implementation of '", impl.op, "' without a function");
  auto& list = state_->impls[impl.op];
  for (const auto& existing : list)
    FS_CHECK(existing->backend != impl.backend || existing->provider != impl.provider,
             kInvalidArgument, "op '", impl.op, "' already has a ", provider_name(impl.provider),
             " implementation on ", impl.backend);
  if (impl.name.empty())
    impl.name = impl.backend + "/" + std::string(provider_name(impl.provider)) + "/" + impl.op;
  list.push_back(std::make_unique<Implementation>(std::move(impl)));
}

const OpSchema* Registry::find_schema(std::string_view op) const {
  std::shared_lock lock(state_->mutex);
  auto it = state_->schemas.find(op);
  return it == state_->schemas.end() ? nullptr : &it->second;
}

const OpSchema& Registry::schema(std::string_view op) const {
  if (const OpSchema* s = find_schema(op)) return *s;
  std::shared_lock lock(state_->mutex);
  std::string best;
  size_t best_distance = 4;
  for (const auto& [name, s] : state_->schemas) {
    size_t d = edit_distance(op, name);
    if (d < best_distance) best_distance = d, best = name;
  }
  throw_error(ErrorCategory::kNotFound, "unknown op '", op, "'",
              best.empty() ? std::string(" (`flagstone ops` lists them)")
                           : " (did you mean '" + best + "'?)");
}

std::vector<const OpSchema*> Registry::schemas() const {
  std::shared_lock lock(state_->mutex);
  std::vector<const OpSchema*> out;
  for (const auto& [name, s] : state_->schemas) out.push_back(&s);
  std::stable_sort(out.begin(), out.end(),
                   [](const OpSchema* a, const OpSchema* b) { return a->family < b->family; });
  return out;
}

std::vector<const Implementation*> Registry::implementations(std::string_view op) const {
  std::shared_lock lock(state_->mutex);
  std::vector<const Implementation*> out;
  auto it = state_->impls.find(op);
  if (it != state_->impls.end())
    for (const auto& impl : it->second) out.push_back(impl.get());
  return out;
}

std::vector<const Implementation*> Registry::implementations(std::string_view op,
                                                             std::string_view backend) const {
  std::vector<const Implementation*> out;
  for (const Implementation* impl : implementations(op))
    if (impl->backend == backend) out.push_back(impl);
  return out;
}

void add_backend_implementation(Registry& r, const std::string& backend, const std::string& op,
                                std::vector<DType> dtypes, KernelFn fn, bool strided,
                                std::function<std::string(const KernelArgs&)> supports,
                                Provider provider) {
  Implementation impl;
  impl.op = op;
  impl.backend = backend;
  impl.provider = provider;
  impl.dtypes = std::move(dtypes);
  impl.fn = std::move(fn);
  impl.strided = strided;
  impl.supports = std::move(supports);
  r.add_implementation(std::move(impl));
}

}  // namespace flagstone::ops
