"""Tests for etcd_twisted.server.deadlines: one sweep instead of a timer per request."""

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.server.deadlines import SWEEP_INTERVAL, Deadlines
from etcd_twisted.server.errors import TimeoutError


class DeadlinesTests(SynchronousTestCase):
    def test_late_requests_fail_and_others_do_not(self) -> None:
        """Unfired Deferreds fail within one sweep after their timeout; fired ones are left."""
        clock = Clock()
        deadlines = Deadlines(clock, 5.0, TimeoutError)
        deadlines.startService()
        done, late, later = Deferred(), Deferred(), Deferred()
        deadlines.add(done)
        deadlines.add(late)
        clock.advance(1)
        deadlines.add(later)
        done.callback("ok")
        clock.pump([SWEEP_INTERVAL] * 16)  # t = 5.0
        self.failureResultOf(late, TimeoutError)
        self.assertNoResult(later)
        clock.pump([SWEEP_INTERVAL] * 4)  # t = 6.0
        self.failureResultOf(later, TimeoutError)
        self.assertEqual(self.successResultOf(done), "ok")
        deadlines.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])
