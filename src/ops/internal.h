// Internals shared by the ops layer's files: the shared policy snapshot and the registration
// entry points of every op family and provider (called once when the registry is built).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "flagstone/ops/policy.h"
#include "flagstone/ops/registry.h"

namespace flagstone::ops {

// The current policy without a copy; dispatch caches selections per policy_version().
std::shared_ptr<const Policy> current_policy();
uint64_t policy_version();

// Schemas with their reference implementations, one function per family.
void register_unary_ops(Registry& registry);
void register_binary_ops(Registry& registry);
void register_reduction_ops(Registry& registry);
void register_norm_ops(Registry& registry);
void register_llm_ops(Registry& registry);
void register_attention_ops(Registry& registry);
void register_sort_sample_ops(Registry& registry);
void register_linalg_ops(Registry& registry);
void register_movement_ops(Registry& registry);
void register_movement_ops_2(Registry& registry);  // pad, repeat, flip, roll, tril...
void register_factory_ops(Registry& registry);

// cpu implementations (src/ops/cpu/).
void register_cpu_elementwise(Registry& registry);
void register_cpu_norm(Registry& registry);
void register_cpu_llm(Registry& registry);
void register_cpu_gemm(Registry& registry);
void register_cpu_attention(Registry& registry);
void register_cpu_reduction(Registry& registry);
void register_cpu_sample(Registry& registry);
void register_cpu_movement(Registry& registry);
// cat and stack on cuda and opencl from runtime views and copies (src/ops/copy_ops.cc).
void register_copy_ops(Registry& registry);
// Kernel-language implementations on opencl and cuda (src/ops/generated/).
void register_generated(Registry& registry);
// CLBlast GEMM on opencl (src/ops/opencl/).
void register_opencl_gemm(Registry& registry);
// Native kernels and cuBLAS on cuda (src/ops/cuda/), when built with CUDA.
void register_cuda_ops(Registry& registry);

}  // namespace flagstone::ops

namespace flagstone::ops {
// Inverse frequencies of rotary embedding for the scaling attrs of rope_cache (schema/llm.cc).
std::vector<double> rope_inv_freq(const Attrs& attrs, int64_t rotary_dim);
}  // namespace flagstone::ops
