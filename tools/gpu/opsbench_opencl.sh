#!/usr/bin/env bash
# GPU-window script: `flagstone bench ops` on NVIDIA's OpenCL driver (opencl:0, registered by
# run_all.sh through OCL_ICD_VENDORS), f32 then f16, the memory-bound ops and the CLBlast GEMMs
# at 1024 and 8192 tokens, each op against a copy of its bytes and the GEMMs against CLBlast
# forced past dispatch. Attention and rotary are left out: their tables or kernels fall back to
# the cpu there, which at 8192 tokens outlasts the window. Output: $OUT/opsbench_opencl.txt.
set -u
o="$OUT/opsbench_opencl.txt"
f=build-gpu/src/cli/flagstone
{
  echo "== opsbench opencl $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null)"
  timeout 20 $f info 2>&1 | head -20
  for dt in f32 f16; do
    echo "== opencl:0 $dt"
    timeout 90 $f bench ops -d opencl:0 --dtype "$dt" --sizes 1024,8192 --max-seconds 0.1 \
      --ops add,mul,silu_and_mul,softmax,rms_norm,layer_norm,cross_entropy,mm,linear \
      --overhead-calls 200 -q 2>&1 | tail -40
  done
} >"$o" 2>&1
