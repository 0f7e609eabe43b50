"""Tests for etcd_twisted.server.read_index: applied-index waits and batched ReadIndex rounds."""

from itertools import count

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.raft import ReadState
from etcd_twisted.server.read_index import RETRY_INTERVAL, AppliedIndex, LinearizableReads


class AppliedIndexTests(SynchronousTestCase):
    def test_waiters_fire_in_index_order(self) -> None:
        """Waiters fire once the applied index reaches them, and not before."""
        applied = AppliedIndex(5)
        fired: list[int] = []
        self.assertTrue(applied.wait(5).called)
        for index in (9, 7, 12):
            applied.wait(index).addCallback(lambda _, i=index: fired.append(i))
        applied.advance(8)
        self.assertEqual(fired, [7])
        applied.advance(12)
        self.assertEqual(fired, [7, 9, 12])


class LinearizableReadsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.applied = AppliedIndex(0)
        self.requests: list[bytes] = []
        self.reads = LinearizableReads(
            self.requests.append, self.applied, self.clock, count(1).__next__
        )

    def test_one_round_serves_every_waiting_read(self) -> None:
        """Reads that arrive while a round is in flight share the next single round."""
        first = self.reads.wait()
        self.assertEqual(len(self.requests), 1)
        later = [self.reads.wait() for _ in range(50)]
        self.assertEqual(len(self.requests), 1)
        self.reads.on_read_states([ReadState(index=3, request_ctx=self.requests[0])])
        self.assertFalse(first.called)  # applied index has not reached 3
        self.applied.advance(3)
        self.assertTrue(first.called)
        self.assertFalse(any(d.called for d in later))
        self.assertEqual(len(self.requests), 2)
        self.reads.on_read_states([ReadState(index=4, request_ctx=self.requests[1])])
        self.applied.advance(4)
        self.assertTrue(all(d.called for d in later))
        self.assertEqual(self.reads.rounds, 2)

    def test_unanswered_round_asks_again(self) -> None:
        """A round raft does not answer is re-asked with a new context; stale answers are ignored."""
        d = self.reads.wait()
        self.clock.advance(RETRY_INTERVAL)
        self.assertEqual(len(self.requests), 2)
        self.assertNotEqual(self.requests[0], self.requests[1])
        self.reads.on_read_states([ReadState(index=1, request_ctx=self.requests[0])])
        self.applied.advance(1)
        self.assertFalse(d.called)
        self.reads.on_read_states([ReadState(index=1, request_ctx=self.requests[1])])
        self.assertTrue(d.called)

    def test_refused_request_is_retried(self) -> None:
        """If raft refuses the request (no leader), the retry timer asks again."""
        calls = []

        def refuse(ctx: bytes) -> None:
            calls.append(ctx)
            if len(calls) == 1:
                raise RuntimeError("no leader")

        reads = LinearizableReads(refuse, self.applied, self.clock, count(1).__next__)
        reads.wait()
        self.clock.advance(RETRY_INTERVAL)
        self.assertEqual(len(calls), 2)
        reads.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
