#!/usr/bin/env python3
"""PyTorch eager peer of `flagstone bench ops`: the same ops at the same model shapes, timed the
same way (device events around each call, median; a host launch rate at 1 token and tiny dims).

Prints JSON that `flagstone bench ops --peer-json FILE` merges into its table:
  python3 tools/bench/torch_ops_peer.py --device cuda > torch.json
  flagstone bench ops -d cuda:0 --peer-json torch.json

Shapes (T tokens): add/mul, rms_norm, layer_norm [T, hidden]; silu_and_mul [T, 2*ffn];
softmax, cross_entropy [T, vocab]; rotary (rotate_half form) [T, heads, head_dim]; mm
[T, hidden] x [hidden, hidden]; linear [T, hidden] x [ffn, hidden]^T; attention
F.scaled_dot_product_attention(is_causal=True) over [1, heads, T, head_dim].
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

OPS = ["add", "mul", "silu_and_mul", "softmax", "rms_norm", "layer_norm", "rotary",
       "cross_entropy", "mm", "linear", "attention"]
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def parse_sizes(text):
    sizes = []
    for part in text.split(","):
        part = part.strip()
        scale = 1024 if part[-1:] in ("k", "K") else 1
        sizes.append(int(part.rstrip("kK")) * scale)
    return sizes


def main_shape(op, t, d):
    if op in ("add", "mul", "rms_norm", "layer_norm"):
        return [t, d.hidden]
    if op == "silu_and_mul":
        return [t, 2 * d.ffn]
    if op in ("softmax", "cross_entropy"):
        return [t, d.vocab]
    if op == "rotary":
        return [t, d.heads, d.head_dim]
    if op == "mm":
        return [t, d.hidden, d.hidden]
    if op == "linear":
        return [t, d.hidden, d.ffn]
    return [1, d.heads, t, d.head_dim]


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def make_case(op, t, d, dtype, device):
    """Returns a zero-argument callable running the op on freshly built inputs."""
    g = torch.Generator(device=device).manual_seed(1234)

    def randn(*shape):
        return torch.randn(*shape, generator=g, device=device, dtype=torch.float32).to(dtype)

    if op == "add":
        a, b = randn(t, d.hidden), randn(t, d.hidden)
        return lambda: a + b
    if op == "mul":
        a, b = randn(t, d.hidden), randn(t, d.hidden)
        return lambda: a * b
    if op == "silu_and_mul":
        x = randn(t, 2 * d.ffn)
        return lambda: F.silu(x[..., :d.ffn]) * x[..., d.ffn:]
    if op == "softmax":
        x = randn(t, d.vocab)
        return lambda: torch.softmax(x, dim=-1)
    if op == "rms_norm":
        x, w = randn(t, d.hidden), randn(d.hidden)
        return lambda: F.rms_norm(x, (d.hidden,), w, eps=1e-6)
    if op == "layer_norm":
        x, w, b = randn(t, d.hidden), randn(d.hidden), randn(d.hidden)
        return lambda: F.layer_norm(x, (d.hidden,), w, b, eps=1e-5)
    if op == "rotary":
        x = randn(t, d.heads, d.head_dim)
        half = d.head_dim // 2
        inv = 1.0 / (10000.0 ** (torch.arange(0, half, device=device, dtype=torch.float32) / half))
        angles = torch.arange(t, device=device, dtype=torch.float32)[:, None] * inv[None, :]
        cos_cache, sin_cache = angles.cos().to(dtype), angles.sin().to(dtype)
        positions = torch.arange(t, device=device)

        def rotary():
            cos = torch.cat((cos_cache[positions],) * 2, dim=-1).unsqueeze(1)
            sin = torch.cat((sin_cache[positions],) * 2, dim=-1).unsqueeze(1)
            return x * cos + rotate_half(x) * sin
        return rotary
    if op == "cross_entropy":
        logits = randn(t, d.vocab)
        target = torch.randint(0, d.vocab, (t,), generator=g, device=device)
        return lambda: F.cross_entropy(logits, target)
    if op == "mm":
        a, b = randn(t, d.hidden), randn(d.hidden, d.hidden)
        return lambda: torch.mm(a, b)
    if op == "linear":
        x, w = randn(t, d.hidden), randn(d.ffn, d.hidden)
        return lambda: F.linear(x, w)
    q, k, v = (randn(1, d.heads, t, d.head_dim) for _ in range(3))
    return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def kernel_time(fn, device, args):
    """Events around each call, calls back to back; median microseconds and the count."""
    for _ in range(args.warmup):
        fn()
    sync(device)
    if device.type != "cuda":
        return call_time(fn, device, args)
    pairs = []
    t0 = time.perf_counter()
    while len(pairs) < 3 or (len(pairs) < args.reps and time.perf_counter() - t0 < args.max_seconds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        pairs.append((start, end))
    sync(device)
    us = [1e3 * s.elapsed_time(e) for s, e in pairs]
    return statistics.median(us), len(us)


def call_time(fn, device, args):
    us = []
    t0 = time.perf_counter()
    while len(us) < 3 or (len(us) < args.reps and time.perf_counter() - t0 < args.max_seconds):
        start = time.perf_counter()
        fn()
        sync(device)
        us.append(1e6 * (time.perf_counter() - start))
    return statistics.median(us), len(us)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--ops", default="all")
    p.add_argument("--sizes", default="1024,8192", help="token counts, e.g. 1024,8k")
    p.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--max-seconds", type=float, default=1.0)
    p.add_argument("--overhead-calls", type=int, default=1000)
    p.add_argument("--hidden", type=int, default=4096)
    p.add_argument("--ffn", type=int, default=11008)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--vocab", type=int, default=32000)
    args = p.parse_args()
    ops = OPS if args.ops == "all" else [o.strip() for o in args.ops.split(",")]
    for op in ops:
        if op not in OPS:
            sys.exit(f"torch_ops_peer: unknown op '{op}' (known: {' '.join(OPS)})")
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    dims = argparse.Namespace(hidden=args.hidden, ffn=args.ffn, heads=args.heads,
                              head_dim=args.head_dim, vocab=args.vocab)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    out = {"peer": f"torch {torch.__version__} eager", "device": name, "dtype": args.dtype,
           "rows": [], "overhead": []}
    for op in ops:
        for t in parse_sizes(args.sizes):
            fn = make_case(op, t, dims, dtype, device)
            k_us, reps = kernel_time(fn, device, args)
            c_us, _ = call_time(fn, device, args)
            out["rows"].append({"op": op, "tokens": t, "dtype": args.dtype, "reps": reps,
                                "shape": "x".join(str(s) for s in main_shape(op, t, dims)),
                                "kernel_us": k_us, "call_us": c_us})
            print(f"torch_ops_peer: {op} {t}: {k_us:.2f} us", file=sys.stderr)
            del fn
    if args.overhead_calls > 0:
        tiny = argparse.Namespace(hidden=128, ffn=256, heads=2, head_dim=64, vocab=256)
        for op in ops:
            fn = make_case(op, 1, tiny, dtype, device)
            for _ in range(max(args.warmup, 10)):
                fn()
            sync(device)
            t0 = time.perf_counter()
            for _ in range(args.overhead_calls):
                fn()
            sync(device)
            us = 1e6 * (time.perf_counter() - t0) / args.overhead_calls
            out["overhead"].append({"op": op, "calls": args.overhead_calls, "us_per_call": us,
                                    "shape": "x".join(str(s) for s in main_shape(op, 1, tiny))})
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
