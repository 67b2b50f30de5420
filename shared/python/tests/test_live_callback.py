"""The TrainerCallback against the real trainer and generators, with a stand-in for ``transformers``.

transformers and torch are not installed here: a stand-in ``transformers`` module supplies
``TrainerCallback``, a stand-in PEFT model writes real adapter files from ``save_pretrained``, and
the test calls the callback the way ``transformers.Trainer`` does (``on_step_end`` after every
optimizer step, ``on_save`` at checkpoints, with ``model=`` among the keyword arguments).
"""

from __future__ import annotations

import sys
import types
import unittest
from pathlib import Path
from typing import Any

from loracast import AdapterFiles, Published, publishing_callback

from . import support
from .support import live


class StandInTrainerCallback:
    """transformers.TrainerCallback's interface: every event is a no-op method."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None: ...

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None: ...


class StandInPeftModel:
    """Writes a new adapter each save (its weights change with each optimizer step, like training)."""

    def __init__(self) -> None:
        self.step = 0
        self.saves: list[dict[str, Any]] = []

    def save_pretrained(self, save_directory: str, **kwargs: Any) -> None:
        self.saves.append(kwargs)
        files = AdapterFiles.from_tensors(support.lora_config(), support.lora_tensors(seed=100 + self.step))
        Path(save_directory, "adapter_config.json").write_bytes(files.config)
        Path(save_directory, "adapter_model.safetensors").write_bytes(files.weights)


class State:
    def __init__(self, step: int, main: bool = True) -> None:
        self.global_step = step
        self.is_world_process_zero = main


@live
class CallbackTest(unittest.TestCase):
    def setUp(self) -> None:
        self.assertNotIn("transformers", sys.modules, "this test stands in for transformers; it must not be installed")
        stand_in = types.ModuleType("transformers")
        stand_in.TrainerCallback = StandInTrainerCallback  # type: ignore[attr-defined]
        sys.modules["transformers"] = stand_in
        self.addCleanup(sys.modules.pop, "transformers")

    def test_publishes_every_n_steps_and_on_save_once_per_step_and_waits_for_the_fleet(self) -> None:
        run = support.run_name("callback")
        seen: list[Published] = []
        fleet = support.fleet()
        callback = publishing_callback(fleet.trainer, run, every_n_steps=2, fleet=fleet, wait_timeout_s=90, on_publish=seen.append)
        self.assertIsInstance(callback, StandInTrainerCallback)
        model = StandInPeftModel()
        for step in range(1, 6):  # Trainer: on_step_end each step; checkpoints at steps 3 and 4
            model.step = step
            callback.on_step_end(None, State(step), None, model=model)
            if step in (3, 4):
                callback.on_save(None, State(step), None, model=model)
            callback.on_step_end(None, State(step, main=False), None, model=model)  # other ranks: nothing
        # Step 2 and 4 by schedule, 3 by save, 4's save already published.
        self.assertEqual([p.version for p in seen], [1, 2, 3])
        self.assertEqual(sorted(callback.publisher.published), [2, 3, 4])
        self.assertEqual(model.saves, [{"safe_serialization": True}] * 3)
        versions = fleet.trainer.versions(run)
        self.assertEqual(versions.current, 3)
        self.assertEqual([v.sha256 for v in versions.versions], [p.sha256 for p in seen])
        # It waited for the fleet after each publish: every generator already serves v3.
        for g in fleet.generators:
            row = next(a for a in g.adapters() if a.run == run and a.version == 3)
            self.assertEqual(row.state, "active", g.url)


if __name__ == "__main__":
    unittest.main()
