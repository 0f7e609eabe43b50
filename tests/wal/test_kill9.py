"""Crash test: a WAL writer killed with SIGKILL at random moments loses nothing it reported durable."""

from __future__ import annotations

import os
import random
import sys

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.wal import WAL
from tests.wal import crash_writer
from tests.wal.kill9 import RUNS, run_and_kill

SCRIPT = crash_writer.__file__
RUNS_PER_DIR = 30


class KillNineTests(SynchronousTestCase):
    def check(self, path: str, durable: set[int]) -> int:
        """Reopen the WAL (repairing a torn tail) and check it; return the last batch id."""
        wal = WAL.open(path, segment_bytes=crash_writer.SEGMENT_BYTES)
        try:
            _, state, ents = wal.read_all()
        finally:
            wal.close()
        self.assertEqual([e.index for e in ents], list(range(1, len(ents) + 1)))
        self.assertLessEqual(state.commit, len(ents))
        seen: dict[int, tuple[int, int]] = {}  # batch -> (entries seen, entries it has)
        for e in ents:
            batch, k, n = crash_writer.parse(e.data)
            self.assertEqual(e.data, crash_writer.payload(batch, k, n))
            count, _ = seen.get(batch, (0, n))
            self.assertEqual(k, count, f"entries of batch {batch} out of order")
            seen[batch] = (count + 1, n)
        order = list(seen)
        self.assertEqual(order, sorted(order), "batches in order")
        for batch in durable:
            self.assertIn(batch, seen, f"durable batch {batch} lost")
            count, n = seen[batch]
            self.assertEqual(count, n, f"durable batch {batch} incomplete")
        return max(order, default=0)

    def test_kill_9_loses_no_durable_batch(self) -> None:
        """Hundreds of SIGKILLs at random moments: every batch reported durable is there, whole, in a consistent log."""
        seed = int(os.environ.get("ETCD_TWISTED_KILL9_SEED", random.randrange(1 << 30)))
        rnd = random.Random(seed)
        base = self.mktemp()
        os.makedirs(base)
        log = os.path.join(base, "children.log")
        durable: set[int] = set()
        path = ""
        reported = 0
        for run in range(RUNS):
            if run % RUNS_PER_DIR == 0:
                path = os.path.join(base, f"wal{run}")
                durable = set()
            mode = "threaded" if run % 4 == 3 else "direct"
            lines = -1 if rnd.random() < 0.05 else rnd.randint(0, 12)
            argv = [sys.executable, SCRIPT, path, mode, str(rnd.randrange(1 << 30))]
            printed = run_and_kill(argv, lines, log)
            durable.update(int(x) for x in printed)
            reported += len(printed)
            if os.path.isdir(path):
                try:
                    self.check(path, durable)
                except AssertionError as e:
                    raise AssertionError(f"run {run} (seed {seed}): {e}") from e
        self.assertGreater(reported, RUNS, f"children reported too few batches (seed {seed})")
