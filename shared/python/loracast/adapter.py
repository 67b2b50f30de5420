"""A PEFT adapter as the trainer's upload takes it: ``adapter_config.json`` and ``adapter_model.safetensors``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import AdapterInputError
from .safetensors import TensorLike, encode_safetensors

#: PEFT's file names, which are also the upload's multipart field names.
CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"


@dataclass(frozen=True)
class AdapterFiles:
    """The two files of a PEFT adapter, as bytes."""

    config: bytes
    weights: bytes

    @staticmethod
    def from_folder(folder: str | Path) -> AdapterFiles:
        """Reads a PEFT ``save_pretrained`` folder.

        Raises :class:`~loracast.errors.AdapterInputError` when a file is missing (PEFT's legacy
        ``adapter_model.bin`` is refused: generators read safetensors only).
        """
        root = Path(folder)
        missing = [f for f in (CONFIG_FILE, WEIGHTS_FILE) if not (root / f).is_file()]
        if missing:
            hint = " (save with safe_serialization=True)" if (root / "adapter_model.bin").is_file() else ""
            raise AdapterInputError(f"{root}: no {' or '.join(missing)}{hint}")
        return AdapterFiles((root / CONFIG_FILE).read_bytes(), (root / WEIGHTS_FILE).read_bytes())

    @staticmethod
    def from_tensors(
        config: Mapping[str, Any],
        tensors: Mapping[str, TensorLike],
        metadata: Mapping[str, str] | None = None,
    ) -> AdapterFiles:
        """An adapter from a PEFT config (a ``LoraConfig`` as a dict) and tensors held in memory.

        Tensor names are PEFT's (``base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight``);
        ``metadata`` defaults to ``{"format": "pt"}``, as PEFT writes it.
        """
        weights = encode_safetensors(tensors, {"format": "pt"} if metadata is None else metadata)
        return AdapterFiles(json.dumps(dict(config)).encode(), weights)
