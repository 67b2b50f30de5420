"""Fleet.wait_active's rules, with a stand-in trainer and generators (no processes)."""

from __future__ import annotations

import unittest
from typing import Any

from loracast import AdapterState, Fleet, RunVersions, VersionRecord, WaitTimeoutError


def record(version: int, state: str) -> VersionRecord:
    return VersionRecord(version, state, f"sha-{version}", "2026-11-30T00:00:00Z", f"k{version}", None)


class StandInTrainer:
    """The trainer after a rollback to v1: v1 current, v2 revoked."""

    def versions(self, run: str, timeout_s: float | None = None) -> RunVersions:
        return RunVersions(run, 1, [record(1, "active"), record(2, "revoked")])

    def version(self, run: str, version: int) -> VersionRecord:
        found = self.versions(run).get(version)
        assert found is not None
        return found


class StandInGenerator:
    """Answers ``/v1/adapters`` with the next of ``answers`` (the last one repeats)."""

    def __init__(self, url: str, answers: list[str]) -> None:
        self.url = url
        self.answers = answers
        self.polls = 0

    def adapters(self, timeout_s: float | None = None) -> list[AdapterState]:
        state = self.answers[min(self.polls, len(self.answers) - 1)]
        self.polls += 1
        return [AdapterState("r", 1, state, "sha-1", None)]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def fleet(*generators: StandInGenerator) -> tuple[Fleet, Clock]:
    clock = Clock()
    trainer: Any = StandInTrainer()
    return Fleet(trainer, list(generators), clock=clock, sleep=clock.sleep), clock  # type: ignore[arg-type]


class WaitActiveTest(unittest.TestCase):
    def test_current_version_retired_on_a_generator_is_a_rollback_not_yet_taken(self) -> None:
        lagging = StandInGenerator("http://g1", ["retired", "retired", "active"])
        f, _ = fleet(StandInGenerator("http://g0", ["active"]), lagging)
        self.assertEqual(f.wait_active("r", timeout_s=5, poll_s=0.1).version, 1)
        self.assertEqual(lagging.polls, 3)  # waited through both `retired` answers

    def test_current_version_never_active_times_out_naming_the_state(self) -> None:
        f, _ = fleet(StandInGenerator("http://g0", ["retired"]))
        with self.assertRaises(WaitTimeoutError) as e:
            f.wait_active("r", 1, timeout_s=1, poll_s=0.1)
        self.assertEqual(e.exception.states, {"http://g0": "retired"})

    def test_an_older_version_retired_everywhere_is_served(self) -> None:
        class Newer(StandInTrainer):
            def versions(self, run: str, timeout_s: float | None = None) -> RunVersions:
                return RunVersions(run, 2, [record(1, "retired"), record(2, "active")])

        clock = Clock()
        g = StandInGenerator("http://g0", ["retired"])
        f = Fleet(Newer(), [g], clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
        self.assertEqual(f.wait_active("r", 1, timeout_s=1).version, 1)
        self.assertEqual(g.polls, 1)


if __name__ == "__main__":
    unittest.main()
