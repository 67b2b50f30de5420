"""A plain PyTorch + PEFT GRPO loop whose rollouts come from loracast generators.

Each step samples ``G`` completions for each of ``P`` prompts from the generators, naming the
policy's current version exactly (``<run>@<version>``), checks every answer's version and sha256
against the trainer's record, scores them, takes one GRPO step on the LoRA factors and publishes
the adapter through the trainer service. The next step's rollouts wait until every generator
serves the new version, so no rollout comes from a stale adapter.

The step is the one of ``test/bench/gpu/hf-peft-train-peer.py``: reference forward with the adapter
disabled, old-policy forward, DAPO loss with a β·k3 KL term (TRL's ``GRPOTrainer`` with
``loss_type="dapo"``; Yu et al. 2025, arXiv:2503.14476; k3 from Schulman 2020, "Approximating KL
divergence"), gradient clipping and AdamW. Rewards are random, which gives the loss a signal without
a task: swap ``reward`` for yours. ``--rollouts=self`` runs the same loop with PEFT's ``generate``
instead of the fleet and ``save_pretrained`` as its only publish, the baseline that
``test/bench/gpu/python-fleet.sh`` measures against.

    python3 grpo_peft.py --checkpoint CKPT --trainer http://127.0.0.1:9001 --token TOKEN \\
        --generators http://127.0.0.1:9002,http://127.0.0.1:9003 --run py-grpo --steps 4

Needs torch, transformers and peft (with a CUDA GPU), and the ``loracast`` client on the path. It
writes one JSON record per step to ``--out`` (phase times in seconds, the handoff, the samples and
how many came from the requested version) and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from loracast import (  # noqa: E402
    Fleet,
    GeneratorClient,
    Published,
    Sample,
    TrainerClient,
    VersionMismatchError,
    VersionRecord,
)

ALL_SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
#: Times a chunk of prompts is sampled before the step gives up on getting the requested version.
MAX_TRIES = 3


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="HF checkpoint folder of the base (config.json + safetensors)")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    p.add_argument("--rollouts", default="fleet", choices=["fleet", "self"])
    p.add_argument("--trainer", help="trainer service URL (fleet rollouts)")
    p.add_argument("--token", help="the trainer's TRAINER_API_TOKEN")
    p.add_argument("--generators", help="comma-separated generator URLs")
    p.add_argument("--run", default="py-grpo")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--prompts", type=int, default=2, help="prompts per step (P)")
    p.add_argument("--generations", type=int, default=4, help="completions per prompt (G)")
    p.add_argument("--prompt-tokens", type=int, default=64, help="prompt length in tokens (L)")
    p.add_argument("--max-tokens", type=int, default=32, help="completion length in tokens (C), exact")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--beta", type=float, default=0.04, help="KL coefficient")
    p.add_argument("--epsilon", type=float, default=0.2, help="clip range of the importance ratio")
    p.add_argument("--wait-timeout", type=float, default=60.0, help="seconds to wait for every generator")
    p.add_argument("--poll", type=float, default=0.01, help="seconds between polls of the generators")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", help="JSON lines of per-step records")
    a = p.parse_args()
    if a.rollouts == "fleet" and not (a.trainer and a.token and a.generators):
        p.error("--rollouts=fleet needs --trainer, --token and --generators")
    return a


def token_logprobs(model: torch.nn.Module, ids: torch.Tensor, prompt_len: int) -> torch.Tensor:
    """float32 [batch, completion]: log p(token) of each completion token under ``model``."""
    logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, prompt_len - 1 : -1].float()
    return torch.log_softmax(logits, dim=-1).gather(-1, ids[:, prompt_len:, None]).squeeze(-1)


def reward(samples: list[list[int]], gen: torch.Generator) -> torch.Tensor:
    """float32 [P·G]: one reward per completion (random here: the loop measures, it solves no task)."""
    return torch.rand(len(samples), generator=gen)


class FleetRollouts:
    """Rollouts from the generators: the prompts split across them, sampled concurrently, checked."""

    def __init__(self, a: argparse.Namespace) -> None:
        self.trainer = TrainerClient(a.trainer, a.token)
        self.generators = [GeneratorClient(u) for u in a.generators.split(",")]
        self.fleet = Fleet(self.trainer, self.generators)
        self.pool = ThreadPoolExecutor(len(self.generators))
        self.args = a
        self.record: VersionRecord | None = None
        self.lock = threading.Lock()
        self.samples = 0
        self.samples_from_requested = 0

    def publish(self, model: PeftModel, folder: str) -> dict[str, Any]:
        """Saves the adapter, publishes it and waits until every generator serves it. Times in seconds."""
        t0 = time.perf_counter()
        model.save_pretrained(folder)
        t1 = time.perf_counter()
        published: Published = self.trainer.publish_folder(self.args.run, folder)
        t2 = time.perf_counter()
        self.record = self.fleet.wait_active(
            self.args.run, published.version, timeout_s=self.args.wait_timeout, poll_s=self.args.poll
        )
        t3 = time.perf_counter()
        weights = Path(folder, "adapter_model.safetensors").stat().st_size
        return {
            "version": published.version,
            "sha256": published.sha256,
            "adapter_bytes": weights,
            "uploaded_bytes": published.uploaded_bytes,
            "save": t1 - t0,
            "publish": t2 - t1,
            "activate": t3 - t2,
        }

    def sample(self, prompts: torch.Tensor, step: int) -> tuple[list[list[int]], list[list[float]]]:
        """Completions (token ids, generator logprobs) of each prompt, ``G`` each, in prompt order.

        The prompts are split into one chunk per generator, sampled concurrently (the fleet picks
        the generators round robin). An answer from another version than the one asked for is
        counted (``samples`` less ``samples_from_requested``) and its chunk sampled again, at most
        ``MAX_TRIES`` times; the step never trains on it.
        """
        assert self.record is not None, "publish a version before sampling"
        a, record = self.args, self.record
        rows = prompts.tolist()
        spread = len(self.generators)
        # Chunk k holds prompts k, k + N, k + 2N, ...: its prompt j is prompt k + N·j.
        chunks = [rows[k::spread] for k in range(spread)]

        def one(k: int) -> list[Sample]:
            for attempt in range(MAX_TRIES):
                seed = a.seed * 1_000_003 + step * 97 + k * 7 + attempt
                n = len(chunks[k]) * a.generations
                try:
                    got = self.fleet.sample(
                        a.run, record.version, chunks[k], expect=record, n=a.generations,
                        max_tokens=a.max_tokens, temperature=1.0, seed=seed, extra={"min_tokens": a.max_tokens},
                    )
                except VersionMismatchError as e:
                    with self.lock:
                        self.samples += n
                    print(f"step {step}: {n} samples from another version, sampled again: {e}", flush=True)
                    continue
                with self.lock:
                    self.samples += n
                    self.samples_from_requested += n
                return got
            raise SystemExit(f"no rollouts from {a.run}@{record.version} in {MAX_TRIES} tries")

        by_prompt: dict[int, list[Sample]] = {}
        for k, got in enumerate(self.pool.map(one, range(spread))):
            for s in got:
                by_prompt.setdefault(k + spread * s.prompt_index, []).append(s)
        ids, logprobs = [], []
        for p, row in enumerate(rows):
            got = by_prompt.get(p, [])
            if len(got) != a.generations:
                raise SystemExit(f"prompt {p}: {len(got)} completions, not {a.generations}")
            for s in got:
                if s.prompt_token_ids != row:
                    raise SystemExit(f"prompt {p}: the generator continued {s.prompt_token_ids[:8]}…, not the prompt")
                if len(s.token_ids) != a.max_tokens:
                    raise SystemExit(f"a completion has {len(s.token_ids)} tokens, not {a.max_tokens}")
                ids.append(row + s.token_ids)
                logprobs.append(s.logprobs)
        return ids, logprobs


def main() -> None:
    a = parse_args()
    dtype = getattr(torch, a.dtype)
    base = AutoModelForCausalLM.from_pretrained(a.checkpoint, dtype=dtype).cuda()
    torch.manual_seed(1)
    config = LoraConfig(r=a.rank, lora_alpha=2 * a.rank, lora_dropout=0.0, target_modules=ALL_SEVEN)
    model = get_peft_model(base, config)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=a.lr)
    gen = torch.Generator(device="cpu").manual_seed(a.seed)
    folder = tempfile.mkdtemp(prefix="grpo-peft-")
    fleet = FleetRollouts(a) if a.rollouts == "fleet" else None
    out = open(a.out, "w") if a.out else None
    records: list[dict[str, Any]] = []
    if fleet is not None:  # version 1: the freshly initialised adapter (B = 0), the policy of step 1
        first = fleet.publish(model, folder)
        print(f"published {a.run}@{first['version']}: {first['adapter_bytes']} bytes, "
              f"active everywhere {1000 * (first['publish'] + first['activate']):.0f} ms after the publish call")
        if out:
            out.write(json.dumps({"step": 0, **first}) + "\n")
    for step in range(1, a.steps + 1):
        t: dict[str, Any] = {"step": step}

        def lap(name: str, start: float) -> float:
            torch.cuda.synchronize()
            now = time.perf_counter()
            t[name] = now - start
            return now

        torch.cuda.synchronize()
        step_start = now = time.perf_counter()
        prompts = torch.randint(97, 123, (a.prompts, a.prompt_tokens), generator=gen)
        gen_logprobs: list[list[float]] | None = None
        if fleet is not None:
            ids, gen_logprobs = fleet.sample(prompts, step)
            seqs = torch.tensor(ids, device="cuda")
        else:
            model.eval()
            cuda_prompts = prompts.cuda().repeat_interleave(a.generations, dim=0)
            with torch.no_grad():
                seqs = model.generate(
                    input_ids=cuda_prompts, attention_mask=torch.ones_like(cuda_prompts), do_sample=True,
                    temperature=1.0, top_k=0, max_new_tokens=a.max_tokens, min_new_tokens=a.max_tokens,
                    pad_token_id=0,
                )
        now = lap("rollout", now)
        rewards = reward(seqs[:, a.prompt_tokens :].tolist(), gen).view(a.prompts, a.generations)
        adv = ((rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-4)).reshape(-1, 1).cuda()
        model.eval()
        with torch.no_grad():
            with model.disable_adapter():
                ref = token_logprobs(model, seqs, a.prompt_tokens)
            now = lap("reference", now)
            old = token_logprobs(model, seqs, a.prompt_tokens)
            now = lap("old_logprobs", now)
        if gen_logprobs is not None:
            # The generators serve the int4 base, PyTorch trains on the bf16 one: how far apart
            # their log-probabilities of the same tokens are (the off-policy gap importance sampling sees).
            t["generator_logprob_gap"] = (torch.tensor(gen_logprobs, device="cuda") - old).abs().mean().item()
        model.train()
        logp = token_logprobs(model, seqs, a.prompt_tokens)
        ratio = torch.exp(logp - old)
        per_token = -torch.min(ratio * adv, torch.clamp(ratio, 1 - a.epsilon, 1 + a.epsilon) * adv)
        kl = torch.exp(ref - logp) - (ref - logp) - 1
        loss = (per_token + a.beta * kl).sum() / per_token.numel()
        loss.backward()
        now = lap("train", now)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        now = lap("optimizer", now)
        if fleet is not None:
            t.update(fleet.publish(model, folder))
        else:
            model.save_pretrained(folder)
            t["save"] = time.perf_counter() - now
        t["step_time"] = time.perf_counter() - step_start
        t["loss"] = loss.item()
        records.append(t)
        if out:
            out.write(json.dumps(t) + "\n")
            out.flush()
        handoff = f", handoff {1000 * (t['publish'] + t['activate']):.0f} ms" if fleet else ""
        print(f"step {step}: {t['step_time']:.2f} s{handoff}", flush=True)
    summarize(a, records, fleet)


def summarize(a: argparse.Namespace, records: list[dict[str, Any]], fleet: FleetRollouts | None) -> None:
    """Prints the mean of each phase over steps 2.. (step 1 is cold) and the version checks."""
    warm = records[1:] or records
    keys = [k for k in ("rollout", "reference", "old_logprobs", "train", "optimizer", "save", "publish", "activate", "step_time") if k in warm[0]]
    print(f"\nPyTorch {torch.__version__} + PEFT, {a.dtype} base, {torch.cuda.get_device_name()}, rollouts: {a.rollouts}")
    print("| phase | step 1 | steps 2.. (mean) |\n|---|---|---|")
    for k in keys:
        print(f"| {k} | {records[0][k]:.3f} s | {statistics.mean(r[k] for r in warm):.3f} s |")
    if fleet is not None:
        share = fleet.samples_from_requested / fleet.samples if fleet.samples else 0.0
        print(f"samples from the requested version: {fleet.samples_from_requested} / {fleet.samples} ({100 * share:.1f}%)")
        print(f"generator vs PyTorch logprob gap (mean |Δ|): {statistics.mean(r['generator_logprob_gap'] for r in records):.4f}")


if __name__ == "__main__":
    main()
