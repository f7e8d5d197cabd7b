# Times attention in PyTorch's scaled_dot_product_attention and in Flagstone's (the timing binary
# built from tests/ops/cuda: each cuda implementation, then dispatch's pick) on the same shapes:
# causal prefill (bf16, 32 heads of 128) and decode (one query per head, 8 kv heads, over a
# cache), for tools/gpu/opscuda.sh.
import subprocess
import sys

import torch
import torch.nn.functional as F

build = sys.argv[1] if len(sys.argv) > 1 else "build-gpu"
timer = f"{build}/tests/ops/cuda/ops_cuda_attention_timing"


def torch_ms(fn, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


def ours(*args):
    res = subprocess.run([timer, *map(str, args)], capture_output=True, text=True, timeout=60)
    return (res.stdout.strip() + " " + res.stderr.strip()[-1500:]).strip()


for tokens in (1024, 8192):
    q = torch.randn(1, 32, tokens, 128, device="cuda", dtype=torch.bfloat16)
    k, v = torch.randn_like(q), torch.randn_like(q)
    ms = torch_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), 10)
    flops = 4 * 32 * tokens * tokens * 128 / 2
    print(f"torch sdpa causal bf16 tokens={tokens}: {ms:.3f} ms, {flops / ms / 1e9:.1f} TFLOP/s")
    print(ours(tokens))
for keys in (4096,):
    q = torch.randn(1, 32, 1, 128, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, 8, keys, 128, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)
    ms = torch_ms(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True), 50)
    print(f"torch sdpa decode bf16 keys={keys}: {ms:.3f} ms, {4 * 8 * keys * 128 / ms / 1e6:.0f} GB/s")
    print(ours(keys, "decode"))
