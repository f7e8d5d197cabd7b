#!/bin/bash
# GPU check of the kernel compiler, most important first (hard limit 45 s): the official
# `flagstone bench compiler --device cuda:0` (memory-bound kernels vs copy bandwidth, the bf16
# GEMM 4096^3 with its default candidates, each checked against float64, vs cuBLAS in the same
# run, launch times), the compiler test suites on cuda:0 and NVIDIA OpenCL, then one A/B row
# (the sm_90 GEMM with cp.async copies instead of TMA). Output: $OUT/compiler.txt.
o="$OUT/compiler.txt"
b=build-gpu
f=$b/src/cli/flagstone
# NVRTC ships in the CUDA install; make sure dlopen finds it whatever the loader path says.
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
done
export FLAGSTONE_CACHE_DIR=/tmp/flagstone-compiler-cache
rm -rf "$FLAGSTONE_CACHE_DIR"
# The GEMM sweep of a `bench compiler --json` result (stdin): per config TFLOP/s, the spot check
# against float64 and whether it counts as correct; then the best correct one vs cuBLAS.
table='
import json, sys
try:
    runs = json.load(sys.stdin)
except Exception as e:
    print("no JSON:", e); sys.exit(0)
for r in runs:
    g = r["gemm"]
    print("gemm %s on %s%s" % ("x".join(str(v) for v in g["shape"]), g["device"],
          " (B transposed)" if g.get("b_transposed") else ""))
    for c in g["candidates"]:
        if c.get("ms") is None:
            print("  %-70s does not fit" % c["config"]); continue
        print("  %-70s %7.3f ms %6.1f TFLOP/s err/sqrt(k) %.1e %s" % (c["config"], c["ms"],
              c.get("tflops", 0), c.get("max_abs_error_over_sqrt_k", float("nan")),
              "correct" if c.get("correct") else "WRONG"))
    print("  BEST CORRECT %s: %.1f TFLOP/s; cuBLAS %.1f TFLOP/s (%.3f ms); RATIO %.3f; "
          "max|diff| vs cuBLAS %s; any correct: %s" % (g["config"], g["tflops"],
          g.get("cublas_tflops", 0), g.get("cublas_ms", 0), g.get("ratio_vs_cublas", 0),
          g.get("max_abs_diff_vs_cublas"), g.get("correct")))
    m = r.get("memory")
    if m:
        print("memory: %s copy %.1f GB/s" % (m["device"], m["device_copy_gbps"]))
        for k in m["kernels"]:
            print("  %-10s %8.1f GB/s %6.1f%% of copy  max rel err %.1e  %s" % (k["kernel"],
                  k["gbps"], 100 * k["fraction_of_copy"], k["max_rel_error"], k["config"]))
    l = r.get("launch")
    if l:
        print("launch: first compile %.1f ms, cached launch in a new process %.2f ms" % (
              l["first_compile_ms"], l["cached_launch_ms"]))
'
cfg() { echo "--gemm-config BM=$1,BN=$2,BK=$3,num_warps=$4,num_stages=$5$6"; }
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null) (t=${SECONDS}s)"
  echo "== flagstone bench compiler --device cuda:0 --json (t=${SECONDS}s)"
  timeout -k 2 22 $f bench compiler --device cuda:0 --json >/tmp/bc.json 2>/tmp/bc.err
  echo "rc=$? (124: timed out)"
  tail -3 /tmp/bc.err
  python3 -c "$table" </tmp/bc.json
  echo "== compiler_kernels_test on cuda + opencl devices (t=${SECONDS}s)"
  timeout -k 2 14 $b/tests/compiler/compiler_kernels_test --gtest_brief=1 \
    --gtest_filter='*cuda*:*opencl*' 2>&1 | tail -20
  echo "== compiler_cache_test, compiler_cli_test (t=${SECONDS}s)"
  for t in compiler_cache_test compiler_cli_test; do
    timeout -k 1 4 $b/tests/compiler/$t --gtest_brief=1 2>&1 | tail -3
  done
  echo "== A/B: sm_90 GEMM with cp.async copies (tma=0) (t=${SECONDS}s)"
  timeout -k 1 6 $f bench compiler --device cuda:0 --gemm-only --json \
    $(cfg 128 256 64 8 4 ,tma=0) >/tmp/bt.json 2>/tmp/bt.err
  echo "rc=$? (124: timed out)"
  python3 -c "$table" </tmp/bt.json
  echo "== end (t=${SECONDS}s)"
} >"$o" 2>&1
