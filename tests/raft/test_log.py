"""RaftLog: stable and unstable entries seen as one log, with commit and apply cursors."""

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import raft_pb2
from etcd_twisted.raft import NO_LIMIT, CompactedError, MemoryStorage, UnavailableError
from etcd_twisted.raft.log import RaftLog
from tests.raft.harness import entries


def pairs(ents) -> list[tuple[int, int]]:
    return [(e.index, e.term) for e in ents]


def log_with(stable=(), unstable=()) -> RaftLog:
    s = MemoryStorage()
    s.append(entries(*stable))
    log = RaftLog(s)
    if unstable:
        log.append(entries(*unstable))
    return log


class RaftLogTests(SynchronousTestCase):
    """Conflict detection, appends, commits, slices."""

    def test_find_conflict(self) -> None:
        """The first new or differing entry is the conflict; a matching prefix is none."""
        log = log_with([(1, 1), (2, 2), (3, 3)])
        self.assertEqual(log.find_conflict(entries((1, 1), (2, 2))), 0)
        self.assertEqual(log.find_conflict(entries((2, 2), (3, 3), (4, 4))), 4)
        self.assertEqual(log.find_conflict(entries((2, 1), (3, 4))), 2)

    def test_find_conflict_by_term(self) -> None:
        """The hint is the last index at or below the probe whose term is at most the term."""
        log = log_with([(1, 2), (2, 2), (3, 5), (4, 5), (5, 5)])
        self.assertEqual(log.find_conflict_by_term(5, 6), (5, 5))
        self.assertEqual(log.find_conflict_by_term(5, 4), (2, 2))
        self.assertEqual(log.find_conflict_by_term(5, 1), (0, 0))
        self.assertEqual(log.find_conflict_by_term(9, 4), (9, 0))

    def test_find_conflict_by_term_compacted(self) -> None:
        """The compaction point's term is known; below it the term is unknown (0)."""
        s = MemoryStorage()
        s.append(entries((1, 1), (2, 2), (3, 3)))
        s.compact(2)
        log = RaftLog(s)
        self.assertEqual(log.find_conflict_by_term(3, 2), (2, 2))
        self.assertEqual(log.find_conflict_by_term(3, 1), (1, 0))

    def test_maybe_append(self) -> None:
        """Append when the preceding entry matches; commit only what the leader sent."""
        log = log_with([(1, 1), (2, 2), (3, 3)])
        self.assertIsNone(log.maybe_append(3, 2, 3, entries((4, 4))))
        self.assertEqual(log.maybe_append(3, 3, 5, entries((4, 4))), 4)
        self.assertEqual(log.committed, 4)
        log = log_with([(1, 1), (2, 2), (3, 3)])
        self.assertEqual(log.maybe_append(1, 1, 1, entries((2, 4))), 2)
        self.assertEqual(pairs(log.all_entries()), [(1, 1), (2, 4)])

    def test_maybe_append_refuses_to_overwrite_committed(self) -> None:
        """A conflict at or below the commit index is a bug and raises."""
        log = log_with([(1, 1), (2, 2)])
        log.commit_to(2)
        self.assertRaises(AssertionError, log.maybe_append, 0, 0, 2, entries((1, 1), (2, 3)))

    def test_commit_and_apply(self) -> None:
        """Commit never goes back or past the end; applied stays within committed."""
        log = log_with([(1, 1), (2, 1)], [(3, 1)])
        log.commit_to(3)
        log.commit_to(1)
        self.assertEqual(log.committed, 3)
        self.assertRaises(AssertionError, log.commit_to, 4)
        self.assertEqual(pairs(log.next_ents()), [(1, 1), (2, 1), (3, 1)])
        log.applied_to(2)
        self.assertEqual(pairs(log.next_ents()), [(3, 1)])
        self.assertRaises(AssertionError, log.applied_to, 4)

    def test_maybe_commit_only_in_term(self) -> None:
        """maybe_commit commits only an entry of the given term."""
        log = log_with([(1, 1), (2, 2)])
        self.assertFalse(log.maybe_commit(2, 1))
        self.assertTrue(log.maybe_commit(2, 2))

    def test_slice_spans_stable_and_unstable(self) -> None:
        """A slice joins storage and unstable entries and honours the size limit."""
        log = log_with([(1, 1), (2, 1)], [(3, 1), (4, 1)])
        self.assertEqual(pairs(log.slice(2, 5, NO_LIMIT)), [(2, 1), (3, 1), (4, 1)])
        self.assertEqual(pairs(log.slice(2, 5, 0)), [(2, 1)])
        self.assertEqual(pairs(log.slice(3, 5, NO_LIMIT)), [(3, 1), (4, 1)])
        self.assertRaises(AssertionError, log.slice, 2, 6, NO_LIMIT)

    def test_slice_compacted(self) -> None:
        """Reading below the first index raises CompactedError."""
        s = MemoryStorage()
        s.append(entries((1, 1), (2, 1), (3, 1)))
        s.compact(2)
        log = RaftLog(s)
        self.assertRaises(CompactedError, log.slice, 2, 3, NO_LIMIT)
        self.assertEqual(log.term(2), 1)
        self.assertRaises(CompactedError, log.term, 1)
        self.assertRaises(UnavailableError, log.term, 4)

    def test_is_up_to_date(self) -> None:
        """A higher last term wins; with equal terms, the longer log."""
        log = log_with([(1, 1), (2, 2), (3, 3)])
        self.assertTrue(log.is_up_to_date(1, 4))
        self.assertFalse(log.is_up_to_date(5, 2))
        self.assertTrue(log.is_up_to_date(3, 3))
        self.assertFalse(log.is_up_to_date(2, 3))

    def test_stable_to_and_unstable_entries(self) -> None:
        """Persisted entries leave the unstable tail; a copy handed out stays intact."""
        log = log_with([(1, 1)], [(2, 1), (3, 1)])
        handed = log.unstable_entries()
        log.append(entries((4, 1)))
        self.assertEqual(len(handed), 2)
        log.stable_to(3, 1)
        self.assertEqual(pairs(log.unstable_entries()), [(4, 1)])

    def test_restore(self) -> None:
        """A snapshot resets the log: first index after it, commit at it."""
        log = log_with([(1, 1), (2, 1)])
        snap = raft_pb2.Snapshot()
        snap.metadata.index = 10
        snap.metadata.term = 3
        log.restore(snap)
        self.assertEqual((log.first_index(), log.last_index(), log.committed), (11, 10, 10))
        self.assertEqual(log.term(10), 3)
