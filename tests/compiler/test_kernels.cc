// Definitions of the test kernels (see test_kernels.h); the matching plain C++ references are
// in kernels_test.cc.
#include "compiler/test_kernels.h"

namespace flagstone::compiler::testing {

// out[f, i] = fn_f(x[i]) for 15 unary functions; x and out are strided tensors.
void build_unary(KernelBuilder& k) {
  int64_t block = k.meta("BLOCK");
  TensorArg x = k.tensor_arg("x", DType::kF32, 1);
  TensorArg out = k.tensor_arg("out", DType::kF32, 2);
  Value offs = k.program_id(0) * block + k.arange(0, block);
  Value mask = offs < x.size(0);
  Value v = k.load(x.ptr + offs * x.stride(0), mask, 0.0f);
  Value a = k.abs(v);
  Value results[kNumUnary] = {k.exp(v),         k.exp2(v), k.log(a + 1.0f),
                              k.log2(a + 1.0f), k.sqrt(a), k.rsqrt(a + 0.5f),
                              k.sin(v),         k.cos(v),  k.tanh(v),
                              k.erf(v),         a,         k.floor(v),
                              k.ceil(v),        -v,        k.pow(a, k.constant(1.5f, DType::kF32))};
  for (int f = 0; f < kNumUnary; ++f)
    k.store(out.ptr + out.stride(0) * f + offs * out.stride(1), results[f], mask);
}

// f32 and i32 binary ops, comparisons and select; row f of of/oi holds result f.
void build_binary(KernelBuilder& k) {
  int64_t block = k.meta("BLOCK");
  Value xf = k.pointer_arg("xf", DType::kF32);
  Value yf = k.pointer_arg("yf", DType::kF32);
  Value xi = k.pointer_arg("xi", DType::kI32);
  Value yi = k.pointer_arg("yi", DType::kI32);
  Value of = k.pointer_arg("of", DType::kF32);
  Value oi = k.pointer_arg("oi", DType::kI32);
  Value n = k.scalar_arg("n", DType::kI32);
  Value offs = k.program_id(0) * block + k.arange(0, block);
  Value mask = offs < n;
  Value a = k.load(xf + offs, mask, 0.0f);
  Value b = k.load(yf + offs, mask, 1.0f);
  Value fr[kNumBinaryF] = {a + b,
                           a - b,
                           a * b,
                           a / b,
                           k.minimum(a, b),
                           k.maximum(a, b),
                           k.where(a > b, a, b),
                           (a <= b).to(DType::kF32),
                           a * 2 - 0.5f};
  for (int f = 0; f < kNumBinaryF; ++f) k.store(of + offs + n * f, fr[f], mask);
  Value i = k.load(xi + offs, mask, 0);
  Value j = k.load(yi + offs, mask, 1);
  Value ir[kNumBinaryI] = {i + j,
                           i - j,
                           i * j,
                           i / j,
                           i % j,
                           i & j,
                           i | j,
                           i ^ j,
                           i << 3,
                           i >> 2,
                           k.minimum(i, j),
                           k.maximum(i, j),
                           (i < j).to(DType::kI32),
                           (i >= j).to(DType::kI32),
                           ((i == j) | (i != 0)).to(DType::kI32),
                           ~i};
  for (int f = 0; f < kNumBinaryI; ++f) k.store(oi + offs + n * f, ir[f], mask);
}

// x (f32) cast to every type and stored; h (f16) and g (bf16) read and widened.
void build_casts(KernelBuilder& k) {
  int64_t block = k.meta("BLOCK");
  Value x = k.pointer_arg("x", DType::kF32);
  Value h_in = k.pointer_arg("h_in", DType::kF16);
  Value o_f16 = k.pointer_arg("o_f16", DType::kF16);
  Value o_bf16 = k.pointer_arg("o_bf16", DType::kBF16);
  Value o_i32 = k.pointer_arg("o_i32", DType::kI32);
  Value o_i8 = k.pointer_arg("o_i8", DType::kI8);
  Value o_u8 = k.pointer_arg("o_u8", DType::kU8);
  Value o_bool = k.pointer_arg("o_bool", DType::kBool);
  Value o_f64 = k.pointer_arg("o_f64", DType::kF64);
  Value o_i64 = k.pointer_arg("o_i64", DType::kI64);
  Value o_back = k.pointer_arg("o_back", DType::kF32);
  Value n = k.scalar_arg("n", DType::kI32);
  Value offs = k.program_id(0) * block + k.arange(0, block);
  Value mask = offs < n;
  Value v = k.load(x + offs, mask, 0.0f);
  k.store(o_f16 + offs, v.to(DType::kF16), mask);
  k.store(o_bf16 + offs, v.to(DType::kBF16), mask);
  k.store(o_i32 + offs, v.to(DType::kI32), mask);
  k.store(o_i8 + offs, v.to(DType::kI8), mask);
  k.store(o_u8 + offs, k.abs(v).to(DType::kU8), mask);
  k.store(o_bool + offs, v.to(DType::kBool), mask);
  k.store(o_f64 + offs, v.to(DType::kF64) * 3.0, mask);
  k.store(o_i64 + offs, v.to(DType::kI64) * 1000000007LL, mask);
  // f16 in, widened, doubled in f16 (rounds), back to f32.
  Value h = k.load(h_in + offs, mask, 0.0f);
  k.store(o_back + offs, (h * 2 + h).to(DType::kF32), mask);
}

// Row reductions of a [M, N] strided tile: sum, max, min, argmax, argmin along axis 1, plus a
// column sum (axis 0, keepdims) accumulated with atomic_add.
void build_reduce(KernelBuilder& k) {
  int64_t bm = k.meta("BM");
  int64_t bn = k.meta("BN");
  TensorArg x = k.tensor_arg("x", DType::kF32, 2);
  Value out = k.pointer_arg("out", DType::kF32);        // [5, M]
  Value idx = k.pointer_arg("idx", DType::kI32);        // [2, M]
  Value colsum = k.pointer_arg("colsum", DType::kF32);  // [N], zeroed
  Value m = x.size(0);
  Value n = x.size(1);
  Value rows = k.program_id(0) * bm + k.arange(0, bm);
  Value cols = k.arange(0, bn);
  Value mask = (rows.col() < m) & (cols.row() < n);
  Value ptrs = x.ptr + rows.col() * x.stride(0) + cols.row() * x.stride(1);
  Value v = k.load(ptrs, mask, 0.0f);
  Value ninf = k.full({bm, bn}, -1e30f, DType::kF32);
  Value pinf = k.full({bm, bn}, 1e30f, DType::kF32);
  Value rmask = rows < m;
  k.store(out + rows, k.sum(v, 1), rmask);
  k.store(out + m + rows, k.max(k.where(mask, v, ninf), 1), rmask);
  k.store(out + m * 2 + rows, k.min(k.where(mask, v, pinf), 1), rmask);
  k.store(idx + rows, k.argmax(k.where(mask, v, ninf), 1), rmask);
  k.store(idx + m + rows, k.argmin(k.where(mask, v, pinf), 1), rmask);
  Value cs = k.sum(v, 0, true);  // [1, BN]
  k.atomic_add(colsum + cols.row(), cs, cols.row() < n);
}

// Online softmax over rows, one program per row, looping over column blocks with loop-carried
// running max and sum, then a second loop that writes the outputs.
void build_softmax(KernelBuilder& k) {
  int64_t block = k.meta("BLOCK");
  TensorArg x = k.tensor_arg("x", DType::kF32, 2);
  TensorArg y = k.tensor_arg("y", DType::kF32, 2);
  Value row = k.program_id(0);
  Value n = x.size(1);
  Value xrow = x.ptr + row * x.stride(0);
  Value m0 = k.full({block}, -1e30f, DType::kF32);
  Value l0 = k.zeros({block}, DType::kF32);
  auto stats = k.for_range(0, n, block, {m0, l0}, [&](Value start, std::vector<Value> c) {
    Value cols = start + k.arange(0, block);
    Value v = k.load(xrow + cols * x.stride(1), cols < n, -1e30f);
    Value m_new = k.maximum(c[0], v);
    Value l_new = c[1] * k.exp(c[0] - m_new) + k.exp(v - m_new);
    return std::vector<Value>{m_new, l_new};
  });
  Value mx = k.max(stats[0], 0);
  Value total = k.sum(stats[1] * k.exp(stats[0] - mx), 0);
  k.for_range(0, n, block, {}, [&](Value start, std::vector<Value>) {
    Value cols = start + k.arange(0, block);
    Value v = k.load(xrow + cols * x.stride(1), cols < n, 0.0f);
    k.store(y.ptr + row * y.stride(0) + cols * y.stride(1), k.exp(v - mx) / total, cols < n);
    return std::vector<Value>{};
  });
}

// C = A @ B (+ bias row) with a K loop of tile dots; DTYPE selects the input type.
void build_matmul(KernelBuilder& k) {
  int64_t bm = k.meta("BM");
  int64_t bn = k.meta("BN");
  int64_t bk = k.meta("BK");
  DType dt = static_cast<DType>(k.meta("DTYPE"));
  TensorArg a = k.tensor_arg("a", dt, 2);
  TensorArg b = k.tensor_arg("b", dt, 2);
  TensorArg c = k.tensor_arg("c", DType::kF32, 2);
  Value m = a.size(0);
  Value kk = a.size(1);
  Value n = b.size(1);
  Value rm = k.program_id(0) * bm + k.arange(0, bm);
  Value rn = k.program_id(1) * bn + k.arange(0, bn);
  Value acc0 = k.zeros({bm, bn}, DType::kF32);
  auto acc = k.for_range(0, kk, bk, {acc0}, [&](Value k0, std::vector<Value> carried) {
    Value rk = k0 + k.arange(0, bk);
    Value ta = k.load(a.ptr + rm.col() * a.stride(0) + rk.row() * a.stride(1),
                      (rm.col() < m) & (rk.row() < kk), 0.0f);
    Value tb = k.load(b.ptr + rk.col() * b.stride(0) + rn.row() * b.stride(1),
                      (rk.col() < kk) & (rn.row() < n), 0.0f);
    return std::vector<Value>{k.dot(ta, tb, carried[0])};
  });
  k.store(c.ptr + rm.col() * c.stride(0) + rn.row() * c.stride(1), acc[0],
          (rm.col() < m) & (rn.row() < n));
}

// Histogram-like atomics: f32 add and max, i32 add and max, into bins i % 7.
void build_atomics(KernelBuilder& k) {
  int64_t block = k.meta("BLOCK");
  Value x = k.pointer_arg("x", DType::kF32);
  Value sum_f = k.pointer_arg("sum_f", DType::kF32);
  Value max_f = k.pointer_arg("max_f", DType::kF32);
  Value cnt_i = k.pointer_arg("cnt_i", DType::kI32);
  Value max_i = k.pointer_arg("max_i", DType::kI32);
  Value total = k.pointer_arg("total", DType::kF32);
  Value n = k.scalar_arg("n", DType::kI32);
  Value offs = k.program_id(0) * block + k.arange(0, block);
  Value mask = offs < n;
  Value v = k.load(x + offs, mask, 0.0f);
  Value bin = offs % 7;
  k.atomic_add(sum_f + bin, v, mask);
  k.atomic_max(max_f + bin, v, mask);
  k.atomic_add(cnt_i + bin, k.full({block}, 1, DType::kI32), mask);
  k.atomic_max(max_i + bin, offs, mask);
  k.atomic_add(total, k.sum(v, 0));  // a scalar atomic: once per program
}

// 2-d grid: out[i, j] = x[i] * y[j] + alpha * t[j, i] (t read through trans), f64 scalar
// alpha, num_programs used to stride over extra columns.
void build_outer(KernelBuilder& k) {
  int64_t bm = k.meta("BM");
  int64_t bn = k.meta("BN");
  TensorArg x = k.tensor_arg("x", DType::kF32, 1);
  TensorArg y = k.tensor_arg("y", DType::kF32, 1);
  TensorArg t = k.tensor_arg("t", DType::kF32, 2);
  TensorArg out = k.tensor_arg("out", DType::kF32, 2);
  Value alpha = k.scalar_arg("alpha", DType::kF64);
  Value rows = k.program_id(0) * bm + k.arange(0, bm);
  Value m = x.size(0);
  Value n = y.size(0);
  Value xv = k.load(x.ptr + rows * x.stride(0), rows < m, 0.0f);
  k.for_range(k.program_id(1), (n + (bn - 1)) / bn, k.num_programs(1), {},
              [&](Value cb, std::vector<Value>) {
                Value cols = cb * bn + k.arange(0, bn);
                Value yv = k.load(y.ptr + cols * y.stride(0), cols < n, 0.0f);
                // t is [N, M]: load a [BN, BM] tile and transpose it.
                Value tt = k.load(t.ptr + cols.col() * t.stride(0) + rows.row() * t.stride(1),
                                  (cols.col() < n) & (rows.row() < m), 0.0f);
                Value r =
                    xv.col() * yv.row() + (tt.trans().to(DType::kF64) * alpha).to(DType::kF32);
                k.store(out.ptr + rows.col() * out.stride(0) + cols.row() * out.stride(1), r,
                        (rows.col() < m) & (cols.row() < n));
                return std::vector<Value>{};
              });
}

// y = 2 * x over contiguous buffers: on GPUs each thread moves 4 consecutive elements as one
// vector when the group is unmasked and aligned (DTYPE: f32 or f16).
void build_vcopy(KernelBuilder& k) {
  int64_t block = k.meta("BLOCK");
  DType dt = static_cast<DType>(k.meta("DTYPE"));
  Value x = k.pointer_arg("x", dt);
  Value y = k.pointer_arg("y", dt);
  Value n = k.scalar_arg("n", DType::kI32);
  Value offs = k.program_id(0) * block + k.arange(0, block);
  Value mask = offs < n;
  k.store(y + offs, k.load(x + offs, mask, 0.0f) * 2, mask);
}

std::vector<TestKernel> all_test_kernels() {
  auto mm = [](DType d) {
    return Config{
        {"BM", 16}, {"BN", 16}, {"BK", 8}, {"DTYPE", static_cast<int64_t>(d)}, {"num_warps", 2}};
  };
  return {
      {"unary", build_unary, {Config{{"BLOCK", 128}}}},
      {"binary", build_binary, {Config{{"BLOCK", 64}}}},
      {"casts", build_casts, {Config{{"BLOCK", 128}}}},
      // Second configs put more threads than outputs on a GPU (grouped and cross-warp trees).
      {"reduce",
       build_reduce,
       {Config{{"BM", 4}, {"BN", 32}, {"num_warps", 1}},
        Config{{"BM", 4}, {"BN", 32}, {"num_warps", 4}}}},
      {"softmax",
       build_softmax,
       {Config{{"BLOCK", 64}, {"num_warps", 1}}, Config{{"BLOCK", 256}, {"num_warps", 4}}}},
      // The last two split into m16n8k16 blocks: tensor cores on CUDA (2x1 and 2x2 warps).
      {"matmul",
       build_matmul,
       {mm(DType::kF32), mm(DType::kF16), mm(DType::kBF16),
        Config{{"BM", 32},
               {"BN", 16},
               {"BK", 32},
               {"DTYPE", static_cast<int64_t>(DType::kF16)},
               {"num_warps", 2}},
        Config{{"BM", 32},
               {"BN", 32},
               {"BK", 16},
               {"DTYPE", static_cast<int64_t>(DType::kBF16)},
               {"num_warps", 4}}}},
      // Tensor-core sized tiles: on CUDA the K loop becomes the cp.async pipeline.
      {"gemm",
       build_matmul,
       {Config{{"BM", 64},
               {"BN", 64},
               {"BK", 32},
               {"DTYPE", static_cast<int64_t>(DType::kBF16)},
               {"num_warps", 4},
               {"num_stages", 3},
               {"prefetch", 1}},
        Config{{"BM", 32},
               {"BN", 64},
               {"BK", 16},
               {"DTYPE", static_cast<int64_t>(DType::kF16)},
               {"num_warps", 2},
               {"num_stages", 2},
               {"prefetch", 1}},
        Config{{"BM", 64},
               {"BN", 32},
               {"BK", 48},
               {"DTYPE", static_cast<int64_t>(DType::kBF16)},
               {"num_warps", 2},
               {"num_stages", 4},
               {"prefetch", 0}},
        // sm_90: warpgroup MMA (one and two warpgroups; B in one and two 64-column blocks, K in
        // two 64-wide blocks), tiles by cp.async (tma=0) and by TMA (the default); mma.sync
        // elsewhere.
        Config{{"BM", 64},
               {"BN", 128},
               {"BK", 64},
               {"DTYPE", static_cast<int64_t>(DType::kBF16)},
               {"num_warps", 4},
               {"num_stages", 3},
               {"tma", 0}},
        Config{{"BM", 128},
               {"BN", 64},
               {"BK", 128},
               {"DTYPE", static_cast<int64_t>(DType::kF16)},
               {"num_warps", 8},
               {"num_stages", 3}},
        // sm_90 with interior tiles by the tensor memory accelerator.
        Config{{"BM", 64},
               {"BN", 128},
               {"BK", 64},
               {"DTYPE", static_cast<int64_t>(DType::kBF16)},
               {"num_warps", 4},
               {"num_stages", 4},
               {"tma", 1}}}},
      {"atomics", build_atomics, {Config{{"BLOCK", 64}, {"num_warps", 1}}}},
      {"outer", build_outer, {Config{{"BM", 8}, {"BN", 16}, {"num_warps", 1}}}},
      {"vcopy",
       build_vcopy,
       {Config{{"BLOCK", 1024}, {"DTYPE", static_cast<int64_t>(DType::kF32)}, {"num_warps", 1}},
        Config{{"BLOCK", 1024}, {"DTYPE", static_cast<int64_t>(DType::kF16)}, {"num_warps", 1}}}},
  };
}

}  // namespace flagstone::compiler::testing
