"""The revision history of one key (etcd's ``server/mvcc/key_index.go``).

A key's history is a list of generations. A generation runs from the put that
creates the key to the tombstone that deletes it; a tombstone closes the current
generation and opens a new, empty one. Each revision points into the backend.

Example: put(1), put(2), tombstone(3), put(4), tombstone(5) on "foo" gives::

    generations: [{1, 2, 3(t)}, {4, 5(t)}, {}]

Compacting at ``rev`` drops every revision <= ``rev`` except the largest one, which
is still needed to read at ``rev``; a tombstone left alone at the head of a
generation is dropped too, since nothing can be read through it, and empty
generations go with it::

    compact(2): [{2, 3(t)}, {4, 5(t)}, {}]
    compact(4): [{4, 5(t)}, {}]
    compact(5): [{}]          -> the key index is empty and should be removed
"""

from bisect import bisect_right
from dataclasses import dataclass, field
from math import inf

from .errors import RevisionNotFoundError
from .revision import Revision


@dataclass(slots=True)
class Generation:
    """One life of a key, from creation to (optional) tombstone."""

    #: Writes in this generation, the tombstone included; never shrinks on compaction.
    ver: int = 0
    #: Revision of the put that created the key.
    created: Revision = Revision(0, 0)
    #: Revisions in ascending order; the last is the tombstone unless this is the newest.
    revs: list[Revision] = field(default_factory=list)

    def last_at_or_before(self, at_rev: int) -> int:
        """Index of the last revision with ``main <= at_rev``, or -1."""
        revs = self.revs
        if revs and revs[-1][0] <= at_rev:
            return len(revs) - 1
        return bisect_right(revs, (at_rev, inf)) - 1


@dataclass(slots=True)
class KeyIndex:
    """The generations of revisions of one key."""

    key: bytes
    #: The last revision written to this key (tombstones included).
    modified: Revision = Revision(0, 0)
    generations: list[Generation] = field(default_factory=list)

    def put(self, rev: Revision) -> None:
        """Record a put at *rev*, which must be newer than any recorded revision."""
        if rev <= self.modified:
            raise ValueError(f"put at {rev} on {self.key!r} is not after {self.modified}")
        if not self.generations:
            self.generations.append(Generation())
        g = self.generations[-1]
        if not g.revs:
            g.created = rev
        g.revs.append(rev)
        g.ver += 1
        self.modified = rev

    def restore(self, created: Revision, modified: Revision, ver: int) -> None:
        """Start an index from a backend record: created at *created*, last written at *modified*."""
        if self.generations:
            raise ValueError(f"restore on non-empty key index for {self.key!r}")
        self.modified = modified
        self.generations.append(Generation(ver, created, [modified]))

    def tombstone(self, rev: Revision) -> None:
        """Record a deletion at *rev* and open a new, empty generation.

        Raises `RevisionNotFoundError` when the key is already deleted.
        """
        if self.is_empty():
            raise ValueError(f"tombstone on empty key index for {self.key!r}")
        if not self.generations[-1].revs:
            raise RevisionNotFoundError()
        self.put(rev)
        self.generations.append(Generation())

    def get(self, at_rev: int) -> tuple[Revision, Revision, int]:
        """``(modified, created, version)`` of the key as of *at_rev*.

        Raises `RevisionNotFoundError` when the key did not exist then.
        """
        g = self.find_generation(at_rev)
        if g is None:
            raise RevisionNotFoundError()
        n = g.last_at_or_before(at_rev)
        if n == -1:
            raise RevisionNotFoundError()
        return g.revs[n], g.created, g.ver - (len(g.revs) - n - 1)

    def since(self, rev: int) -> list[Revision]:
        """Revisions with ``main >= rev``, keeping only the last change of each main revision."""
        generations = self.generations
        since = Revision(rev, 0)
        gi = len(generations) - 1
        while gi > 0:
            g = generations[gi]
            if g.revs and since > g.created:
                break
            gi -= 1
        revs: list[Revision] = []
        last = 0
        for g in generations[gi:]:
            for r in g.revs:
                if since > r:
                    continue
                if r[0] == last:
                    # Only the last change of a txn to this key is visible outside it.
                    revs[-1] = r
                    continue
                revs.append(r)
                last = r[0]
        return revs

    def compact(self, at_rev: int, available: set[Revision]) -> None:
        """Drop revisions no read at >= *at_rev* needs; add the kept one to *available*.

        *available* collects, across keys, the backend revisions compaction must not delete.
        """
        if self.is_empty():
            raise ValueError(f"compact on empty key index for {self.key!r}")
        gen_idx, rev_idx = self._do_compact(at_rev, available)
        g = self.generations[gen_idx]
        if g.revs:
            if rev_idx != -1:
                del g.revs[:rev_idx]
            if len(g.revs) == 1 and gen_idx != len(self.generations) - 1:
                # A lone tombstone: nothing can be read through it.
                available.discard(g.revs[0])
                gen_idx += 1
        del self.generations[:gen_idx]

    def keep(self, at_rev: int, available: set[Revision]) -> None:
        """Add to *available* the revision `compact` at *at_rev* would keep, changing nothing."""
        if self.is_empty():
            return
        gen_idx, rev_idx = self._do_compact(at_rev, available)
        g = self.generations[gen_idx]
        if g.revs and rev_idx == len(g.revs) - 1 and gen_idx != len(self.generations) - 1:
            available.discard(g.revs[rev_idx])

    def _do_compact(self, at_rev: int, available: set[Revision]) -> tuple[int, int]:
        """Find the generation holding *at_rev* (or the first after it) and its last
        revision <= *at_rev*, which is added to *available*."""
        generations = self.generations
        gen_idx = 0
        while gen_idx < len(generations) - 1 and generations[gen_idx].revs[-1][0] <= at_rev:
            gen_idx += 1
        g = generations[gen_idx]
        rev_idx = g.last_at_or_before(at_rev)
        if rev_idx != -1:
            available.add(g.revs[rev_idx])
        return gen_idx, rev_idx

    def is_empty(self) -> bool:
        """Whether only one empty generation is left (the key can be removed)."""
        return len(self.generations) == 1 and not self.generations[0].revs

    def find_generation(self, rev: int) -> Generation | None:
        """The generation alive at *rev*, or None if the key did not exist then."""
        generations = self.generations
        last = len(generations) - 1
        for i in range(last, -1, -1):
            g = generations[i]
            revs = g.revs
            if not revs:
                continue
            if i != last and revs[-1][0] <= rev:
                return None
            if revs[0][0] <= rev:
                return g
        return None
