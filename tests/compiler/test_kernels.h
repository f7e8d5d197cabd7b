// The kernels the compiler tests run: together they use every feature of the tile language.
// ir_test round-trips each through the text form; kernels_test runs each on every device.
#pragma once

#include <string>
#include <vector>

#include "flagstone/compiler/builder.h"

namespace flagstone::compiler::testing {

struct TestKernel {
  std::string name;
  BuildFn build;
  std::vector<Config> configs;
};

inline constexpr int kNumUnary = 15;
inline constexpr const char* kUnaryNames[kNumUnary] = {"exp",   "exp2",  "log",  "log2", "sqrt",
                                                       "rsqrt", "sin",   "cos",  "tanh", "erf",
                                                       "abs",   "floor", "ceil", "neg",  "pow"};
inline constexpr int kNumBinaryF = 9;
inline constexpr int kNumBinaryI = 16;
inline constexpr int kNumCasts = 9;
inline constexpr int kNumReduce = 7;

void build_unary(KernelBuilder& k);
void build_binary(KernelBuilder& k);
void build_casts(KernelBuilder& k);
void build_reduce(KernelBuilder& k);
void build_softmax(KernelBuilder& k);
void build_matmul(KernelBuilder& k);
void build_atomics(KernelBuilder& k);
void build_outer(KernelBuilder& k);
void build_vcopy(KernelBuilder& k);

std::vector<TestKernel> all_test_kernels();

}  // namespace flagstone::compiler::testing
