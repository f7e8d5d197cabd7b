// cuda vendor attention: scaled_dot_product_attention (f16/bf16) through cuDNN 9's graph API,
// whose fused flash engines reach the tensor-core peak on Hopper where a mma.sync kernel cannot.
// cuDNN is loaded with dlopen (FLAGSTONE_CUDNN_PATH, else libcudnn.so.9 on the loader's path) so
// the binary starts without it; shapes, layouts or machines it refuses fall back to the native
// flash kernel through dispatch. Execution plans are built once per (device, dtype, shape,
// strides, causal) with their workspace, so a call only fills a variant pack and executes.
#include <cudnn_graph.h>
#include <dlfcn.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cuda/cuda_common.h"
#include "internal.h"

namespace flagstone::ops::cuda {
namespace {

struct CudnnApi {
  decltype(&cudnnGetVersion) get_version = nullptr;
  decltype(&cudnnGetErrorString) error_string = nullptr;
  decltype(&cudnnGetLastErrorString) last_error = nullptr;
  decltype(&cudnnCreate) create = nullptr;
  decltype(&cudnnSetStream) set_stream = nullptr;
  decltype(&cudnnBackendCreateDescriptor) create_desc = nullptr;
  decltype(&cudnnBackendDestroyDescriptor) destroy_desc = nullptr;
  decltype(&cudnnBackendSetAttribute) set_attr = nullptr;
  decltype(&cudnnBackendGetAttribute) get_attr = nullptr;
  decltype(&cudnnBackendFinalize) finalize = nullptr;
  decltype(&cudnnBackendExecute) execute = nullptr;
  std::string missing;  // why cuDNN is unusable; empty when loaded
  std::string origin;   // which library was loaded
};

template <typename Fn>
void bind(void* lib, const char* name, Fn& fn, std::string& missing) {
  fn = reinterpret_cast<Fn>(dlsym(lib, name));
  if (!fn && missing.empty()) missing = std::string("the cuDNN library found lacks ") + name;
}

// FLAGSTONE_CUDNN_PATH names libcudnn.so.9 itself or its folder; in a folder the sub-libraries
// (graph, engines, heuristics) are loaded first so the dispatcher library finds them by soname.
void* open_cudnn(std::string& origin) {
  const char* env = std::getenv("FLAGSTONE_CUDNN_PATH");
  if (env && *env) {
    std::string path = env;
    if (void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) return origin = path, lib;
    for (const char* sub :
         {"libcudnn_graph.so.9", "libcudnn_heuristic.so.9", "libcudnn_ops.so.9",
          "libcudnn_engines_precompiled.so.9", "libcudnn_engines_runtime_compiled.so.9",
          "libcudnn_adv.so.9", "libcudnn_cnn.so.9"})
      dlopen((path + "/" + sub).c_str(), RTLD_NOW | RTLD_GLOBAL);
    for (const char* name : {"/libcudnn.so.9", "/libcudnn_graph.so.9"})
      if (void* lib = dlopen((path + name).c_str(), RTLD_NOW | RTLD_LOCAL))
        return origin = path + name, lib;
  }
  // libcudnn.so.9 is a thin front of libcudnn_graph.so.9, which exports the same graph API and is
  // what some distributions ship alone.
  for (const char* name : {"libcudnn.so.9", "libcudnn_graph.so.9"})
    if (void* lib = dlopen(name, RTLD_NOW | RTLD_LOCAL)) return origin = name, lib;
  return nullptr;
}

const CudnnApi& cudnn() {
  static const CudnnApi api = [] {
    CudnnApi a;
    void* lib = open_cudnn(a.origin);
    if (!lib) {
      a.missing =
          "cuDNN 9 is not installed (dlopen libcudnn.so.9 failed; set FLAGSTONE_CUDNN_PATH)";
      return a;
    }
    bind(lib, "cudnnGetVersion", a.get_version, a.missing);
    bind(lib, "cudnnGetErrorString", a.error_string, a.missing);
    bind(lib, "cudnnGetLastErrorString", a.last_error, a.missing);
    bind(lib, "cudnnCreate", a.create, a.missing);
    bind(lib, "cudnnSetStream", a.set_stream, a.missing);
    bind(lib, "cudnnBackendCreateDescriptor", a.create_desc, a.missing);
    bind(lib, "cudnnBackendDestroyDescriptor", a.destroy_desc, a.missing);
    bind(lib, "cudnnBackendSetAttribute", a.set_attr, a.missing);
    bind(lib, "cudnnBackendGetAttribute", a.get_attr, a.missing);
    bind(lib, "cudnnBackendFinalize", a.finalize, a.missing);
    bind(lib, "cudnnBackendExecute", a.execute, a.missing);
    if (a.missing.empty() && a.get_version() < 90000)
      a.missing = "cuDNN " + std::to_string(a.get_version()) + " is older than 9.0";
    return a;
  }();
  return api;
}

// "CUDNN_STATUS_...: <cuDNN's last error message>" for an error naming the failed step.
std::string status_text(cudnnStatus_t s) {
  const CudnnApi& api = cudnn();
  std::string text = api.error_string ? api.error_string(s) : "status " + std::to_string(s);
  if (api.last_error) {
    char message[512] = {};
    api.last_error(message, sizeof(message));
    if (message[0]) text += std::string(": ") + message;
  }
  return text;
}

void check(cudnnStatus_t s, const std::string& what) {
  FS_CHECK(s == CUDNN_STATUS_SUCCESS, kBackend, "cuDNN ", what, " failed: ", status_text(s));
}

// One backend descriptor, destroyed with its owner.
class Desc {
 public:
  Desc() = default;
  Desc(cudnnBackendDescriptorType_t type, std::string name) : name_(std::move(name)) {
    check(cudnn().create_desc(type, &desc_), "create " + name_);
  }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  Desc(Desc&& o) noexcept : desc_(o.desc_), name_(std::move(o.name_)) { o.desc_ = nullptr; }
  Desc& operator=(Desc&& o) noexcept {
    std::swap(desc_, o.desc_), std::swap(name_, o.name_);
    return *this;
  }
  ~Desc() {
    if (desc_) cudnn().destroy_desc(desc_);
  }
  template <typename T>
  Desc& set(cudnnBackendAttributeName_t attr, cudnnBackendAttributeType_t type, const T* values,
            int64_t count = 1) {
    check(cudnn().set_attr(desc_, attr, type, count, values),
          "set attribute " + std::to_string(attr) + " of " + name_);
    return *this;
  }
  Desc& set_desc(cudnnBackendAttributeName_t attr, const Desc& d) {
    cudnnBackendDescriptor_t raw = d.get();
    return set(attr, CUDNN_TYPE_BACKEND_DESCRIPTOR, &raw);
  }
  Desc& finalize() {
    check(cudnn().finalize(desc_), "finalize " + name_);
    return *this;
  }
  cudnnBackendDescriptor_t get() const { return desc_; }
  const std::string& name() const { return name_; }

