"""The in-memory index from keys to their revision histories (etcd's ``server/mvcc/index.go``).

Ranges take ``key`` and ``end`` as they arrive on the wire: an empty ``end``
(``None`` or ``b""``) means the single key ``key``; ``b"\\0"`` means every key
``>= key``; anything else is the half-open interval ``[key, end)``.
"""

from collections.abc import Iterator

from sortedcontainers import SortedDict

from .errors import RevisionNotFoundError
from .key_index import KeyIndex
from .revision import Revision

_GTE = b"\0"


class TreeIndex:
    """Key indexes kept in key order."""

    def __init__(self) -> None:
        self._tree: SortedDict[bytes, KeyIndex] = SortedDict()

    def __len__(self) -> int:
        return len(self._tree)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TreeIndex):
            return NotImplemented
        return self._tree == other._tree

    __hash__ = None  # type: ignore[assignment]

    def put(self, key: bytes, rev: Revision) -> None:
        """Record a put of *key* at *rev*."""
        ki = self._tree.get(key)
        if ki is None:
            ki = self._tree[key] = KeyIndex(key)
        ki.put(rev)

    def tombstone(self, key: bytes, rev: Revision) -> None:
        """Record a deletion of *key* at *rev*.

        Raises `RevisionNotFoundError` if the key does not exist.
        """
        ki = self._tree.get(key)
        if ki is None:
            raise RevisionNotFoundError()
        ki.tombstone(rev)

    def get(self, key: bytes, at_rev: int) -> tuple[Revision, Revision, int]:
        """``(modified, created, version)`` of *key* as of *at_rev*.

        Raises `RevisionNotFoundError` when the key did not exist then.
        """
        ki = self._tree.get(key)
        if ki is None:
            raise RevisionNotFoundError()
        return ki.get(at_rev)

    def key_index(self, key: bytes) -> KeyIndex | None:
        """The key index of *key*, if any."""
        return self._tree.get(key)

    def range(
        self, key: bytes, end: bytes | None, at_rev: int
    ) -> tuple[list[bytes], list[Revision]]:
        """Keys alive at *at_rev* in the range, with their revisions then, in key order."""
        keys: list[bytes] = []
        revs: list[Revision] = []
        for ki in self._visit(key, end):
            try:
                rev = ki.get(at_rev)[0]
            except RevisionNotFoundError:
                continue
            keys.append(ki.key)
            revs.append(rev)
        return keys, revs

    def revisions(
        self, key: bytes, end: bytes | None, at_rev: int, limit: int = 0
    ) -> tuple[list[Revision], int]:
        """Revisions of the keys alive at *at_rev*, at most *limit* (0: all), and their total."""
        revs: list[Revision] = []
        total = 0
        for ki in self._visit(key, end):
            try:
                rev = ki.get(at_rev)[0]
            except RevisionNotFoundError:
                continue
            if limit <= 0 or total < limit:
                revs.append(rev)
            total += 1
        return revs, total

    def revisions_page(
        self, key: bytes, end: bytes | None, at_rev: int, max_keys: int
    ) -> tuple[list[Revision], bytes | None]:
        """Revisions of the keys alive at *at_rev* among the first *max_keys* keys of the
        range, and the key to go on from (None when the range is done), so a long range
        can be read a page at a time with writes in between."""
        tree = self._tree
        if not end:
            return self.revisions(key, end, at_rev)[0], None
        first = tree.bisect_left(key)
        stop = len(tree) if end == _GTE else tree.bisect_left(end)
        last = min(stop, first + max_keys)
        revs: list[Revision] = []
        for ki in tree.values()[first:last]:
            if ki.modified[0] <= at_rev:  # unchanged since: alive unless last deleted
                if ki.generations[-1].revs:
                    revs.append(ki.modified)
                continue
            try:
                revs.append(ki.get(at_rev)[0])
            except RevisionNotFoundError:
                continue
        return revs, (tree.keys()[last] if last < stop else None)

    def count_revisions(self, key: bytes, end: bytes | None, at_rev: int) -> int:
        """How many keys in the range are alive at *at_rev*."""
        total = 0
        for ki in self._visit(key, end):
            if ki.find_generation(at_rev) is not None:
                total += 1
        return total

    def range_since(self, key: bytes, end: bytes | None, rev: int) -> list[Revision]:
        """Every revision of keys in the range with ``main >= rev``, in revision order.

        Per key, only the last change within one main revision is returned.
        """
        revs: list[Revision] = []
        for ki in self._visit(key, end):
            revs.extend(ki.since(rev))
        revs.sort()
        return revs

    def compact(self, rev: int) -> set[Revision]:
        """Compact every key index at *rev*; return the revisions the backend must keep."""
        available: set[Revision] = set()
        tree = self._tree
        for ki in list(tree.values()):
            ki.compact(rev, available)
            if ki.is_empty():
                del tree[ki.key]
        return available

    def keep(self, rev: int) -> set[Revision]:
        """The revisions `compact` at *rev* would keep, changing nothing."""
        available: set[Revision] = set()
        for ki in self._tree.values():
            ki.keep(rev, available)
        return available

    def insert(self, ki: KeyIndex) -> None:
        """Add (or replace) a whole key index."""
        self._tree[ki.key] = ki

    def restore(
        self, key: bytes, rev: Revision, created: int, version: int, tombstone: bool
    ) -> None:
        """Replay one backend record, in revision order, when rebuilding the index.

        *created* and *version* come from the stored ``KeyValue``. A tombstone for a
        key not yet seen (its history was compacted away) is skipped, as etcd does.
        """
        ki = self._tree.get(key)
        if ki is None:
            if not tombstone:
                ki = self._tree[key] = KeyIndex(key)
                ki.restore(Revision(created, 0), rev, version)
        elif tombstone:
            try:
                ki.tombstone(rev)
            except RevisionNotFoundError:
                pass  # etcd logs and carries on
        else:
            ki.put(rev)

    def _visit(self, key: bytes, end: bytes | None) -> Iterator[KeyIndex]:
        tree = self._tree
        if not end:
            ki = tree.get(key)
            if ki is not None:
                yield ki
            return
        if end == _GTE:
            keys = tree.irange(key)
        else:
            keys = tree.irange(key, end, inclusive=(True, False))
        for k in keys:
            yield tree[k]
