# Peer for `flagstone bench model` on the GPU machine: transformers' LlamaForCausalLM with random
# bf16 weights in the Llama-3.2-1B shape, timed for a 512-token prefill and 128 greedy tokens,
# the same tests (pp512, tg128) with the same counting as flagstone's table.
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

config = LlamaConfig(
    hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
    num_key_value_heads=8, head_dim=64, vocab_size=128256, max_position_embeddings=131072,
    rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=True,
    rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
torch.manual_seed(0)
with torch.device("cuda"):
    model = LlamaForCausalLM(config).to(torch.bfloat16).eval()
gen = torch.Generator(device="cuda").manual_seed(1)
prompt = torch.randint(0, config.vocab_size, (1, 512), device="cuda", generator=gen)


def timed(fn, reps=3):
    fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        out.append(time.perf_counter() - t0)
    return out


print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}", flush=True)
with torch.inference_mode():
    pp = timed(lambda: model(prompt, use_cache=False, logits_to_keep=1))
    print(f"transformers pp512: {sum(512 / t for t in pp) / len(pp):.1f} t/s", flush=True)
    start = prompt[:, :1]
    tg = timed(lambda: model.generate(start, max_new_tokens=128, min_new_tokens=128,
                                      do_sample=False, pad_token_id=0), reps=2)
    print(f"transformers tg128 (generate, dynamic cache): {sum(128 / t for t in tg) / len(tg):.1f} t/s",
          flush=True)