 private:
  cudnnBackendDescriptor_t desc_ = nullptr;
  std::string name_;
};

// The deprecated-but-required handle attributes, by value (their enumerators warn in some
// cuDNN headers).
constexpr auto kGraphHandle = static_cast<cudnnBackendAttributeName_t>(800);
constexpr auto kPlanHandle = static_cast<cudnnBackendAttributeName_t>(400);

using Dims = std::array<int64_t, 4>;

Desc tensor(const std::string& name, int64_t uid, cudnnDataType_t type, const Dims& dims,
            const Dims& strides, bool is_virtual = false, bool by_value = false) {
  Desc t(CUDNN_BACKEND_TENSOR_DESCRIPTOR, "tensor " + name);
  int64_t alignment = 16;
  t.set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, &type)
      .set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, dims.data(), 4)
      .set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, strides.data(), 4)
      .set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, &uid)
      .set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, &alignment)
      .set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, &is_virtual);
  if (by_value) t.set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, &by_value);
  return std::move(t.finalize());
}

// y = mode(x [, b [, t]]) computed in `prec`; GEN_INDEX takes an axis.
Desc pointwise(const std::string& name, cudnnPointwiseMode_t mode, cudnnDataType_t prec,
               const Desc& x, const Desc* b, const Desc* t, const Desc& y, int64_t axis = -1) {
  Desc pw(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, "pointwise " + name);
  pw.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, &mode)
      .set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, &prec);
  if (axis >= 0) pw.set(CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, &axis);
  pw.finalize();
  Desc op(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, "operation " + name);
  op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw)
      .set_desc(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x);
  if (b) op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, *b);
  if (t) op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_TDESC, *t);
  op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y);
  return std::move(op.finalize());
}

