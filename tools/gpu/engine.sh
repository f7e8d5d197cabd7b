#!/bin/bash
# GPU check of the inference engine (issue 5): the engine tests on cuda:0 (logits vs the float64
# reference, GGUF models, generation), `flagstone bench model` on random-weight Llama-3.2-1B and
# Llama-3-8B shapes in bf16 (pp512/pp2048/tg128 with the device's copy and GEMM peaks measured in
# the same run), and a PyTorch/transformers peer on the same 1B shape. Output: $OUT/engine.txt.
# Budget: 200 s.
o="$OUT/engine.txt"
b=build-gpu
f=$b/src/cli/flagstone
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null)"
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | head -2
  echo "== ops dispatch for the engine's ops on cuda:0"
  for op in linear linear_quantized scaled_dot_product_attention add_rms_norm rotary_embedding silu_and_mul embedding argmax; do
    echo "-- $op"; timeout 5 $f ops --op $op 2>&1 | grep -i cuda | head -3
  done
  echo "== engine_model_test on cuda (logits vs float64 reference, GGUF, greedy)"
  timeout 45 $b/tests/engine/engine_model_test --gtest_brief=1 --gtest_filter='*cuda*' 2>&1 | tail -25
  echo "== engine_generate_test"
  timeout 20 $b/tests/engine/engine_generate_test --gtest_brief=1 2>&1 | tail -8
  echo "== engine_tokenizer_test, engine_format_test"
  timeout 15 $b/tests/engine/tokenizer/engine_tokenizer_test --gtest_brief=1 2>&1 | tail -4
  timeout 15 $b/tests/engine/engine_format_test --gtest_brief=1 2>&1 | tail -4
  echo "== bench model llama-1b bf16 (pp512, pp2048, tg128)"
  timeout 60 $f bench model --synthetic llama-1b --device cuda:0 --dtype bf16 -p 512,2048 -n 128 -r 3 2>&1 | tail -12
  echo "== peer: transformers LlamaForCausalLM, Llama-3.2-1B shape, bf16, random weights"
  timeout 45 python3 -u tools/gpu/engine_peer.py 2>&1 | tail -12
  echo "== bench model llama-8b bf16 (pp512, pp2048, tg128)"
  timeout 55 $f bench model --synthetic llama-8b --device cuda:0 --dtype bf16 -p 512,2048 -n 128 -r 2 2>&1 | tail -10
} >"$o" 2>&1
