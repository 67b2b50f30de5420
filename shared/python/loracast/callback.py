"""Publishing a PEFT model from a ``transformers.Trainer`` (and TRL's trainers, which are Trainers).

:func:`publishing_callback` returns a ``transformers.TrainerCallback`` that publishes the adapter
every ``every_n_steps`` optimizer steps and whenever the Trainer saves a checkpoint. ``transformers``
is imported only when it is called, so the client itself needs nothing installed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .fleet import Fleet
from .trainer import Published, TrainerClient

if TYPE_CHECKING:
    from transformers import TrainerCallback


class SavesPretrained(Protocol):
    """What the callback needs of the model: PEFT's ``save_pretrained`` (a ``PeftModel``)."""

    def save_pretrained(self, save_directory: str, **kwargs: Any) -> Any: ...


class AdapterPublisher:
    """The callback's logic, free of ``transformers``: which steps publish, and how.

    A step publishes when it is a multiple of ``every_n_steps`` or the Trainer saves at it; a step
    publishes once, however many events fire for it. With a ``fleet``, each publish then waits
    (``wait_timeout_s``) until every generator serves the new version, so the next rollouts come
    from it. ``on_publish`` sees every result.
    """

    def __init__(
        self,
        trainer: TrainerClient,
        run: str,
        every_n_steps: int,
        fleet: Fleet | None = None,
        wait_timeout_s: float = 60.0,
        on_publish: Callable[[Published], None] | None = None,
    ) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be at least 1, got {every_n_steps}")
        self.trainer = trainer
        self.run = run
        self.every_n_steps = every_n_steps
        self.fleet = fleet
        self.wait_timeout_s = wait_timeout_s
        self.on_publish = on_publish
        self.published: dict[int, Published] = {}

    def step_end(self, model: SavesPretrained, step: int) -> Published | None:
        """Publishes at a multiple of ``every_n_steps``; None when this step does not publish."""
        return self._publish(model, step) if step % self.every_n_steps == 0 else None

    def save(self, model: SavesPretrained, step: int) -> Published | None:
        """Publishes at a checkpoint save; None when this step already published."""
        return self._publish(model, step)

    def _publish(self, model: SavesPretrained, step: int) -> Published | None:
        if step in self.published:
            return None
        with tempfile.TemporaryDirectory(prefix="loracast-adapter-") as folder:
            model.save_pretrained(folder, safe_serialization=True)
            result = self.trainer.publish_folder(self.run, folder)
        self.published[step] = result
        if self.fleet is not None:
            self.fleet.wait_active(self.run, result.version, timeout_s=self.wait_timeout_s)
        if self.on_publish is not None:
            self.on_publish(result)
        return result


def publishing_callback(
    trainer: TrainerClient,
    run: str,
    every_n_steps: int = 1,
    *,
    fleet: Fleet | None = None,
    wait_timeout_s: float = 60.0,
    on_publish: Callable[[Published], None] | None = None,
) -> TrainerCallback:
    """A ``transformers.TrainerCallback`` publishing the Trainer's PEFT model as versions of ``run``.

    It publishes on ``on_step_end`` at every multiple of ``every_n_steps`` and on ``on_save``, only
    on the main process (``state.is_world_process_zero``). The arguments are
    :class:`AdapterPublisher`'s. A failed publish raises, which stops training. Needs
    ``transformers`` installed (imported here, not when ``loracast`` is).
    """
    from transformers import TrainerCallback

    logic = AdapterPublisher(trainer, run, every_n_steps, fleet, wait_timeout_s, on_publish)

    class LoracastCallback(TrainerCallback):  # type: ignore[misc]
        """Publishes the PEFT model to the loracast trainer (see :func:`publishing_callback`)."""

        publisher = logic

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero:
                logic.step_end(kwargs["model"], state.global_step)

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero:
                logic.save(kwargs["model"], state.global_step)

    return LoracastCallback()
