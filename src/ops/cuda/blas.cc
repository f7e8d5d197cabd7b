// cuda vendor GEMM: mm, bmm, addmm, linear and matmul through cuBLAS, loaded with dlopen so the
// binary starts on machines without it (the ops then refuse and dispatch falls back). One handle
// and one workspace per device, made once; a call only sets the stream, so it is graph-safe.
// One-row linear and mm calls on narrow weights go to the native GEMV (gemv_ops.cc), where it
// measured faster, when the policy allows.
#include <cublas_api.h>
#include <dlfcn.h>

#include <climits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "cuda/cuda_common.h"
#include "cuda/gemv.h"
#include "internal.h"

namespace flagstone::ops::cuda {
namespace {

struct CublasApi {
  using Create = cublasStatus_t (*)(cublasHandle_t*);
  using SetStream = cublasStatus_t (*)(cublasHandle_t, cudaStream_t);
  using SetWorkspace = cublasStatus_t (*)(cublasHandle_t, void*, size_t);
  using Gemm = cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int,
                                  int, const void*, const void*, cudaDataType, int, long long,
                                  const void*, cudaDataType, int, long long, const void*, void*,
                                  cudaDataType, int, long long, int, cublasComputeType_t,
                                  cublasGemmAlgo_t);
  using StatusString = const char* (*)(cublasStatus_t);
  Create create = nullptr;
  SetStream set_stream = nullptr;
  SetWorkspace set_workspace = nullptr;
  Gemm gemm = nullptr;
  StatusString status_string = nullptr;
  std::string missing;  // why cuBLAS is unusable; empty when loaded
};

const CublasApi& cublas() {
  static const CublasApi api = [] {
    CublasApi a;
    void* lib = nullptr;
    for (const char* name : {"libcublas.so.13", "libcublas.so.12", "libcublas.so"})
      if ((lib = dlopen(name, RTLD_NOW | RTLD_LOCAL)) != nullptr) break;
    if (!lib) {
      a.missing = "cuBLAS is not installed (dlopen libcublas.so.13/.12 failed)";
      return a;
    }
    a.create = reinterpret_cast<CublasApi::Create>(dlsym(lib, "cublasCreate_v2"));
    a.set_stream = reinterpret_cast<CublasApi::SetStream>(dlsym(lib, "cublasSetStream_v2"));
    a.set_workspace =
        reinterpret_cast<CublasApi::SetWorkspace>(dlsym(lib, "cublasSetWorkspace_v2"));
    a.gemm = reinterpret_cast<CublasApi::Gemm>(dlsym(lib, "cublasGemmStridedBatchedEx"));
    a.status_string =
        reinterpret_cast<CublasApi::StatusString>(dlsym(lib, "cublasGetStatusString"));
    if (!a.create || !a.set_stream || !a.set_workspace || !a.gemm)
      a.missing = "the cuBLAS library found lacks cublasGemmStridedBatchedEx or its helpers";
    return a;
  }();
  return api;
}

constexpr size_t kWorkspaceBytes = size_t{32} << 20;

// One per device, never destroyed (kernels may run from static destructors elsewhere).
struct DeviceBlas {
  std::mutex mutex;
  cublasHandle_t handle = nullptr;
  Buffer workspace;
};

DeviceBlas& blas_for(const Device& device) {
  static std::mutex mutex;
  static auto* states = new std::map<int, std::unique_ptr<DeviceBlas>>();
  std::lock_guard lock(mutex);
  auto& slot = (*states)[device.index()];
  if (!slot) {
    auto state = std::make_unique<DeviceBlas>();
    cublasStatus_t s = cublas().create(&state->handle);
    FS_CHECK(s == CUBLAS_STATUS_SUCCESS, kBackend, "cublasCreate on ", device.spec(), " failed (",
             cublas().status_string ? cublas().status_string(s) : "status", " ",
             static_cast<int>(s), ")");
    state->workspace = Buffer::allocate(device, kWorkspaceBytes);
    slot = std::move(state);
  }
  return *slot;
}

cudaDataType cuda_type(DType d) {
  return d == DType::kF16 ? CUDA_R_16F : d == DType::kBF16 ? CUDA_R_16BF : CUDA_R_32F;
}

// A row-major logical [batch, rows, cols] operand as cuBLAS sees it.
struct Mat {
  const void* ptr = nullptr;
  bool col_major = false;  // element (r, c) at c * ld + r, else at r * ld + c
  int64_t ld = 0, batch_stride = 0;
};

// Reads t ([rows, cols] or [batch, rows, cols]) as a cuBLAS operand when its strides allow.
std::optional<Mat> as_mat(const Tensor& t) {
  int nd = t.dim();
  int64_t rows = t.size(nd - 2), cols = t.size(nd - 1);
  int64_t sr = t.stride(nd - 2), sc = t.stride(nd - 1);
  Mat m;
  m.ptr = data_of(t);
  m.batch_stride = nd == 3 ? (t.size(0) == 1 ? 0 : t.stride(0)) : 0;
  if (sc == 1 || cols == 1) {
    m.ld = rows == 1 ? std::max<int64_t>(cols, 1) : sr;
    if (m.ld < cols || m.ld < 1) return std::nullopt;
  } else if (sr == 1 || rows == 1) {
    m.col_major = true;
    m.ld = cols == 1 ? std::max<int64_t>(rows, 1) : sc;
    if (m.ld < rows || m.ld < 1) return std::nullopt;
  } else {
    return std::nullopt;
  }
  if (m.ld > INT_MAX) return std::nullopt;
  return m;
}

Mat mat_or_copy(const Tensor& t, Tensor& keep) {
  if (auto m = as_mat(t)) return *m;
  keep = t.contiguous();
  return *as_mat(keep);
}

// C[b] = alpha * A[b] @ B[b] + beta * C[b] for row-major A [m, k], B [k, n], C [m, n]
// (contiguous C with rows of n). cuBLAS is column-major, so it computes C^T = B^T A^T.
void gemm(const KernelArgs& args, DType dtype, int64_t batch, int64_t m, int64_t n, int64_t k,
          const Mat& a, const Mat& b, void* c, int64_t c_batch_stride, float alpha, float beta) {
  FS_CHECK(m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && batch <= INT_MAX, kUnsupported,
           "GEMM dims past 2^31 (m=", m, ", n=", n, ", k=", k, ")");
  if (m == 0 || n == 0 || batch == 0) return;
  DeviceBlas& blas = blas_for(args.device);
  cudaStream_t stream = stream_for(args.device);
  std::lock_guard lock(blas.mutex);
  const CublasApi& api = cublas();
  // SetStream resets the workspace to cuBLAS's own pool; ours keeps the launch allocation-free.
  cublasStatus_t s = api.set_stream(blas.handle, stream);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = api.set_workspace(blas.handle, blas.workspace.handle(), kWorkspaceBytes);
  if (s == CUBLAS_STATUS_SUCCESS) {
    cudaDataType t = cuda_type(dtype);
    s = api.gemm(blas.handle, b.col_major ? CUBLAS_OP_T : CUBLAS_OP_N,
                 a.col_major ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
                 static_cast<int>(k), &alpha, b.ptr, t, static_cast<int>(b.ld), b.batch_stride,
                 a.ptr, t, static_cast<int>(a.ld), a.batch_stride, &beta, c, t, static_cast<int>(n),
                 c_batch_stride, static_cast<int>(batch), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  }
  FS_CHECK(s == CUBLAS_STATUS_SUCCESS, kBackend, "op '", args.op, "' on ", args.device.spec(),
           ": cuBLAS GEMM (m=", m, " n=", n, " k=", k, " batch=", batch, ", ", dtype_name(dtype),
           ") failed: ", api.status_string ? api.status_string(s) : "status ", static_cast<int>(s));
}

// The output as a contiguous tensor to write (a temporary when the out= tensor is strided).
Tensor dense_out(const Tensor& out) {
  return out.is_contiguous() ? out : Tensor::empty(out.shape(), out.dtype(), out.device());
}

void finish(Tensor& out, const Tensor& dense) {
  if (dense.buffer().handle() != out.buffer().handle() || dense.offset() != out.offset())
    out.copy_(dense);
}

// Flattens leading batch dims of an expanded operand [batch..., r, c] into one when the
// strides allow it; nullopt otherwise.
std::optional<Tensor> flatten_batch(const Tensor& t) {
  int nd = t.dim();
  int64_t batch = 1, stride = 0;
  bool first = true;
  for (int d = nd - 3; d >= 0; --d) {
    if (t.size(d) == 1) continue;
    if (first) {
      stride = t.stride(d), first = false;
    } else if (t.stride(d) != stride * batch) {
      return std::nullopt;
    }
    batch *= t.size(d);
  }
  if (nd == 2) return t;
  return Tensor::from_buffer(t.buffer(), {batch, t.size(nd - 2), t.size(nd - 1)},
                             {stride, t.stride(nd - 2), t.stride(nd - 1)}, t.offset(), t.dtype());
}

void run_gemm(KernelArgs& args) {
  std::string_view op = args.op;
  Tensor& out = args.outputs[0];
  DType dtype = out.dtype();
  Tensor c = dense_out(out);
  Tensor keep_a, keep_b;
  float alpha = 1, beta = 0;
  if (op == "mm" || op == "addmm" || op == "bmm") {
    const Tensor& a = args.inputs[op == "addmm" ? 1 : 0];
    const Tensor& b = args.inputs[op == "addmm" ? 2 : 1];
    if (op == "addmm") {
      alpha = static_cast<float>(args.attrs.get_double("alpha", 1));
      beta = static_cast<float>(args.attrs.get_double("beta", 1));
      if (beta != 0) c.copy_(args.inputs[0].expand(c.shape()));
    }
    int64_t batch = op == "bmm" ? a.size(0) : 1;
    Mat ma = mat_or_copy(a, keep_a), mb = mat_or_copy(b, keep_b);
    int64_t m = a.size(a.dim() - 2), k = a.size(a.dim() - 1), n = b.size(b.dim() - 1);
    gemm(args, dtype, batch, m, n, k, ma, mb, data_of(c), m * n, alpha, beta);
  } else if (op == "linear") {
    const Tensor &x = args.inputs[0], &w = args.inputs[1];
    Tensor bias = optional_input(args, 2);
    int64_t k = w.size(1), n = w.size(0), m = n ? c.numel() / n : 0;
    if (bias.defined()) {
      c.copy_(bias.expand(c.shape()));
      beta = 1;
    }
    Tensor x2 = x.reshape({m, k});
    Mat ma = mat_or_copy(x2, keep_a), mb = mat_or_copy(w.t(), keep_b);
    gemm(args, dtype, 1, m, n, k, ma, mb, data_of(c), m * n, alpha, beta);
  } else {  // matmul: torch's vector and broadcast-batch rules
    Tensor a = args.inputs[0], b = args.inputs[1];
    if (a.dim() == 1) a = a.unsqueeze(0);
    if (b.dim() == 1) b = b.unsqueeze(1);
    int64_t m = a.size(a.dim() - 2), k = a.size(a.dim() - 1), n = b.size(b.dim() - 1);
    if (b.dim() == 2) {
      // One GEMM with the batch folded into the rows of a (the common x @ W case).
      Tensor a2 = a.reshape({-1, k});
      Mat ma = mat_or_copy(a2, keep_a), mb = mat_or_copy(b, keep_b);
      gemm(args, dtype, 1, a2.size(0), n, k, ma, mb, data_of(c), 0, 1, 0);
    } else {
      Shape ab(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
      size_t nd = std::max(ab.size(), bb.size());
      ab.insert(ab.begin(), nd - ab.size(), 1), bb.insert(bb.begin(), nd - bb.size(), 1);
      Shape batch(nd);
      for (size_t i = 0; i < nd; ++i) batch[i] = std::max(ab[i], bb[i]);
      Shape as = batch, bs = batch;
      as.push_back(m), as.push_back(k), bs.push_back(k), bs.push_back(n);
      Tensor ae = a.expand(as), be = b.expand(bs);
      std::optional<Tensor> af = flatten_batch(ae), bf = flatten_batch(be);
      if (!af) af = flatten_batch(ae.contiguous());
      if (!bf) bf = flatten_batch(be.contiguous());
      Mat ma = mat_or_copy(*af, keep_a), mb = mat_or_copy(*bf, keep_b);
      gemm(args, dtype, shape_numel(batch), m, n, k, ma, mb, data_of(c), m * n, 1, 0);
    }
  }
  finish(out, c);
}

std::string gemm_supports(const KernelArgs& args) {
  if (!cublas().missing.empty()) return cublas().missing;
  // One row of a narrow weight is a GEMV bound by reading the weight, which the native kernel
  // streams faster (unless the policy rules the native provider out for this op).
  if (gemv_preferred(args))
    return "one row of a narrow weight goes to the native GEMV (cuda/native/" +
           std::string(args.op) + ")";
  const Tensor& a = args.inputs[args.op == "addmm" ? 1 : 0];
  int64_t k = a.dim() == 0 ? 0 : a.shape().back();
  if (k == 0) return "an empty inner dimension";
  return "";
}

}  // namespace

void register_cuda_blas(Registry& r) {
  register_cuda_gemv(r);
  for (const char* op : {"mm", "bmm", "addmm", "linear", "matmul"})
    add_cuda(r, op, kHalfAndF32, run_gemm, true, gemm_supports, Provider::kVendor);
}

}  // namespace flagstone::ops::cuda
