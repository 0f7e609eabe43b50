"""Raft snapshots every ``--snapshot-count`` applied entries, and purging old files.

A snapshot lets a member forget the log before it: on restart it loads the newest
snapshot and replays only the WAL after it. The backend is the state, so it must be
on disk first: the snapshot's index is fixed, the backend batch is committed and
fdatasync'ed (on the WAL writer thread, in order with WAL writes), then the snapshot
file and the WAL's snapshot record are written, the WAL files before it are released,
and files beyond ``--max-snapshots`` / ``--max-wals`` are purged. The in-memory raft
log keeps the last ``CATCH_UP_ENTRIES`` entries so slow followers need no snapshot.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from etcd_twisted._pb import raft_pb2, wal_pb2
from etcd_twisted.backend import Backend
from etcd_twisted.raft import MemoryStorage
from etcd_twisted.server.wal_writer import WALWriter
from etcd_twisted.wal import WAL, Snapshotter, purge_snapshots, purge_wals

#: Entries kept in memory behind a snapshot for followers catching up (etcd's default).
CATCH_UP_ENTRIES = 5000


class SnapshotTaker:
    """Takes a snapshot when enough entries were applied since the last one."""

    log = Logger()

    def __init__(
        self,
        storage: MemoryStorage,
        backend: Callable[[], Backend],
        wal: WAL,
        wal_writer: WALWriter,
        snapshotter: Snapshotter,
        conf_state: Callable[[], raft_pb2.ConfState],
        snapshot_count: int,
        max_snapshots: int,
        max_wals: int,
        catch_up_entries: int = CATCH_UP_ENTRIES,
    ) -> None:
        self._storage = storage
        self._backend = backend
        self._wal = wal
        self._writer = wal_writer
        self._snapshotter = snapshotter
        self._conf_state = conf_state
        self.snapshot_count = snapshot_count
        self._max_snapshots = max_snapshots
        self._max_wals = max_wals
        self._catch_up_entries = catch_up_entries
        self.snapshot_index = storage.snapshot().metadata.index
        self._running = False
        #: Snapshots taken since start (for tests and metrics).
        self.taken = 0

    def maybe_snapshot(self, applied: int) -> Deferred[None] | None:
        """Start a snapshot at ``applied`` if it is due and none is running."""
        if self._running or applied - self.snapshot_index <= self.snapshot_count:
            return None
        received = self._storage.snapshot().metadata.index
        if applied <= received:
            # A snapshot from the leader already covers ``applied``.
            self.snapshot_index = received
            return None
        self._running = True
        snap = self._storage.create_snapshot(applied, self._conf_state(), b"")
        backend = self._backend()
        backend.force_commit()
        d = self._writer.call(self._persist, snap, backend)
        d.addCallback(self._persisted, snap)
        d.addErrback(self._failed)
        return d

    def _persist(self, snap: raft_pb2.Snapshot, backend: Backend) -> None:
        """On the writer thread: backend to disk, then the snapshot, then release and purge."""
        md = snap.metadata
        backend.sync()
        self._snapshotter.save_snap(snap)
        self._wal.save_snapshot(
            wal_pb2.Snapshot(index=md.index, term=md.term, conf_state=md.conf_state)
        )
        self._wal.release_lock_to(md.index)
        purge_snapshots(self._snapshotter.dir, self._max_snapshots)
        purge_wals(self._wal.dir, self._max_wals)

    def _persisted(self, _: None, snap: raft_pb2.Snapshot) -> None:
        index = snap.metadata.index
        self.snapshot_index = index
        self.taken += 1
        compact_to = index - self._catch_up_entries
        if compact_to > self._storage.first_index():
            self._storage.compact(compact_to)
        self._running = False
        self.log.info("saved snapshot at index {index}", index=index)

    def _failed(self, failure: object) -> None:
        self._running = False
        self.log.failure("saving a snapshot failed", failure)
