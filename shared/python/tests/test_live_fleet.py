"""Waiting for the fleet, listing, rolling back and sampling, on a real trainer and generators."""

from __future__ import annotations

import dataclasses
import socket
import unittest

from loracast import (
    AdapterFiles,
    AdapterRevokedError,
    Fleet,
    GeneratorClient,
    NotFoundError,
    Published,
    VersionMismatchError,
    VersionStateError,
    WaitTimeoutError,
)

from . import support
from .support import live

WAIT_S = 90.0


def publish(run: str, seed: int) -> Published:
    return support.trainer().publish(run, AdapterFiles.from_tensors(support.lora_config(), support.lora_tensors(seed)))


def closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


@live
class WaitTest(unittest.TestCase):
    def test_waits_until_every_generator_serves_the_version(self) -> None:
        run = support.run_name("wait")
        published = publish(run, 1)
        fleet = support.fleet()
        record = fleet.wait_active(run, published.version, timeout_s=WAIT_S)
        self.assertEqual((record.version, record.sha256), (1, published.sha256))
        for g in fleet.generators:
            row = next(a for a in g.adapters() if a.run == run and a.version == 1)
            self.assertEqual((row.state, row.sha256), ("active", published.sha256), g.url)
        # Without a version: the run's current one. A superseded version still counts (retired).
        publish(run, 2)
        self.assertEqual(fleet.wait_active(run, timeout_s=WAIT_S).version, 2)
        self.assertEqual(fleet.wait_active(run, 1, timeout_s=WAIT_S).version, 1)

    def test_times_out_naming_each_generator_state(self) -> None:
        run = support.run_name("timeout")
        publish(run, 1)
        real = support.fleet().generators[0]
        support.fleet().wait_active(run, 1, timeout_s=WAIT_S)
        down = GeneratorClient(closed_port_url())
        with self.assertRaises(WaitTimeoutError) as caught:
            Fleet(support.trainer(), [real, down]).wait_active(run, 1, timeout_s=1.0)
        states = caught.exception.states
        self.assertEqual(states[real.url], "active")
        self.assertTrue(states[down.url].startswith("unreachable: connection failed"), states[down.url])
        self.assertIsInstance(caught.exception, TimeoutError)

    def test_a_version_never_published_or_revoked_fails_at_once(self) -> None:
        run = support.run_name("never")
        with self.assertRaises(VersionStateError):
            support.fleet().wait_active(run, timeout_s=WAIT_S)
        publish(run, 1)
        with self.assertRaises(NotFoundError) as caught:
            support.fleet().wait_active(run, 7, timeout_s=WAIT_S)
        self.assertIn(f"{run}@7 is not published", caught.exception.message)


@live
class RollbackTest(unittest.TestCase):
    def test_list_roll_back_and_the_revoked_version_is_refused(self) -> None:
        run = support.run_name("rollback")
        shas = [publish(run, seed).sha256 for seed in (1, 2, 3)]
        trainer, fleet = support.trainer(), support.fleet()
        fleet.wait_active(run, 3, timeout_s=WAIT_S)
        listed = trainer.versions(run)
        self.assertEqual(listed.current, 3)
        self.assertEqual([(v.version, v.state) for v in listed.versions], [(1, "retired"), (2, "retired"), (3, "active")])
        self.assertEqual([v.sha256 for v in listed.versions], shas)

        rolled = trainer.rollback(run, 1)
        self.assertEqual((rolled.run, rolled.current, rolled.revoked), (run, 1, [2, 3]))
        listed = trainer.versions(run)
        self.assertEqual([(v.version, v.state) for v in listed.versions], [(1, "active"), (2, "revoked"), (3, "revoked")])
        self.assertIn("revoked by rollback to v1", listed.versions[2].reason or "")
        self.assertEqual(fleet.wait_active(run, timeout_s=WAIT_S).version, 1)
        with self.assertRaises(VersionStateError):
            fleet.wait_active(run, 3, timeout_s=WAIT_S)

        for g in fleet.generators:  # every generator refuses the revoked version once it knows
            with self.subTest(g.url), self.assertRaises(AdapterRevokedError) as caught:
                # The trainer's record is passed: it says revoked, and the generator must say so too.
                one = Fleet(trainer, [g])
                one.sample(run, 3, ["q5:"], expect=listed.versions[2], max_tokens=2)
            self.assertEqual((caught.exception.status, caught.exception.code), (410, "adapter_revoked"))
            self.assertIn(f"{run}@3 was revoked by rollback to v1", caught.exception.message)

    def test_rolling_back_to_a_version_never_published(self) -> None:
        run = support.run_name("rollback-none")
        publish(run, 1)
        with self.assertRaises(NotFoundError) as caught:
            support.trainer().rollback(run, 5)
        self.assertEqual(caught.exception.status, 404)


