// Dispatch: check a call against its schema, allocate outputs, pick an implementation under
// the policy, and take (and log once) any fallback: the next provider or a cpu round trip.
#include <algorithm>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "flagstone/ops/log.h"
#include "flagstone/ops/registry.h"
#include "internal.h"

namespace flagstone::ops {
namespace {

struct Candidates {
  std::vector<const Implementation*> impls;  // on the device's backend, in policy order
  std::string skipped;                       // why nothing (or less than the best) was found
};

struct SelectionCache {
  std::mutex mutex;
  uint64_t version = 0;
  std::unordered_map<std::string, std::shared_ptr<const Candidates>> entries;
};

SelectionCache& selection_cache() {
  static SelectionCache* cache = new SelectionCache();
  return *cache;
}

std::shared_ptr<const Candidates> candidates_for(std::string_view op, std::string_view backend,
                                                 DType dtype) {
  std::string key =
      std::string(op) + '\n' + std::string(backend) + '\n' + std::string(dtype_name(dtype));
  auto& cache = selection_cache();
  uint64_t version = policy_version();
  {
    std::lock_guard<std::mutex> lock(cache.mutex);
    if (cache.version != version) cache.entries.clear(), cache.version = version;
    auto it = cache.entries.find(key);
    if (it != cache.entries.end()) return it->second;
  }
  auto policy = current_policy();
  auto found = std::make_shared<Candidates>();
  auto impls = Registry::global().implementations(op, backend);
  for (Provider p : policy->order_for(op)) {
    for (const Implementation* impl : impls)
      if (impl->provider == p && impl->has_dtype(dtype)) found->impls.push_back(impl);
  }
  if (found->impls.empty()) {
    found->skipped = impls.empty() ? "no implementation on " + std::string(backend)
                                   : "no allowed implementation on " + std::string(backend) +
                                         " for " + std::string(dtype_name(dtype)) +
                                         " under policy " + policy->to_string();
  }
  std::lock_guard<std::mutex> lock(cache.mutex);
  cache.entries[key] = found;
  return found;
}

DType dispatch_dtype(const OpSchema& schema, const std::vector<Tensor>& inputs,
                     const std::vector<Tensor>& outputs) {
  int i = schema.dispatch_input;
  if (i >= 0 && i < static_cast<int>(inputs.size()) && inputs[i].defined())
    return inputs[i].dtype();
  if (!outputs.empty() && outputs[0].defined()) return outputs[0].dtype();
  for (const Tensor& t : inputs)
    if (t.defined()) return t.dtype();
  return DType::kF32;
}

std::string input_name(const OpSchema& schema, size_t i) {
  if (schema.inputs.empty()) return "input " + std::to_string(i);
  const std::string& last = schema.inputs.back();
  std::string name = i < schema.inputs.size() ? schema.inputs[i] : last;
  if (!name.empty() && name.back() == '?') name.pop_back();
  if (name.size() > 3 && name.ends_with("..."))
    name = name.substr(0, name.size() - 3) + "[" + std::to_string(i) + "]";
  return name;
}

void check_arity(const OpSchema& schema, const std::vector<Tensor>& inputs) {
  bool variadic = !schema.inputs.empty() && schema.inputs.back().ends_with("...");
  size_t required = 0;
  for (const auto& n : schema.inputs)
    if (!n.ends_with("?") && !n.ends_with("...")) ++required;
  if (variadic) {
    FS_CHECK(inputs.size() >= required + 1, kInvalidArgument, "op '", schema.name,
             "' takes at least ", required + 1, " tensors, got ", inputs.size());
    return;
  }
  if (inputs.size() < required || inputs.size() > schema.inputs.size()) {
    std::ostringstream range;
    range << required;
    if (required != schema.inputs.size()) range << '-' << schema.inputs.size();
    throw_error(ErrorCategory::kInvalidArgument, "op '", schema.name, "' takes ", range.str(),
                " tensors, got ", inputs.size());
  }
  for (size_t i = 0; i < inputs.size(); ++i)
    FS_CHECK(inputs[i].defined() || schema.inputs[i].ends_with("?"), kInvalidArgument, "op '",
             schema.name, "': input '", input_name(schema, i), "' is undefined");
}

Device call_device(const OpSchema& schema, const std::vector<Tensor>& inputs, const Attrs& attrs) {
  const Tensor* first = nullptr;
  size_t first_index = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) continue;
    if (!first) {
      first = &inputs[i], first_index = i;
      continue;
    }
    FS_CHECK(inputs[i].device() == first->device(), kInvalidArgument, "op '", schema.name,
             "': input '", input_name(schema, i), "' is on ", inputs[i].device().spec(),
             " but input '", input_name(schema, first_index), "' is on ", first->device().spec(),
             "; move them to one device with .to()");
  }
  if (first) return first->device();
  return Device::get(attrs.get_string("device", "cpu"));
}

