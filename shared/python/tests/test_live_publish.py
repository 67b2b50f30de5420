"""Publishing to a real trainer: from a PEFT folder, from tensors in memory, and every refusal."""

from __future__ import annotations

import hashlib
import math
import struct
import unittest
from pathlib import Path

from loracast import (
    AdapterFiles,
    BadRequestError,
    InvalidAdapterError,
    Tensor,
    UnauthorizedError,
)

from . import support
from .support import env, live


@live
class PublishTest(unittest.TestCase):
    def test_publish_a_peft_folder(self) -> None:
        run = support.run_name("folder")
        folder = Path(env("LORACAST_PEFT_DIR"))
        published = support.trainer().publish_folder(run, folder)
        self.assertEqual((published.run, published.version), (run, 1))
        weights = (folder / "adapter_model.safetensors").read_bytes()
        self.assertEqual(published.sha256, hashlib.sha256(weights).hexdigest())
        self.assertEqual(published.manifest_key, f"runs/{run}/versions/000000000001.json")
        versions = support.trainer().versions(run)
        self.assertEqual(versions.current, 1)
        self.assertEqual([(v.version, v.state, v.sha256) for v in versions.versions], [(1, "active", published.sha256)])

    def test_publish_tensors_in_memory_in_each_float_dtype(self) -> None:
        run = support.run_name("tensors")
        client = support.trainer()
        for i, dtype in enumerate(("F32", "F16", "BF16"), start=1):
            with self.subTest(dtype):
                files = AdapterFiles.from_tensors(support.lora_config(), support.lora_tensors(seed=i, dtype=dtype))
                published = client.publish(run, files)
                self.assertEqual(published.version, i)
                self.assertEqual(published.sha256, hashlib.sha256(files.weights).hexdigest())
        self.assertEqual(client.versions(run).current, 3)


@live
class PublishRefusalTest(unittest.TestCase):
    def test_bad_token(self) -> None:
        run = support.run_name("token")
        with self.assertRaises(UnauthorizedError) as caught:
            support.trainer(token="not-the-token").publish_folder(run, env("LORACAST_PEFT_DIR"))
        e = caught.exception
        self.assertEqual((e.status, e.code), (401, "unauthorized"))
        self.assertEqual(e.message, "Authorization: the bearer token is not valid")
        self.assertEqual((e.request.method, e.request.url) if e.request else None,
                         ("POST", f"{env('LORACAST_TRAINER_URL')}/v1/runs/{run}/adapters"))
        self.assertIsNotNone(e.request_id)
        with self.assertRaises(UnauthorizedError):
            support.trainer(token="not-the-token").rollback(run, 1)

    def test_a_large_upload_refused_early_keeps_the_reason(self) -> None:
        # The trainer answers these before it has read the 24 MB body, and closes the connection:
        # the client must read that answer, not report the broken pipe of its unfinished send.
        good = AdapterFiles.from_tensors(support.lora_config(), support.lora_tensors(seed=1))
        padding = b"\0" * (24 * 2**20)
        with self.assertRaises(UnauthorizedError) as caught:
            support.trainer(token="not-the-token").publish(
                support.run_name("big-token"), AdapterFiles(good.config, good.weights + padding)
            )
        self.assertEqual(caught.exception.message, "Authorization: the bearer token is not valid")
        header_len = struct.unpack("<Q", good.weights[:8])[0]
        bad_header = struct.pack("<Q", header_len) + b"{" * header_len + padding
        with self.assertRaises(InvalidAdapterError) as caught:
            support.trainer().publish(support.run_name("big-header"), AdapterFiles(good.config, bad_header))
        self.assertEqual((caught.exception.status, caught.exception.code), (400, "invalid_adapter"))
        self.assertIn("adapter_model.safetensors", caught.exception.message)

    def test_malformed_safetensors(self) -> None:
        good = AdapterFiles.from_tensors(support.lora_config(), support.lora_tensors(seed=1))
        truncated = AdapterFiles(good.config, good.weights[:-10])
        with self.assertRaises(InvalidAdapterError) as caught:
            support.trainer().publish(support.run_name("malformed"), truncated)
        self.assertEqual((caught.exception.status, caught.exception.code), (400, "invalid_adapter"))
        self.assertIn("adapter_model.safetensors", caught.exception.message)

    def test_non_finite_factors_name_the_tensor(self) -> None:
        tensors = support.lora_tensors(seed=2)
        name = sorted(tensors)[0]
        t = tensors[name]
        tensors[name] = Tensor(t.dtype, t.shape, struct.pack("<f", math.nan) + t.data[4:])
        with self.assertRaises(InvalidAdapterError) as caught:
            support.trainer().publish(support.run_name("nan"), AdapterFiles.from_tensors(support.lora_config(), tensors))
        self.assertIn(name, caught.exception.message)

    def test_config_that_is_not_json(self) -> None:
        good = AdapterFiles.from_tensors(support.lora_config(), support.lora_tensors(seed=1))
        with self.assertRaises(InvalidAdapterError) as caught:
            support.trainer().publish(support.run_name("config"), AdapterFiles(b"{r: 4", good.weights))
        self.assertIn("adapter_config.json", caught.exception.message)

    def test_an_adapter_for_another_base_names_the_tensor_and_both_shapes(self) -> None:
        other = Path(env("LORACAST_OTHER_BASE_PEFT_DIR"))
        with self.assertRaises(InvalidAdapterError) as caught:
            support.trainer().publish_folder(support.run_name("wrong-base"), other)
        message = caught.exception.message
        self.assertRegex(message, r"base_model\.model\.model\.layers\.\d+\.\S+\.lora_[AB]\.weight")
        self.assertRegex(message, r"\[\d+, \d+\].*\[\d+, \d+\]", "both shapes")
        # The same adapter in memory with one factor widened: the trainer names that one.
        tensors = support.lora_tensors(seed=3)
        name = "base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight"
        r, width = tensors[name].shape
        tensors[name] = Tensor("F32", (r, width * 2), tensors[name].data * 2)
        with self.assertRaises(InvalidAdapterError) as caught:
            support.trainer().publish(support.run_name("wrong-shape"), AdapterFiles.from_tensors(support.lora_config(), tensors))
        self.assertIn(name, caught.exception.message)
        self.assertIn(f"{r}, {width * 2}", caught.exception.message)

    def test_a_run_name_the_trainer_refuses(self) -> None:
        with self.assertRaises(BadRequestError) as caught:
            support.trainer().publish_folder("Not_A_Run", env("LORACAST_PEFT_DIR"))
        self.assertEqual(caught.exception.code, "bad_request")
        self.assertTrue(caught.exception.message.startswith("run: "), caught.exception.message)
        self.assertEqual(caught.exception.status, 400)


if __name__ == "__main__":
    unittest.main()
