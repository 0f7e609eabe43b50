"""MemoryStorage: reads, appends, snapshots and compaction."""

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import raft_pb2
from etcd_twisted.raft import (
    NO_LIMIT,
    CompactedError,
    MemoryStorage,
    SnapOutOfDateError,
    UnavailableError,
)
from tests.raft.harness import entries


def storage_3_5() -> MemoryStorage:
    """Entries 4 and 5 after a snapshot point at 3 (all term 3..5)."""
    s = MemoryStorage()
    snap = raft_pb2.Snapshot()
    snap.metadata.index = 3
    snap.metadata.term = 3
    s.apply_snapshot(snap)
    s.append(entries((4, 4), (5, 5)))
    return s


def pairs(ents: list[raft_pb2.Entry]) -> list[tuple[int, int]]:
    return [(e.index, e.term) for e in ents]


class MemoryStorageTests(SynchronousTestCase):
    """The ``Storage`` contract as ``MemoryStorage`` implements it."""

    def test_term(self) -> None:
        """term() reads the snapshot point and entries; older is compacted, newer unavailable."""
        s = storage_3_5()
        self.assertRaises(CompactedError, s.term, 2)
        self.assertEqual([s.term(i) for i in (3, 4, 5)], [3, 4, 5])
        self.assertRaises(UnavailableError, s.term, 6)

    def test_entries(self) -> None:
        """entries() returns [lo, hi), compacted below first_index, and at least one entry."""
        s = storage_3_5()
        s.append(entries((6, 6)))
        self.assertRaises(CompactedError, s.entries, 3, 5, NO_LIMIT)
        self.assertEqual(pairs(s.entries(4, 7, NO_LIMIT)), [(4, 4), (5, 5), (6, 6)])
        one = s.entries(4, 7, 0)
        self.assertEqual(pairs(one), [(4, 4)])
        size = sum(e.ByteSize() for e in s.entries(4, 6, NO_LIMIT))
        self.assertEqual(pairs(s.entries(4, 7, size)), [(4, 4), (5, 5)])

    def test_first_and_last_index(self) -> None:
        """first_index is one past the snapshot point; last_index the last entry."""
        s = storage_3_5()
        self.assertEqual((s.first_index(), s.last_index()), (4, 5))

    def test_compact(self) -> None:
        """compact() drops entries up to an index and keeps its term as the new point."""
        s = storage_3_5()
        self.assertRaises(CompactedError, s.compact, 3)
        s.compact(4)
        self.assertEqual((s.first_index(), s.last_index(), s.term(4)), (5, 5, 4))
        self.assertRaises(ValueError, s.compact, 6)

    def test_create_snapshot(self) -> None:
        """create_snapshot() records index, term, configuration and data; older ones fail."""
        s = storage_3_5()
        cs = raft_pb2.ConfState(voters=[1, 2, 3])
        snap = s.create_snapshot(4, cs, b"data")
        self.assertEqual((snap.metadata.index, snap.metadata.term, snap.data), (4, 4, b"data"))
        self.assertEqual(list(s.snapshot().metadata.conf_state.voters), [1, 2, 3])
        self.assertRaises(SnapOutOfDateError, s.create_snapshot, 3, cs, b"")

    def test_apply_snapshot(self) -> None:
        """apply_snapshot() replaces the log; an older snapshot is refused."""
        s = storage_3_5()
        snap = raft_pb2.Snapshot()
        snap.metadata.index = 10
        snap.metadata.term = 7
        s.apply_snapshot(snap)
        self.assertEqual((s.first_index(), s.last_index(), s.term(10)), (11, 10, 7))
        self.assertRaises(SnapOutOfDateError, s.apply_snapshot, snap)

    def test_append(self) -> None:
        """append() truncates a conflicting suffix, skips compacted entries, refuses gaps."""
        cases = [
            ([(4, 4), (5, 5)], [(4, 4), (5, 5)]),
            ([(4, 4), (5, 6)], [(4, 4), (5, 6)]),
            ([(4, 4), (5, 5), (6, 6)], [(4, 4), (5, 5), (6, 6)]),
            ([(2, 3), (3, 3), (4, 5)], [(4, 5)]),
            ([(4, 5)], [(4, 5)]),
            ([(6, 5)], [(4, 4), (5, 5), (6, 5)]),
        ]
        for new, want in cases:
            s = storage_3_5()
            s.append(entries(*new))
            self.assertEqual(pairs(s.entries(4, s.last_index() + 1, NO_LIMIT)), want, new)
        self.assertRaises(ValueError, storage_3_5().append, entries((7, 5)))

    def test_initial_state(self) -> None:
        """initial_state() returns the saved hard state and the snapshot's configuration."""
        s = MemoryStorage()
        s.set_hard_state(raft_pb2.HardState(term=2, vote=1, commit=0))
        hs, cs = s.initial_state()
        self.assertEqual((hs.term, hs.vote, list(cs.voters)), (2, 1, []))
