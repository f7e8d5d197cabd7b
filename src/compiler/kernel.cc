// The run-time driver: build -> optimize -> codegen -> compile cache (memory, then disk, then
// the target's toolchain) -> argument binding and checks -> launch.
#include "flagstone/compiler/kernel.h"

#include <limits>
#include <map>

#include "cache.h"
#include "flagstone/base/error.h"
#include "flagstone/compiler/passes.h"
#include "flagstone/version.h"
#include "kernel_state.h"

namespace flagstone::compiler {

namespace {

// Kernels compiled in this process, shared by every Kernel object with the same key.
struct ProcessCache {
  std::mutex mutex;
  std::map<std::string, std::shared_ptr<CompiledKernel>> kernels;
};
ProcessCache& process_cache() {
  static ProcessCache* cache = new ProcessCache();
  return *cache;
}

CodegenOptions options_for(const Target& target, const ir::Function& fn, const Device& device) {
  TargetLimits limits = target.limits(device);
  CodegenOptions options;
  int64_t want = fn.num_warps() * limits.warp_size;
  options.threads = std::max<int64_t>(1, std::min(want, limits.max_threads_per_program));
  options.local_memory_limit = limits.local_memory_bytes;
  options.arch = limits.arch;
  return options;
}

}  // namespace

Kernel::Kernel(std::string name, BuildFn build, std::vector<Config> configs)
    : name_(std::move(name)),
      build_(std::move(build)),
      configs_(std::move(configs)),
      state_(std::make_unique<State>()) {
  if (configs_.empty()) configs_.push_back(Config{});
}

Kernel::Kernel(ir::Function fn) : name_(fn.name), state_(std::make_unique<State>()) {
  ir::verify(fn);
  Config config;
  for (const auto& [key, value] : fn.meta) config.set(key, value);
  configs_ = {config};
  ir_ = std::make_shared<const ir::Function>(std::move(fn));
}

Kernel::~Kernel() = default;

ir::Function Kernel::build(const Config& config) const {
  if (ir_) {
    FS_CHECK(config.values().empty() || config == configs_.front(), kInvalidArgument, "kernel '",
             name_, "' was made from IR with config {", configs_.front().str(),
             "} and cannot be rebuilt with {", config.str(), "}");
    return ir_->clone();
  }
  KernelBuilder builder(name_, config.values().empty() ? configs_.front() : config);
  build_(builder);
  return builder.finish();
}

ir::Function Kernel::optimized(const Config& config_in) const {
  const Config& config = config_in.values().empty() ? configs_.front() : config_in;
  std::string key = config.str();
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    auto it = state_->optimized.find(key);
    if (it != state_->optimized.end()) return it->second.clone();
  }
  ir::Function fn = build(config);
  passes::optimize(fn);
  std::lock_guard<std::mutex> lock(state_->mutex);
  auto [it, inserted] = state_->optimized.emplace(key, std::move(fn));
  return it->second.clone();
}

std::string Kernel::source(const Config& config, const Device& device) const {
  ir::Function fn = optimized(config);
  const Target& target = target_for(device.backend());
  return target.codegen(fn, options_for(target, fn, device));
}

std::shared_ptr<CompiledKernel> Kernel::compiled(const Config& config_in,
                                                 const Device& device) const {
  const Config& config = config_in.values().empty() ? configs_.front() : config_in;
  std::string local_key = config.str() + "|" + device.spec();
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    auto it = state_->compiled.find(local_key);
    if (it != state_->compiled.end()) return it->second;
  }
  ir::Function fn = optimized(config);
  const Target& target = target_for(device.backend());
  CodegenOptions options = options_for(target, fn, device);
  std::string source = target.codegen(fn, options);
  std::string key = hash_hex(std::string(target.name()) + "\n" + target.cache_tag(device) + "\n" +
                             FLAGSTONE_VERSION + "\nthreads=" + std::to_string(options.threads) +
                             "\n" + ir::print(fn) + "\n" + source);
  std::shared_ptr<CompiledKernel> kernel;
  {
    ProcessCache& pc = process_cache();
    std::lock_guard<std::mutex> lock(pc.mutex);
    auto it = pc.kernels.find(key + device.spec());
    if (it != pc.kernels.end()) kernel = it->second;
  }
  if (!kernel) {
    std::string path = cache_dir() + "/" + std::string(target.name()) + "/" + key + ".bin";
    std::optional<std::vector<uint8_t>> artifact = read_file_bytes(path);
    if (artifact && !artifact->empty()) {
      try {
        kernel = target.load(*artifact, path, fn, options, device);
      } catch (const Error&) {
        kernel = nullptr;  // a stale or damaged entry: rebuild it below
      }
    }
    if (!kernel) {
      note_compiler_invocation();
      std::vector<uint8_t> bytes = target.compile(source, fn, device);
      write_file_atomic(path, bytes);
      kernel = target.load(bytes, path, fn, options, device);
    }
    ProcessCache& pc = process_cache();
    std::lock_guard<std::mutex> lock(pc.mutex);
    pc.kernels.emplace(key + device.spec(), kernel);
  }
  std::lock_guard<std::mutex> lock(state_->mutex);
  state_->compiled.emplace(local_key, kernel);
  return kernel;
}

