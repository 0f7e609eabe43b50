"""``SnapshotInstaller``: taking in a snapshot the leader sent.

The peer transport spools the database that comes with a ``MsgSnap`` to a file and
hands over the message; raft then asks (through the Ready loop) to persist the
snapshot, the snap file and its WAL record, before anything after it, and to apply
it: the received database is restored next to the live backend on a thread, then
swapped in and the member's state reopened over it. The received file is kept until
the swap, so a member that stops in between installs it at restart (``bootstrap``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from etcd_twisted import failpoints
from etcd_twisted._pb import raft_pb2, wal_pb2
from etcd_twisted.backend import Backend, restore_snapshot
from etcd_twisted.server.errors import CorruptError
from etcd_twisted.server.wal_writer import WALWriter
from etcd_twisted.wal import WAL, Snapshotter, backend_path
from etcd_twisted.wal.files import fsync_dir


class SnapshotInstaller:
    """Persists and installs snapshots from the leader (see the module docstring)."""

    log = Logger()

    def __init__(
        self,
        data_dir: str,
        wal: WAL,
        snapshotter: Snapshotter,
        wal_writer: WALWriter,
        backend: Callable[[], Backend],
        open_backend: Callable[[str], Backend],
        install: Callable[[Backend, int], None],
    ) -> None:
        self._data_dir = data_dir
        self._wal = wal
        self._snapshotter = snapshotter
        self._wal_writer = wal_writer
        self._backend = backend
        self._open_backend = open_backend
        self._install = install
        #: Databases received from the leader, by the snapshot index they go with.
        self._received: dict[int, str] = {}

    def received(self, message: raft_pb2.Message, path: str) -> None:
        """The transport spooled the database of ``message`` to ``path``."""
        self._received[message.snapshot.metadata.index] = path

    def persist(self, snap: raft_pb2.Snapshot) -> Deferred[None]:
        """Save the snapshot (file, then WAL record) on the writer thread."""
        md = snap.metadata
        walsnap = wal_pb2.Snapshot(index=md.index, term=md.term, conf_state=md.conf_state)

        def save() -> None:
            self._snapshotter.save_snap(snap)
            self._wal.save_snapshot(walsnap)

        return self._wal_writer.call(save)

    def apply(self, snap: raft_pb2.Snapshot) -> Deferred[None]:
        """Replace the backend with the database received with ``snap``."""
        index = snap.metadata.index
        path = self._received.pop(index, None)
        if path is None:
            raise CorruptError(f"no database was received with the snapshot at index {index}")
        target = backend_path(self._data_dir)
        incoming = target + ".incoming"
        backend = self._backend()

        def restore() -> None:
            with open(path, "rb") as f:
                chunks = iter(lambda: f.read(1 << 20), b"")
                restore_snapshot(incoming, chunks, map_size=backend.map_size)

        def swap(_: None) -> None:
            failpoints.hit("before_apply_snapshot")
            backend.close()
            os.replace(incoming, target)
            fsync_dir(os.path.dirname(target))
            for stale in (target + "-lock", incoming + "-lock"):
                if os.path.exists(stale):
                    os.unlink(stale)
            self._install(self._open_backend(target), index)
            # Kept until now: a restart before the swap installs it (``bootstrap``).
            os.unlink(path)
            failpoints.hit("after_apply_snapshot")
            self.log.info("applied a snapshot from the leader at index {index}", index=index)

        return threads.deferToThread(restore).addCallback(swap)
