"""The trainer and its generators together: wait until a version is active everywhere, and sample
rollouts from exactly that version, checked against the trainer's record.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from typing import Any

from .errors import LoracastError, VersionMismatchError, VersionStateError, WaitTimeoutError
from .generator import Completion, GeneratorClient, Sample
from .trainer import TrainerClient, VersionRecord

#: Generator states in which a version serves requests that name it exactly: ``retired`` is a
#: version a newer one superseded after it was active.
SERVING_STATES = frozenset({"active", "retired"})


class Fleet:
    """A trainer and the generators that serve its runs (the URLs a user deploys them at)."""

    def __init__(
        self,
        trainer: TrainerClient,
        generators: Sequence[GeneratorClient],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not generators:
            raise ValueError("a fleet needs at least one generator")
        self.trainer = trainer
        self.generators = list(generators)
        self._clock = clock
        self._sleep = sleep
        self._next = itertools.cycle(self.generators)

    def wait_active(
        self, run: str, version: int | None = None, timeout_s: float = 60.0, poll_s: float = 0.2
    ) -> VersionRecord:
        """Waits until every generator serves ``run@version`` (the run's current version when None).

        Done when each generator's ``/v1/adapters`` lists it ``active`` (or, unless it is the run's
        current version, ``retired``: active, then superseded by a newer version, still served by
        exact name) with the sha256 of the trainer's record, which is returned. The run's current
        version listed ``retired`` is a rollback back to it not yet taken: waiting goes on. The trainer's own ``/versions`` says ``active`` as soon
        as the manifest is in the store, before any generator has pulled it, so it alone cannot say
        that rollouts will come from the version.

        Raises :class:`~loracast.errors.WaitTimeoutError` (with each generator's last state and
        reason) after ``timeout_s`` seconds; :class:`~loracast.errors.VersionStateError` at once when
        the run has no version or the trainer reports this one revoked or failed (waiting cannot
        help); :class:`~loracast.errors.NotFoundError` when the trainer lists no such version;
        :class:`~loracast.errors.VersionMismatchError` when a generator holds another sha256.
        """
        deadline = self._clock() + timeout_s
        versions = self.trainer.versions(run, max(0.1, timeout_s))
        if version is None:
            if versions.current is None:
                raise VersionStateError(f"run {run} has no published version")
            version = versions.current
        record = versions.get(version) or self.trainer.version(run, version)
        if record.state in ("revoked", "failed"):
            raise VersionStateError(f"{run}@{version} is {record.state} on the trainer: {record.reason}")
        # The run's current version must be active everywhere: a generator that still lists it
        # `retired` has not yet taken the rollback back to it, and serves the revoked versions.
        accept = frozenset({"active"}) if version == versions.current else SERVING_STATES
        states: dict[str, str] = {}
        while True:
            for g in self.generators:
                if states.get(g.url) == "active":
                    continue
                states[g.url] = self._state_on(g, record, run, accept, max(0.1, deadline - self._clock()))
            if all(s == "active" for s in states.values()):
                return record
            if self._clock() >= deadline:
                detail = "; ".join(f"{url}: {s}" for url, s in states.items())
                raise WaitTimeoutError(f"{run}@{version} not active on every generator within {timeout_s} s: {detail}", states)
            self._sleep(min(poll_s, max(0.0, deadline - self._clock())))

    def _state_on(
        self, g: GeneratorClient, record: VersionRecord, run: str, accept: frozenset[str], timeout_s: float
    ) -> str:
        try:
            rows = g.adapters(timeout_s)
        except LoracastError as e:  # a generator restarting: keep waiting, report it if time runs out
            return f"unreachable: {e}"
        row = next((a for a in rows if a.run == run and a.version == record.version), None)
        if row is None:
            return "unknown"
        if row.state in accept:
            if row.sha256 != record.sha256:
                raise VersionMismatchError(
                    f"{g.url} holds {run}@{record.version} with sha256 {row.sha256}, the trainer's record says {record.sha256}",
                    (record.version, record.sha256 or ""),
                    (row.version, row.sha256),
                )
            return "active"
        return row.state if row.reason is None else f"{row.state}: {row.reason}"

    def sample(
        self,
        run: str,
        version: int,
        prompts: Sequence[str] | Sequence[Sequence[int]],
        *,
        expect: VersionRecord | None = None,
        **params: Any,
    ) -> list[Sample]:
        """Samples completions of ``prompts`` from ``run@version`` exactly, on the next generator (round robin).

        ``params`` are :meth:`GeneratorClient.complete`'s (``n``, ``max_tokens``, ``temperature``,
        ``logprobs``, ``seed``, ``extra``). Each answer is checked against ``expect`` (default: the
        trainer's record of the version): its ``model`` must be ``<run>@<version>`` and its
        ``x-loracast-adapter-version`` / ``-sha256`` headers the record's version and sha256, else
        :class:`~loracast.errors.VersionMismatchError`. A revoked version raises
        :class:`~loracast.errors.AdapterRevokedError` (410) from the generator.
        """
        record = expect if expect is not None else self.trainer.version(run, version)
        completion = next(self._next).complete(f"{run}@{version}", prompts, **params)
        verify(completion, run, record)
        return completion.samples


def verify(completion: Completion, run: str, record: VersionRecord) -> None:
    """Raises :class:`~loracast.errors.VersionMismatchError` unless ``completion`` came from ``run@record.version`` with ``record.sha256``."""
    want = f"{run}@{record.version}"
    if completion.model != want or completion.version != record.version or completion.sha256 != record.sha256:
        raise VersionMismatchError(
            f"asked for {want} (sha256 {record.sha256}); the generator answered model {completion.model}, "
            f"version {completion.version}, sha256 {completion.sha256}",
            (record.version, record.sha256 or ""),
            (completion.version, completion.sha256),
            completion.request,
        )
