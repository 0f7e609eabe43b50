"""The key index: generations, tombstones, reads at a revision, and compaction."""

import copy

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.mvcc.errors import RevisionNotFoundError
from etcd_twisted.mvcc.key_index import Generation, KeyIndex
from etcd_twisted.mvcc.revision import Revision as R


def gen(ver: int, created: R, *revs: R) -> Generation:
    return Generation(ver, created, list(revs))


def doc_example() -> KeyIndex:
    """put(1), put(2), tombstone(3), put(4), tombstone(5) on "foo"."""
    ki = KeyIndex(b"foo")
    ki.put(R(1))
    ki.put(R(2))
    ki.tombstone(R(3))
    ki.put(R(4))
    ki.tombstone(R(5))
    return ki


def three_generations() -> KeyIndex:
    """etcd's test key index: {2, 4, 6(t)} {8, 10, 12(t)} {14, 14.1, 16(t)} {}."""
    ki = KeyIndex(b"foo")
    ki.put(R(2))
    ki.put(R(4))
    ki.tombstone(R(6))
    ki.put(R(8))
    ki.put(R(10))
    ki.tombstone(R(12))
    ki.put(R(14))
    ki.put(R(14, 1))
    ki.tombstone(R(16))
    return ki


G1 = gen(3, R(2), R(2), R(4), R(6))
G2 = gen(3, R(8), R(8), R(10), R(12))
G3 = gen(3, R(14), R(14), R(14, 1), R(16))

# Compacting three_generations() at each revision: (generations left, revisions kept).
COMPACTIONS: list[tuple[int, list[Generation], set[R]]] = [
    (1, [G1, G2, G3, Generation()], set()),
    (2, [G1, G2, G3, Generation()], {R(2)}),
    (3, [G1, G2, G3, Generation()], {R(2)}),
    (4, [gen(3, R(2), R(4), R(6)), G2, G3, Generation()], {R(4)}),
    (5, [gen(3, R(2), R(4), R(6)), G2, G3, Generation()], {R(4)}),
    (6, [G2, G3, Generation()], set()),
    (7, [G2, G3, Generation()], set()),
    (8, [G2, G3, Generation()], {R(8)}),
    (9, [G2, G3, Generation()], {R(8)}),
    (10, [gen(3, R(8), R(10), R(12)), G3, Generation()], {R(10)}),
    (11, [gen(3, R(8), R(10), R(12)), G3, Generation()], {R(10)}),
    (12, [G3, Generation()], set()),
    (13, [G3, Generation()], set()),
    (14, [gen(3, R(14), R(14, 1), R(16)), Generation()], {R(14, 1)}),
    (15, [gen(3, R(14), R(14, 1), R(16)), Generation()], {R(14, 1)}),
    (16, [Generation()], set()),
]


class DocExampleTests(SynchronousTestCase):
    """The worked example of etcd's key_index.go doc comment."""

    def test_generations(self) -> None:
        """Each tombstone closes a generation and opens an empty one."""
        ki = doc_example()
        self.assertEqual(ki.modified, R(5))
        self.assertEqual(
            ki.generations,
            [gen(3, R(1), R(1), R(2), R(3)), gen(2, R(4), R(4), R(5)), Generation()],
        )

    def test_compact_2(self) -> None:
        """compact(2) drops 1 and keeps 2, the value a read at 2 needs."""
        ki = doc_example()
        available: set[R] = set()
        ki.compact(2, available)
        self.assertEqual(
            ki.generations,
            [gen(3, R(1), R(2), R(3)), gen(2, R(4), R(4), R(5)), Generation()],
        )
        self.assertEqual(available, {R(2)})

    def test_compact_4(self) -> None:
        """compact(4) removes the whole first generation."""
        ki = doc_example()
        available: set[R] = set()
        ki.compact(2, available)
        ki.compact(4, available)
        self.assertEqual(ki.generations, [gen(2, R(4), R(4), R(5)), Generation()])
        self.assertIn(R(4), available)

    def test_compact_5_empties(self) -> None:
        """compact(5) leaves one empty generation: the key should be removed."""
        ki = doc_example()
        available: set[R] = set()
        ki.compact(5, available)
        self.assertTrue(ki.is_empty())
        self.assertEqual(available, set())

    def test_compact_6_empties(self) -> None:
        """compact(6), past the last tombstone, also empties the index."""
        ki = doc_example()
        ki.compact(6, set())
        self.assertEqual(ki.generations, [Generation()])


