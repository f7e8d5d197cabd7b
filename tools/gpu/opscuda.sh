#!/bin/bash
# GPU check of the cuda memory-bound operators (budget 60 s, most important first): the row and
# elementwise kernels timed per tuning variant (each variant checked against the cpu in the same
# run), the parity of the norm and llm families (parity_test families 4, 5) on cpu + cuda against
# the float64 reference, then every kernel variant against the reference (CudaRowVariants),
# tensors past 2^31 elements and a decoder layer in a CUDA graph.
# Output: $OUT/opscuda.txt.
o="$OUT/opscuda.txt"
b=build-gpu
# Line-buffered stdout, so a run cut by its timeout still leaves what it printed.
lb="stdbuf -oL"
{
  echo "== opscuda $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null)"
  echo "== row kernels per variant (0 = each op's default; check vs cpu)"
  timeout 19 $lb $b/tests/ops/cuda/ops_cuda_row_timing 2>&1 | head -400
  # NVIDIA OpenCL hidden (an empty vendor folder): this run is for the cuda provider.
  mkdir -p /tmp/no-icd
  for fam in 4 5; do
    rm -f /tmp/opscuda-parity-$fam.txt
    OCL_ICD_VENDORS=/tmp/no-icd FLAGSTONE_OPS_PARITY_REPORT=/tmp/opscuda-parity-$fam.txt \
      timeout 8 $b/tests/ops/ops_parity_test --gtest_filter="*/$fam" >/tmp/opscuda-parity-$fam.log 2>&1
    echo "== parity family $fam (cpu + cuda) rc=$?"
    cat /tmp/opscuda-parity-$fam.txt 2>/dev/null
    grep -A2 "Failure" /tmp/opscuda-parity-$fam.log | grep -vE "^--$|Failure$" | cut -c1-300 | head -8
  done
  echo "== every row-kernel variant vs the float64 reference, tensors past 2^31 elements, CUDA graph"
  timeout 23 $lb $b/tests/ops/cuda/ops_cuda_tests --gtest_brief=1 \
    --gtest_filter='CudaRowVariants.*:CudaLargeTensor.*:CudaGraph.*' 2>&1 | tail -30
} >"$o" 2>&1