std::vector<OutputSpec> infer(const OpSchema& schema, const std::vector<Tensor>& inputs,
                              const Attrs& attrs) {
  for (const Tensor& t : inputs)
    FS_CHECK(!t.defined() || !is_quantized(t.dtype()) || schema.family == "linalg",
             kInvalidArgument, "op '", schema.name, "': input ", t.describe(),
             " is block-quantized; dequantize it first");
  try {
    return schema.infer(inputs, attrs);
  } catch (const Error& e) {
    if (e.message().starts_with("op '")) throw;
    throw Error(e.category(), "op '" + schema.name + "': " + e.message());
  }
}

void check_outputs(const OpSchema& schema, const std::vector<OutputSpec>& specs,
                   const std::vector<Tensor>& outputs, const Device& device) {
  FS_CHECK(outputs.size() == specs.size(), kInvalidArgument, "op '", schema.name, "' has ",
           specs.size(), " outputs, out= gave ", outputs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const Tensor& o = outputs[i];
    std::string name = i < schema.outputs.size() ? schema.outputs[i] : std::to_string(i);
    FS_CHECK(o.defined(), kInvalidArgument, "op '", schema.name, "': out tensor '", name,
             "' is undefined");
    FS_CHECK(o.shape() == specs[i].shape && o.dtype() == specs[i].dtype, kInvalidArgument, "op '",
             schema.name, "': out tensor '", name, "' is ", o.describe(), ", expected ",
             dtype_name(specs[i].dtype), shape_to_string(specs[i].shape));
    FS_CHECK(o.device() == device, kInvalidArgument, "op '", schema.name, "': out tensor '", name,
             "' is on ", o.device().spec(), " but the inputs are on ", device.spec());
  }
}

// Runs one implementation, giving it contiguous tensors when it asks for them.
void run_impl(const Implementation& impl, const std::vector<Tensor>& inputs, const Attrs& attrs,
              std::vector<Tensor>& outputs, const Device& device) {
  if (impl.strided) {
    KernelArgs args{impl.op, inputs, outputs, attrs, device};
    impl.fn(args);
    return;
  }
  std::vector<Tensor> dense_in = inputs;
  for (Tensor& t : dense_in)
    if (t.defined() && !t.is_contiguous()) t = t.contiguous();
  std::vector<Tensor> dense_out = outputs;
  bool copy_back = false;
  for (Tensor& t : dense_out) {
    if (t.defined() && !t.is_contiguous()) {
      t = Tensor::empty(t.shape(), t.dtype(), device);
      copy_back = true;
    }
  }
  KernelArgs args{impl.op, dense_in, dense_out, attrs, device};
  impl.fn(args);
  if (outputs.empty()) {
    outputs = dense_out;
  } else if (copy_back) {
    for (size_t i = 0; i < outputs.size(); ++i)
      if (!outputs[i].is_contiguous()) outputs[i].copy_(dense_out[i]);
  }
}

