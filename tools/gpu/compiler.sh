#!/bin/bash
# GPU check of the kernel compiler, most important first (hard limit 55 s): the bf16 GEMM at
# 4096^3 for each candidate lowering — sm_90 warpgroup MMA fed by cp.async, by TMA, and the
# mma.sync baseline — each timed AND checked against a float64 reference in the same run, with
# cuBLAS from the same run; then the compiler kernel tests on cuda. Output: $OUT/compiler.txt.
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
    l = r.get("launch")
    if l:
        print("launch: first compile %.1f ms, cached launch in a new process %.2f ms" % (
              l["first_compile_ms"], l["cached_launch_ms"]))
'
cfg() { echo "--gemm-config BM=$1,BN=$2,BK=$3,num_warps=$4,num_stages=$5$6"; }
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null) (t=${SECONDS}s)"
  echo "== GEMM 4096: wgmma + cp.async vs mma.sync (t=${SECONDS}s)"
  timeout -k 2 20 $f bench compiler --device cuda:0 --gemm-only --repeat 10 --json \
    $(cfg 128 256 64 8 4) $(cfg 128 128 64 8 3 ,occupancy=2) $(cfg 128 256 64 8 3) \
    $(cfg 64 256 64 4 4) $(cfg 256 128 64 16 3) $(cfg 128 128 32 4 3) \
    $(cfg 128 256 64 8 4 ,mn_swap=1) >/tmp/bc.json 2>/tmp/bc.err
  echo "rc=$? (124: timed out)"
  tail -3 /tmp/bc.err
  python3 -c "$table" </tmp/bc.json
  echo "== GEMM 4096, B stored [N, K] (x @ w.T): wgmma + cp.async (t=${SECONDS}s)"
  timeout -k 2 9 $f bench compiler --device cuda:0 --gemm-only --repeat 10 --json --gemm-b-transposed \
    $(cfg 128 256 64 8 4) $(cfg 128 128 64 8 3 ,occupancy=2) >/tmp/bb.json 2>/tmp/bb.err
  echo "rc=$? (124: timed out)"
  tail -3 /tmp/bb.err
  python3 -c "$table" </tmp/bb.json
  # TMA in its own process: a fault or a hang there must not cost the numbers above.
  echo "== GEMM 4096: wgmma + TMA (t=${SECONDS}s)"
  timeout -k 2 10 $f bench compiler --device cuda:0 --gemm-only --repeat 10 --json \
    $(cfg 128 256 64 8 4 ,tma=1) $(cfg 128 128 64 8 3 ,occupancy=2,tma=1) \
    $(cfg 128 256 64 8 3 ,tma=1) >/tmp/bt.json 2>/tmp/bt.err
  echo "rc=$? (124: timed out)"
  tail -3 /tmp/bt.err
  python3 -c "$table" </tmp/bt.json
  echo "== compiler GEMM tests on cuda (t=${SECONDS}s)"
  timeout -k 2 8 $b/tests/compiler/compiler_kernels_test --gtest_brief=1 \
    --gtest_filter='*Gemm*cuda*' 2>&1 | tail -20
  echo "== compiler kernel tests on cuda (t=${SECONDS}s)"
  timeout -k 2 6 $b/tests/compiler/compiler_kernels_test --gtest_brief=1 \
    --gtest_filter='*cuda*:-*Gemm*' 2>&1 | tail -20
  echo "== end (t=${SECONDS}s)"
} >"$o" 2>&1