class PutTombstoneTests(SynchronousTestCase):
    def test_put(self) -> None:
        """Puts append to the current generation and bump its version."""
        ki = KeyIndex(b"foo")
        ki.put(R(5))
        self.assertEqual(ki, KeyIndex(b"foo", R(5), [gen(1, R(5), R(5))]))
        ki.put(R(7))
        self.assertEqual(ki, KeyIndex(b"foo", R(7), [gen(2, R(5), R(5), R(7))]))

    def test_put_must_advance(self) -> None:
        """A put at or before the last modification is a bug."""
        ki = KeyIndex(b"foo")
        ki.put(R(5, 1))
        self.assertRaises(ValueError, ki.put, R(5, 1))
        self.assertRaises(ValueError, ki.put, R(5, 0))

    def test_tombstone(self) -> None:
        """A tombstone is the generation's last revision, then a new empty generation."""
        ki = KeyIndex(b"foo")
        ki.put(R(5))
        ki.tombstone(R(7))
        self.assertEqual(ki, KeyIndex(b"foo", R(7), [gen(2, R(5), R(5), R(7)), Generation()]))
        ki.put(R(8))
        ki.put(R(9))
        ki.tombstone(R(15))
        self.assertEqual(
            ki.generations,
            [gen(2, R(5), R(5), R(7)), gen(3, R(8), R(8), R(9), R(15)), Generation()],
        )

    def test_tombstone_deleted_key(self) -> None:
        """Tombstoning a key that is already deleted raises RevisionNotFoundError."""
        ki = KeyIndex(b"foo")
        ki.put(R(5))
        ki.tombstone(R(7))
        self.assertRaises(RevisionNotFoundError, ki.tombstone, R(8))

    def test_restore(self) -> None:
        """restore starts one generation holding only the last modification."""
        ki = KeyIndex(b"foo")
        ki.restore(R(5), R(7), 2)
        self.assertEqual(ki, KeyIndex(b"foo", R(7), [gen(2, R(5), R(7))]))
        self.assertEqual(ki.get(7), (R(7), R(5), 2))

    def test_is_empty(self) -> None:
        """Only a single empty generation counts as empty."""
        self.assertTrue(KeyIndex(b"foo", generations=[Generation()]).is_empty())
        self.assertFalse(KeyIndex(b"foo", R(2), [gen(2, R(1), R(2))]).is_empty())


class ReadTests(SynchronousTestCase):
    def test_get(self) -> None:
        """get answers (modified, created, version) inside generations, not found in gaps."""
        ki = three_generations()
        ki.compact(4, set())
        found = {
            15: (R(14, 1), R(14), 2),
            14: (R(14, 1), R(14), 2),
            11: (R(10), R(8), 2),
            10: (R(10), R(8), 2),
            9: (R(8), R(8), 1),
            8: (R(8), R(8), 1),
            5: (R(4), R(2), 2),
            4: (R(4), R(2), 2),
        }
        for rev in range(18):
            if rev in found:
                self.assertEqual(ki.get(rev), found[rev], rev)
            else:
                self.assertRaises(RevisionNotFoundError, ki.get, rev)

    def test_find_generation(self) -> None:
        """find_generation returns the generation alive at a revision, None in the gaps."""
        ki = three_generations()
        g1, g2 = ki.generations[0], ki.generations[1]
        expected = {2: g1, 3: g1, 4: g1, 5: g1, 8: g2, 9: g2, 10: g2, 11: g2}
        for rev in range(14):
            self.assertIs(ki.find_generation(rev), expected.get(rev), rev)

    def test_since(self) -> None:
        """since lists revisions from rev on, one per main revision (the last sub wins)."""
        ki = three_generations()
        ki.compact(4, set())
        all_revs = [R(4), R(6), R(8), R(10), R(12), R(14, 1), R(16)]
        start = {16: 6, 15: 6, 14: 5, 13: 5, 12: 4, 11: 4, 10: 3, 9: 3, 8: 2, 7: 2, 6: 1, 5: 1}
        self.assertEqual(ki.since(17), [])
        for rev in range(17):
            self.assertEqual(ki.since(rev), all_revs[start.get(rev, 0) :], rev)


class CompactTests(SynchronousTestCase):
    def check(self, ki: KeyIndex, at_rev: int, generations: list[Generation], kept: set[R]) -> None:
        before = copy.deepcopy(ki)
        available: set[R] = set()
        ki.keep(at_rev, available)
        self.assertEqual(ki, before, f"keep({at_rev}) changed the index")
        self.assertEqual(available, kept, f"keep({at_rev})")
        available = set()
        ki.compact(at_rev, available)
        self.assertEqual(ki.generations, generations, f"compact({at_rev})")
        self.assertEqual(available, kept, f"compact({at_rev})")
        self.assertEqual(ki.modified, R(16))

    def test_continuous(self) -> None:
        """Compacting at 1, 2, ..., 16 in turn matches etcd's table; keep agrees and changes nothing."""
        ki = three_generations()
        for at_rev, generations, kept in COMPACTIONS:
            self.check(ki, at_rev, generations, kept)

    def test_jumps(self) -> None:
        """Compacting at every other revision reaches the same states."""
        ki = three_generations()
        for i, (at_rev, generations, kept) in enumerate(COMPACTIONS):
            if (i % 2 == 0 and i < 6) or (i % 2 == 1 and i > 6):
                self.check(ki, at_rev, generations, kept)

    def test_once(self) -> None:
        """Compacting a fresh index once at each revision matches the table."""
        for at_rev, generations, kept in COMPACTIONS:
            self.check(three_generations(), at_rev, generations, kept)

    def test_beyond_last_modification(self) -> None:
        """Compacting past the last put keeps that put."""
        ki = KeyIndex(b"foo")
        ki.put(R(1))
        ki.put(R(2))
        available: set[R] = set()
        ki.compact(3, available)
        self.assertEqual(ki.generations, [gen(2, R(1), R(2))])
        self.assertEqual(available, {R(2)})

    def test_version_survives_compaction(self) -> None:
        """Versions still count writes dropped by compaction."""
        ki = KeyIndex(b"foo")
        for main in range(1, 6):
            ki.put(R(main))
        ki.compact(4, set())
        self.assertEqual(ki.get(5), (R(5), R(1), 5))
        self.assertEqual(ki.get(4), (R(4), R(1), 4))
