"""The GPU peer for `npm run bench:engine`: HF transformers + PEFT on the same checkpoint (Qwen2.5-0.5B
dims, the seeded random weights our benchmark wrote), same prompts, same batch sizes, greedy, timed
the same way: prefill = time to the first new token, decode = from there to the 64th. Median of 3.

usage: python3 hf-peft-peer.py <checkpoint-dir> [dtype]   (dtype: bfloat16 | float16 | float32)
"""
import json
import statistics
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM
from transformers.generation.streamers import BaseStreamer

PROMPT_LEN = 128
NEW_TOKENS = 64
ALL_SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def prompt(i):
    # The same token ids as test/bench/engine/ours.ts's prompt(i).
    return [1000 + ((i * 7919 + j * 104729) % 100000) for j in range(PROMPT_LEN)]


class Clock(BaseStreamer):
    """generate() calls put() once with the prompt, then once per generated step."""

    def __init__(self):
        self.times = []

    def put(self, value):
        torch.cuda.synchronize()
        self.times.append(time.perf_counter())

    def end(self):
        pass


def measure(model, batch):
    ids = torch.tensor([prompt(i) for i in range(batch)], device="cuda")
    mask = torch.ones_like(ids)

    def run(n):
        clock = Clock()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                       do_sample=False, streamer=clock, pad_token_id=0)
        torch.cuda.synchronize()
        end = time.perf_counter()
        return clock.times[1] - t0, end - clock.times[1]

    run(4)
    prefill, decode = [], []
    for _ in range(3):
        first, rest = run(NEW_TOKENS)
        prefill.append(batch * PROMPT_LEN / first)
        decode.append(batch * (NEW_TOKENS - 1) / rest)
    return statistics.median(prefill), statistics.median(decode)


def main():
    checkpoint = sys.argv[1]
    dtype = getattr(torch, sys.argv[2] if len(sys.argv) > 2 else "bfloat16")
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=dtype).cuda().eval()
    rows = []
    with torch.inference_mode():
        for batch in (1, 8):
            rows.append(("hf base", batch, *measure(base, batch)))
        lora = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, target_modules=ALL_SEVEN))
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                torch.nn.init.uniform_(p, -0.01, 0.01)
        lora.eval()
        for batch in (1, 8):
            rows.append(("hf + PEFT LoRA r=16 x7 (unmerged)", batch, *measure(lora, batch)))
    device = torch.cuda.get_device_name(0)
    print(f"\nHF transformers {__import__('transformers').__version__} + PEFT {__import__('peft').__version__}, "
          f"torch {torch.__version__}, {dtype}, {device}; prompt {PROMPT_LEN}, {NEW_TOKENS} new tokens, greedy")
    print("| variant | batch | prefill tok/s | decode tok/s |")
    print("|---|---|---|---|")
    for name, batch, prefill, decode in rows:
        print(f"| {name} | {batch} | {prefill:.0f} | {decode:.1f} |")
    print(json.dumps({"peer": "hf+peft", "dtype": str(dtype), "device": device,
                      "rows": [dict(variant=r[0], batch=r[1], prefill=r[2], decode=r[3]) for r in rows]}))


if __name__ == "__main__":
    main()
