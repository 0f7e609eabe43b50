"""Snapshot transfer: the sender streams the database, the receiver spools it to a file.

A ``MsgSnap`` carries only raft's snapshot metadata. The sender opens a
``/raft/snapshot`` link for it and writes::

    MESSAGE (the MsgSnap) · SNAP_DATA × n (the database stream) · SNAP_END

pulling each database chunk on a worker thread and pausing while the connection is
backed up, so the database is never held whole in memory. The receiver writes the
chunks to ``<dir>/<index>.snap.db.part``, syncs and renames it to
``<index>.snap.db`` at ``SNAP_END``, hands message and path over, and answers
``SNAP_OK`` once the hand-over succeeded (``SNAP_FAILED`` with a reason otherwise).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.python.failure import Failure
from zope.interface import implementer

from etcd_twisted._pb import raft_pb2
from etcd_twisted.peer import codec
from etcd_twisted.peer.handshake import Hello
from etcd_twisted.peer.link import DialingLink, Timing
from etcd_twisted.wal import snapshot_db_path
from etcd_twisted.wal.files import fsync_dir, makedirs_durable

#: Runs ``f(*args)`` off the reactor thread; fires with its result.
RunInThread = Callable[..., Deferred[Any]]


class DbSnapshot(Protocol):
    """A consistent database stream (``backend.BackendSnapshot``)."""

    def chunks(self) -> Iterator[bytes]: ...
    def close(self) -> None: ...


class SnapshotRefused(Exception):
    """The receiver answered ``SNAP_FAILED``."""


@implementer(IPushProducer)
class SnapshotSender(DialingLink):
    """Sends one ``MsgSnap`` and its database; ``done`` fires on ``SNAP_OK``, fails otherwise."""

    def __init__(
        self,
        clock: IReactorTime,
        timing: Timing,
        hello: Hello,
        host: str,
        message: raft_pb2.Message,
        db: DbSnapshot,
        run_in_thread: RunInThread,
    ) -> None:
        super().__init__(clock, timing, hello, host)
        self._message = message
        self._db: DbSnapshot | None = db
        self._chunks = db.chunks()
        self._run_in_thread = run_in_thread
        self._paused = False
        self._reading = False
        self._sent_all = False
        self.sent_bytes = 0
        self.done: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.register_producer()
        super().connectionMade()

    def link_opened(self) -> None:
        self.write(codec.encode(codec.MESSAGE, self._message.SerializeToString()))
        self._pump()

    def frame_received(self, kind: int, payload: bytes) -> None:
        if kind == codec.SNAP_OK:
            self._finish(None)
        elif kind == codec.SNAP_FAILED:
            self._finish(SnapshotRefused(payload.decode("utf-8", "replace")))
        self.close()

    def link_lost(self, reason: Failure | None) -> None:
        self._finish(reason or Failure(ConnectionError("snapshot link lost")))

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._pump()

    def stopProducing(self) -> None:
        self._paused = True

    def _pump(self) -> None:
        if self._paused or self._reading or self._sent_all or self.closing:
            return
        self._reading = True
        self._run_in_thread(next, self._chunks, None).addCallbacks(self._chunk, self._read_failed)

    def _chunk(self, chunk: bytes | None) -> None:
        self._reading = False
        if self.closing:
            self.release()
            return
        if chunk is None:
            self._sent_all = True
            self.release()
            self.write(codec.encode(codec.SNAP_END))
            return
        self.transport.writeSequence([codec.header(codec.SNAP_DATA, len(chunk)), chunk])
        self.sent_bytes += len(chunk)
        self._pump()

    def _read_failed(self, failure: Failure) -> None:
        self._reading = False
        self._finish(failure)
        self.abort()

    def _finish(self, result: Exception | Failure | None) -> None:
        self.release()
        if self.done.called:
            return
        if result is None:
            self.done.callback(None)
        else:
            self.done.errback(result)

    def release(self) -> None:
        """Release the database snapshot (once no chunk is being read); sending stops."""
        if self._reading:
            self.closing = True
            return
        if self._db is not None:
            self._chunks = iter(())
            self._db.close()
            self._db = None


class SnapshotFile:
    """The receiver's spool file for one snapshot's database stream."""

    def __init__(self, directory: str, index: int) -> None:
        makedirs_durable(directory)
        self.final_path = snapshot_db_path(directory, index)
        fd, self.part_path = tempfile.mkstemp(
            prefix=f"{index:016x}.", suffix=".snap.db.part", dir=directory
        )
        self._file = os.fdopen(fd, "wb")
        self.size = 0

    def write(self, data: bytes) -> None:
        """Append a chunk."""
        self._file.write(data)
        self.size += len(data)

    def complete(self) -> str:
        """Sync, close and rename into place (blocking: run it on a thread); returns the path."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.part_path, self.final_path)
        fsync_dir(os.path.dirname(self.final_path))
        return self.final_path

    def discard(self) -> None:
        """Close and delete an incomplete file."""
        self._file.close()
        if os.path.exists(self.part_path):
            os.unlink(self.part_path)
