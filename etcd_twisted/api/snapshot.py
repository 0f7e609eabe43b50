"""``Maintenance.Snapshot``: the backend as etcd's bbolt file, streamed in 32 KiB messages.

As etcd 3.5.1 streams it: each message carries up to 32 KiB of the file and the
bytes still to come after it (``remaining_bytes``); a last message carries the
sha256 of the whole file (with ``remaining_bytes`` 0), which ``etcdctl snapshot
save`` appends to the file and ``etcdutl snapshot restore`` checks. No header
is set, as etcd sets none.

The file is produced from one LMDB read transaction (a consistent view while the
member keeps writing) on a worker thread, a batch of messages at a time: the next
batch is made only once the previous one was handed to the connection and the
client's flow-control window let it drain, so memory stays bounded whatever the
database's size. While auth is on, only a user with the root role may take one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from twisted.internet import threads
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.api.errors import to_grpc_error
from etcd_twisted.api.unary import require_leader, token_of
from etcd_twisted.auth.errors import AuthError
from etcd_twisted.backend import BackendSnapshot
from etcd_twisted.backend.bbolt_write import BboltFile
from etcd_twisted.backend.etcd_layout import to_etcd
from etcd_twisted.grpc import GrpcError, ServerContext, ServerStream, StatusCode

__all__ = ["CHUNK_BYTES", "etcd_snapshot_file", "fixed_chunks", "snapshot_handler"]

#: etcd's ``snapshotSendBufferSize``.
CHUNK_BYTES = 32 * 1024
#: Messages made per trip to the worker thread (1 MiB).
BATCH = 32

RunInThread = Callable[..., Deferred[Any]]


def etcd_snapshot_file(snapshot: BackendSnapshot) -> BboltFile:
    """The bbolt file etcd would have for the backend's pinned view."""
    return BboltFile(lambda: to_etcd(snapshot.buckets()))


def fixed_chunks(pieces: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Re-cut a byte stream into ``size``-byte chunks (the last one shorter)."""
    buf = bytearray()
    for piece in pieces:
        buf += piece
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)


class _Batches:
    """Worker-thread side: the file's chunks a batch at a time, and their sha256."""

    def __init__(self, file: BboltFile) -> None:
        self._chunks = fixed_chunks(file.chunks(), CHUNK_BYTES)
        self.sha = hashlib.sha256()

    def next(self) -> list[bytes]:
        batch = []
        for chunk in self._chunks:
            self.sha.update(chunk)
            batch.append(chunk)
            if len(batch) == BATCH:
                break
        return batch


def snapshot_handler(
    server: Any, run_in_thread: RunInThread = threads.deferToThread
) -> Callable[[rpc_pb2.SnapshotRequest, ServerContext, ServerStream], Deferred[None]]:
    """The server-streaming handler, running the file's work through ``run_in_thread``."""

    async def stream_snapshot(ctx: ServerContext, stream: ServerStream) -> None:
        require_leader(server, ctx)
        try:
            info = await maybeDeferred(server.auth_frontend.auth_info, token_of(ctx))
            server.auth_frontend.check_admin(info)
        except AuthError as e:
            # etcd 3.5.1's maintenance server returns the auth error unconverted.
            raise GrpcError(StatusCode.UNKNOWN, str(e)) from None
        snapshot = server.state.backend.snapshot()
        try:
            file = etcd_snapshot_file(snapshot)
            total = await run_in_thread(lambda: file.size)
            batches = _Batches(file)
            sent = 0
            while batch := await run_in_thread(batches.next):
                for blob in batch:
                    sent += len(blob)
                    # Fails once the call is cancelled, which ends the stream.
                    await stream.send(
                        rpc_pb2.SnapshotResponse(remaining_bytes=total - sent, blob=blob)
                    )
            await stream.send(
                rpc_pb2.SnapshotResponse(remaining_bytes=0, blob=batches.sha.digest())
            )
        finally:
            snapshot.close()

    def handler(
        request: rpc_pb2.SnapshotRequest, ctx: ServerContext, stream: ServerStream
    ) -> Deferred[None]:
        return Deferred.fromCoroutine(stream_snapshot(ctx, stream)).addErrback(_as_grpc_error)

    return handler


def _as_grpc_error(failure: Failure) -> None:
    """End the call with etcd's status for the error (e.g. "no leader")."""
    raise to_grpc_error(failure)
