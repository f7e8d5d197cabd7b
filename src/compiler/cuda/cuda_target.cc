// The cuda target: CUDA C++ compiled by NVRTC to a cubin for the device's sm_XX, loaded and
// launched through the driver API (libcuda.so.1 opened with dlopen) in the device's primary
// context, which the runtime's CUDA backend shares.
#include <dlfcn.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>

#include "codegen.h"
#include "cuda/nvrtc.h"
#include "flagstone/base/error.h"
#include "targets_internal.h"

namespace flagstone::compiler {
namespace {

// The driver API's C ABI (cuda.h), declared here so the build needs no toolkit headers.
using CUresult = int;
using CUdevice = int;
using CUcontext = void*;
using CUmodule = void*;
using CUfunction = void*;
using CUstream = void*;
constexpr int kAttrMaxThreadsPerBlock = 1;
constexpr int kAttrMaxGridDimX = 5;
constexpr int kAttrMaxSharedPerBlock = 8;
constexpr int kAttrCcMajor = 75;
constexpr int kAttrCcMinor = 76;
constexpr int kAttrMaxSharedPerBlockOptin = 97;
constexpr int kFuncAttrMaxDynamicShared = 8;
// Static __shared__ arrays are limited to 48 KiB; beyond that codegen declares the scratch
// dynamic and the function opts in to the device's larger limit.
constexpr int64_t kStaticSharedLimit = kCudaStaticSharedLimit;

struct Driver {
  std::string error;
  CUresult (*init)(unsigned) = nullptr;
  CUresult (*device_get)(CUdevice*, int) = nullptr;
  CUresult (*attribute)(int*, int, CUdevice) = nullptr;
  CUresult (*primary_retain)(CUcontext*, CUdevice) = nullptr;
  CUresult (*push)(CUcontext) = nullptr;
  CUresult (*pop)(CUcontext*) = nullptr;
  CUresult (*current)(CUcontext*) = nullptr;
  CUresult (*load)(CUmodule*, const void*) = nullptr;
  CUresult (*unload)(CUmodule) = nullptr;
  CUresult (*function)(CUfunction*, CUmodule, const char*) = nullptr;
  CUresult (*launch)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                     unsigned, CUstream, void**, void**) = nullptr;
  CUresult (*error_string)(CUresult, const char**) = nullptr;
  CUresult (*set_attribute)(CUfunction, int, int) = nullptr;
  // cuTensorMapEncodeTiled (CUDA 12+ drivers); null when missing: kernels then copy without TMA.
  CUresult (*encode_tiled)(void*, int, unsigned, void*, const uint64_t*, const uint64_t*,
                           const unsigned*, const unsigned*, int, int, int, int) = nullptr;
};

const Driver& driver() {
  static Driver* d = [] {
    auto* drv = new Driver();
    void* h = ::dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      drv->error = "libcuda.so.1 (the NVIDIA driver) not found";
      return drv;
    }
    auto sym = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(h, name));
      if (!fn && drv->error.empty()) drv->error = std::string("libcuda lacks ") + name;
    };
    sym(drv->init, "cuInit");
    sym(drv->device_get, "cuDeviceGet");
    sym(drv->attribute, "cuDeviceGetAttribute");
    sym(drv->primary_retain, "cuDevicePrimaryCtxRetain");
    sym(drv->push, "cuCtxPushCurrent_v2");
    sym(drv->pop, "cuCtxPopCurrent_v2");
    sym(drv->current, "cuCtxGetCurrent");
    sym(drv->load, "cuModuleLoadData");
    sym(drv->unload, "cuModuleUnload");
    sym(drv->function, "cuModuleGetFunction");
    sym(drv->launch, "cuLaunchKernel");
    sym(drv->error_string, "cuGetErrorString");
    sym(drv->set_attribute, "cuFuncSetAttribute");
    drv->encode_tiled =
        reinterpret_cast<decltype(drv->encode_tiled)>(::dlsym(h, "cuTensorMapEncodeTiled"));
    if (drv->error.empty() && drv->init(0) != 0) drv->error = "cuInit failed";
    return drv;
  }();
  FS_CHECK(d->error.empty(), kUnsupported, "cuda target: ", d->error);
  return *d;
}

void check(CUresult r, const char* call, const std::string& kernel) {
  if (r == 0) return;
  const char* text = nullptr;
  driver().error_string(r, &text);
  throw_error(ErrorCategory::kBackend, "cuda target: ", call, " failed for kernel '", kernel,
              "': ", text ? text : "unknown error", " (", r, ")");
}

