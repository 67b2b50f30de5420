"""What the live tests share: the stack's URLs from the environment, fresh run names, LoRA tensors for the served base."""

from __future__ import annotations

import json
import os
import random
import struct
import unittest
import uuid
from dataclasses import dataclass
from typing import Any

from loracast import Fleet, GeneratorClient, Tensor, TrainerClient

#: Every variable the live tests read; test/integration/python-client.test.ts sets them all.
LIVE_ENV = (
    "LORACAST_TRAINER_URL",
    "LORACAST_TOKEN",
    "LORACAST_GENERATOR_URLS",
    "LORACAST_BASE_CONFIG",
    "LORACAST_PEFT_DIR",
    "LORACAST_OTHER_BASE_PEFT_DIR",
)

#: Decorates live test classes: without the stack's variables they are skipped, and say which are missing
#: (the integration test that sets them fails on any skip).
live = unittest.skipUnless(
    all(os.environ.get(k) for k in LIVE_ENV),
    f"needs a running stack: set {', '.join(k for k in LIVE_ENV if not os.environ.get(k))}",
)


def env(name: str) -> str:
    """A variable of :data:`LIVE_ENV`."""
    return os.environ[name]


def trainer(token: str | None = None, timeout_s: float = 60.0) -> TrainerClient:
    """A client of the stack's trainer, with its token unless another is given."""
    return TrainerClient(env("LORACAST_TRAINER_URL"), env("LORACAST_TOKEN") if token is None else token, timeout_s)


def fleet() -> Fleet:
    """The stack's trainer and every generator."""
    return Fleet(trainer(), [GeneratorClient(u) for u in env("LORACAST_GENERATOR_URLS").split(",")])


def run_name(topic: str) -> str:
    """A run name no other test uses (lowercase, digits, dashes)."""
    return f"py-{topic}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Projection:
    """One linear module of the base: its PEFT module path and (in, out) features."""

    path: str
    in_features: int
    out_features: int


def projections(targets: tuple[str, ...] = ("q_proj", "v_proj")) -> list[Projection]:
    """The attention projections of every layer of the served base (read from its config.json)."""
    with open(env("LORACAST_BASE_CONFIG"), encoding="utf-8") as f:
        cfg: dict[str, Any] = json.load(f)
    hidden = cfg["hidden_size"]
    head_dim = cfg.get("head_dim") or hidden // cfg["num_attention_heads"]
    out = {
        "q_proj": cfg["num_attention_heads"] * head_dim,
        "k_proj": cfg["num_key_value_heads"] * head_dim,
        "v_proj": cfg["num_key_value_heads"] * head_dim,
    }
    return [
        Projection(f"model.layers.{i}.self_attn.{t}", hidden, out[t])
        for i in range(cfg["num_hidden_layers"])
        for t in targets
    ]


def bf16(values: list[float]) -> bytes:
    """BF16 bytes of ``values``: the high half of each float32 (truncated)."""
    return b"".join(struct.pack("<I", struct.unpack("<I", struct.pack("<f", v))[0])[2:] for v in values)


def lora_tensors(seed: int, r: int = 4, dtype: str = "F32", scale: float = 0.2) -> dict[str, Tensor]:
    """A random LoRA (A and B) on q_proj and v_proj of every layer, in ``dtype`` (F32, F16 or BF16)."""
    rng = random.Random(seed)
    tensors: dict[str, Tensor] = {}
    for p in projections():
        for which, shape in (("A", (r, p.in_features)), ("B", (p.out_features, r))):
            values = [(rng.random() - 0.5) * scale for _ in range(shape[0] * shape[1])]
            if dtype == "F32":
                data = struct.pack(f"<{len(values)}f", *values)
            elif dtype == "F16":
                data = struct.pack(f"<{len(values)}e", *values)
            else:
                data = bf16(values)
            tensors[f"base_model.model.{p.path}.lora_{which}.weight"] = Tensor(dtype, shape, data)
    return tensors


def lora_config(r: int = 4) -> dict[str, Any]:
    """PEFT's ``adapter_config.json`` for :func:`lora_tensors`."""
    return {
        "peft_type": "LORA",
        "r": r,
        "lora_alpha": 2 * r,
        "target_modules": ["q_proj", "v_proj"],
        "task_type": "CAUSAL_LM",
        "bias": "none",
    }
