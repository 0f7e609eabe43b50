"""Progress: the leader's per-follower replication state machine."""

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.raft import Progress, ProgressState


class ProgressTests(SynchronousTestCase):
    """State transitions and flow control."""

    def test_become_probe(self) -> None:
        """Probing restarts after match, or after a snapshot that was sent."""
        pr = Progress(next=5, max_inflight=4, match=1)
        pr.become_replicate()
        pr.become_probe()
        self.assertEqual((pr.state, pr.next), (ProgressState.PROBE, 2))
        pr.become_snapshot(10)
        pr.become_probe()
        self.assertEqual(pr.next, 11)

    def test_become_replicate(self) -> None:
        """Replication continues right after match."""
        pr = Progress(next=5, max_inflight=4, match=1)
        pr.become_replicate()
        self.assertEqual((pr.state, pr.next), (ProgressState.REPLICATE, 2))

    def test_maybe_update(self) -> None:
        """An acknowledgement raises match (and next) but never lowers them."""
        pr = Progress(next=5, max_inflight=4, match=3)
        self.assertFalse(pr.maybe_update(2))
        self.assertEqual((pr.match, pr.next), (3, 5))
        self.assertTrue(pr.maybe_update(6))
        self.assertEqual((pr.match, pr.next), (6, 7))

    def test_maybe_decr_to_replicate(self) -> None:
        """In replicate state a rejection above match resets next to match + 1."""
        pr = Progress(next=10, max_inflight=4, match=5)
        pr.state = ProgressState.REPLICATE
        self.assertFalse(pr.maybe_decr_to(5, 5))
        self.assertTrue(pr.maybe_decr_to(9, 9))
        self.assertEqual(pr.next, 6)

    def test_maybe_decr_to_probe(self) -> None:
        """In probe state only the rejection of the last probe counts; next follows the hint."""
        pr = Progress(next=10, max_inflight=4, match=0)
        self.assertFalse(pr.maybe_decr_to(5, 5))
        self.assertTrue(pr.maybe_decr_to(9, 3))
        self.assertEqual(pr.next, 4)
        pr = Progress(next=10, max_inflight=4, match=6)
        self.assertTrue(pr.maybe_decr_to(9, 2))
        self.assertEqual(pr.next, 7)

    def test_is_paused(self) -> None:
        """Probe pauses after a send, replicate when the window is full, snapshot always."""
        pr = Progress(next=1, max_inflight=1)
        self.assertFalse(pr.is_paused())
        pr.probe_sent = True
        self.assertTrue(pr.is_paused())
        pr.become_replicate()
        self.assertFalse(pr.is_paused())
        pr.inflights.add(1)
        self.assertTrue(pr.is_paused())
        pr.become_snapshot(5)
        self.assertTrue(pr.is_paused())