CUdevice cu_device(const runtime::Device& device) {
  CUdevice dev = 0;
  check(driver().device_get(&dev, device.index()), "cuDeviceGet", device.spec());
  return dev;
}

int attribute(const runtime::Device& device, int attr) {
  int value = 0;
  check(driver().attribute(&value, attr, cu_device(device)), "cuDeviceGetAttribute", device.spec());
  return value;
}

int sm_of(const runtime::Device& device) {
  return attribute(device, kAttrCcMajor) * 10 + attribute(device, kAttrCcMinor);
}

// The device's primary context (the one the runtime's CUDA backend uses), retained once per
// device for the life of the process.
CUcontext primary_context(const runtime::Device& device) {
  // Never destroyed: kernels unloaded during static destruction may still ask for it.
  static auto* mutex = new std::mutex();
  static auto* contexts = new std::map<int, CUcontext>();
  std::lock_guard<std::mutex> lock(*mutex);
  CUcontext& ctx = (*contexts)[device.index()];
  if (!ctx)
    check(driver().primary_retain(&ctx, cu_device(device)), "cuDevicePrimaryCtxRetain",
          device.spec());
  return ctx;
}

// Makes the primary context current for the scope; the runtime has usually made it current on
// this thread already, and then no driver call is needed beyond the query.
class ContextScope {
 public:
  explicit ContextScope(const runtime::Device& device) : ctx_(primary_context(device)) {
    CUcontext current = nullptr;
    driver().current(&current);
    if (current != ctx_) {
      check(driver().push(ctx_), "cuCtxPushCurrent", device.spec());
      pushed_ = true;
    }
  }
  ~ContextScope() {
    CUcontext popped = nullptr;
    if (pushed_) driver().pop(&popped);
  }
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;

 private:
  CUcontext ctx_ = nullptr;
  bool pushed_ = false;
};

// A CUtensorMap: 128 opaque bytes, passed to the kernel by value.
struct alignas(64) TensorMap {
  uint64_t opaque[16] = {};
};

// The tensor map of `recipe` for this launch: 16-bit elements, rows of `stride` elements (the
// row-stride argument), boxes of box_rows x 64 in the 128-byte swizzle. All zeros when the
// driver cannot make it (the kernel then copies with cp.async).
TensorMap make_tensor_map(const TensorMapRecipe& recipe, const std::vector<ArgSlot>& slots,
                          const std::vector<LaunchArg>& args) {
  TensorMap map;
  const Driver& d = driver();
  auto p = static_cast<size_t>(recipe.pointer_param),
       s = static_cast<size_t>(recipe.row_stride_param);
  if (!d.encode_tiled || p >= args.size() || s >= args.size()) return map;
  void* base = slots[p].ptr;
  int64_t stride = args[s].i;
  if ((reinterpret_cast<uintptr_t>(base) & 15) != 0 || stride <= 0 || stride % 8 != 0 ||
      stride >= (int64_t{1} << 32))
    return map;
  constexpr int kUint16 = 1, kInterleaveNone = 0, kSwizzle128 = 3, kL2Promote256 = 3, kFillZero = 0;
  // Rows: as many as 40-bit byte offsets reach (the kernel only reads rows its masks allow).
  uint64_t rows =
      std::min<uint64_t>(uint64_t{1} << 31, (uint64_t{1} << 40) / (uint64_t(stride) * 2));
  const uint64_t dims[2] = {uint64_t(stride), rows};
  const uint64_t strides[1] = {uint64_t(stride) * 2};
  const unsigned box[2] = {64, static_cast<unsigned>(recipe.box_rows)};
  const unsigned unit[2] = {1, 1};
  if (d.encode_tiled(map.opaque, kUint16, 2, base, dims, strides, box, unit, kInterleaveNone,
                     kSwizzle128, kL2Promote256, kFillZero) != 0)
    map = TensorMap{};
  return map;
}

class CudaKernel final : public CompiledKernel {
 public:
  CudaKernel(runtime::Device device, CUmodule module, CUfunction fn, int64_t threads,
             int64_t dynamic_shared, std::string name, std::vector<TensorMapRecipe> maps)
      : device_(std::move(device)),
        module_(module),
        fn_(fn),
        threads_(threads),
        dynamic_shared_(dynamic_shared),
        name_(std::move(name)),
        maps_(std::move(maps)) {}
  ~CudaKernel() override {
    try {
      ContextScope scope(device_);
      driver().unload(module_);
    } catch (const Error&) {
    }
  }

