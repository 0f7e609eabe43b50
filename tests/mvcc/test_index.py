"""The tree index: point reads, ranges, watch catch-up, compaction and restore."""

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.mvcc.errors import RevisionNotFoundError
from etcd_twisted.mvcc.index import TreeIndex
from etcd_twisted.mvcc.revision import Revision as R

KEYS = [b"foo", b"foo1", b"foo2"]


def three_keys() -> TreeIndex:
    """foo@1, foo1@2, foo2@3."""
    ti = TreeIndex()
    for main, key in enumerate(KEYS, 1):
        ti.put(key, R(main))
    return ti


def shape(ti: TreeIndex, keys: list[bytes]) -> dict[bytes, object]:
    """What a key index holds, with created revisions reduced to main (restore keeps only main)."""
    out: dict[bytes, object] = {}
    for key in keys:
        ki = ti.key_index(key)
        if ki is not None:
            gens = [(g.ver, g.created.main, list(g.revs)) for g in ki.generations]
            out[key] = (ki.modified, gens)
    return out


class GetTests(SynchronousTestCase):
    def test_get(self) -> None:
        """get follows one key through puts and a tombstone."""
        ti = TreeIndex()
        ti.put(b"foo", R(2))
        ti.put(b"foo", R(4))
        ti.tombstone(b"foo", R(6))
        expected = {2: (R(2), R(2), 1), 3: (R(2), R(2), 1), 4: (R(4), R(2), 2), 5: (R(4), R(2), 2)}
        for rev in range(7):
            if rev in expected:
                self.assertEqual(ti.get(b"foo", rev), expected[rev], rev)
            else:
                self.assertRaises(RevisionNotFoundError, ti.get, b"foo", rev)

    def test_get_missing_key(self) -> None:
        """get on a key never written raises RevisionNotFoundError."""
        self.assertRaises(RevisionNotFoundError, TreeIndex().get, b"nope", 5)

    def test_tombstone(self) -> None:
        """A tombstoned key is gone; tombstoning it again (or a missing key) raises."""
        ti = TreeIndex()
        ti.put(b"foo", R(1))
        ti.tombstone(b"foo", R(2))
        self.assertRaises(RevisionNotFoundError, ti.get, b"foo", 2)
        self.assertRaises(RevisionNotFoundError, ti.tombstone, b"foo", R(3))
        self.assertRaises(RevisionNotFoundError, ti.tombstone, b"bar", R(3))


class RangeTests(SynchronousTestCase):
    def test_range(self) -> None:
        """range returns the live keys of [key, end) in key order with their revisions."""
        ti = three_keys()
        cases = [
            (b"bar", None, 0, 0),
            (b"foo", None, 0, 1),
            (b"foo", b"foo1", 0, 1),
            (b"foo", b"foo2", 0, 2),
            (b"foo", b"fop", 0, 3),
            (b"foo1", b"fop", 1, 3),
            (b"foo2", b"fop", 2, 3),
            (b"foo3", b"fop", 3, 3),
        ]
        for key, end, lo, hi in cases:
            self.assertEqual(
                ti.range(key, end, 3),
                (KEYS[lo:hi], [R(m) for m in range(lo + 1, hi + 1)]),
                (key, end),
            )

    def test_empty_end_is_single_key(self) -> None:
        """An empty end (the protobuf default) means just the key, like None."""
        ti = three_keys()
        self.assertEqual(ti.range(b"foo", b"", 3), ([b"foo"], [R(1)]))

    def test_nul_end_is_all_keys_from_key(self) -> None:
        """end b"\\0" means every key >= key; key b"\\0" with it is the whole keyspace."""
        ti = three_keys()
        self.assertEqual(ti.range(b"foo1", b"\0", 3)[0], KEYS[1:])
        self.assertEqual(ti.range(b"\0", b"\0", 3)[0], KEYS)

    def test_end_before_key_is_empty(self) -> None:
        """A range whose end sorts before its key is empty."""
        self.assertEqual(three_keys().range(b"foo2", b"foo", 3), ([], []))

    def test_range_at_past_revision(self) -> None:
        """range at an earlier revision sees only the keys alive then."""
        ti = three_keys()
        ti.tombstone(b"foo", R(4))
        self.assertEqual(ti.range(b"\0", b"\0", 2), ([b"foo", b"foo1"], [R(1), R(2)]))
        self.assertEqual(ti.range(b"\0", b"\0", 4), ([b"foo1", b"foo2"], [R(2), R(3)]))

    def test_revisions_limit_and_total(self) -> None:
        """revisions stops collecting at limit but counts the whole range."""
        ti = three_keys()
        self.assertEqual(ti.revisions(b"foo", b"fop", 3, limit=2), ([R(1), R(2)], 3))
        self.assertEqual(ti.revisions(b"foo", b"fop", 3), ([R(1), R(2), R(3)], 3))
        self.assertEqual(ti.revisions(b"foo", None, 3), ([R(1)], 1))
        self.assertEqual(ti.revisions(b"bar", None, 3), ([], 0))

    def test_count_revisions(self) -> None:
        """count_revisions counts the keys alive at the revision."""
        ti = three_keys()
        ti.tombstone(b"foo1", R(4))
        self.assertEqual(ti.count_revisions(b"\0", b"\0", 3), 3)
        self.assertEqual(ti.count_revisions(b"\0", b"\0", 4), 2)
        self.assertEqual(ti.count_revisions(b"foo1", None, 4), 0)


