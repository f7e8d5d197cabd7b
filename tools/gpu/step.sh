#!/bin/bash
# GPU check of the decode step's launch overlap (issue 5): PDL on the one-row norm, activation and
# GEMV kernels, and the step's GEMV issuing its first weight loads before it waits. Correctness
# first (the gemv tests, every row-kernel variant, the norm and llm parity families on cuda, the
# engine's cuda tests), then tg128 of random-weight llama-1b / llama-8b in bf16 with A/B rows:
#   FLAGSTONE_CUDA_PDL=0             no PDL anywhere (stop 12's launches)
#   FLAGSTONE_ENGINE_STEP_GEMV=0     the products through ops linear (PDL, no early weights)
#   FLAGSTONE_ENGINE_STEP_GEMV=all   gate/up on the early GEMV too (cuBLAS otherwise)
# Output: $OUT/step.txt.
o="$OUT/step.txt"
b=build-gpu
f=$b/src/cli/flagstone
tg() {  # label, env assignments, model, repetitions
  echo "-- $1"
  env $2 timeout 40 $f bench model --synthetic "$3" --device cuda:0 --dtype bf16 -p 512 -n 128 -r "$4" --no-peak 2>&1 | grep -v "^flagstone ops" | grep -E "tg128|rror"
}
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null)"
  echo "== gemv tests"
  timeout 20 $b/tests/ops/cuda/ops_cuda_gemv_tests --gtest_brief=1 2>&1 | tail -4
  echo "== row-kernel variants, graph capture"
  timeout 25 $b/tests/ops/cuda/ops_cuda_tests --gtest_brief=1 --gtest_filter='CudaRowVariants.*:CudaGraph.*' 2>&1 | tail -4
  mkdir -p /tmp/no-icd
  for fam in 4 5; do
    OCL_ICD_VENDORS=/tmp/no-icd FLAGSTONE_OPS_PARITY_REPORT=/tmp/step-parity-$fam.txt \
      timeout 10 $b/tests/ops/ops_parity_test --gtest_filter="*/$fam" >/tmp/step-parity-$fam.log 2>&1
    echo "== parity family $fam (cpu + cuda) rc=$?"
    grep -i "cuda" /tmp/step-parity-$fam.txt 2>/dev/null | head -4
    grep -A2 "Failure" /tmp/step-parity-$fam.log | grep -vE "^--$|Failure$" | cut -c1-300 | head -6
  done
  echo "== engine tests on cuda"
  timeout 25 $b/tests/engine/engine_model_test --gtest_brief=1 --gtest_filter='*cuda*' 2>&1 | tail -4
  echo "== bench model llama-1b bf16 (default)"
  timeout 25 $f bench model --synthetic llama-1b --device cuda:0 --dtype bf16 -p 512 -n 128 -r 2 --profile 2>&1 | grep -v "^flagstone ops" | tail -24
  echo "== llama-1b A/B"
  tg "default" "" llama-1b 2
  tg "FLAGSTONE_CUDA_PDL=0" "FLAGSTONE_CUDA_PDL=0" llama-1b 2
  tg "FLAGSTONE_ENGINE_STEP_GEMV=0" "FLAGSTONE_ENGINE_STEP_GEMV=0" llama-1b 2
  tg "FLAGSTONE_ENGINE_STEP_GEMV=all" "FLAGSTONE_ENGINE_STEP_GEMV=all" llama-1b 2
  tg "default again" "" llama-1b 2
  echo "== llama-8b"
  tg "default" "" llama-8b 1
  tg "FLAGSTONE_CUDA_PDL=0" "FLAGSTONE_CUDA_PDL=0" llama-8b 1
  tg "FLAGSTONE_ENGINE_STEP_GEMV=all" "FLAGSTONE_ENGINE_STEP_GEMV=all" llama-8b 1
  echo "== gemv timing"
  timeout 30 $b/tests/ops/cuda/ops_cuda_gemv_timing 2>&1 | tail -30
} >"$o" 2>&1