std::string call_key(const OpSchema& schema, const Device& device, DType dtype) {
  return "op '" + schema.name + "' on " + device.spec() + " for " + std::string(dtype_name(dtype));
}

void dispatch(const OpSchema& schema, const std::vector<Tensor>& inputs, const Attrs& attrs,
              std::vector<Tensor>& outputs, const Device& device, DType dtype) {
  auto policy = current_policy();
  auto candidates = candidates_for(schema.name, device.backend(), dtype);
  std::string refusals;
  for (const Implementation* impl : candidates->impls) {
    if (impl->supports) {
      KernelArgs probe{impl->op, inputs, outputs, attrs, device};
      std::string why = impl->supports(probe);
      if (!why.empty()) {
        refusals += (refusals.empty() ? "" : "; ") + impl->name + ": " + why;
        continue;
      }
    }
    if (!refusals.empty()) {
      FS_CHECK(!policy->strict, kUnsupported, call_key(schema, device, dtype),
               ": strict mode forbids falling back to ", impl->name, " (", refusals, ")");
      log_once(
          "provider:" + impl->name + ":" + std::string(dtype_name(dtype)), LogLevel::kInfo,
          call_key(schema, device, dtype) + " falls back to " + impl->name + " (" + refusals + ")");
    } else if (impl->provider == Provider::kReference) {
      log_once(
          "reference:" + schema.name + ":" + std::string(dtype_name(dtype)), LogLevel::kInfo,
          call_key(schema, device, dtype) +
              " runs the float64 reference: no faster implementation is registered or allowed");
    }
    try {
      run_impl(*impl, inputs, attrs, outputs, device);
      return;
    } catch (const Error& e) {
      // A provider may refuse at run time (a vendor library that is missing or rejects the
      // shape); anything else is a real failure and propagates.
      if (e.category() != ErrorCategory::kUnsupported) throw;
      refusals += (refusals.empty() ? "" : "; ") + impl->name + ": " + e.message();
      if (policy->strict) throw;
    }
  }
  FS_CHECK(!device.is_cpu(), kUnsupported, call_key(schema, device, dtype),
           ": no implementation can run it (", refusals.empty() ? candidates->skipped : refusals,
           ")");
  FS_CHECK(!policy->strict, kUnsupported, call_key(schema, device, dtype),
           ": no implementation on ", device.backend(),
           " and strict mode forbids the cpu fallback (",
           refusals.empty() ? candidates->skipped : refusals, ")");
  log_once("cpu:" + schema.name + ":" + device.backend() + ":" + std::string(dtype_name(dtype)),
           LogLevel::kWarning,
           call_key(schema, device, dtype) + " has no implementation there (" +
               (refusals.empty() ? candidates->skipped : refusals) +
               "): running on the cpu with copies to the host and back");
  Device cpu;
  std::vector<Tensor> host_inputs;
  for (const Tensor& t : inputs) host_inputs.push_back(t.defined() ? t.to(cpu) : t);
  Attrs host_attrs = attrs;
  if (schema.is_factory) host_attrs.set("device", "cpu");
  std::vector<Tensor> host_outputs;
  for (const Tensor& o : outputs) host_outputs.push_back(Tensor::empty(o.shape(), o.dtype(), cpu));
  dispatch(schema, host_inputs, host_attrs, host_outputs, cpu, dtype);
  if (outputs.empty()) {
    for (const Tensor& h : host_outputs) outputs.push_back(h.to(device));
  } else {
    for (size_t i = 0; i < outputs.size(); ++i) outputs[i].copy_(host_outputs[i]);
  }
}

}  // namespace

std::vector<Tensor> allocate_outputs(const OpSchema& schema, const std::vector<Tensor>& inputs,
                                     const Attrs& attrs, const Device& device) {
  std::vector<Tensor> outputs;
  if (schema.dynamic_outputs) return outputs;
  for (const OutputSpec& spec : infer(schema, inputs, attrs))
    outputs.push_back(Tensor::empty(spec.shape, spec.dtype, device));
  return outputs;
}

