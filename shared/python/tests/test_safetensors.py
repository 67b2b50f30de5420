"""The safetensors writer, read back with the format's rules (no server)."""

from __future__ import annotations

import json
import struct
import unittest

from loracast import AdapterFiles, AdapterInputError, Tensor, encode_safetensors


def read(data: bytes) -> tuple[dict[str, object], bytes]:
    """The header (parsed) and the data section of a file."""
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


class WriterTest(unittest.TestCase):
    def test_layout_is_widest_dtype_first_then_by_name_and_tiles_the_data(self) -> None:
        f16 = Tensor("F16", (3,), struct.pack("<3e", 1.0, 2.0, 3.0))
        f32 = Tensor.f32((2, 2), [1.0, 2.0, 3.0, 4.0])
        bf = ("BF16", [1], b"\x80\x3f")
        data = encode_safetensors({"c": f16, "b": f32, "a": bf, "d": Tensor.f32((1,), [5.0])})
        header, body = read(data)
        names = [k for k in header if k != "__metadata__"]
        self.assertEqual(names, ["b", "d", "a", "c"], "F32 before 16-bit types, each group by name")
        cursor = 0
        for name in names:
            entry = header[name]
            assert isinstance(entry, dict)
            begin, end = entry["data_offsets"]
            self.assertEqual(begin, cursor, f"{name} starts where the previous ended")
            self.assertEqual(begin % {"F32": 4, "F16": 2, "BF16": 2}[entry["dtype"]], 0, f"{name} is aligned")
            cursor = end
        self.assertEqual(cursor, len(body), "no trailing bytes")
        self.assertEqual(body[0:16], f32.data)

    def test_header_is_compact_json_padded_with_spaces_to_8_bytes(self) -> None:
        data = encode_safetensors({"x": Tensor.f32((1,), [0.5])}, {"format": "pt"})
        (n,) = struct.unpack("<Q", data[:8])
        self.assertEqual(n % 8, 0)
        raw = data[8 : 8 + n]
        self.assertEqual(raw.rstrip(b" "), b'{"__metadata__":{"format":"pt"},"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}')
        self.assertEqual(len(data), 8 + n + 4)

    def test_empty_tensors_and_scalars(self) -> None:
        header, body = read(encode_safetensors({"e": Tensor("F32", (0, 4), b""), "s": Tensor.f32((), [2.0])}))
        self.assertEqual(header["e"], {"dtype": "F32", "shape": [0, 4], "data_offsets": [0, 0]})
        self.assertEqual(header["s"], {"dtype": "F32", "shape": [], "data_offsets": [0, 4]})
        self.assertEqual(body, struct.pack("<f", 2.0))

    def test_refuses_what_the_codec_refuses(self) -> None:
        cases: dict[str, tuple[dict[str, object], str]] = {
            "size": ({"t": Tensor("F32", (2, 2), b"\0" * 12)}, "t: shape [2, 2] of F32 needs 16 bytes, got 12"),
            "dtype": ({"t": Tensor("F64", (1,), b"\0" * 8)}, "t: dtype 'F64' is not one of F32, F16, BF16"),
            "negative": ({"t": Tensor("F32", (-1,), b"")}, "t: shape [-1] must be non-negative integers"),
            "reserved": ({"__metadata__": Tensor.f32((1,), [1.0])}, "tensor name __metadata__ is reserved"),
            "empty name": ({"": Tensor.f32((1,), [1.0])}, "tensor name is empty"),
        }
        for what, (tensors, message) in cases.items():
            with self.subTest(what), self.assertRaises(AdapterInputError) as caught:
                encode_safetensors(tensors)  # type: ignore[arg-type]
            self.assertEqual(caught.exception.message, message)
            self.assertIsInstance(caught.exception, ValueError)

    def test_refuses_non_string_metadata(self) -> None:
        with self.assertRaises(AdapterInputError):
            encode_safetensors({"t": Tensor.f32((1,), [1.0])}, {"step": 3})  # type: ignore[dict-item]

    def test_adapter_from_tensors_writes_peft_format_metadata(self) -> None:
        files = AdapterFiles.from_tensors({"r": 1}, {"t": Tensor.f32((1,), [1.0])})
        header, _ = read(files.weights)
        self.assertEqual(header["__metadata__"], {"format": "pt"})
        self.assertEqual(json.loads(files.config), {"r": 1})

    def test_folder_without_the_peft_files_is_refused_before_any_request(self) -> None:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "adapter_model.bin").write_bytes(b"")
            with self.assertRaises(AdapterInputError) as caught:
                AdapterFiles.from_folder(d)
        self.assertIn("no adapter_config.json or adapter_model.safetensors", caught.exception.message)
        self.assertIn("safe_serialization=True", caught.exception.message)


if __name__ == "__main__":
    unittest.main()
