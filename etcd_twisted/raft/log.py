"""The raft log: stable entries in ``Storage`` followed by the ``Unstable`` tail."""

from collections.abc import Sequence

from etcd_twisted._pb import raft_pb2
from etcd_twisted.raft.errors import CompactedError, UnavailableError
from etcd_twisted.raft.log_unstable import Unstable
from etcd_twisted.raft.storage import Storage
from etcd_twisted.raft.util import NO_LIMIT, limit_size


class RaftLog:
    """The log as raft sees it, with its commit and apply cursors.

    ``applied <= committed <= last_index()``; everything after the storage's last index lives
    in ``unstable`` until the application persists it and calls ``stable_to``.
    """

    __slots__ = ("storage", "unstable", "committed", "applied", "max_next_ents_size")

    def __init__(self, storage: Storage, max_next_ents_size: int = NO_LIMIT) -> None:
        self.storage = storage
        first = storage.first_index()
        self.unstable = Unstable(storage.last_index() + 1)
        self.committed = first - 1
        self.applied = first - 1
        self.max_next_ents_size = max_next_ents_size

    def maybe_append(
        self, index: int, log_term: int, committed: int, ents: Sequence[raft_pb2.Entry]
    ) -> int | None:
        """Append ``ents`` after ``(index, log_term)`` if that entry matches ours.

        Returns the index of the last new entry, or None when the log does not match.
        """
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(ents)
        conflict = self.find_conflict(ents)
        if conflict:
            if conflict <= self.committed:
                raise AssertionError(
                    f"entry {conflict} conflicts with committed entry [committed({self.committed})]"
                )
            self.append(ents[conflict - index - 1 :])
        self.commit_to(min(committed, last_new))
        return last_new

    def append(self, ents: Sequence[raft_pb2.Entry]) -> int:
        """Append entries (truncating a conflicting unstable tail); returns the last index."""
        if not ents:
            return self.last_index()
        after = ents[0].index - 1
        if after < self.committed:
            raise AssertionError(f"after({after}) is out of range [committed({self.committed})]")
        self.unstable.truncate_and_append(ents)
        return self.last_index()

    def find_conflict(self, ents: Sequence[raft_pb2.Entry]) -> int:
        """The index of the first entry that is new or differs in term from ours, else 0."""
        for e in ents:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest index at or below ``index`` whose term is at most ``term``, with that term.

        Used to skip a whole term of mismatching entries at once when a follower rejects an
        append. An unknown (compacted) term is reported as 0 with its index.
        """
        while index > 0:
            try:
                our = self.term(index)
            except (CompactedError, UnavailableError):
                return index, 0
            if our <= term:
                return index, our
            index -= 1
        return 0, 0

    def unstable_entries(self) -> list[raft_pb2.Entry]:
        """A copy of the entries waiting to be persisted."""
        return list(self.unstable.entries)

    def next_ents(self) -> list[raft_pb2.Entry]:
        """Committed entries not yet applied (bounded by ``max_next_ents_size``)."""
        off = max(self.applied + 1, self.first_index())
        if self.committed + 1 > off:
            return self.slice(off, self.committed + 1, self.max_next_ents_size)
        return []

    def has_next_ents(self) -> bool:
        """Whether there are committed entries to apply."""
        return self.committed + 1 > max(self.applied + 1, self.first_index())

    def has_pending_snapshot(self) -> bool:
        """Whether a received snapshot waits to be persisted."""
        return self.unstable.snapshot is not None

    def snapshot(self) -> raft_pb2.Snapshot:
        """The pending snapshot if any, else the storage's latest."""
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    def first_index(self) -> int:
        """The first readable index."""
        i = self.unstable.maybe_first_index()
        if i is not None:
            return i
        return self.storage.first_index()

    def last_index(self) -> int:
        """The last index, unstable or stable."""
        i = self.unstable.maybe_last_index()
        if i is not None:
            return i
        return self.storage.last_index()

    def commit_to(self, to_commit: int) -> None:
        """Advance the commit index (never backwards)."""
        if self.committed < to_commit:
            if self.last_index() < to_commit:
                raise AssertionError(
                    f"tocommit({to_commit}) is out of range [lastIndex({self.last_index()})]"
                )
            self.committed = to_commit

    def applied_to(self, index: int) -> None:
        """Record that the application applied entries up to ``index``."""
        if index == 0:
            return
        if self.committed < index or index < self.applied:
            raise AssertionError(
                f"applied({index}) is out of range [prevApplied({self.applied}), committed({self.committed})]"
            )
        self.applied = index

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to ``(index, term)`` are now in storage."""
        self.unstable.stable_to(index, term)

    def stable_snap_to(self, index: int) -> None:
        """The snapshot at ``index`` is now in storage."""
        self.unstable.stable_snap_to(index)

    def last_term(self) -> int:
        """The term of the last entry."""
        return self.term(self.last_index())

    def term(self, index: int) -> int:
        """The term at ``index``, readable in ``[first_index() - 1, last_index()]``.

        Raises ``CompactedError`` below that range and ``UnavailableError`` above it.
        """
        u = self.unstable
        if index >= u.offset:
            i = index - u.offset
            if i < len(u.entries):
                return u.entries[i].term
            raise UnavailableError(index)
        snap = u.snapshot
        if snap is None:
            # Everything before the unstable offset is in storage, which raises the same
            # errors for the same ranges.
            return self.storage.term(index)
        if index == snap.metadata.index:
            return snap.metadata.term
        raise CompactedError(index)

    def term_or_zero(self, index: int) -> int:
        """``term(index)``, reading a compacted or missing index as 0."""
        try:
            return self.term(index)
        except (CompactedError, UnavailableError):
            return 0

    def entries(self, index: int, max_size: int) -> list[raft_pb2.Entry]:
        """Entries from ``index`` to the end, up to ``max_size`` bytes (at least one)."""
        last = self.last_index()
        if index > last:
            return []
        return self.slice(index, last + 1, max_size)

    def all_entries(self) -> list[raft_pb2.Entry]:
        """Every readable entry (for tests and debugging)."""
        return self.entries(self.first_index(), NO_LIMIT)

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        """Whether a log ending at ``(last_index, term)`` is at least as up to date as ours."""
        our_term = self.last_term()
        return term > our_term or (term == our_term and last_index >= self.last_index())

    def match_term(self, index: int, term: int) -> bool:
        """Whether our entry at ``index`` has ``term``."""
        try:
            return self.term(index) == term
        except (CompactedError, UnavailableError):
            return False

    def maybe_commit(self, max_index: int, term: int) -> bool:
        """Commit up to ``max_index`` if that entry is from ``term`` (the leader's own term)."""
        if max_index > self.committed and self.term_or_zero(max_index) == term:
            self.commit_to(max_index)
            return True
        return False

    def restore(self, snap: raft_pb2.Snapshot) -> None:
        """Reset the log to an incoming snapshot."""
        self.committed = snap.metadata.index
        self.unstable.restore(snap)

    def slice(self, lo: int, hi: int, max_size: int) -> list[raft_pb2.Entry]:
        """Entries in ``[lo, hi)``, up to ``max_size`` bytes (at least one)."""
        first = self.first_index()
        if lo < first:
            raise CompactedError(lo)
        if lo > hi or hi > self.last_index() + 1:
            raise AssertionError(f"slice[{lo},{hi}) out of bound [{first},{self.last_index()}]")
        if lo == hi:
            return []
        offset = self.unstable.offset
        ents: list[raft_pb2.Entry] = []
        if lo < offset:
            stop = min(hi, offset)
            ents = self.storage.entries(lo, stop, max_size)
            if len(ents) < stop - lo or hi <= offset:
                return ents
            ents = ents + self.unstable.slice(offset, hi)
        else:
            ents = self.unstable.slice(lo, hi)
        return limit_size(ents, max_size)
