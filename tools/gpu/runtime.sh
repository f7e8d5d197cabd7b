#!/bin/bash
# GPU check of the runtime: conformance and tensor suites on cuda and NVIDIA OpenCL, CUDA-specific
# tests, device info and copy bandwidth. Output: $OUT/runtime.txt.
o="$OUT/runtime.txt"
b=build-gpu
{
  echo "== flagstone info"; $b/src/cli/flagstone info
  echo "== runtime tests (all devices)"
  timeout 120 $b/tests/runtime/runtime_tests --gtest_brief=1 2>&1 | tail -40
  echo "== cuda backend tests"
  timeout 60 $b/tests/runtime/cuda/runtime_cuda_tests --gtest_brief=1 2>&1 | tail -20
  echo "== opencl backend tests"
  timeout 60 $b/tests/runtime/opencl/opencl_backend_test --gtest_brief=1 2>&1 | tail -20
  echo "== bench devices"
  timeout 60 $b/src/cli/flagstone bench devices --size-mib 256 2>&1 | tail -20
} >"$o" 2>&1