namespace {

std::string signature(const ir::Function& fn) {
  std::string s = fn.name + "(";
  bool first = true;
  for (const ir::Param& p : fn.params) {
    if (p.role == ir::ParamRole::kSize || p.role == ir::ParamRole::kStride) continue;
    s += (first ? "" : ", ") + p.name + ": " + fn.type(p.value).str();
    first = false;
  }
  return s + ")";
}

std::vector<LaunchArg> bind_args(const ir::Function& fn, const std::vector<Arg>& args,
                                 const Device& device) {
  size_t expected = 0;
  std::vector<int> ranks(fn.params.size(), -1);
  for (const ir::Param& p : fn.params) {
    if (p.role == ir::ParamRole::kSize) {
      int& r = ranks[static_cast<size_t>(p.tensor_param)];
      r = std::max(r, p.dim + 1);
    } else if (p.role != ir::ParamRole::kStride) {
      ++expected;
    }
  }
  FS_CHECK(args.size() == expected, kInvalidArgument, "kernel ", signature(fn), " takes ", expected,
           " arguments, got ", args.size());
  std::vector<LaunchArg> out(fn.params.size());
  std::vector<const Tensor*> tensors(fn.params.size(), nullptr);
  size_t next = 0;
  auto fits_i32 = [](int64_t v) {
    return v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max();
  };
  for (size_t i = 0; i < fn.params.size(); ++i) {
    const ir::Param& p = fn.params[i];
    const ir::Type& t = fn.type(p.value);
    LaunchArg& a = out[i];
    a.dtype = t.dtype;
    if (p.role == ir::ParamRole::kPointer) {
      const Arg& arg = args[next++];
      const Tensor* tensor = std::get_if<Tensor>(&arg.value());
      FS_CHECK(tensor != nullptr, kInvalidArgument, "kernel ", signature(fn), ": argument '",
               p.name, "' must be a ", dtype_name(t.dtype), " tensor, got a number");
      FS_CHECK(tensor->defined(), kInvalidArgument, "kernel ", signature(fn), ": argument '",
               p.name, "' is an undefined tensor");
      FS_CHECK(tensor->dtype() == t.dtype, kInvalidArgument, "kernel ", signature(fn),
               ": argument '", p.name, "' must be a ", dtype_name(t.dtype), " tensor, got ",
               tensor->describe());
      FS_CHECK(tensor->device() == device, kInvalidArgument, "kernel ", signature(fn),
               ": argument '", p.name, "' is on ", tensor->device().spec(),
               " but the launch stream is on ", device.spec());
      if (ranks[i] >= 0)
        FS_CHECK(tensor->dim() == ranks[i], kInvalidArgument, "kernel ", signature(fn),
                 ": argument '", p.name, "' must have rank ", ranks[i], ", got ",
                 tensor->describe());
      tensors[i] = tensor;
      a.kind = LaunchArg::Kind::kBuffer;
      a.handle = tensor->buffer().handle();
      a.byte_offset = tensor->byte_offset();
    } else if (p.role == ir::ParamRole::kScalar) {
      const Arg& arg = args[next++];
      bool is_float_param = is_floating(t.dtype);
      if (const int64_t* iv = std::get_if<int64_t>(&arg.value())) {
        if (is_float_param) {
          a.kind = LaunchArg::Kind::kFloat;
          a.f = static_cast<double>(*iv);
        } else {
          a.kind = LaunchArg::Kind::kInt;
          a.i = *iv;
          FS_CHECK(t.dtype != DType::kI32 || fits_i32(*iv), kInvalidArgument, "kernel ",
                   signature(fn), ": argument '", p.name, "' = ", *iv, " does not fit in i32");
        }
      } else if (const double* fv = std::get_if<double>(&arg.value())) {
        FS_CHECK(is_float_param, kInvalidArgument, "kernel ", signature(fn), ": argument '", p.name,
                 "' is ", dtype_name(t.dtype), " but got the floating-point value ", *fv);
        a.kind = LaunchArg::Kind::kFloat;
        a.f = *fv;
      } else {
        throw_error(ErrorCategory::kInvalidArgument, "kernel ", signature(fn), ": argument '",
                    p.name, "' must be a ", dtype_name(t.dtype), " number, got a tensor");
      }
    } else {
      const Tensor* tensor = tensors[static_cast<size_t>(p.tensor_param)];
      FS_ASSERT(tensor != nullptr);
      int64_t v = p.role == ir::ParamRole::kSize ? tensor->size(p.dim) : tensor->stride(p.dim);
      FS_CHECK(fits_i32(v), kInvalidArgument, "kernel ", signature(fn), ": ",
               p.role == ir::ParamRole::kSize ? "size " : "stride ", v, " of dim ", p.dim,
               " of argument '", fn.params[static_cast<size_t>(p.tensor_param)].name,
               "' does not fit in i32");
      a.kind = LaunchArg::Kind::kInt;
      a.i = v;
    }
  }
  return out;
}

}  // namespace

void Kernel::launch(const Stream& stream, const Grid& grid, const std::vector<Arg>& args,
                    const Config& config_in) const {
  const Config& config = config_in.values().empty() ? configs_.front() : config_in;
  const Device& device = stream.device();
  ir::Function fn = optimized(config);
  std::vector<LaunchArg> bound = bind_args(fn, args, device);
  FS_CHECK(grid.x >= 0 && grid.y >= 0 && grid.z >= 0, kInvalidArgument, "kernel '", name_,
           "': negative grid (", grid.x, ", ", grid.y, ", ", grid.z, ")");
  if (grid.count() == 0) return;
  TargetLimits limits = target_for(device.backend()).limits(device);
  FS_CHECK(
      grid.x <= limits.max_grid[0] && grid.y <= limits.max_grid[1] && grid.z <= limits.max_grid[2],
      kInvalidArgument, "kernel '", name_, "': grid (", grid.x, ", ", grid.y, ", ", grid.z,
      ") exceeds the limits of ", device.spec(), " (", limits.max_grid[0], ", ", limits.max_grid[1],
      ", ", limits.max_grid[2], ")");
  compiled(config, device)->launch(stream, grid, bound);
}

}  // namespace flagstone::compiler
