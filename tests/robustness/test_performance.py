"""How long checking a realistic history takes."""

import random
import sys
import time

from twisted.trial.unittest import SynchronousTestCase

from robustness.linearizability import check
from robustness.simulate import Settings, simulate


class PerformanceTests(SynchronousTestCase):
    def test_two_thousand_operations(self) -> None:
        """2,000 operations from 8 clients on 10 keys (5% lost, 30% serializable gets) check in seconds."""
        history = simulate(
            random.Random(2000),
            Settings(
                clients=8, operations=2000, keys=10, sequential=100, lost=0.05, serializable=0.3
            ),
        )
        started = time.monotonic()
        result = check(history, timeout=60)
        elapsed = time.monotonic() - started
        sys.stderr.write(
            f"\n2,000 ops / 8 clients / 10 keys: {elapsed:.2f} s, {result.steps} steps\n"
        )
        self.assertEqual(result.verdict, "ok")
        self.assertLess(elapsed, 20)
