# Times causal attention prefill (bf16, 32 heads of 128) in PyTorch's scaled_dot_product_attention
# and in Flagstone's (the timing binary built from tests/ops/cuda), for tools/gpu/opscuda.sh.
import subprocess
import sys

import torch
import torch.nn.functional as F

build = sys.argv[1] if len(sys.argv) > 1 else "build-gpu"
for tokens in (1024, 8192):
    q = torch.randn(1, 32, tokens, 128, device="cuda", dtype=torch.bfloat16)
    k, v = torch.randn_like(q), torch.randn_like(q)
    for _ in range(3):
        F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    reps = 10
    start.record()
    for _ in range(reps):
        F.scaled_dot_product_attention(q, k, v, is_causal=True)
    end.record()
    torch.cuda.synchronize()
    ms = start.elapsed_time(end) / reps
    flops = 4 * 32 * tokens * tokens * 128 / 2
    print(f"torch sdpa causal bf16 tokens={tokens}: {ms:.3f} ms, {flops / ms / 1e9:.1f} TFLOP/s")
    res = subprocess.run([f"{build}/tests/ops/cuda/ops_cuda_attention_timing", str(tokens)],
                         capture_output=True, text=True, timeout=60)
    print(res.stdout.strip(), res.stderr.strip()[-2000:])