class RangeSinceTests(SynchronousTestCase):
    def test_range_since(self) -> None:
        """range_since merges the keys' revisions from rev on, in revision order."""
        ti = TreeIndex()
        for main, key in enumerate([b"foo", b"foo1", b"foo2", b"foo2", b"foo1", b"foo"], 1):
            ti.put(key, R(main))
        cases = [
            (b"bar", None, []),
            (b"foo", None, [1, 6]),
            (b"foo", b"foo1", [1, 6]),
            (b"foo", b"foo2", [1, 2, 5, 6]),
            (b"foo", b"fop", [1, 2, 3, 4, 5, 6]),
            (b"foo1", b"fop", [2, 3, 4, 5]),
            (b"foo2", b"fop", [3, 4]),
            (b"foo3", b"fop", []),
        ]
        for key, end, mains in cases:
            self.assertEqual(ti.range_since(key, end, 1), [R(m) for m in mains], (key, end))
        self.assertEqual(ti.range_since(b"foo", b"fop", 4), [R(4), R(5), R(6)])


# etcd's index compaction table: (key, tombstone, rev, created, version).
HISTORY = [
    (b"foo", False, R(1), R(1), 1),
    (b"foo1", False, R(2), R(2), 1),
    (b"foo2", False, R(3), R(3), 1),
    (b"foo2", False, R(4), R(3), 2),
    (b"foo", False, R(5), R(1), 2),
    (b"foo1", False, R(6), R(2), 2),
    (b"foo1", True, R(7), R(0), 0),
    (b"foo2", True, R(8), R(0), 0),
    (b"foo", True, R(9), R(0), 0),
    (b"foo", False, R(10, 0), R(10, 0), 1),
    (b"foo1", False, R(10, 1), R(10, 1), 1),
]


def history_index() -> TreeIndex:
    ti = TreeIndex()
    for key, tombstone, rev, _created, _ver in HISTORY:
        if tombstone:
            ti.tombstone(key, rev)
        else:
            ti.put(key, rev)
    return ti


class CompactTests(SynchronousTestCase):
    def check(self, ti: TreeIndex, at_rev: int) -> None:
        available = ti.compact(at_rev)
        self.assertEqual(ti.keep(at_rev), available, at_rev)
        rebuilt = TreeIndex()
        for key, tombstone, rev, created, ver in HISTORY:
            if rev in available or rev.main > at_rev:
                rebuilt.restore(key, rev, created.main, ver, tombstone)
        self.assertEqual(shape(ti, KEYS), shape(rebuilt, KEYS), at_rev)
        self.assertEqual(len(ti), len(rebuilt), at_rev)

    def test_continuous(self) -> None:
        """Compacting at 1..19 in turn leaves what restoring the kept revisions builds."""
        ti = history_index()
        for at_rev in range(1, 20):
            self.check(ti, at_rev)

    def test_once(self) -> None:
        """Compacting a fresh index once at each revision leaves the same."""
        for at_rev in range(1, 20):
            self.check(history_index(), at_rev)

    def test_compact_removes_dead_keys(self) -> None:
        """Keys whose last generation ended at or before the compaction disappear."""
        ti = history_index()
        ti.compact(9)
        self.assertIsNone(ti.key_index(b"foo2"))
        self.assertEqual(len(ti), 2)

    def test_compact_keeps_live_revision(self) -> None:
        """The revision each live key had at the compaction point is kept."""
        self.assertEqual(history_index().compact(5), {R(5), R(2), R(4)})


class RestoreTests(SynchronousTestCase):
    def test_restore_sequence(self) -> None:
        """Replaying backend records rebuilds generations, versions and tombstones."""
        ti = TreeIndex()
        ti.restore(b"a", R(5), 3, 2, False)
        ti.restore(b"a", R(6), 3, 3, False)
        ti.restore(b"a", R(7), 0, 0, True)
        ti.restore(b"a", R(8), 8, 1, False)
        self.assertEqual(ti.get(b"a", 6), (R(6), R(3), 3))
        self.assertRaises(RevisionNotFoundError, ti.get, b"a", 7)
        self.assertEqual(ti.get(b"a", 8), (R(8), R(8), 1))

    def test_restore_skips_orphan_tombstone(self) -> None:
        """A tombstone for a key whose puts were compacted away is skipped."""
        ti = TreeIndex()
        ti.restore(b"a", R(7), 0, 0, True)
        self.assertEqual(len(ti), 0)

    def test_insert(self) -> None:
        """insert adds a whole key index."""
        source = three_keys()
        ti = TreeIndex()
        for key in KEYS:
            ki = source.key_index(key)
            assert ki is not None
            ti.insert(ki)
        self.assertEqual(ti, source)
