// Shared machinery of the generated provider: the kernel cache, launch with toolchain failures
// turned into provider refusals, layout collapsing, and registration on opencl and cuda.
#include "generated/gen_common.h"

#include <cstdlib>
#include <map>
#include <mutex>

#include "internal.h"

namespace flagstone::ops::gen {

const Kernel& cached_kernel(const std::string& key,
                            const std::function<std::unique_ptr<Kernel>()>& make) {
  static std::mutex* mutex = new std::mutex();
  // Never destroyed: kernels may run from other static destructors (as the registry's).
  static auto* kernels = new std::map<std::string, std::unique_ptr<Kernel>, std::less<>>();
  std::lock_guard<std::mutex> lock(*mutex);
  auto it = kernels->find(key);
  if (it != kernels->end()) return *it->second;
  return *kernels->emplace(key, make()).first->second;
}

void launch(const Kernel& kernel, std::string_view op, const Device& device,
            const compiler::Grid& grid, const std::vector<compiler::Arg>& args,
            const Config& config) {
  const Config& chosen = config.values().empty() ? kernel.configs().front() : config;
  try {
    kernel.compiled(chosen, device);
  } catch (const Error& e) {
    if (e.category() != ErrorCategory::kBackend && e.category() != ErrorCategory::kUnsupported)
      throw;
    throw_error(ErrorCategory::kUnsupported, "op '", op, "': generated kernel '", kernel.name(),
                "' does not build for ", device.spec(), ": ", e.message());
  }
  kernel.launch(Stream::default_stream(device), grid, args, chosen);
}

Collapsed collapse(const Shape& shape, const std::vector<Shape>& strides) {
  Collapsed c;
  c.strides.resize(strides.size());
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    c.sizes.push_back(shape[d]);
    for (size_t k = 0; k < strides.size(); ++k) c.strides[k].push_back(strides[k][d]);
  }
  // Merge (d-1, d) when every operand steps over dim d-1 exactly as a run over dim d.
  for (size_t d = c.sizes.size(); d-- > 1;) {
    bool mergeable = true;
    for (const Shape& s : c.strides) mergeable = mergeable && s[d - 1] == s[d] * c.sizes[d];
    if (!mergeable) continue;
    c.sizes[d - 1] *= c.sizes[d];
    c.sizes.erase(c.sizes.begin() + static_cast<int64_t>(d));
    for (Shape& s : c.strides) s.erase(s.begin() + static_cast<int64_t>(d - 1));
  }
  if (c.sizes.empty()) {
    c.sizes.push_back(shape_numel(shape) == 0 ? 0 : 1);
    for (Shape& s : c.strides) s.push_back(0);
  }
  return c;
}

void pad_rank(Collapsed& c, size_t rank) {
  while (c.sizes.size() < rank) {
    c.sizes.insert(c.sizes.begin(), 1);
    for (Shape& s : c.strides) s.insert(s.begin(), 0);
  }
}

Tensor restride(const Tensor& t, const Shape& sizes, const Shape& strides) {
  return Tensor::from_buffer(t.buffer(), sizes, strides, t.offset(), t.dtype());
}

std::string check_index_range(const Tensor& t) {
  if (!t.defined()) return "";
  int64_t last = t.offset();
  for (int d = 0; d < t.dim(); ++d)
    if (t.size(d) > 0) last += t.stride(d) * (t.size(d) - 1);
  if (t.numel() > kMaxIndex || last > kMaxIndex)
    return "tensor " + t.describe() + " needs 64-bit indexing";
  return "";
}

std::string check_index_range(const std::vector<Tensor>& tensors) {
  for (const Tensor& t : tensors) {
    std::string why = check_index_range(t);
    if (!why.empty()) return why;
  }
  return "";
}

DType compute_dtype(DType storage) {
  return storage == DType::kF16 || storage == DType::kBF16 ? DType::kF32 : storage;
}

Tensor as_dtype(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  return call("cast", {t}, {{"dtype", std::string(dtype_name(dtype))}})[0];
}

namespace {

// Families checked on a GPU (parity on cuda:0 in a GPU window) serve cuda by default; the
// others only with FLAGSTONE_OPS_GENERATED_CUDA=all (the GPU check script runs them in a
// separate process, so a faulting kernel cannot take the device down for everything else).
bool cuda_enabled(std::string_view family) {
  const char* env = std::getenv("FLAGSTONE_OPS_GENERATED_CUDA");
  if (env && std::string_view(env) == "all") return true;
  if (env && std::string_view(env) == "none") return false;
  return family == "unary" || family == "binary" || family == "reduction" || family == "movement" ||
         family == "factory";
}

}  // namespace

void add_generated(Registry& r, const std::string& op, std::vector<DType> dtypes, KernelFn fn,
                   std::function<std::string(const KernelArgs&)> supports, bool strided) {
  const OpSchema* schema = r.find_schema(op);
  std::string family = schema ? schema->family : "";
  for (const char* backend : {"opencl", "cuda"}) {
    // Hand-written cuda kernels are tuned for their ops: generated ones serve only the rest.
    if (std::string_view(backend) == "cuda") {
      if (!cuda_enabled(family)) continue;
      bool native = false;
      for (const Implementation* impl : r.implementations(op, backend))
        native = native || impl->provider == Provider::kNative;
      if (native) continue;
    }
    Implementation impl;
    impl.op = op;
    impl.backend = backend;
    impl.provider = Provider::kGenerated;
    impl.dtypes = dtypes;
    impl.fn = fn;
    impl.strided = strided;
    impl.supports = [supports](const KernelArgs& args) {
      std::string why = check_index_range(args.inputs);
      if (why.empty()) why = check_index_range(args.outputs);
      if (why.empty() && supports) why = supports(args);
      return why;
    };
    r.add_implementation(std::move(impl));
  }
}

}  // namespace flagstone::ops::gen

namespace flagstone::ops {

void register_generated(Registry& r) {
  gen::register_unary_table(r);
  gen::register_binary_table(r);
  gen::register_reductions(r);
  gen::register_norms(r);
  gen::register_llm(r);
  gen::register_movement(r);
  gen::register_factories(r);
}

}  // namespace flagstone::ops
