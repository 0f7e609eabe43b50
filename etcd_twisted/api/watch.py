"""The ``etcdserverpb.Watch`` service (etcd's ``server/etcdserver/api/v3rpc/watch.go``).

One gRPC call is one :class:`~etcd_twisted.mvcc.watch_stream.WatchStream`:
requests create and cancel watchers and ask for progress; every response the
stream queues is sent in order, with a header. While the transport has sends
it has not taken, the watch stream is marked blocked, so events wait in the
store's history rather than in memory, and no further requests are read.

As in etcd, the client's half-close does not end the call (the JSON gateway
half-closes right after its one request and still streams events); the call
ends when the client cancels it or the connection goes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from etcd_twisted._pb import rpc_pb2
from etcd_twisted._pb.kv_pb2 import Event
from etcd_twisted.config import GRPC_OVERHEAD_BYTES
from etcd_twisted.grpc import GrpcError, Registry, ServerContext, ServerStream
from etcd_twisted.mvcc.watchable_store import WatchableStore
from etcd_twisted.mvcc.watcher import WatcherNotExistError, WatchError, WatchResponse

PATH = "/etcdserverpb.Watch/Watch"
#: etcd's default progress notification interval (``--experimental-watch-progress-notify-interval``).
PROGRESS_INTERVAL = 600.0
#: etcd raises shorter progress intervals to this.
MIN_PROGRESS_INTERVAL = 0.1
#: A fragmenting watch splits responses above this (``--max-request-bytes`` + 512 KiB).
MAX_RESPONSE_BYTES = 1536 * 1024 + GRPC_OVERHEAD_BYTES

_FILTERS = {
    rpc_pb2.WatchCreateRequest.NOPUT: Event.PUT,
    rpc_pb2.WatchCreateRequest.NODELETE: Event.DELETE,
}
#: Bytes an event adds to a ``WatchResponse`` besides its own: field tag and length.
_EVENTS_TAG_BYTES = 1
#: The cancel reason of a watch its user may not read (etcd sends the gRPC error's text).
PERMISSION_DENIED_REASON = "rpc error: code = PermissionDenied desc = etcdserver: permission denied"

#: ``permitted(ctx, key, range_end)``: whether the call's user may watch the range.
WatchPermitted = Callable[[ServerContext, bytes, bytes], bool]


class WatchBackend(Protocol):
    """What the Watch service needs from the server."""

    @property
    def clock(self) -> IReactorTime: ...

    @property
    def watchable(self) -> WatchableStore: ...

    def header(self, revision: int = 0) -> rpc_pb2.ResponseHeader:
        """cluster_id, member_id, raft_term, and ``revision`` (0: the current one)."""
        ...


def register(
    registry: Registry,
    backend: WatchBackend,
    progress_interval: float = PROGRESS_INTERVAL,
    max_response_bytes: int = MAX_RESPONSE_BYTES,
    permitted: WatchPermitted | None = None,
) -> None:
    """Add ``Watch`` to ``registry``; ``progress_interval`` 0 means etcd's default;
    ``permitted`` (auth) decides whether a watch may be created."""
    if progress_interval <= 0:
        progress_interval = PROGRESS_INTERVAL
    interval = max(progress_interval, MIN_PROGRESS_INTERVAL)

    def watch(ctx: ServerContext, stream: ServerStream) -> None:
        _WatchCall(backend, ctx, stream, interval, max_response_bytes, permitted)

    registry.add_bidi_stream(PATH, rpc_pb2.WatchRequest, watch)


class _WatchCall:
    """One Watch call: requests in, the watch stream's responses out."""

    def __init__(
        self,
        backend: WatchBackend,
        ctx: ServerContext,
        stream: ServerStream,
        progress_interval: float,
        max_response_bytes: int,
        permitted: WatchPermitted | None = None,
    ) -> None:
        self._backend = backend
        self._ctx = ctx
        self._permitted = permitted
        self._stream = stream
        self._max_response_bytes = max_response_bytes
        self._ws = backend.watchable.new_watch_stream()
        self._fragment: set[int] = set()
        self._unsent = 0
        self._readers: list[Deferred[None]] = []
        self._closed = False
        self._ws.on_ready = self._drain
        self._progress = LoopingCall(self._ws.progress_tick)
        self._progress.clock = backend.clock
        self._progress.start(progress_interval, now=False)
        ctx.when_cancelled().addCallback(self._close)
        stream.set_receiver(self._on_message)

    # --- requests

    def _on_message(self, request: rpc_pb2.WatchRequest) -> Deferred[None] | None:
        kind = request.WhichOneof("request_union")
        if kind == "create_request":
            self._create(request.create_request)
        elif kind == "cancel_request":
            self._cancel(request.cancel_request.watch_id)
        elif kind == "progress_request":
            self._ws.request_progress()
        if not self._ws.blocked:
            return None
        reader: Deferred[None] = Deferred()
        self._readers.append(reader)
        return reader

    def _create(self, req: rpc_pb2.WatchCreateRequest) -> None:
        ws = self._ws
        if self._permitted is not None and not self._permitted(
            self._ctx, req.key or b"\0", req.range_end
        ):
            ws.refuse(PERMISSION_DENIED_REASON, req.watch_id)
            return
        try:
            watch_id = ws.watch(
                req.key or b"\0",
                req.range_end,
                start_rev=req.start_revision,
                filters=[_FILTERS[f] for f in req.filters if f in _FILTERS],
                prev_kv=req.prev_kv,
                progress_notify=req.progress_notify,
                watch_id=req.watch_id,
            )
        except WatchError as e:
            ws.refuse(str(e))
            return
        if req.fragment:
            self._fragment.add(watch_id)

    def _cancel(self, watch_id: int) -> None:
        try:
            self._ws.cancel(watch_id)
        except WatcherNotExistError:
            pass

    # --- responses

    def _drain(self) -> None:
        """Send what the watch stream has, unless the transport is still behind."""
        ws = self._ws
        if self._closed or ws.blocked:
            return
        for response in ws.take():
            if response.canceled:
                self._fragment.discard(response.watch_id)
            for message in self._messages(response):
                self._unsent += 1
                self._stream.send(message).addCallbacks(self._sent, self._send_failed)
        if self._unsent:
            ws.set_blocked(True)

    def _sent(self, _: object) -> None:
        self._unsent -= 1
        if self._unsent or self._closed or not self._ws.blocked:
            return
        self._ws.set_blocked(False)
        readers, self._readers = self._readers, []
        for reader in readers:
            reader.callback(None)
        self._drain()

    def _send_failed(self, failure: Failure) -> None:
        """The call is over; ``when_cancelled`` cleans up."""
        failure.trap(GrpcError)
        self._unsent -= 1

    def _messages(self, r: WatchResponse) -> list[rpc_pb2.WatchResponse]:
        header = self._backend.header(r.revision)
        if r.compact_revision:
            # etcd answers a compacted watch with no revision in the header.
            header.revision = 0
        message = rpc_pb2.WatchResponse(
            header=header,
            watch_id=r.watch_id,
            created=r.created,
            canceled=r.canceled,
            compact_revision=r.compact_revision,
            cancel_reason=r.cancel_reason,
            events=r.events,
        )
        if r.watch_id not in self._fragment:
            return [message]
        return fragments(message, self._max_response_bytes)

    def _close(self, _: object) -> None:
        self._closed = True
        self._ws.close()
        if self._progress.running:
            self._progress.stop()


def fragments(message: rpc_pb2.WatchResponse, max_bytes: int) -> list[rpc_pb2.WatchResponse]:
    """``message`` split so each part stays under ``max_bytes`` (or holds one event),
    every part but the last marked ``fragment`` (etcd's ``sendFragments``)."""
    if len(message.events) < 2 or message.ByteSize() < max_bytes:
        return [message]
    base = rpc_pb2.WatchResponse()
    base.CopyFrom(message)
    del base.events[:]
    base_size = base.ByteSize()
    parts = []
    part, size = _part(base), base_size
    for ev in message.events:
        ev_size = ev.ByteSize()
        added = _EVENTS_TAG_BYTES + _varint_len(ev_size) + ev_size
        if part.events and size + added >= max_bytes:
            parts.append(part)
            part, size = _part(base), base_size
        part.events.append(ev)
        size += added
    parts.append(part)
    parts[-1].fragment = False
    return parts


def _part(base: rpc_pb2.WatchResponse) -> rpc_pb2.WatchResponse:
    part = rpc_pb2.WatchResponse()
    part.CopyFrom(base)
    part.fragment = True
    return part


def _varint_len(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)
