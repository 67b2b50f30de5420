"""A real ``transformers.Trainer`` publishing its PEFT adapter through ``publishing_callback``.

Fine-tunes LoRA (r=16, all seven projections) on random token sequences for ``--max-steps`` steps,
publishing every ``--every`` steps and at every checkpoint save (``--save-steps``), each publish
waiting until every generator serves the version. Then samples from the last version exactly and
checks what the callback published against the trainer's record. Exits non-zero when any check
fails, so a run of it is a test of the callback under the real ``Trainer``'s event dispatch and a
real ``PeftModel.save_pretrained`` folder.

    python3 sft_callback.py --checkpoint CKPT --trainer http://127.0.0.1:9001 --token TOKEN \\
        --generators http://127.0.0.1:9002,http://127.0.0.1:9003

Needs torch, transformers and peft (with a CUDA GPU), and the ``loracast`` client on the path.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from loracast import Fleet, GeneratorClient, Published, TrainerClient, publishing_callback  # noqa: E402

ALL_SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class RandomTokens(torch.utils.data.Dataset):
    """``count`` sequences of ``length`` random lowercase-byte token ids, labels = inputs (causal LM)."""

    def __init__(self, count: int, length: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.rows = torch.randint(97, 123, (count, length), generator=g)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = self.rows[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--trainer", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--generators", required=True)
    p.add_argument("--run", default="py-sft")
    p.add_argument("--max-steps", type=int, default=6)
    p.add_argument("--every", type=int, default=2, help="publish every N optimizer steps")
    p.add_argument("--save-steps", type=int, default=3, help="checkpoint (and publish) every N steps")
    a = p.parse_args()

    trainer_client = TrainerClient(a.trainer, a.token)
    fleet = Fleet(trainer_client, [GeneratorClient(u) for u in a.generators.split(",")])
    published: list[Published] = []
    callback = publishing_callback(
        trainer_client, a.run, every_n_steps=a.every, fleet=fleet, wait_timeout_s=60, on_publish=published.append
    )
    base = AutoModelForCausalLM.from_pretrained(a.checkpoint, dtype=torch.bfloat16)
    model = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=ALL_SEVEN))
    with tempfile.TemporaryDirectory(prefix="sft-callback-") as out:
        args = TrainingArguments(
            output_dir=out, max_steps=a.max_steps, per_device_train_batch_size=4, learning_rate=1e-4,
            save_steps=a.save_steps, logging_steps=1, report_to=[], bf16=True, seed=1,
        )
        Trainer(model=model, args=args, train_dataset=RandomTokens(64, 64, seed=3), callbacks=[callback]).train()

    # Steps that publish: every multiple of --every, and every save; each once.
    expected = sorted({s for s in range(1, a.max_steps + 1) if s % a.every == 0 or s % a.save_steps == 0})
    got_steps = sorted(callback.publisher.published)
    failures = []
    if got_steps != expected:
        failures.append(f"published at steps {got_steps}, expected {expected}")
    versions = [v.version for v in published]
    if versions != sorted(versions) or len(set(versions)) != len(versions):
        failures.append(f"versions {versions} are not new and increasing")
    last = published[-1]
    record = trainer_client.version(a.run, last.version)
    if record.sha256 != last.sha256 or record.state != "active":
        failures.append(f"trainer lists {a.run}@{last.version} as {record.state} {record.sha256}, published {last.sha256}")
    samples = fleet.sample(a.run, last.version, [[97, 98, 99]], n=2, max_tokens=4)  # checked against the record
    print(f"published {a.run}@{versions} at steps {got_steps}; sampled {len(samples)} from {samples[0].model} "
          f"sha256 {samples[0].sha256[:12] if samples[0].sha256 else None}")
    if failures:
        raise SystemExit("sft_callback FAILED: " + "; ".join(failures))
    print("sft_callback: every check passed")


if __name__ == "__main__":
    main()
