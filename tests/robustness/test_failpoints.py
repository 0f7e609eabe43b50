"""Tests for ``etcd_twisted.failpoints``: parsing, firing rules, and the unarmed default."""

from __future__ import annotations

import os
import random
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted import failpoints
from etcd_twisted.failpoints import ENV, Arm, Failpoints, parse


class Exited(Exception):
    """Raised instead of exiting."""


def points(spec: str, seed: int = 0) -> tuple[Failpoints, list[int]]:
    fp = Failpoints(parse(spec), random.Random(seed))
    codes: list[int] = []

    def exit_(code: int) -> None:
        codes.append(code)
        raise Exited

    fp.exit = exit_  # type: ignore[assignment]
    return fp, codes


class ParseTests(SynchronousTestCase):
    def test_forms(self) -> None:
        """``name=P``, ``name@N`` and a bare name parse to probability, count, first hit."""
        arms = parse("before_wal_save=0.25, after_backend_commit@3,during_compaction")
        self.assertEqual(arms["before_wal_save"], Arm(probability=0.25))
        self.assertEqual(arms["after_backend_commit"], Arm(at=3))
        self.assertEqual(arms["during_compaction"], Arm(at=1))

    def test_empty(self) -> None:
        """An empty or blank value arms nothing."""
        self.assertEqual(parse(""), {})
        self.assertEqual(parse(" , "), {})

    def test_refused(self) -> None:
        """Unknown names, probabilities outside [0, 1] and counts below 1 are refused."""
        for spec in ("no_such_point", "before_wal_save=1.5", "before_wal_save@0", "x=y"):
            self.assertRaises(ValueError, parse, spec)


class HitTests(SynchronousTestCase):
    def test_count(self) -> None:
        """``name@3`` fires on the third hit of that name only."""
        fp, codes = points("after_wal_save@3")
        fp.hit("after_wal_save")
        fp.hit("before_wal_save")
        fp.hit("after_wal_save")
        self.assertRaises(Exited, fp.hit, "after_wal_save")
        self.assertEqual(codes, [1])

    def test_probability(self) -> None:
        """``name=0`` never fires; ``name=1`` fires at once; 0.5 fires eventually."""
        fp, codes = points("before_leader_send=0,before_follower_send=1")
        for _ in range(100):
            fp.hit("before_leader_send")
        self.assertRaises(Exited, fp.hit, "before_follower_send")
        fp, codes = points("during_compaction=0.5", seed=1)
        with self.assertRaises(Exited):
            for _ in range(64):
                fp.hit("during_compaction")

    def test_unarmed_module(self) -> None:
        """Without the variable the module's ``hit`` is a no-op and ``ENABLED`` is False."""
        if os.environ.get(ENV):
            self.skipTest(f"{ENV} is set in this environment")
        self.assertFalse(failpoints.ENABLED)
        self.assertIsNone(failpoints.hit("before_wal_save"))

    def test_process_exits(self) -> None:
        """An armed process prints the point's name and exits with status 1 at the hit."""
        code = "from etcd_twisted import failpoints; failpoints.hit('before_wal_save'); print('no')"
        env = {**os.environ, ENV: "before_wal_save"}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, timeout=60, check=False
        )
        self.assertEqual(done.returncode, 1)
        self.assertIn(b"failpoint before_wal_save: exiting", done.stderr)
        self.assertEqual(done.stdout, b"")
