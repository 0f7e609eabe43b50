"""Crash test: after SIGKILL the backend's consistent index agrees with the data it covers."""

from __future__ import annotations

import os
import random
import sys

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.backend import Backend, buckets
from tests.backend import crash_writer
from tests.wal.kill9 import RUNS, run_and_kill

SCRIPT = crash_writer.__file__


class KillNineTests(SynchronousTestCase):
    def check(self, path: str, committed: int) -> int:
        """Reopen the backend and check data against its consistent index; return the index."""
        be = Backend(path)
        try:
            ci, term = be.consistent_index()
            tx = be.batch_tx
            self.assertGreaterEqual(ci, committed, "a reported commit was lost")
            if ci:
                self.assertEqual(term, 1)
            for batch in range(max(1, ci - crash_writer.KEEP + 1), ci + 1):
                rows = tx.range(buckets.KEY, *crash_writer.batch_range(batch))
                self.assertTrue(rows, f"batch {batch} <= index {ci} missing")
                n = int(rows[0][1].split(b":")[1])
                self.assertEqual(
                    rows, [(crash_writer.key(batch, k), b"%d:%d" % (batch, n)) for k in range(n)]
                )
            gone = tx.range(buckets.KEY, b"b", crash_writer.batch_range(ci - crash_writer.KEEP)[1])
            self.assertEqual(gone, [], f"keys deleted at or before index {ci} are back")
            later = tx.range(buckets.KEY, crash_writer.batch_range(ci + 1)[0], b"c")
            self.assertEqual(later, [], f"data of batches after index {ci} is present")
        finally:
            be.close()
        self.assertFalse(os.path.exists(path + ".defrag"))
        return ci

    def test_kill_9_keeps_index_and_data_together(self) -> None:
        """Hundreds of SIGKILLs at random moments: no reported commit is lost, no batch is half there."""
        seed = int(os.environ.get("ETCD_TWISTED_KILL9_SEED", random.randrange(1 << 30)))
        rnd = random.Random(seed)
        base = self.mktemp()
        os.makedirs(base)
        path = os.path.join(base, "db")
        log = os.path.join(base, "children.log")
        committed = 0
        reported = 0
        for run in range(RUNS):
            lines = -1 if rnd.random() < 0.05 else rnd.randint(0, 10)
            printed = run_and_kill(
                [sys.executable, SCRIPT, path, str(rnd.randrange(1 << 30))], lines, log
            )
            reported += len(printed)
            committed = max([committed, *(int(x) for x in printed)])
            if os.path.exists(path):
                try:
                    self.check(path, committed)
                except AssertionError as e:
                    raise AssertionError(f"run {run} (seed {seed}): {e}") from e
        self.assertGreater(reported, RUNS, f"children reported too few commits (seed {seed})")