Desc reduction(const std::string& name, cudnnReduceTensorOp_t mode, const Desc& x, const Desc& y) {
  Desc r(CUDNN_BACKEND_REDUCTION_DESCRIPTOR, "reduction " + name);
  cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
  r.set(CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, &mode)
      .set(CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, &f32)
      .finalize();
  Desc op(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, "operation " + name);
  op.set_desc(CUDNN_ATTR_OPERATION_REDUCTION_DESC, r)
      .set_desc(CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x)
      .set_desc(CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y);
  return std::move(op.finalize());
}

Desc matmul(const std::string& name, const Desc& a, const Desc& b, const Desc& c) {
  Desc mm(CUDNN_BACKEND_MATMUL_DESCRIPTOR, "matmul " + name);
  cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
  mm.set(CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, &f32).finalize();
  Desc op(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, "operation " + name);
  op.set_desc(CUDNN_ATTR_OPERATION_MATMUL_DESC, mm)
      .set_desc(CUDNN_ATTR_OPERATION_MATMUL_ADESC, a)
      .set_desc(CUDNN_ATTR_OPERATION_MATMUL_BDESC, b)
      .set_desc(CUDNN_ATTR_OPERATION_MATMUL_CDESC, c);
  return std::move(op.finalize());
}

// What a plan depends on: device, dtype, causal, then the 4-d dims and strides of Q, K, V, O.
using PlanKey = std::array<int64_t, 3 + 4 * 8>;

enum Uid : int64_t { kQ = 1, kK = 2, kV = 3, kO = 4, kScale = 5, kNegInf = 6 };

struct Plan {
  Desc plan;
  Buffer workspace;
  int64_t workspace_bytes = 0;
  int64_t engine = -1;
  std::string error;  // why no plan could be built; empty when usable
};

struct DeviceCudnn {
  std::mutex mutex;  // guards the handle's stream and the plan cache
  cudnnHandle_t handle = nullptr;
  std::map<PlanKey, std::unique_ptr<Plan>> plans;
  // Graphs built with dynamic shapes share one compiled-kernel cache per (dtype, causal), so a
  // new sequence length reuses kernels instead of compiling (7 ms instead of 70-670 ms for a new
  // prefill length on the H200). Opt-in with FLAGSTONE_CUDNN_DYNAMIC=1: keyed only by dtype and
  // causal, the cache handed back kernels of another head dim or stride layout and gave wrong
  // results on the H200 (window 3), so it stays off until the key covers the whole shape.
  std::map<std::pair<int, bool>, Desc> kernel_caches;
};

bool dynamic_shapes() {
  static const bool on = [] {
    const char* env = std::getenv("FLAGSTONE_CUDNN_DYNAMIC");
    return env && std::string(env) == "1" && cudnn().get_version() >= 90500;
  }();
  return on;
}

DeviceCudnn& cudnn_for(const Device& device) {
  static std::mutex mutex;
  static auto* states = new std::map<int, std::unique_ptr<DeviceCudnn>>();
  std::lock_guard lock(mutex);
  auto& slot = (*states)[device.index()];
  if (!slot) {
    auto state = std::make_unique<DeviceCudnn>();
    stream_for(device);  // makes the device current for cudnnCreate
    check(cudnn().create(&state->handle), "cudnnCreate on " + device.spec());
    slot = std::move(state);
  }
  return *slot;
}