Selection select(std::string_view op, const Device& device, DType dtype) {
  Registry::global().schema(op);
  Selection s;
  auto c = candidates_for(op, device.backend(), dtype);
  if (!c->impls.empty()) {
    s.impl = c->impls.front();
    return s;
  }
  s.reason = c->skipped;
  if (device.is_cpu() || current_policy()->strict) return s;
  auto cpu = candidates_for(op, "cpu", dtype);
  if (!cpu->impls.empty()) {
    s.impl = cpu->impls.front();
    s.cpu_fallback = true;
  } else {
    s.reason += "; on cpu: " + cpu->skipped;
  }
  return s;
}

std::vector<Tensor> call(std::string_view op, const std::vector<Tensor>& inputs,
                         const Attrs& attrs) {
  std::vector<Tensor> outputs;
  const OpSchema& schema = Registry::global().schema(op);
  check_arity(schema, inputs);
  Device device = call_device(schema, inputs, attrs);
  outputs = allocate_outputs(schema, inputs, attrs, device);
  dispatch(schema, inputs, attrs, outputs, device, dispatch_dtype(schema, inputs, outputs));
  return outputs;
}

void call_out(std::string_view op, const std::vector<Tensor>& inputs, const Attrs& attrs,
              std::vector<Tensor>& outputs) {
  const OpSchema& schema = Registry::global().schema(op);
  FS_CHECK(!schema.dynamic_outputs, kInvalidArgument, "op '", schema.name,
           "' has data-dependent output shapes and no out= variant");
  check_arity(schema, inputs);
  Device device = call_device(schema, inputs, attrs);
  check_outputs(schema, infer(schema, inputs, attrs), outputs, device);
  dispatch(schema, inputs, attrs, outputs, device, dispatch_dtype(schema, inputs, outputs));
}

void call_implementation(const Implementation& impl, const std::vector<Tensor>& inputs,
                         const Attrs& attrs, std::vector<Tensor>& outputs) {
  const OpSchema& schema = Registry::global().schema(impl.op);
  check_arity(schema, inputs);
  Device device = call_device(schema, inputs, attrs);
  FS_CHECK(device.backend() == impl.backend, kInvalidArgument, "implementation ", impl.name,
           " runs on ", impl.backend, ", but the call is on ", device.spec());
  if (outputs.empty()) {
    outputs = allocate_outputs(schema, inputs, attrs, device);
  } else {
    check_outputs(schema, infer(schema, inputs, attrs), outputs, device);
  }
  DType dtype = dispatch_dtype(schema, inputs, outputs);
  FS_CHECK(impl.has_dtype(dtype), kUnsupported, impl.name, " does not take ", dtype_name(dtype));
  if (impl.supports) {
    KernelArgs probe{impl.op, inputs, outputs, attrs, device};
    std::string why = impl.supports(probe);
    FS_CHECK(why.empty(), kUnsupported, impl.name, " does not serve this call: ", why);
  }
  run_impl(impl, inputs, attrs, outputs, device);
}

std::vector<Tensor> call_reference(std::string_view op, const std::vector<Tensor>& inputs,
                                   const Attrs& attrs) {
  const OpSchema& schema = Registry::global().schema(op);
  Device cpu;
  std::vector<Tensor> host;
  for (const Tensor& t : inputs) host.push_back(t.defined() ? t.to(cpu) : t);
  Attrs host_attrs = attrs;
  if (schema.is_factory) host_attrs.set("device", "cpu");
  check_arity(schema, host);
  std::vector<Tensor> outputs = allocate_outputs(schema, host, host_attrs, cpu);
  KernelArgs args{schema.name, host, outputs, host_attrs, cpu};
  schema.reference(args);
  return outputs;
}

}  // namespace flagstone::ops