  void launch(const runtime::Stream& stream, const Grid& grid,
              const std::vector<LaunchArg>& args) override {
    std::vector<ArgSlot> slots;
    std::vector<void*> params;
    marshal_args(args, &slots, &params);
    std::vector<TensorMap> maps;
    maps.reserve(maps_.size());
    for (const TensorMapRecipe& r : maps_) maps.push_back(make_tensor_map(r, slots, args));
    for (TensorMap& m : maps) params.push_back(m.opaque);
    ContextScope scope(device_);
    auto queue = static_cast<CUstream>(stream.impl().native_handle());
    check(driver().launch(fn_, static_cast<unsigned>(grid.x), static_cast<unsigned>(grid.y),
                          static_cast<unsigned>(grid.z), static_cast<unsigned>(threads_), 1, 1,
                          static_cast<unsigned>(dynamic_shared_), queue, params.data(), nullptr),
          "cuLaunchKernel", name_);
  }

 private:
  runtime::Device device_;
  CUmodule module_;
  CUfunction fn_;
  int64_t threads_;
  int64_t dynamic_shared_;
  std::string name_;
  std::vector<TensorMapRecipe> maps_;
};

class CudaTarget final : public Target {
 public:
  std::string_view name() const override { return "cuda"; }

  TargetLimits limits(const runtime::Device& device) const override {
    TargetLimits l;
    l.warp_size = 32;
    l.max_threads_per_program = attribute(device, kAttrMaxThreadsPerBlock);
    l.local_memory_bytes = std::max<int64_t>(attribute(device, kAttrMaxSharedPerBlock),
                                             attribute(device, kAttrMaxSharedPerBlockOptin));
    for (int i = 0; i < 3; ++i) l.max_grid[i] = attribute(device, kAttrMaxGridDimX + i);
    l.arch = sm_of(device);
    return l;
  }

  std::string cache_tag(const runtime::Device& device) const override {
    std::string tag = "sm_" + std::to_string(sm_of(device)) + "|nvrtc " + cuda::nvrtc_version();
    return cuda::needs_arch_specific("") ? tag + "|sm90a-all" : tag;
  }

  std::string codegen(const ir::Function& fn, const CodegenOptions& options) const override {
    int64_t local = 0;
    std::string source = emit_source(fn, Dialect::kCuda, options.threads, &local, options.arch);
    int64_t limit = options.local_memory_limit ? options.local_memory_limit : kStaticSharedLimit;
    FS_CHECK(local <= limit, kUnsupported, "kernel '", fn.name, "' needs ", local,
             " bytes of shared memory with ", options.threads,
             " threads per program; the limit is ", limit, " (use smaller tiles)");
    return source;
  }

  std::vector<uint8_t> compile(const std::string& source, const ir::Function& fn,
                               const runtime::Device& device) const override {
    return cuda::nvrtc_compile(source, fn.name, sm_of(device));
  }

  std::unique_ptr<CompiledKernel> load(const std::vector<uint8_t>& artifact, const std::string&,
                                       const ir::Function& fn, const CodegenOptions& options,
                                       const runtime::Device& device) const override {
    ContextScope scope(device);
    CUmodule module = nullptr;
    check(driver().load(&module, artifact.data()), "cuModuleLoadData", fn.name);
    CUfunction function = nullptr;
    CUresult r = driver().function(&function, module, "fs_kernel");
    if (r != 0) driver().unload(module);
    check(r, "cuModuleGetFunction", fn.name);
    // The shared memory a kernel declares dynamically is known from codegen (cheap, and
    // deterministic for the IR and options the artifact was built from).
    int64_t local = 0;
    std::vector<TensorMapRecipe> maps;
    emit_source(fn, Dialect::kCuda, options.threads, &local, options.arch, &maps);
    int64_t dynamic = local > kStaticSharedLimit ? local : 0;
    if (dynamic > 0) {
      r = driver().set_attribute(function, kFuncAttrMaxDynamicShared, static_cast<int>(dynamic));
      if (r != 0) driver().unload(module);
      check(r, "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)", fn.name);
    }
    return std::make_unique<CudaKernel>(device, module, function, options.threads, dynamic, fn.name,
                                        std::move(maps));
  }
};

}  // namespace

std::unique_ptr<Target> create_cuda_target() {
  return std::make_unique<CudaTarget>();
}

}  // namespace flagstone::compiler