Dims dims_of(const Tensor& t) {
  return {t.size(0), t.size(1), t.size(2), t.size(3)};
}
// Strides with those of size-1 dims made dense (cuDNN derives the layout from their order).
Dims strides_of(const Tensor& t) {
  Dims s{t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
  for (int d = 2; d >= 0; --d)
    if (t.size(d) == 1) s[d] = s[d + 1] * t.size(d + 1);
  return s;
}

PlanKey key_of(const KernelArgs& args) {
  PlanKey key{};
  key[0] = args.device.index();
  key[1] = static_cast<int64_t>(args.inputs[0].dtype());
  key[2] = args.attrs.get_bool("causal", false);
  const Tensor* ts[4] = {&args.inputs[0], &args.inputs[1], &args.inputs[2], &args.outputs[0]};
  for (int i = 0; i < 4; ++i) {
    Dims d = dims_of(*ts[i]), s = strides_of(*ts[i]);
    for (int j = 0; j < 4; ++j) key[3 + 8 * i + j] = d[j], key[3 + 8 * i + 4 + j] = s[j];
  }
  return key;
}

// The SDPA forward pattern the fused flash engines recognise: S = Q K^T (f32), S *= scale,
// optional causal select (row >= col, else the lowest float), softmax as max / sub / exp / sum /
// div with the log-sum-exp statistics left virtual, P cast to the input type, O = P V.
void build_plan(Plan& p, DeviceCudnn& dc, const KernelArgs& args) {
  const Tensor &q = args.inputs[0], &k = args.inputs[1], &v = args.inputs[2];
  const Tensor& o = args.outputs[0];
  cudnnDataType_t io = q.dtype() == DType::kBF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
  cudnnDataType_t f32 = CUDNN_DATA_FLOAT, i32 = CUDNN_DATA_INT32, b8 = CUDNN_DATA_BOOLEAN;
  int64_t b = q.size(0), h = q.size(1), sq = q.size(2), skv = k.size(2);
  bool causal = args.attrs.get_bool("causal", false);

  Dims kt_dims = dims_of(k), kt_strides = strides_of(k);
  std::swap(kt_dims[2], kt_dims[3]), std::swap(kt_strides[2], kt_strides[3]);
  Desc tq = tensor("Q", kQ, io, dims_of(q), strides_of(q));
  Desc tk = tensor("K^T", kK, io, kt_dims, kt_strides);
  Desc tv = tensor("V", kV, io, dims_of(v), strides_of(v));
  Desc to = tensor("O", kO, io, dims_of(o), strides_of(o));
  Dims one{1, 1, 1, 1};
  Desc tscale = tensor("scale", kScale, f32, one, one, false, true);
  Desc tneg = tensor("-inf", kNegInf, f32, one, one, false, true);

  Dims full{b, h, sq, skv}, full_strides{h * sq * skv, sq * skv, skv, 1};
  Dims row{b, h, sq, 1}, row_strides{h * sq, sq, 1, 1};
  int64_t uid = 100;
  auto virt = [&](const char* name, cudnnDataType_t type, bool whole) {
    return tensor(name, uid++, type, whole ? full : row, whole ? full_strides : row_strides, true);
  };
  std::vector<Desc> ops;
  Desc s = virt("S", f32, true);
  ops.push_back(matmul("Q K^T", tq, tk, s));
  Desc scaled = virt("S*scale", f32, true);
  ops.push_back(pointwise("scale", CUDNN_POINTWISE_MUL, f32, s, &tscale, nullptr, scaled));
  Desc masked;
  const Desc* logits = &scaled;
  if (causal) {
    Desc ri = virt("row index", i32, true), ci = virt("col index", i32, true);
    Desc keep = virt("row >= col", b8, true);
    masked = virt("masked S", f32, true);
    ops.push_back(
        pointwise("row index", CUDNN_POINTWISE_GEN_INDEX, i32, scaled, nullptr, nullptr, ri, 2));
    ops.push_back(
        pointwise("col index", CUDNN_POINTWISE_GEN_INDEX, i32, scaled, nullptr, nullptr, ci, 3));
    ops.push_back(pointwise("causal compare", CUDNN_POINTWISE_CMP_GE, b8, ri, &ci, nullptr, keep));
    ops.push_back(pointwise("causal select", CUDNN_POINTWISE_BINARY_SELECT, f32, scaled, &tneg,
                            &keep, masked));
    logits = &masked;
  }
  Desc mx = virt("row max", f32, false), sub = virt("S - max", f32, true);
  Desc ex = virt("exp", f32, true), sum = virt("row sum", f32, false);
  Desc lg = virt("log sum", f32, false), stats = virt("stats", f32, false);
  Desc pr = virt("P", io, true);
  ops.push_back(reduction("max", CUDNN_REDUCE_TENSOR_MAX, *logits, mx));
  ops.push_back(pointwise("sub", CUDNN_POINTWISE_SUB, f32, *logits, &mx, nullptr, sub));
  ops.push_back(pointwise("exp", CUDNN_POINTWISE_EXP, f32, sub, nullptr, nullptr, ex));
  ops.push_back(reduction("sum", CUDNN_REDUCE_TENSOR_ADD, ex, sum));
  ops.push_back(pointwise("log", CUDNN_POINTWISE_LOG, f32, sum, nullptr, nullptr, lg));
  ops.push_back(pointwise("stats", CUDNN_POINTWISE_ADD, f32, mx, &lg, nullptr, stats));
  ops.push_back(pointwise("div", CUDNN_POINTWISE_DIV, f32, ex, &sum, nullptr, pr));
  ops.push_back(matmul("P V", pr, tv, to));

  std::vector<cudnnBackendDescriptor_t> raw;
  for (const Desc& d : ops) raw.push_back(d.get());
  Desc graph(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "operation graph");
  graph.set(kGraphHandle, CUDNN_TYPE_HANDLE, &dc.handle)
      .set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, raw.data(),
           static_cast<int64_t>(raw.size()));
  const Desc* kernel_cache = nullptr;
  if (dynamic_shapes()) {
    bool on = true;
    graph.set(CUDNN_ATTR_OPERATIONGRAPH_IS_DYNAMIC_SHAPE_ENABLED, CUDNN_TYPE_BOOLEAN, &on);
  }
  graph.finalize();
  if (dynamic_shapes()) {
    Desc& cache = dc.kernel_caches[{static_cast<int>(q.dtype()), causal}];
    if (!cache.get()) {
      Desc fresh(CUDNN_BACKEND_KERNEL_CACHE_DESCRIPTOR, "kernel cache");
      fresh.set_desc(CUDNN_ATTR_KERNEL_CACHE_OPERATION_GRAPH, graph).finalize();
      cache = std::move(fresh);
    }
    kernel_cache = &cache;
  }
  Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "heuristics");
  cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
  heur.set_desc(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph)
      .set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, &mode)
      .finalize();
  int64_t count = 0;
  check(cudnn().get_attr(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                         0, &count, nullptr),
        "heuristics result count");
  FS_CHECK(count > 0, kUnsupported, "cuDNN heuristics found no engine for this SDPA graph");
  std::vector<Desc> configs;
  std::vector<cudnnBackendDescriptor_t> raw_configs;
  for (int64_t i = 0; i < count; ++i) {
    configs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "engine config");
    raw_configs.push_back(configs.back().get());
  }
  check(cudnn().get_attr(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                         count, &count, raw_configs.data()),
        "heuristics results");
  std::string failures;
  for (int64_t i = 0; i < count; ++i) {
    Desc plan(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, "execution plan");
    plan.set(kPlanHandle, CUDNN_TYPE_HANDLE, &dc.handle)
        .set_desc(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, configs[i]);
    if (kernel_cache) plan.set_desc(CUDNN_ATTR_EXECUTION_PLAN_KERNEL_CACHE, *kernel_cache);
    cudnnStatus_t st = cudnn().finalize(plan.get());
    if (st != CUDNN_STATUS_SUCCESS) {
      failures +=
          (failures.empty() ? "" : "; ") + ("config " + std::to_string(i) + ": ") + status_text(st);
      continue;
    }
    int64_t ws = 0, n = 0;
    check(cudnn().get_attr(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64,
                           1, &n, &ws),
          "workspace size");
    Desc engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR, "engine");
    cudnnBackendDescriptor_t raw_engine = engine.get();
    if (cudnn().get_attr(configs[i].get(), CUDNN_ATTR_ENGINECFG_ENGINE,
                         CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &raw_engine) == CUDNN_STATUS_SUCCESS)
      cudnn().get_attr(engine.get(), CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n,
                       &p.engine);
    p.plan = std::move(plan);
    p.workspace_bytes = ws;
    if (ws > 0) p.workspace = Buffer::allocate(args.device, static_cast<size_t>(ws));
    return;
  }
  throw_error(ErrorCategory::kUnsupported, "no cuDNN engine config finalized (", count,
              " tried: ", failures, ")");
}

