// The operator registry: one schema and one float64 reference per op, plus any number of
// implementations tagged by backend, dtypes and provider, chosen per call by the dispatch policy.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "flagstone/ops/attrs.h"
#include "flagstone/ops/policy.h"
#include "flagstone/runtime/tensor.h"

namespace flagstone::ops {

struct OutputSpec {
  Shape shape;
  DType dtype = DType::kF32;
};

// What every kernel receives. Outputs are allocated by dispatch from the schema's inference
// (or supplied by the caller through the out= variant) before the kernel runs; kernels write
// every element. Ops with data-dependent output shapes (nonzero, masked_select) get an empty
// `outputs` and fill it themselves.
struct KernelArgs {
  std::string_view op;
  const std::vector<Tensor>& inputs;
  std::vector<Tensor>& outputs;
  const Attrs& attrs;
  const Device& device;
};

using KernelFn = std::function<void(KernelArgs& args)>;
// Shape and dtype rules: checks inputs and attributes (throwing kInvalidArgument naming the op,
// tensor, shape or dtype at fault) and returns the outputs' shapes and dtypes.
using InferFn =
    std::function<std::vector<OutputSpec>(const std::vector<Tensor>& inputs, const Attrs& attrs)>;

struct OpSchema {
  std::string name;
  std::string family;               // "unary", "binary", "reduction", "attention", ...
  std::vector<std::string> inputs;  // names; a trailing '?' marks an optional input
  std::vector<std::string> outputs;
  std::vector<std::string> attrs;  // documented attribute names ("dim=-1", "eps=1e-6")
  std::vector<DType> dtypes;       // dtypes of the dispatch input the op is defined for
  std::string doc;
  InferFn infer;
  KernelFn reference;  // float64 on the CPU, plain and obviously right
  // Which input's dtype selects the implementation; -1: the first output's (factories).
  int dispatch_input = 0;
  bool dynamic_outputs = false;
  bool is_factory = false;  // no tensor inputs; the attr "device" names the device
};

struct Implementation {
  std::string op;
  std::string backend;  // "cpu", "cuda", "opencl"
  Provider provider = Provider::kNative;
  std::vector<DType> dtypes;
  KernelFn fn;
  // Optional: an empty string when this implementation serves the call, else why not (for
  // example "needs a contiguous last dimension"); dispatch then tries the next candidate.
  std::function<std::string(const KernelArgs& args)> supports;
  // When false dispatch hands the kernel contiguous inputs and outputs (copying as needed).
  bool strided = true;
  std::string name;  // "cpu/native/softmax", filled in by the registry when empty

  bool has_dtype(DType dtype) const;
};

class Registry {
 public:
  // The process-wide registry with every built-in op and implementation.
  static Registry& global();

  void add_schema(OpSchema schema);
  // The op's schema must exist; the implementation's (op, backend, provider) must be new.
  void add_implementation(Implementation impl);

  // Throws kNotFound naming the op and suggesting similar names.
  const OpSchema& schema(std::string_view op) const;
  const OpSchema* find_schema(std::string_view op) const;
  std::vector<const OpSchema*> schemas() const;  // sorted by family, then name
  std::vector<const Implementation*> implementations(std::string_view op) const;
  // Implementations on `backend` (the reference counts as a cpu implementation).
  std::vector<const Implementation*> implementations(std::string_view op,
                                                     std::string_view backend) const;

 private:
  Registry();
  struct State;
  std::shared_ptr<State> state_;
};

// Which implementation dispatch would pick for `op` on `device` for inputs of `dtype`, and how.
struct Selection {
  const Implementation* impl = nullptr;  // null: nothing allowed serves it (see `reason`)
  bool cpu_fallback = false;             // the device has none: inputs go to the cpu and back
  std::string reason;  // why earlier candidates were skipped, or why none was found
};
Selection select(std::string_view op, const Device& device, DType dtype);

// The generic entry point: checks the call against the schema, allocates outputs, dispatches.
std::vector<Tensor> call(std::string_view op, const std::vector<Tensor>& inputs,
                         const Attrs& attrs = {});
// The out= variant: `outputs` must match the inferred shapes and dtypes and live on the inputs'
// device; they may be strided views.
void call_out(std::string_view op, const std::vector<Tensor>& inputs, const Attrs& attrs,
              std::vector<Tensor>& outputs);
// Runs one given implementation with no fallback (parity tests, benchmarks). When `outputs` is
// non-empty it is used as the out= tensors.
void call_implementation(const Implementation& impl, const std::vector<Tensor>& inputs,
                         const Attrs& attrs, std::vector<Tensor>& outputs);
// The reference implementation on cpu copies of the inputs; results live on the cpu.
std::vector<Tensor> call_reference(std::string_view op, const std::vector<Tensor>& inputs,
                                   const Attrs& attrs = {});
// Allocates outputs for a call as the schema infers them (on `device`).
std::vector<Tensor> allocate_outputs(const OpSchema& schema, const std::vector<Tensor>& inputs,
                                     const Attrs& attrs, const Device& device);

}  // namespace flagstone::ops
