"""The run report: counts, anomalies, excerpt, JSON."""

import json
import os
import random
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from robustness.history import History, Put, Response
from robustness.report import run_checks
from robustness.run import server_errors
from robustness.simulate import Settings, simulate
from tests.robustness.support import get, got, kv, op


class ReportTests(SynchronousTestCase):
    def test_clean_run(self) -> None:
        """A correct run reports ok with its seed, size, operations and faults by kind."""
        history = simulate(random.Random(3), Settings(operations=150, lost=0.05, watchers=2))
        report = run_checks(history, seed=3, cluster_size=3, faults=["kill", "partition", "kill"])
        self.assertTrue(report.ok, str(report))
        self.assertEqual((report.operations, report.faults), (150, {"kill": 2, "partition": 1}))
        self.assertIn("faults: kill×2, partition×1", str(report))

    def test_anomaly_and_json(self) -> None:
        """A stale read is reported with an excerpt, and the report saves as JSON."""
        history = History(
            [
                op(1, 0, 1, Put("a", "1"), Response(2)),
                op(1, 2, 3, Put("a", "2"), Response(3)),
                op(2, 4, 5, get("a"), got(2, kv("a", "1", 2, 2))),
            ]
        )
        report = run_checks(history, seed=1, cluster_size=1)
        self.assertFalse(report.ok)
        self.assertEqual([a.kind for a in report.anomalies], ["linearizability"])
        self.assertIn("could not be placed", str(report))
        fd, path = tempfile.mkstemp(suffix=".json")
        os.close(fd)
        self.addCleanup(os.remove, path)
        report.save(path)
        with open(path) as f:
            saved = json.load(f)
        self.assertEqual((saved["verdict"], saved["seed"]), ("illegal", 1))
        self.assertEqual(len(saved["excerpt"]), 4)


class ServerErrorTests(SynchronousTestCase):
    def test_traceback_in_a_member_log(self) -> None:
        """A traceback in any member's log is reported with its exception line."""
        out = self.mktemp()
        os.makedirs(out)
        with open(os.path.join(out, "m2.log"), "w") as f:
            f.write(
                "2026 [twisted.internet.defer#critical] Unhandled error in Deferred:\n"
                "2026 [twisted.internet.defer#critical] \n"
                "\tTraceback (most recent call last):\n"
                '\t  File "x.py", line 1, in f\n'
                "\t    raise SnapOutOfDateError(index)\n"
                "\tetcd_twisted.raft.errors.SnapOutOfDateError: 3303\n"
            )
        with open(os.path.join(out, "m1.log"), "w") as f:
            f.write("failpoint after_wal_save: exiting\n")
        self.assertEqual(
            [(a.kind, a.detail) for a in server_errors(out)],
            [("server error", "m2: etcd_twisted.raft.errors.SnapOutOfDateError: 3303")],
        )
