"""The GPU peer for `npm run bench:train`: the same GRPO step in PyTorch + PEFT on the same checkpoint
(Qwen2.5-0.5B dims, the seeded random weights our benchmark wrote), the same LoRA (r=16, alpha 32,
all 7 projections), the same shapes: P prompts of L random lowercase-byte tokens, G samples each,
completions of exactly C tokens. Phases as our trainer reports them, each after a CUDA sync:
rollout (generate), reference forward (adapter disabled), old-policy forward, training
forward+backward (DAPO loss with β·k3 KL, as TRL computes it), optimizer (clip + AdamW), publish
(save_pretrained: the PEFT safetensors an inference server would load). Step 1 is reported apart.

usage: python3 hf-peft-train-peer.py <checkpoint-dir> <dtype> <steps> <prompts> <generations> <prompt-tokens> <max-tokens>
  dtype: bfloat16 | float32 | nf4 (bitsandbytes 4-bit, QLoRA; skipped with a note when not installed)
"""
import statistics
import sys
import tempfile
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

ALL_SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
BETA = 0.04
EPSILON = 0.2


def load(checkpoint, dtype):
    if dtype == "nf4":
        try:
            from transformers import BitsAndBytesConfig
            import bitsandbytes  # noqa: F401
        except ImportError as e:
            print(f"nf4 peer skipped: {e}")
            return None
        q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                               bnb_4bit_compute_dtype=torch.bfloat16)
        return AutoModelForCausalLM.from_pretrained(checkpoint, quantization_config=q, device_map="cuda")
    return AutoModelForCausalLM.from_pretrained(checkpoint, dtype=getattr(torch, dtype)).cuda()


def token_logprobs(model, ids, mask, prompt_len):
    logits = model(input_ids=ids, attention_mask=mask).logits[:, prompt_len - 1:-1].float()
    return torch.log_softmax(logits, dim=-1).gather(-1, ids[:, prompt_len:, None]).squeeze(-1)


def main():
    checkpoint, dtype = sys.argv[1], sys.argv[2]
    steps, prompts, generations, prompt_len, new_tokens = (int(a) for a in sys.argv[3:8])
    base = load(checkpoint, dtype)
    if base is None:
        return
    torch.manual_seed(1)
    model = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=ALL_SEVEN))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    gen = torch.Generator(device="cpu").manual_seed(7)
    phases = []
    out_dir = tempfile.mkdtemp()
    for _ in range(steps):
        t = {}

        def lap(name, start):
            torch.cuda.synchronize()
            t[name] = time.perf_counter() - start
            return time.perf_counter()

        torch.cuda.synchronize()
        step_start = now = time.perf_counter()
        prompt_ids = torch.randint(97, 123, (prompts, prompt_len), generator=gen).cuda()
        ids = prompt_ids.repeat_interleave(generations, dim=0)
        model.eval()
        with torch.no_grad():
            seqs = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True,
                                  temperature=1.0, top_k=0, max_new_tokens=new_tokens,
                                  min_new_tokens=new_tokens, pad_token_id=0)
        now = lap("rollout", now)
        # Rewards do not move the clock (ours are regex counts, ~0 ms); random ones give the loss a signal.
        rewards = torch.rand(prompts, generations, generator=gen).cuda()
        adv = ((rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-4)).reshape(-1, 1)
        mask = torch.ones_like(seqs)
        with torch.no_grad():
            with model.disable_adapter():
                ref = token_logprobs(model, seqs, mask, prompt_len)
            now = lap("reference", now)
            old = token_logprobs(model, seqs, mask, prompt_len)
            now = lap("old_logprobs", now)
        model.train()
        logp = token_logprobs(model, seqs, mask, prompt_len)
        ratio = torch.exp(logp - old)
        per_token = -torch.min(ratio * adv, torch.clamp(ratio, 1 - EPSILON, 1 + EPSILON) * adv)
        kl = torch.exp(ref - logp) - (ref - logp) - 1
        loss = (per_token + BETA * kl).sum() / per_token.numel()
        loss.backward()
        now = lap("train", now)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        now = lap("optimizer", now)
        model.save_pretrained(out_dir)
        lap("publish", now)
        t["step"] = time.perf_counter() - step_start
        phases.append(t)
        print(f"step {len(phases)}: {t['step']:.2f} s", flush=True)

    scored = prompts * generations * new_tokens
    warm = phases[1:]
    mean = {k: statistics.mean(p[k] for p in warm) for k in phases[0]}
    print(f"\nPyTorch {torch.__version__} + PEFT, {dtype} base, {torch.cuda.get_device_name()}")
    print("| phase | step 1 (cold) | steps 2.. (mean) |")
    print("|---|---|---|")
    for k in ["rollout", "reference", "old_logprobs", "train", "optimizer", "publish", "step"]:
        print(f"| {k} | {phases[0][k]:.3f} s | {mean[k]:.3f} s |")
    print(f"training forward+backward: {scored / mean['train']:.1f} completion tokens/s, "
          f"{scored * (1 + prompt_len / new_tokens) / mean['train']:.1f} tokens/s counting prompts")
    print(f"whole step: {scored / mean['step']:.1f} completion tokens/s")
    print(f"peak CUDA memory allocated: {torch.cuda.max_memory_allocated() / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
