// cat and stack on the accelerator backends, composed from the runtime's views and strided
// device copies (every runtime backend has both), so one implementation serves cuda and opencl.
#include "add_impl.h"
#include "internal.h"
#include "shape_rules.h"

namespace flagstone::ops {
namespace {

Tensor promoted(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  return call("cast", {t}, {{"dtype", std::string(dtype_name(dtype))}})[0];
}

// Each input lands in its slice of the output: a strided copy per input, on the device.
void join(KernelArgs& args, bool stack) {
  Tensor out = args.outputs[0];
  int d = normalize_dim(args.attrs.get_int("dim", 0), out.dim());
  int64_t start = 0;
  for (const Tensor& t : args.inputs) {
    Tensor part = stack ? out.select(d, start) : out.narrow(d, start, t.size(d));
    part.copy_(promoted(t, out.dtype()));
    start += stack ? 1 : t.size(d);
  }
}

}  // namespace

void register_copy_ops(Registry& r) {
  std::vector<DType> all{DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI64,
                         DType::kI32, DType::kI16, DType::kI8,   DType::kU8,  DType::kBool};
  for (const char* backend : {"cuda", "opencl"}) {
    add_backend_implementation(
        r, backend, "cat", all, [](KernelArgs& a) { join(a, false); }, true, nullptr,
        Provider::kNative);
    add_backend_implementation(
        r, backend, "stack", all, [](KernelArgs& a) { join(a, true); }, true, nullptr,
        Provider::kNative);
  }
}

}  // namespace flagstone::ops
