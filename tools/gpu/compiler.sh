#!/bin/bash
# GPU check of the kernel compiler, most important first (budget 90 s): the official
# `flagstone bench compiler --device cuda:0` with --row-variants (memory-bound kernels vs copy
# bandwidth, every written variant of softmax/rms_norm, the bf16 GEMM 4096^3 vs cuBLAS in the
# same run, launch times), the whole compiler_kernels_test on cuda and on NVIDIA OpenCL (3
# parallel shards each, so the NVRTC/clBuildProgram compiles of the GEMM tests overlap), the
# cache and CLI tests, then the A/B of building every sm_90 kernel for sm_90a. Output:
# $OUT/compiler.txt.
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
        for k in m.get("row_variants", []):
            print("  variant %-8s %-22s %8.1f GB/s %6.1f%% of copy  err %.1e  %s" % (
                  k["kernel"], k["variant"], k["gbps"], 100 * k["fraction_of_copy"],
                  k["max_rel_error"], k["config"]))
    l = r.get("launch")
    if l:
        print("launch: first compile %.1f ms, cached launch in a new process %.2f ms" % (
              l["first_compile_ms"], l["cached_launch_ms"]))
'
# The whole kernels suite for one device kind in 3 shards side by side; each prints its summary
# and failures.
suite() {
  for i in 0 1 2; do
    (
      GTEST_TOTAL_SHARDS=3 GTEST_SHARD_INDEX=$i timeout -k 2 26 \
        $b/tests/compiler/compiler_kernels_test --gtest_brief=1 --gtest_filter="*$1*"
      echo "rc=$? (124: timed out)"
    ) >/tmp/kt_$1_$i.txt 2>&1 &
  done
  wait
  for i in 0 1 2; do
    echo "-- $1 shard $i of 3"
    grep -v "^Running main" /tmp/kt_$1_$i.txt | tail -25
  done
}
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null) (t=${SECONDS}s)"
  echo "== flagstone bench compiler --device cuda:0 --row-variants --repeat 20 --json (t=${SECONDS}s)"
  timeout -k 2 28 $f bench compiler --device cuda:0 --row-variants --repeat 20 --json >/tmp/bc.json 2>/tmp/bc.err
  echo "rc=$? (124: timed out)"
  tail -3 /tmp/bc.err
  python3 -c "$table" </tmp/bc.json
  echo "== compiler_kernels_test, all tests, on cuda and on opencl (NVIDIA) (t=${SECONDS}s)"
  suite cuda >/tmp/kt_cuda.txt 2>&1 &
  suite opencl >/tmp/kt_opencl.txt 2>&1 &
  wait
  cat /tmp/kt_cuda.txt /tmp/kt_opencl.txt
  echo "== compiler_cache_test, compiler_cli_test (t=${SECONDS}s)"
  for t in compiler_cache_test compiler_cli_test; do
    timeout -k 1 6 $b/tests/compiler/$t --gtest_brief=1 2>&1 | grep -v "^Running main" | tail -4
  done
  echo "== A/B: whole-tile vector branch (FLAGSTONE_COMPILER_VEC_UNIFORM=1) (t=${SECONDS}s)"
  FLAGSTONE_CACHE_DIR=/tmp/flagstone-compiler-cache-u FLAGSTONE_COMPILER_VEC_UNIFORM=1 \
    timeout -k 1 12 $f bench compiler --device cuda:0 --gemm 512 --repeat 20 --json >/tmp/bu.json 2>/tmp/bu.err
  echo "rc=$? (124: timed out)"
  tail -2 /tmp/bu.err
  python3 -c "$table" </tmp/bu.json | grep -v "^  BK=\|^gemm\|BEST"
  echo "== A/B: every sm_90 kernel built for sm_90a (FLAGSTONE_COMPILER_SM90A=1) (t=${SECONDS}s)"
  FLAGSTONE_CACHE_DIR=/tmp/flagstone-compiler-cache-a FLAGSTONE_COMPILER_SM90A=1 \
    timeout -k 1 12 $f bench compiler --device cuda:0 --gemm 512 --repeat 20 --json >/tmp/ba.json 2>/tmp/ba.err
  echo "rc=$? (124: timed out)"
  tail -2 /tmp/ba.err
  python3 -c "$table" </tmp/ba.json | grep -v "^  BK=\|^gemm\|BEST"
  echo "== end (t=${SECONDS}s)"
} >"$o" 2>&1