@live
class SampleTest(unittest.TestCase):
    def test_samples_come_from_the_exact_version_with_token_ids_and_logprobs(self) -> None:
        run = support.run_name("sample")
        fleet = support.fleet()
        for seed in (1, 2):
            publish(run, seed)
        fleet.wait_active(run, 2, timeout_s=WAIT_S)
        records = {v.version: v for v in fleet.trainer.versions(run).versions}
        for version in (1, 2):  # the older version too, by exact name, on every generator in turn
            for _ in fleet.generators:
                samples = fleet.sample(run, version, ["q5:", "hello"], n=2, max_tokens=6, temperature=1.0, seed=7)
                self.assertEqual([s.prompt_index for s in samples], [0, 0, 1, 1])
                for s in samples:
                    self.assertEqual((s.model, s.version, s.sha256), (f"{run}@{version}", version, records[version].sha256))
                    self.assertGreater(len(s.token_ids), 0)
                    self.assertEqual(len(s.logprobs), len(s.token_ids))
                    self.assertTrue(all(lp <= 0.0 for lp in s.logprobs), s.logprobs)
                    self.assertGreater(len(s.prompt_token_ids), 0)
                    self.assertIn(s.finish_reason, ("length", "stop"))

    def test_a_sample_from_another_version_than_the_record_is_detected(self) -> None:
        run = support.run_name("mismatch")
        v1, v2 = publish(run, 1), publish(run, 2)
        fleet = support.fleet()
        fleet.wait_active(run, 2, timeout_s=WAIT_S)
        # The generator serves v2, but the record held is v1's: the check must not pass it.
        stale = fleet.trainer.version(run, 1)
        with self.assertRaises(VersionMismatchError) as caught:
            fleet.sample(run, 2, ["q5:"], expect=stale, max_tokens=2)
        e = caught.exception
        self.assertEqual(e.expected, (1, v1.sha256))
        self.assertEqual(e.got, (2, v2.sha256))
        self.assertIsNotNone(e.request)
        # A record with the right version but another sha256 (another store's v2) fails the same way.
        forged = dataclasses.replace(fleet.trainer.version(run, 2), sha256="0" * 64)
        with self.assertRaises(VersionMismatchError) as caught:
            fleet.sample(run, 2, ["q5:"], expect=forged, max_tokens=2)
        self.assertEqual(caught.exception.got, (2, v2.sha256))

    def test_a_version_never_published_is_not_found(self) -> None:
        run = support.run_name("unknown")
        publish(run, 1)
        fleet = support.fleet()
        with self.assertRaises(NotFoundError) as caught:  # the trainer has no record of it
            fleet.sample(run, 9, ["q5:"], max_tokens=2)
        self.assertIn(f"{run}@9 is not published", caught.exception.message)
        with self.assertRaises(NotFoundError) as caught:  # nor has the store, says the generator
            fleet.generators[0].complete(f"{run}@9", ["q5:"], max_tokens=2)
        self.assertEqual(caught.exception.status, 404)

if __name__ == "__main__":
    unittest.main()
