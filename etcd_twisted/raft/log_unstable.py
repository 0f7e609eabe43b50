"""The part of the log not yet persisted: an optional incoming snapshot and new entries."""

from collections.abc import Sequence

from etcd_twisted._pb import raft_pb2


class Unstable:
    """Entries (and possibly a snapshot) that the application has not yet written to storage.

    ``entries[i]`` has index ``offset + i``. The snapshot, when present, comes before them.
    """

    __slots__ = ("snapshot", "entries", "offset")

    def __init__(self, offset: int) -> None:
        self.snapshot: raft_pb2.Snapshot | None = None
        self.entries: list[raft_pb2.Entry] = []
        self.offset = offset

    def maybe_first_index(self) -> int | None:
        """The first index if a pending snapshot sets it, else None."""
        if self.snapshot is not None:
            return self.snapshot.metadata.index + 1
        return None

    def maybe_last_index(self) -> int | None:
        """The last index held here, or None when neither entries nor snapshot are held."""
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.metadata.index
        return None

    def maybe_term(self, index: int) -> int | None:
        """The term of ``index`` if this part of the log knows it."""
        if index < self.offset:
            snap = self.snapshot
            if snap is not None and snap.metadata.index == index:
                return snap.metadata.term
            return None
        i = index - self.offset
        if i >= len(self.entries):
            return None
        return self.entries[i].term

    def stable_to(self, index: int, term: int) -> None:
        """Forget entries up to ``index`` now that storage holds them (if the term still matches)."""
        t = self.maybe_term(index)
        if t is None or t != term or index < self.offset:
            return
        self.entries = self.entries[index + 1 - self.offset :]
        self.offset = index + 1

    def stable_snap_to(self, index: int) -> None:
        """Forget the snapshot at ``index`` now that storage holds it."""
        if self.snapshot is not None and self.snapshot.metadata.index == index:
            self.snapshot = None

    def restore(self, snap: raft_pb2.Snapshot) -> None:
        """Replace everything with an incoming snapshot."""
        self.offset = snap.metadata.index + 1
        self.entries = []
        self.snapshot = snap

    def truncate_and_append(self, ents: Sequence[raft_pb2.Entry]) -> None:
        """Append ``ents``, first dropping any held entries at or after ``ents[0].index``."""
        after = ents[0].index
        held = len(self.entries)
        if after == self.offset + held:
            self.entries.extend(ents)
        elif after <= self.offset:
            self.offset = after
            self.entries = list(ents)
        else:
            self.entries = self.entries[: after - self.offset]
            self.entries.extend(ents)

    def slice(self, lo: int, hi: int) -> list[raft_pb2.Entry]:
        """Entries in ``[lo, hi)``; the caller checks the bounds."""
        return self.entries[lo - self.offset : hi - self.offset]
