// Shared machinery of the generated provider: kernels written once in the compiler's tile
// language, built per (op, dtypes, variant) on first use, launched on any backend with a target.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "flagstone/compiler/kernel.h"
#include "flagstone/ops/registry.h"
#include "shape_rules.h"

namespace flagstone::ops::gen {

using compiler::Config;
using compiler::Kernel;
using compiler::KernelBuilder;
using compiler::TensorArg;
using compiler::Value;

// Elementwise kernels index operands with at most this many (collapsed) dims.
inline constexpr int kMaxRank = 4;
// The kernels index with i32: element offsets must stay below this.
inline constexpr int64_t kMaxIndex = (int64_t{1} << 31) - 1;

inline const std::vector<DType> kGenFloats{DType::kF32, DType::kF16, DType::kBF16};
inline const std::vector<DType> kGenInts{DType::kI64, DType::kI32};

// The kernel cached under `key`, built by `make()` the first time (thread-safe; kernels live
// for the process, so the compiler's per-kernel caches are reused across calls).
const Kernel& cached_kernel(const std::string& key,
                            const std::function<std::unique_ptr<Kernel>()>& make);

// Compiles (or fetches) the kernel for the device, then launches it on the device's default
// stream. A toolchain failure becomes kUnsupported naming the op, so dispatch can fall back to
// the next provider; argument errors propagate.
void launch(const Kernel& kernel, std::string_view op, const Device& device,
            const compiler::Grid& grid, const std::vector<compiler::Arg>& args,
            const Config& config = {});

// Dims of `shape` merged where every operand's strides allow it; size-1 dims dropped. A
// tensor's `strides[k]` are its strides broadcast to `shape` (0 for broadcast dims).
struct Collapsed {
  Shape sizes;
  std::vector<Shape> strides;
};
Collapsed collapse(const Shape& shape, const std::vector<Shape>& strides);
// broadcast_strides (shape_rules.h): strides of `t` broadcast to `shape`.
// A view of t's storage with other sizes and strides (same offset).
Tensor restride(const Tensor& t, const Shape& sizes, const Shape& strides);
// Pads `c` with leading size-1 dims to `rank`.
void pad_rank(Collapsed& c, size_t rank);

// Empty when every element offset of `t` fits the kernels' i32 indexing, else the reason.
std::string check_index_range(const Tensor& t);
std::string check_index_range(const std::vector<Tensor>& tensors);

// The dtype a kernel computes in: f32 for f16/bf16 (one rounding at the store), else itself.
DType compute_dtype(DType storage);

// A tensor converted to `dtype` through dispatch (no copy when it already is).
Tensor as_dtype(const Tensor& t, DType dtype);

// Registers `fn` as the generated implementation of `op` on every backend that has a compiler
// target and a runtime device kind served by generated kernels (opencl, cuda). `supports`
// (optional) is combined with the i32 index-range check of every input and output.
void add_generated(Registry& r, const std::string& op, std::vector<DType> dtypes, KernelFn fn,
                   std::function<std::string(const KernelArgs&)> supports = nullptr,
                   bool strided = true);

// Data movement needs only element widths: the integer dtype of `dtype`'s size, a tensor viewed
// as it, and the bits of `value` stored as `dtype` (converted as the reference converts).
DType bits_dtype(DType dtype);
Tensor as_bits(const Tensor& t);
int64_t value_bits(double value, DType dtype);

// Registration entry points, one per op family file.
void register_unary_table(Registry& r);
void register_binary_table(Registry& r);
void register_reductions(Registry& r);
void register_norms(Registry& r);
void register_llm(Registry& r);
void register_movement(Registry& r);
void register_factories(Registry& r);

}  // namespace flagstone::ops::gen
