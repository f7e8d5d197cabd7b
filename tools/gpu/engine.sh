#!/bin/bash
# GPU check of the inference engine (issue 5: decode at batch 1 >= 80% of the bandwidth bound),
# most important first within its 90 s (a timeout kills the rest): the fused decode GEMV against
# the float64 reference, the engine's cuda tests (recorded step vs op by op, the fused step of
# every architecture against the unfused one and the reference), then `flagstone bench model` on
# random-weight Llama-3.2-1B and Llama-3-8B shapes in bf16 with --profile (per-op device times and
# the recorded step's nodes), then tg128 A/B rows in the same window:
#   FLAGSTONE_ENGINE_FUSED=1         the fused decode GEMV (opt-in: slower in every window)
#   FLAGSTONE_ENGINE_STEP_GEMV=0     the products through ops linear (no early weight loads)
#   FLAGSTONE_CUDA_PDL=0             no programmatic dependent launch anywhere
# The window's limit is 90 s: the 8B shape (30 s to load) runs once, last.
# Output: $OUT/engine.txt.
o="$OUT/engine.txt"
b=build-gpu
f=$b/src/cli/flagstone
tg() {  # label, env assignment, model, repetitions: the tg128 row without peaks (-p 512 keeps
        # the cache capacity of the main runs, 513)
  echo "-- $1"
  env $2 timeout 40 $f bench model --synthetic "$3" --device cuda:0 --dtype bf16 -p 512 -n 128 -r "$4" --no-peak 2>&1 | grep -v "^flagstone ops" | grep -E "tg128|rror"
}
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null)"
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | head -2
  echo "== GEMV tests: plain (every variant, early weights), fused (float64 reference)"
  timeout 15 $b/tests/ops/cuda/ops_cuda_gemv_tests --gtest_brief=1 2>&1 | tail -8
  echo "== engine tests on cuda (recorded step, fused step vs unfused and reference)"
  timeout 20 $b/tests/engine/engine_model_test --gtest_brief=1 --gtest_filter='*cuda*' 2>&1 | tail -12
  echo "== bench model llama-1b bf16 (default step)"
  timeout 20 $f bench model --synthetic llama-1b --device cuda:0 --dtype bf16 -p 512 -n 128 -r 3 --profile 2>&1 | grep -v "^flagstone ops" | tail -26
  echo "== llama-1b A/B (tg128, no peaks; compare with the row above)"
  tg "fused GEMV (FLAGSTONE_ENGINE_FUSED=1)" FLAGSTONE_ENGINE_FUSED=1 llama-1b 2
  tg "products through ops linear (FLAGSTONE_ENGINE_STEP_GEMV=0)" FLAGSTONE_ENGINE_STEP_GEMV=0 llama-1b 2
  tg "no PDL (FLAGSTONE_CUDA_PDL=0)" FLAGSTONE_CUDA_PDL=0 llama-1b 2
  echo "== llama-8b bf16 (default step, with the peaks)"
  timeout 60 $f bench model --synthetic llama-8b --device cuda:0 --dtype bf16 -p 512 -n 128 -r 2 2>&1 | grep -v "^flagstone ops" | grep -E "^\| |^peak"
} >"$o" 2>&1
