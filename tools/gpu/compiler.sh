#!/bin/bash
# GPU check of the kernel compiler: the compiler test suites on cuda and NVIDIA OpenCL devices,
# then `flagstone bench compiler` on cuda:0 and the NVIDIA OpenCL device. Output:
# $OUT/compiler.txt. Budget: 90 s.
o="$OUT/compiler.txt"
b=build-gpu
# NVRTC ships in the CUDA install; make sure dlopen finds it whatever the loader path says.
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
done
export FLAGSTONE_CACHE_DIR=/tmp/flagstone-compiler-cache
rm -rf "$FLAGSTONE_CACHE_DIR"
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null) (t=${SECONDS}s)"
  ls /usr/local/cuda/lib64/libnvrtc* /usr/local/cuda/lib64/libcublas.so* 2>&1 | head -8
  $b/src/cli/flagstone info 2>&1 | head -30
  # The GEMM first: it is what this window is for.
  echo "== bench compiler --device cuda:0 (t=${SECONDS}s)"
  timeout 40 $b/src/cli/flagstone bench compiler --device cuda:0 --json 2>&1 | tail -150
  echo "== compiler_kernels_test (cuda + opencl devices) (t=${SECONDS}s)"
  timeout 25 $b/tests/compiler/compiler_kernels_test --gtest_brief=1 \
    --gtest_filter='*cuda*:*opencl*' 2>&1 | tail -60
  ocl=$($b/src/cli/flagstone info --json 2>/dev/null | python3 -c '
import json, sys
try:
    info = json.load(sys.stdin)
except Exception:
    sys.exit(0)
def walk(x):
    if isinstance(x, dict):
        if str(x.get("backend")) == "opencl" and "NVIDIA" in (str(x.get("vendor")) + str(x.get("name"))):
            print("opencl:%s" % x.get("index")); sys.exit(0)
        for v in x.values(): walk(v)
    elif isinstance(x, list):
        for v in x: walk(v)
walk(info)')
  echo "== bench compiler --device ${ocl:-opencl:0} (t=${SECONDS}s)"
  timeout 15 $b/src/cli/flagstone bench compiler --device "${ocl:-opencl:0}" --repeat 5 \
    --gemm 1024 2>&1 | tail -30
  echo "== gemm sizes on cuda:0 (best config each) (t=${SECONDS}s)"
  for g in 8192; do
    timeout 15 $b/src/cli/flagstone bench compiler --device cuda:0 --gemm $g --size-mib 1 \
      --repeat 5 2>&1 | grep gemm
  done
} >"$o" 2>&1
