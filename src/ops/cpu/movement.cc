// cpu native data movement and factories: cat (strided copies into output slices, with dtype
// promotion), and the seeded rand / randn that fill from the Philox stream in parallel.
#include "cpu/cpu_common.h"
#include "flagstone/ops/random.h"
#include "internal.h"
#include "shape_rules.h"

namespace flagstone::ops {
namespace cpu {
namespace {

void cat(KernelArgs& args) {
  Tensor out = args.outputs[0];
  int d = normalize_dim(args.attrs.get_int("dim", 0), out.dim());
  int64_t start = 0;
  for (const Tensor& t : args.inputs) {
    Tensor part = out.narrow(d, start, t.size(d));
    part.copy_(as_dtype(t, out.dtype()));
    start += t.size(d);
  }
}

template <typename T>
void fill_random(KernelArgs& args, bool normal) {
  auto seed = static_cast<uint64_t>(args.attrs.get_int("seed", 0));
  auto offset = static_cast<uint64_t>(args.attrs.get_int("offset", 0));
  T* out = ptr<T>(args.outputs[0]);
  parallel(args.outputs[0].numel(), 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      auto u = static_cast<uint64_t>(i);
      double v = normal ? random_normal(seed, offset, u) : random_uniform(seed, offset, u);
      out[i] =
          store_f<T>(static_cast<std::conditional_t<std::is_same_v<T, double>, double, float>>(v));
    }
  });
}

}  // namespace
}  // namespace cpu

void register_cpu_movement(Registry& r) {
  using namespace cpu;
  std::vector<DType> all{DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI64,
                         DType::kI32, DType::kI16, DType::kI8,   DType::kU8,  DType::kBool};
  add_native(r, "cat", all, cat);
  for (const char* op : {"rand", "randn"}) {
    bool normal = std::string_view(op) == "randn";
    add_native(
        r, op, {DType::kF32, DType::kF16, DType::kBF16, DType::kF64},
        [normal](KernelArgs& args) {
          dispatch_float(args.outputs[0].dtype(),
                         [&]<typename T>() { fill_random<T>(args, normal); });
        },
        false);
  }
}

}  // namespace flagstone::ops
