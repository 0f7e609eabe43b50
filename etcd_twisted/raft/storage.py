"""The ``Storage`` protocol raft reads its stable log from, and ``MemoryStorage``."""

from collections.abc import Sequence
from typing import Protocol

from etcd_twisted._pb import raft_pb2
from etcd_twisted.raft.errors import CompactedError, SnapOutOfDateError, UnavailableError
from etcd_twisted.raft.util import limit_size


class Storage(Protocol):
    """Read access to the persisted log, snapshot and state.

    Raft only reads through this interface; the application writes (after each ``Ready``)
    through its own methods, such as ``MemoryStorage.append``.
    """

    def initial_state(self) -> tuple[raft_pb2.HardState, raft_pb2.ConfState]:
        """The saved hard state and the configuration as of the latest snapshot or entries."""
        ...

    def entries(self, lo: int, hi: int, max_size: int) -> list[raft_pb2.Entry]:
        """Entries in ``[lo, hi)``, at least one, at most ``max_size`` bytes beyond the first.

        Raises ``CompactedError`` if ``lo`` was compacted, ``UnavailableError`` if missing.
        """
        ...

    def term(self, index: int) -> int:
        """The term of the entry at ``index`` (``first_index() - 1`` is allowed)."""
        ...

    def last_index(self) -> int:
        """The index of the last entry in the log."""
        ...

    def first_index(self) -> int:
        """The index of the first entry that may be read (older ones went into a snapshot)."""
        ...

    def snapshot(self) -> raft_pb2.Snapshot:
        """The most recent snapshot; may raise ``SnapshotTemporarilyUnavailableError``."""
        ...


class MemoryStorage:
    """A ``Storage`` kept in memory, written by the application as it handles ``Ready``.

    ``_ents[0]`` is a placeholder carrying the index and term of the last compacted entry
    (the snapshot point), so that ``term(first_index() - 1)`` works.
    """

    def __init__(self) -> None:
        self.hard_state = raft_pb2.HardState()
        self._snapshot = raft_pb2.Snapshot()
        self._ents: list[raft_pb2.Entry] = [raft_pb2.Entry()]

    def initial_state(self) -> tuple[raft_pb2.HardState, raft_pb2.ConfState]:
        """See ``Storage.initial_state``."""
        return self.hard_state, self._snapshot.metadata.conf_state

    def set_hard_state(self, hard_state: raft_pb2.HardState) -> None:
        """Save the hard state from a ``Ready``."""
        self.hard_state = hard_state

    def entries(self, lo: int, hi: int, max_size: int) -> list[raft_pb2.Entry]:
        """See ``Storage.entries``."""
        offset = self._ents[0].index
        if lo <= offset:
            raise CompactedError(lo)
        if hi > self.last_index() + 1:
            raise ValueError(f"entries' hi({hi}) is out of bound lastindex({self.last_index()})")
        if len(self._ents) == 1:
            raise UnavailableError(lo)
        return limit_size(self._ents[lo - offset : hi - offset], max_size)

    def term(self, index: int) -> int:
        """See ``Storage.term``."""
        offset = self._ents[0].index
        if index < offset:
            raise CompactedError(index)
        if index - offset >= len(self._ents):
            raise UnavailableError(index)
        return self._ents[index - offset].term

    def last_index(self) -> int:
        """See ``Storage.last_index``."""
        return self._ents[0].index + len(self._ents) - 1

    def first_index(self) -> int:
        """See ``Storage.first_index``."""
        return self._ents[0].index + 1

    def snapshot(self) -> raft_pb2.Snapshot:
        """See ``Storage.snapshot``."""
        return self._snapshot

    def apply_snapshot(self, snap: raft_pb2.Snapshot) -> None:
        """Replace the whole contents with ``snap`` (a snapshot received from the leader)."""
        if snap.metadata.index <= self._snapshot.metadata.index:
            raise SnapOutOfDateError(snap.metadata.index)
        self._snapshot = snap
        self._ents = [raft_pb2.Entry(term=snap.metadata.term, index=snap.metadata.index)]

    def create_snapshot(
        self, index: int, conf_state: raft_pb2.ConfState | None, data: bytes
    ) -> raft_pb2.Snapshot:
        """Record a snapshot of the state machine as of ``index`` (the log is kept; see ``compact``)."""
        if index <= self._snapshot.metadata.index:
            raise SnapOutOfDateError(index)
        offset = self._ents[0].index
        if index > self.last_index():
            raise ValueError(f"snapshot {index} is out of bound lastindex({self.last_index()})")
        snap = raft_pb2.Snapshot(data=data)
        snap.metadata.index = index
        snap.metadata.term = self._ents[index - offset].term
        if conf_state is not None:
            snap.metadata.conf_state.CopyFrom(conf_state)
        else:
            snap.metadata.conf_state.CopyFrom(self._snapshot.metadata.conf_state)
        self._snapshot = snap
        return snap

    def compact(self, compact_index: int) -> None:
        """Discard entries up to and including ``compact_index``."""
        offset = self._ents[0].index
        if compact_index <= offset:
            raise CompactedError(compact_index)
        if compact_index > self.last_index():
            raise ValueError(
                f"compact {compact_index} is out of bound lastindex({self.last_index()})"
            )
        i = compact_index - offset
        self._ents[0] = raft_pb2.Entry(index=self._ents[i].index, term=self._ents[i].term)
        del self._ents[1 : i + 1]

    def append(self, entries: Sequence[raft_pb2.Entry]) -> None:
        """Append entries from a ``Ready``, replacing any conflicting suffix."""
        if not entries:
            return
        first = self.first_index()
        start = entries[0].index
        if start + len(entries) - 1 < first:
            return
        if first > start:
            entries = entries[first - start :]
            start = first
        offset = start - self._ents[0].index
        if offset > len(self._ents):
            raise ValueError(f"missing log entry [last: {self.last_index()}, append at: {start}]")
        del self._ents[offset:]
        self._ents.extend(entries)
