"""A strict safetensors writer for adapters built in memory.

It writes what ``shared/safetensors`` (the codec every trainer and generator parses uploads with)
accepts and what its own encoder writes: tensors laid out widest dtype first, then by name (so each
tensor starts aligned for its element type), offsets that tile the data section exactly, a compact
JSON header padded with spaces to a multiple of 8 bytes, and string-only ``__metadata__``.
Only the float dtypes a LoRA factor can have are taken: F32, F16 and BF16, little-endian.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import AdapterInputError

#: Bytes per element of each dtype the writer takes.
DTYPE_BYTES: Mapping[str, int] = {"F32": 4, "F16": 2, "BF16": 2}


@dataclass(frozen=True)
class Tensor:
    """One tensor: its dtype (``F32``, ``F16`` or ``BF16``), shape, and little-endian element bytes."""

    dtype: str
    shape: tuple[int, ...]
    data: bytes

    @staticmethod
    def f32(shape: Sequence[int], values: Sequence[float]) -> Tensor:
        """An F32 tensor from Python floats, in row-major order."""
        return Tensor("F32", tuple(shape), struct.pack(f"<{len(values)}f", *values))


#: What :func:`encode_safetensors` takes: a tensor, or a ``(dtype, shape, bytes)`` triple.
TensorLike = Tensor | tuple[str, Sequence[int], bytes]


def _as_tensor(name: str, t: TensorLike) -> Tensor:
    tensor = t if isinstance(t, Tensor) else Tensor(t[0], tuple(t[1]), bytes(t[2]))
    if not name:
        raise AdapterInputError("tensor name is empty")
    if name == "__metadata__":
        raise AdapterInputError("tensor name __metadata__ is reserved")
    if tensor.dtype not in DTYPE_BYTES:
        raise AdapterInputError(f"{name}: dtype {tensor.dtype!r} is not one of {', '.join(DTYPE_BYTES)}")
    if any(not isinstance(d, int) or isinstance(d, bool) or d < 0 for d in tensor.shape):
        raise AdapterInputError(f"{name}: shape {list(tensor.shape)} must be non-negative integers")
    expected = math.prod(tensor.shape) * DTYPE_BYTES[tensor.dtype]
    if len(tensor.data) != expected:
        raise AdapterInputError(
            f"{name}: shape {list(tensor.shape)} of {tensor.dtype} needs {expected} bytes, got {len(tensor.data)}"
        )
    return tensor


def encode_safetensors(
    tensors: Mapping[str, TensorLike], metadata: Mapping[str, str] | None = None
) -> bytes:
    """The safetensors file holding ``tensors`` (name -> tensor) and optional string ``metadata``.

    Raises :class:`~loracast.errors.AdapterInputError` for a dtype other than F32/F16/BF16, a
    negative or non-integer dimension, bytes that do not match the shape, or non-string metadata.
    """
    checked = {name: _as_tensor(name, t) for name, t in tensors.items()}
    names = sorted(checked, key=lambda n: (-DTYPE_BYTES[checked[n].dtype], n))
    header: dict[str, object] = {}
    if metadata:
        if any(not isinstance(k, str) or not isinstance(v, str) for k, v in metadata.items()):
            raise AdapterInputError("__metadata__ keys and values must be strings")
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name in names:
        t = checked[name]
        header[name] = {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(t.data)]}
        offset += len(t.data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    padded = text + b" " * (-len(text) % 8)
    return b"".join([struct.pack("<Q", len(padded)), padded, *(checked[n].data for n in names)])
