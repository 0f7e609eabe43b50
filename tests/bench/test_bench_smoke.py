"""The benchmark harness (``bin/bench``) still runs: one tiny round against our server only.

The benchmarks themselves are not part of the suite; this only catches a broken harness.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from bench import h2, profile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

H2LOAD_OUTPUT = """\
finished in 2.00s, 4438.00 req/s, 270.06KB/s
requests: 8876 total, 8976 started, 8876 done, 8870 succeeded, 6 failed, 0 errored, 0 timeout
status codes: 8876 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 1.32MB (1382692) total, 43.46KB (44500) headers (space savings 94.72%), 698.99KB (715762) data
                     min         max         mean         sd        +/- sd
time for request:     7.40ms    120.19ms     22.40ms     13.60ms    89.30%
"""


class ParseTests(SynchronousTestCase):
    def test_h2load_summary(self) -> None:
        """h2load's summary gives succeeded calls per second, failures and DATA bytes."""
        r = h2.parse(H2LOAD_OUTPUT)
        self.assertEqual((r.succeeded, r.failed, r.errored), (8870, 6, 0))
        self.assertEqual(r.data_bytes, 715762)
        self.assertAlmostEqual(r.rps, 4435.0)
        self.assertAlmostEqual(r.mean_ms, 22.40)

    def test_collapsed_stacks(self) -> None:
        """py-spy's raw stacks become own-time and inclusive-time shares per function."""
        text = (
            "thread (0x1): MainThread;run (a.py:1);put (etcd_twisted/b.py:5) 3\n"
            "thread (0x1): MainThread;run (a.py:1);put (etcd_twisted/b.py:9) 1\n"
            "thread (0x2): writer;fsync (c.py:2) 4\n"
        )
        top = profile.top_from_collapsed(text)
        self.assertIn("8 samples", top)
        self.assertIn(" 50.0%  put (etcd_twisted/b.py)", top)
        self.assertIn(" 50.0%  thread: writer", top)
        self.assertNotIn("run (a.py)", top.split("inclusive")[1])


class SmokeTests(SynchronousTestCase):
    def test_one_tiny_round_against_ours(self) -> None:
        """bin/bench's runner measures start-up, latency and txn rows of ours and writes JSON."""
        results = tempfile.mkdtemp(prefix="bench-smoke-")
        self.addCleanup(shutil.rmtree, results, True)
        rows = "startup,latency_put,txn" + (",put" if shutil.which("h2load") else "")
        argv = [sys.executable, "-m", "bench.run", "--servers", "ours", "--rows", rows,
                "--rounds", "1", "--duration", "1", "--warmup", "0", "--procs", "1",
                "--clients", "4", "--results-dir", results]  # fmt: skip
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
        self.assertEqual(done.returncode, 0, done.stdout[-3000:] + done.stderr[-3000:])
        (run_dir,) = os.listdir(results)
        with open(os.path.join(results, run_dir, "results.json")) as f:
            doc = json.load(f)
        for row in rows.replace("latency_put", "put_p50,put_p99").split(","):
            (sample,) = doc["samples"][row]["ours"]
            self.assertGreater(sample["value"], 0, row)
        self.assertIn("| workload", done.stdout)
