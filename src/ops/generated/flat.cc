// Flat kernels (see flat.h).
#include "generated/flat.h"

namespace flagstone::ops::gen {

FlatBlock flat_block(KernelBuilder& k, Value n) {
  Value offs = k.program_id(0) * k.meta("BLOCK") + k.arange(0, k.meta("BLOCK"));
  return {offs, offs < n};
}

Coords flat_coords(Value offs, const TensorArg& shape) {
  Coords c;
  Value rest = offs;
  for (int d = kFlatRank - 1; d > 0; --d) {
    c[static_cast<size_t>(d)] = rest % shape.size(d);
    rest = rest / shape.size(d);
  }
  c[0] = rest;
  return c;
}

Value flat_offset(const Coords& c, const TensorArg& t) {
  Value o = c[0] * t.stride(0);
  for (int d = 1; d < kFlatRank; ++d) o = o + c[static_cast<size_t>(d)] * t.stride(d);
  return o;
}

Tensor to_flat_rank(const Tensor& t) {
  Shape sizes = t.shape(), strides = t.strides();
  while (sizes.size() < kFlatRank) {
    sizes.insert(sizes.begin(), 1);
    strides.insert(strides.begin(), 0);
  }
  return restride(t, sizes, strides);
}

std::string flat_rank_check(const KernelArgs& args) {
  for (const std::vector<Tensor>* list :
       {&args.inputs, static_cast<const std::vector<Tensor>*>(&args.outputs)})
    for (const Tensor& t : *list)
      if (t.defined() && t.dim() > kFlatRank)
        return "tensor " + t.describe() + " has more than " + std::to_string(kFlatRank) + " dims";
  return "";
}

void launch_flat(std::string_view op, const std::string& key,
                 const std::function<void(KernelBuilder&)>& build, const Config& config,
                 const Device& device, int64_t n, const std::vector<compiler::Arg>& args) {
  const Kernel& kernel = cached_kernel(key, [&] {
    return std::make_unique<Kernel>("gen_" + key, build, std::vector<Config>{config});
  });
  int64_t block = config.get("BLOCK");
  launch(kernel, op, device, compiler::Grid((n + block - 1) / block), args);
}

}  // namespace flagstone::ops::gen
