"""Tests for ``etcd_twisted.testing.children``: log files, exit codes, stopping, the reaper."""

from __future__ import annotations

import os
import signal
import sys

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from etcd_twisted.testing.children import Child, kill_all


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


class BlockingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.log = os.path.join(self.mktemp() + ".log")

    def test_output_goes_to_the_log_and_exit_code_is_kept(self) -> None:
        """stdout and stderr are appended to the log file; wait returns the exit code."""
        child = Child(
            python("import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"), self.log
        )
        child.start()
        self.assertEqual(child.wait(30), 3)
        self.assertEqual(sorted(child.output().split()), ["err", "out"])
        self.assertFalse(child.running)

    def test_restart_appends_with_a_marker(self) -> None:
        """A second start appends to the same log after a ``=== start 2`` line."""
        child = Child(python("print('hello')"), self.log)
        child.start()
        child.wait(30)
        child.start()
        child.wait(30)
        self.assertEqual(child.output().split("\n=== start 2\n")[1].strip(), "hello")
        self.assertEqual(child.starts, 2)

    def test_stop_escalates_to_sigkill(self) -> None:
        """A child that ignores SIGTERM is killed once the grace period is over."""
        code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
        child = Child(python(code), self.log)
        child.start()
        while "up" not in child.output():
            child.wait(0.02)
        self.assertEqual(child.stop(grace=0.2), -signal.SIGKILL)

    def test_kill_all_kills_paused_children(self) -> None:
        """``kill_all`` (also run at interpreter exit) kills even a SIGSTOPped child."""
        child = Child(python("import time; time.sleep(60)"), self.log)
        child.start()
        child.signal(signal.SIGSTOP)
        kill_all()
        self.assertEqual(child.wait(10), -signal.SIGKILL)

    def test_start_twice_is_refused(self) -> None:
        """Starting a running child again raises instead of losing track of the first."""
        child = Child(python("import time; time.sleep(60)"), self.log)
        child.start()
        self.addCleanup(child.stop, 1.0)
        self.assertRaises(RuntimeError, child.start)


class TwistedTests(TestCase):
    async def test_ended_fires_in_the_reactor_thread(self) -> None:
        """``ended`` is a Deferred that fires with the exit code; ``stopped`` uses SIGTERM."""
        log = self.mktemp()
        child = Child(python("import sys; sys.exit(7)"), log)
        child.start()
        self.assertEqual(await child.ended(reactor), 7)
        child = Child(python("import time; time.sleep(60)"), log)
        child.start()
        self.assertEqual(await child.stopped(reactor, grace=5), -signal.SIGTERM)
        self.assertEqual(await child.ended(reactor), -signal.SIGTERM)