// The cached plan for this call's key, built on first sight (a failure is cached too, so a
// refused shape costs one map lookup afterwards). Called with dc.mutex held.
Plan& plan_for(DeviceCudnn& dc, const KernelArgs& args) {
  auto& slot = dc.plans[key_of(args)];
  if (!slot) {
    slot = std::make_unique<Plan>();
    try {
      build_plan(*slot, dc, args);
    } catch (const Error& e) {
      slot->error = "cuDNN " + std::to_string(cudnn().get_version()) + " (" + cudnn().origin +
                    "): " + e.what();
    }
  }
  return *slot;
}

bool aligned16(const Tensor& t) {
  if (reinterpret_cast<uintptr_t>(data_of(t)) % 16 != 0 || t.stride(3) != 1) return false;
  for (int d = 0; d < 3; ++d)
    if (t.size(d) > 1 && (t.stride(d) * static_cast<int64_t>(dtype_size(t.dtype()))) % 16 != 0)
      return false;
  return true;
}

std::string cudnn_sdpa_supports(const KernelArgs& args) {
  if (!cudnn().missing.empty()) return cudnn().missing;
  const Tensor &q = args.inputs[0], &k = args.inputs[1], &v = args.inputs[2];
  if (args.inputs.size() > 3 && args.inputs[3].defined()) return "an explicit mask";
  if (args.outputs.empty()) return "no output tensor allocated";
  if (args.attrs.get_bool("causal", false) && q.size(2) != k.size(2) &&
      args.attrs.get_string("causal_alignment", "top_left") == "bottom_right")
    return "bottom-right causal alignment with fewer queries than keys";
  // Below 64x64 scores per head both kernels are launch-bound, and a plan costs cuDNN a
  // graph build (a runtime compile on first sight): leave such calls to the native kernel.
  if (q.size(2) * k.size(2) < 4096) return "fewer than 4096 scores per head";
  // Decode grows the key length by one every step, and a plan per length would cost far more
  // than the native split kernel's whole call.
  if (q.size(2) < 16) return "fewer than 16 queries (decode)";
  if (q.size(3) % 8 != 0 || v.size(3) % 8 != 0 || q.size(3) > 256 || v.size(3) > 256)
    return "head dims not a multiple of 8 up to 256";
  const std::string& arch = args.device.info().arch;
  if (arch.rfind("sm_", 0) == 0 && std::atoi(arch.c_str() + 3) < 80)
    return "a GPU older than sm_80";
  if (!aligned16(q) || !aligned16(k) || !aligned16(v) || !aligned16(args.outputs[0]))
    return "tensors not 16-byte aligned with a unit last stride";
  try {
    DeviceCudnn& dc = cudnn_for(args.device);
    std::lock_guard lock(dc.mutex);
    return plan_for(dc, args).error;
  } catch (const Error& e) {
    return e.what();  // no handle on this device: the native kernel serves the call
  }
}

