#!/bin/bash
# GPU check of the kernel compiler: the sm_90 GEMM (warpgroup MMA) first — its sweep of configs
# at 4096^3 with cuBLAS from the same run — then the compiler test suites on cuda and NVIDIA
# OpenCL devices and the memory-bound / OpenCL numbers. Output: $OUT/compiler.txt. Budget: 110 s.
o="$OUT/compiler.txt"
b=build-gpu
# NVRTC ships in the CUDA install; make sure dlopen finds it whatever the loader path says.
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
done
export FLAGSTONE_CACHE_DIR=/tmp/flagstone-compiler-cache
rm -rf "$FLAGSTONE_CACHE_DIR"
# Prints the GEMM sweep (TFLOP/s and spot-check error per config) and the summary of a
# `bench compiler --json` result read from stdin.
table='
import json, sys
try:
    runs = json.load(sys.stdin)
except Exception as e:
    print("no JSON:", e); sys.exit(0)
for r in runs:
    g = r["gemm"]
    print("gemm %s on %s" % ("x".join(str(v) for v in g["shape"]), g["device"]))
    for c in g["candidates"]:
        if c.get("ms") is None:
            print("  %-72s does not fit" % c["config"]); continue
        print("  %-72s %8.3f ms %7.1f TFLOP/s  err/sqrt(k) %.2e" % (c["config"], c["ms"],
              c.get("tflops", 0), c.get("max_abs_error_over_sqrt_k", float("nan"))))
    print("  best %s: %.1f TFLOP/s; cuBLAS %s TFLOP/s (%s ms); ratio %s; max|diff| vs cuBLAS %s" % (
          g["config"], g["tflops"], g.get("cublas_tflops"), g.get("cublas_ms"),
          g.get("ratio_vs_cublas"), g.get("max_abs_diff_vs_cublas")))
    m = r.get("memory")
    if m:
        print("memory: device copy %.1f GB/s" % m["device_copy_gbps"])
        for k in m["kernels"]:
            print("  %-10s %8.1f GB/s %6.1f%% of copy  err %.1e  %s" % (k["kernel"], k["gbps"],
                  100 * k["fraction_of_copy"], k["max_rel_error"], k["config"]))
    l = r.get("launch")
    if l:
        print("launch: first compile %.1f ms, cached launch in a new process %.2f ms" % (
              l["first_compile_ms"], l["cached_launch_ms"]))
'
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null) (t=${SECONDS}s)"
  nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw --format=csv 2>&1 | head -3
  # The GEMM first: it is what these windows are for.
  echo "== bench compiler --device cuda:0 (t=${SECONDS}s)"
  timeout 75 $b/src/cli/flagstone bench compiler --device cuda:0 --json >/tmp/bc.json 2>/tmp/bc.err
  echo "rc=$?"
  tail -5 /tmp/bc.err
  python3 -c "$table" </tmp/bc.json
  echo "== sm_90a codegen: wgmma, registers and spills (NVRTC + ptxas -v) (t=${SECONDS}s)"
  timeout 30 $b/tests/compiler/compiler_nvrtc_test --gtest_filter='*Hopper*' 2>&1 | tail -25
  echo "== compiler_kernels_test (cuda + opencl devices) (t=${SECONDS}s)"
  timeout 40 $b/tests/compiler/compiler_kernels_test --gtest_brief=1 \
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
  echo "== gemm 8192 on cuda:0 (t=${SECONDS}s)"
  timeout 20 $b/src/cli/flagstone bench compiler --device cuda:0 --gemm 8192 --size-mib 1 \
    --repeat 5 2>&1 | grep gemm
  echo "== end (t=${SECONDS}s)"
} >"$o" 2>&1
