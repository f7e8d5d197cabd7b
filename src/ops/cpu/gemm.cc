// cpu GEMM for mm, bmm, addmm, linear and matmul: OpenBLAS cblas_sgemm as the "vendor" f32
// provider, and a native blocked kernel for f32/f16/bf16 (panels widened to f32, f32
// accumulation, one rounding at the end) parallel over output tiles.
#include <cmath>

#include "cpu/cpu_common.h"
#include "internal.h"
#include "shape_rules.h"

#ifdef FLAGSTONE_HAVE_CBLAS
#include <cblas.h>
#endif

namespace flagstone::ops {
namespace cpu {
namespace {

// One product C[M,N] = alpha * A[M,K] @ op(B) + beta * bias, per batch entry. Operands are
// dense; B is [K,N] or, when b_trans, [N,K]. bias (optional) is addressed with strides so a
// vector or a broadcast matrix both work.
struct GemmCall {
  int64_t batch = 1, m = 0, n = 0, k = 0;
  std::vector<int64_t> a_off, b_off;  // element offsets per batch entry
  bool b_trans = false;
  double alpha = 1, beta = 1;
  const void* bias = nullptr;
  int64_t bias_rs = 0, bias_cs = 0;
};

constexpr int64_t kMB = 32, kNB = 64, kKB = 256;

template <typename T>
void native_gemm(const GemmCall& g, const T* a, const T* b, const T* bias, T* c) {
  int64_t mt = (g.m + kMB - 1) / kMB, nt = (g.n + kNB - 1) / kNB;
  parallel(g.batch * mt * nt, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> ap(static_cast<size_t>(kMB * kKB)), bp(static_cast<size_t>(kKB * kNB));
    float acc[kMB][kNB];
    for (int64_t task = begin; task < end; ++task) {
      int64_t p = task / (mt * nt), rem = task % (mt * nt);
      int64_t i0 = (rem / nt) * kMB, j0 = (rem % nt) * kNB;
      int64_t mb = std::min(kMB, g.m - i0), nb = std::min(kNB, g.n - j0);
      const T* A = a + g.a_off[p];
      const T* B = b + g.b_off[p];
      for (int64_t i = 0; i < mb; ++i)
        for (int64_t j = 0; j < kNB; ++j) acc[i][j] = 0;
      for (int64_t k0 = 0; k0 < g.k; k0 += kKB) {
        int64_t kb = std::min(kKB, g.k - k0);
        for (int64_t i = 0; i < mb; ++i)
          for (int64_t kk = 0; kk < kb; ++kk)
            ap[i * kKB + kk] = load_f(A[(i0 + i) * g.k + k0 + kk]);
        for (int64_t kk = 0; kk < kb; ++kk)
          for (int64_t j = 0; j < kNB; ++j) {
            bool in = j < nb;
            int64_t jj = in ? j0 + j : j0;
            float v = g.b_trans ? load_f(B[jj * g.k + k0 + kk]) : load_f(B[(k0 + kk) * g.n + jj]);
            bp[kk * kNB + j] = in ? v : 0.0f;
          }
        for (int64_t i = 0; i < mb; ++i) {
          float* row = acc[i];
          for (int64_t kk = 0; kk < kb; ++kk) {
            float av = ap[i * kKB + kk];
            const float* brow = &bp[kk * kNB];
            for (int64_t j = 0; j < kNB; ++j) row[j] += av * brow[j];
          }
        }
      }
      float alpha = static_cast<float>(g.alpha), beta = static_cast<float>(g.beta);
      for (int64_t i = 0; i < mb; ++i)
        for (int64_t j = 0; j < nb; ++j) {
          float v = alpha * acc[i][j];
          if (bias) v += beta * load_f(bias[(i0 + i) * g.bias_rs + (j0 + j) * g.bias_cs]);
          c[p * g.m * g.n + (i0 + i) * g.n + j0 + j] = store_f<T>(v);
        }
    }
  });
}

#ifdef FLAGSTONE_HAVE_CBLAS
void blas_gemm(const GemmCall& g, const float* a, const float* b, const float* bias, float* c) {
  for (int64_t p = 0; p < g.batch; ++p) {
    float* C = c + p * g.m * g.n;
    float beta = 0;
    if (bias) {
      for (int64_t i = 0; i < g.m; ++i)
        for (int64_t j = 0; j < g.n; ++j)
          C[i * g.n + j] = static_cast<float>(g.beta) * bias[i * g.bias_rs + j * g.bias_cs];
      beta = 1;
    }
    if (g.m == 1) {
      // One row (a decode step's linear): sgemv reads the weight once, where sgemm would first
      // pack all of it.
      cblas_sgemv(CblasRowMajor, g.b_trans ? CblasNoTrans : CblasTrans,
                  static_cast<int>(g.b_trans ? g.n : g.k), static_cast<int>(g.b_trans ? g.k : g.n),
                  static_cast<float>(g.alpha), b + g.b_off[p],
                  static_cast<int>(g.b_trans ? g.k : g.n), a + g.a_off[p], 1, beta, C, 1);
      continue;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, g.b_trans ? CblasTrans : CblasNoTrans,
                static_cast<int>(g.m), static_cast<int>(g.n), static_cast<int>(g.k),
                static_cast<float>(g.alpha), a + g.a_off[p], static_cast<int>(g.k), b + g.b_off[p],
                static_cast<int>(g.b_trans ? g.k : g.n), beta, C, static_cast<int>(g.n));
  }
}
#endif

// Plans the product of an op on dense inputs: the shared shape plan plus addmm's and linear's
// bias terms.
GemmCall plan(const KernelArgs& args, Tensor& bias_keep) {
  std::string_view op = args.op;
  GemmShape s = gemm_shape(args);
  GemmCall g;
  g.m = s.m, g.n = s.n, g.k = s.k, g.b_trans = s.b_trans;
  g.batch = static_cast<int64_t>(s.a_off.size());
  g.a_off = std::move(s.a_off), g.b_off = std::move(s.b_off);
  if (op == "addmm") {
    bias_keep = args.inputs[0].expand(args.outputs[0].shape()).contiguous();
    g.bias = bias_keep.host_data();
    g.bias_rs = g.n, g.bias_cs = 1;
    g.alpha = args.attrs.get_double("alpha", 1), g.beta = args.attrs.get_double("beta", 1);
    if (g.beta == 0) g.bias = nullptr;
  } else if (op == "linear" && args.inputs.size() > 2 && args.inputs[2].defined()) {
    g.bias = args.inputs[2].host_data();
    g.bias_rs = 0, g.bias_cs = 1;
  }
  return g;
}

std::pair<const Tensor*, const Tensor*> operands(const KernelArgs& args) {
  if (args.op == "addmm") return {&args.inputs[1], &args.inputs[2]};
  return {&args.inputs[0], &args.inputs[1]};
}

void native_kernel(KernelArgs& args) {
  Tensor bias_keep;
  GemmCall g = plan(args, bias_keep);
  auto [a, b] = operands(args);
  dispatch_float(a->dtype(), [&]<typename T>() {
    if constexpr (std::is_same_v<T, double>) {
      throw_error(ErrorCategory::kUnsupported, "f64 GEMM runs in the reference");
    } else {
      native_gemm<T>(g, ptr<const T>(*a), ptr<const T>(*b), static_cast<const T*>(g.bias),
                     ptr<T>(args.outputs[0]));
    }
  });
}

#ifdef FLAGSTONE_HAVE_CBLAS
void vendor_kernel(KernelArgs& args) {
  Tensor bias_keep;
  GemmCall g = plan(args, bias_keep);
  auto [a, b] = operands(args);
  blas_gemm(g, ptr<const float>(*a), ptr<const float>(*b), static_cast<const float*>(g.bias),
            ptr<float>(args.outputs[0]));
}
#endif

}  // namespace

// quant.cc: the weight-only quantized linears, registered with the other GEMMs.
void register_cpu_quant(Registry& r);

}  // namespace cpu

void register_cpu_gemm(Registry& r) {
  using namespace cpu;
  register_cpu_quant(r);
  for (const char* op : {"mm", "bmm", "addmm", "linear", "matmul"}) {
    add_native(r, op, {DType::kF32, DType::kF16, DType::kBF16}, native_kernel, false);
#ifdef FLAGSTONE_HAVE_CBLAS
    add_native(r, op, {DType::kF32}, vendor_kernel, false, nullptr, Provider::kVendor);
#endif
  }
}

}  // namespace flagstone::ops