void cudnn_sdpa(KernelArgs& args) {
  DeviceCudnn& dc = cudnn_for(args.device);
  cudaStream_t stream = stream_for(args.device);
  std::lock_guard lock(dc.mutex);
  Plan& plan = plan_for(dc, args);
  FS_CHECK(plan.error.empty(), kUnsupported, "op '", args.op, "' on ", args.device.spec(), ": ",
           plan.error);
  float scale = static_cast<float>(
      args.attrs.get_double("scale", 1.0 / std::sqrt(static_cast<double>(args.inputs[0].size(3)))));
  float neg_inf = std::numeric_limits<float>::lowest();
  int64_t uids[] = {kQ, kK, kV, kO, kScale, kNegInf};
  void* ptrs[] = {data_of(args.inputs[0]),
                  data_of(args.inputs[1]),
                  data_of(args.inputs[2]),
                  data_of(args.outputs[0]),
                  &scale,
                  &neg_inf};
  int64_t n = args.attrs.get_bool("causal", false) ? 6 : 5;
  void* workspace = plan.workspace_bytes > 0 ? plan.workspace.handle() : nullptr;
  Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, "variant pack");
  pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, uids, n)
      .set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, ptrs, n)
      .set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, &workspace)
      .finalize();
  check(cudnn().set_stream(dc.handle, stream), "cudnnSetStream on " + args.device.spec());
  cudnnStatus_t s = cudnn().execute(dc.handle, plan.plan.get(), pack.get());
  FS_CHECK(s == CUDNN_STATUS_SUCCESS, kBackend, "op '", args.op, "' on ", args.device.spec(),
           ": cuDNN SDPA execute (engine ", plan.engine, ") failed: ", status_text(s));
}

}  // namespace

void register_cudnn_attention(Registry& r) {
  add_cuda(r, "scaled_dot_product_attention", {DType::kF16, DType::kBF16}, cudnn_sdpa, true,
           cudnn_sdpa_supports, Provider::kVendor);
}

}  // namespace flagstone::ops::cuda
