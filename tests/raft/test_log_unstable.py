"""Unstable: the not-yet-persisted tail of the log."""

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import raft_pb2
from etcd_twisted.raft.log_unstable import Unstable
from tests.raft.harness import entries


def snap(index: int, term: int) -> raft_pb2.Snapshot:
    s = raft_pb2.Snapshot()
    s.metadata.index = index
    s.metadata.term = term
    return s


def unstable(offset: int, pairs=(), snapshot=None) -> Unstable:
    u = Unstable(offset)
    u.entries = entries(*pairs)
    u.snapshot = snapshot
    return u


class UnstableTests(SynchronousTestCase):
    """Index bookkeeping of ``Unstable``."""

    def test_maybe_first_index(self) -> None:
        """Only a pending snapshot determines the first index."""
        self.assertIsNone(unstable(5, [(5, 1)]).maybe_first_index())
        self.assertEqual(unstable(5, [(5, 1)], snap(4, 1)).maybe_first_index(), 5)

    def test_maybe_last_index(self) -> None:
        """The last entry, else the snapshot, else unknown."""
        self.assertEqual(unstable(5, [(5, 1)]).maybe_last_index(), 5)
        self.assertEqual(unstable(5, [], snap(4, 1)).maybe_last_index(), 4)
        self.assertIsNone(unstable(0).maybe_last_index())

    def test_maybe_term(self) -> None:
        """Terms of held entries and of the snapshot point; None elsewhere."""
        u = unstable(5, [(5, 1)], snap(4, 1))
        self.assertEqual((u.maybe_term(5), u.maybe_term(4)), (1, 1))
        self.assertIsNone(u.maybe_term(6))
        self.assertIsNone(u.maybe_term(3))

    def test_stable_to(self) -> None:
        """Entries up to a persisted (index, term) are dropped; a stale term is ignored."""
        u = unstable(5, [(5, 1), (6, 1)])
        u.stable_to(5, 1)
        self.assertEqual((u.offset, len(u.entries)), (6, 1))
        u.stable_to(6, 2)
        self.assertEqual((u.offset, len(u.entries)), (6, 1))

    def test_stable_to_does_not_change_a_returned_list(self) -> None:
        """stable_to replaces the list, so a copy handed out earlier keeps its entries."""
        u = unstable(5, [(5, 1), (6, 1)])
        held = u.entries
        u.stable_to(6, 1)
        self.assertEqual(len(held), 2)

    def test_truncate_and_append(self) -> None:
        """Appending right after, replacing from before the offset, or truncating inside."""
        cases = [
            (5, [(5, 1)], [(6, 1), (7, 1)], 5, [(5, 1), (6, 1), (7, 1)]),
            (5, [(5, 1)], [(5, 2), (6, 2)], 5, [(5, 2), (6, 2)]),
            (5, [(5, 1)], [(4, 2), (5, 2)], 4, [(4, 2), (5, 2)]),
            (5, [(5, 1), (6, 1), (7, 1)], [(6, 2)], 5, [(5, 1), (6, 2)]),
        ]
        for offset, held, new, want_offset, want in cases:
            u = unstable(offset, held)
            u.truncate_and_append(entries(*new))
            self.assertEqual(u.offset, want_offset)
            self.assertEqual([(e.index, e.term) for e in u.entries], want)

    def test_restore(self) -> None:
        """A snapshot replaces every held entry."""
        u = unstable(5, [(5, 1)])
        u.restore(snap(6, 2))
        self.assertEqual((u.offset, u.entries, u.snapshot.metadata.index), (7, [], 6))
