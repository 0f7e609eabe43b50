"""Property tests: the tree index against a plain model of every key's full history."""

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.mvcc.errors import RevisionNotFoundError
from etcd_twisted.mvcc.index import TreeIndex
from etcd_twisted.mvcc.revision import Revision

KEYS = [b"a", b"ab", b"b", b"ba", b"c"]
QUERIES: list[tuple[bytes, bytes | None]] = [
    (b"a", None),
    (b"ab", b""),
    (b"zz", None),
    (b"\0", b"\0"),
    (b"ab", b"\0"),
    (b"a", b"b"),
    (b"ab", b"ba"),
    (b"b", b"c"),
    (b"a", b"ab"),
    (b"c", b"a"),
    (b"bb", b"d"),
]

writes = st.lists(st.tuples(st.sampled_from(KEYS), st.booleans()), min_size=1, max_size=3)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("write"), writes),
        st.tuples(st.just("compact"), st.integers(0, 100)),
    ),
    max_size=40,
)


def in_range(k: bytes, key: bytes, end: bytes | None) -> bool:
    if not end:
        return k == key
    return k >= key and (end == b"\0" or k < end)


@dataclass
class Model:
    """Every key's whole history as (revision, tombstone) pairs; compaction forgets nothing."""

    history: dict[bytes, list[tuple[Revision, bool]]] = field(default_factory=dict)

    def alive(self, key: bytes) -> bool:
        h = self.history.get(key)
        return bool(h) and not h[-1][1]

    def record(self, key: bytes, rev: Revision, tombstone: bool) -> None:
        self.history.setdefault(key, []).append((rev, tombstone))

    def get(self, key: bytes, at_rev: int) -> tuple[Revision, int, int] | None:
        """(modified, created main, version) at at_rev, or None."""
        seen = [(r, t) for r, t in self.history.get(key, []) if r.main <= at_rev]
        if not seen or seen[-1][1]:
            return None
        life: list[Revision] = []
        for r, t in seen:
            life = [] if t else [*life, r]
        return life[-1], life[0].main, len(life)

    def range(
        self, key: bytes, end: bytes | None, at_rev: int
    ) -> tuple[list[bytes], list[Revision]]:
        keys, revs = [], []
        for k in sorted(self.history):
            found = self.get(k, at_rev) if in_range(k, key, end) else None
            if found is not None:
                keys.append(k)
                revs.append(found[0])
        return keys, revs

    def since(self, key: bytes, end: bytes | None, rev: int) -> list[Revision]:
        out: list[Revision] = []
        for k, h in self.history.items():
            if in_range(k, key, end):
                last_per_main = {r.main: r for r, _ in h if r.main >= rev}
                out.extend(last_per_main.values())
        return sorted(out)


@dataclass
class Backend:
    """The key bucket: revision -> (key, tombstone, create main, version)."""

    records: dict[Revision, tuple[bytes, bool, int, int]] = field(default_factory=dict)

    def compact(self, at_rev: int, available: set[Revision]) -> None:
        self.records = {r: v for r, v in self.records.items() if r.main > at_rev or r in available}

    def rebuild(self) -> TreeIndex:
        ti = TreeIndex()
        for rev in sorted(self.records):
            key, tombstone, created, version = self.records[rev]
            ti.restore(key, rev, created, version, tombstone)
        return ti


class TreeIndexModelTests(SynchronousTestCase):
    def check_reads(self, ti: TreeIndex, model: Model, compacted: int, current: int) -> None:
        for at_rev in range(compacted, current + 2):
            for key in KEYS:
                expected = model.get(key, at_rev)
                if expected is None:
                    self.assertRaises(RevisionNotFoundError, ti.get, key, at_rev)
                else:
                    modified, created, version = ti.get(key, at_rev)
                    self.assertEqual((modified, created.main, version), expected)
            for key, end in QUERIES:
                keys, revs = model.range(key, end, at_rev)
                self.assertEqual(ti.range(key, end, at_rev), (keys, revs))
                self.assertEqual(ti.revisions(key, end, at_rev, 2), (revs[:2], len(revs)))
                self.assertEqual(ti.count_revisions(key, end, at_rev), len(revs))
        for rev in range(compacted + 1, current + 2):
            for key, end in QUERIES:
                self.assertEqual(ti.range_since(key, end, rev), model.since(key, end, rev))

    def check_nothing_lost(
        self, model: Model, backend: Backend, compacted: int, current: int
    ) -> None:
        for at_rev in range(compacted, current + 1):
            for key in KEYS:
                found = model.get(key, at_rev)
                if found is not None:
                    self.assertIn(found[0], backend.records, (key, at_rev))

    @settings(max_examples=300, deadline=None)
    @given(steps)
    def test_matches_model(self, script: list[tuple[str, object]]) -> None:
        """After any puts, tombstones and compactions, reads at or after the compacted
        revision agree with the model, keep agrees with compact, no revision such a read
        needs is compacted from the backend, and the backend rebuilds an equivalent index."""
        ti, model, backend = TreeIndex(), Model(), Backend()
        current, compacted = 1, 0
        for kind, arg in script:
            if kind == "write":
                current += 1
                for sub, (key, tombstone) in enumerate(arg):
                    rev = Revision(current, sub)
                    if tombstone and not model.alive(key):
                        self.assertRaises(RevisionNotFoundError, ti.tombstone, key, rev)
                        continue
                    if tombstone:
                        ti.tombstone(key, rev)
                    else:
                        ti.put(key, rev)
                    model.record(key, rev, tombstone)
                    _, created, version = model.get(key, current) or (rev, 0, 0)
                    backend.records[rev] = (key, tombstone, created, version)
            else:
                at_rev = compacted + arg * (current - compacted) // 100
                kept = ti.keep(at_rev)
                available = ti.compact(at_rev)
                self.assertEqual(kept, available)
                backend.compact(at_rev, available)
                compacted = at_rev
                self.check_nothing_lost(model, backend, compacted, current)
                for key in KEYS:
                    ki = ti.key_index(key)
                    self.assertFalse(ki is not None and ki.is_empty(), key)
        self.check_reads(ti, model, compacted, current)
        self.check_reads(backend.rebuild(), model, compacted, current)
