"""Inflights: the window of unacknowledged appends to one follower."""

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.raft.inflights import Inflights


class InflightsTests(SynchronousTestCase):
    """Filling and freeing the window."""

    def test_full(self) -> None:
        """The window is full at its size and refuses more."""
        w = Inflights(2)
        w.add(1)
        self.assertFalse(w.full())
        w.add(2)
        self.assertTrue(w.full())
        self.assertRaises(AssertionError, w.add, 3)

    def test_free_le(self) -> None:
        """An acknowledgement frees every message up to its index."""
        w = Inflights(10)
        for i in (2, 4, 6, 8):
            w.add(i)
        w.free_le(5)
        self.assertEqual(len(w), 2)
        w.free_le(100)
        self.assertEqual(len(w), 0)

    def test_free_first_one_and_reset(self) -> None:
        """free_first_one frees the oldest; reset frees all."""
        w = Inflights(3)
        for i in (1, 2, 3):
            w.add(i)
        w.free_first_one()
        self.assertEqual(len(w), 2)
        copy = w.copy()
        w.reset()
        self.assertEqual((len(w), len(copy)), (0, 2))
