"""Watch coalescing: client watchers on the same key range share one upstream watch.

A :class:`Broadcast` is one upstream watch on ``[key, range_end)`` (always with
``prev_kv`` and progress notifications, so it can serve any client's options) and
the client watchers it serves. A new watcher joins a broadcast that will not make
it miss events: one already running whose next revision is at or before the
watcher's start (a watcher from "now" joins at the broadcast's next revision), or
one still being created from an older revision. Otherwise it gets a broadcast of
its own. (etcd's proxy gives each new watcher from "now" a broadcast of its own
and merges it into an older one once created; joining at once ends the same way
without the extra upstream watch.) Each watcher then receives only the events at or after its own next
revision, after its filters, with ``prev_kv`` only if it asked for it.

When an upstream watch fails (its member went away), the broadcast opens a new
one from its next revision, so the watchers see neither a gap nor a repeat.
No I/O here: upstream watches come from the ``open_watch`` callable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from etcd_twisted._pb import kv_pb2, rpc_pb2

__all__ = ["Broadcast", "ClientWatcher", "Encoded", "Fanout", "UpstreamWatch", "WatchHub"]

_NOPUT, _NODELETE = 0, 1
_PUT, _DELETE = kv_pb2.Event.PUT, kv_pb2.Event.DELETE


class UpstreamWatch(Protocol):
    """An open upstream watch."""

    def cancel(self) -> None: ...


#: ``open_watch(request, on_response, on_closed, metadata)``: start an upstream watch
#: (with the call metadata, e.g. the auth token, of the watcher that caused it); responses
#: come to ``on_response``; ``on_closed(reason)`` once it ends other than by ``cancel``.
OpenWatch = Callable[
    [
        rpc_pb2.WatchCreateRequest,
        Callable[[rpc_pb2.WatchResponse], Any],
        Callable[[str], Any],
        Sequence[tuple[str, Any]],
    ],
    UpstreamWatch,
]


@dataclass(eq=False)
class ClientWatcher:
    """One client's watch, as the hub serves it."""

    watch_id: int
    key: bytes
    range_end: bytes
    start_revision: int
    send: Callable[[rpc_pb2.WatchResponse | Encoded], Any]
    prev_kv: bool = False
    progress_notify: bool = False
    filters: frozenset[int] = frozenset()
    #: The first revision this watcher has not seen yet (0 until it is created).
    next_revision: int = 0
    created: bool = False
    #: ``watch_id`` as an encoded protobuf field, for :class:`Fanout`.
    id_field: bytes = b""
    #: The client's call metadata (its auth token) for an upstream watch it opens.
    metadata: Sequence[tuple[str, Any]] = ()

    def __post_init__(self) -> None:
        self.id_field = watch_id_field(self.watch_id)

    @classmethod
    def from_request(
        cls,
        watch_id: int,
        req: rpc_pb2.WatchCreateRequest,
        send: Callable[..., Any],
        metadata: Sequence[tuple[str, Any]] = (),
    ) -> ClientWatcher:
        return cls(
            watch_id,
            req.key,
            req.range_end,
            req.start_revision,
            send,
            prev_kv=req.prev_kv,
            progress_notify=req.progress_notify,
            filters=frozenset(req.filters),
            next_revision=req.start_revision,
            metadata=metadata,
        )

    def deliver(self, response: rpc_pb2.WatchResponse, fanout: Fanout | None = None) -> None:
        """Pass on the events of ``response`` this watcher wants; a progress
        notification only if it asked for them. A watcher that takes every event
        gets ``fanout``'s bytes, encoded once for all such watchers."""
        if fanout is not None and fanout.first >= self.next_revision and not self.filters:
            self.next_revision = fanout.last + 1
            self.send(fanout.encoded(self.id_field, self.prev_kv))
            return
        events = []
        for event in response.events:
            if event.kv.mod_revision < self.next_revision:
                continue
            if (event.type == _PUT and _NOPUT in self.filters) or (
                event.type == _DELETE and _NODELETE in self.filters
            ):
                continue
            if not self.prev_kv and event.HasField("prev_kv"):
                event = kv_pb2.Event(type=event.type, kv=event.kv)
            events.append(event)
        if response.events:
            self.next_revision = max(self.next_revision, response.events[-1].kv.mod_revision + 1)
            if events:
                self.send(
                    rpc_pb2.WatchResponse(
                        header=response.header, watch_id=self.watch_id, events=events
                    )
                )
            return
        if response.header.revision + 1 > self.next_revision:
            self.next_revision = response.header.revision + 1
        if self.progress_notify:
            self.send(rpc_pb2.WatchResponse(header=response.header, watch_id=self.watch_id))

    def send_created(self, header: rpc_pb2.ResponseHeader) -> None:
        self.created = True
        self.send(rpc_pb2.WatchResponse(header=header, watch_id=self.watch_id, created=True))

    def send_canceled(self, header: rpc_pb2.ResponseHeader, reason: str, compact: int) -> None:
        self.send(
            rpc_pb2.WatchResponse(
                header=header,
                watch_id=self.watch_id,
                created=not self.created,
                canceled=True,
                cancel_reason=reason,
                compact_revision=compact,
            )
        )


class Encoded:
    """A message serialized already (the gRPC layer asks for its bytes)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def SerializeToString(self) -> bytes:  # noqa: N802 - protobuf's name
        return self.data


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 as protobuf encodes it
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_delimited(tag: int, payload: bytes) -> bytes:
    return bytes((tag,)) + _varint(len(payload)) + payload


_HEADER_TAG, _WATCH_ID_TAG, _EVENT_TAG = 0x0A, 0x10, 0x5A


class Fanout:
    """One upstream response's events, encoded once (with and without ``prev_kv``) for
    every watcher that takes all of them: a ``WatchResponse`` is its watch id, header and
    events (fields may come in any order), so only the id differs between watchers."""

    __slots__ = ("_response", "first", "last", "_bodies")

    def __init__(self, response: rpc_pb2.WatchResponse) -> None:
        self._response = response
        self.first = response.events[0].kv.mod_revision
        self.last = response.events[-1].kv.mod_revision
        self._bodies: dict[bool, bytes] = {}

    def encoded(self, watch_id_field: bytes, prev_kv: bool) -> Encoded:
        """The response for the watcher whose encoded id field is ``watch_id_field``."""
        body = self._bodies.get(prev_kv)
        if body is None:
            response = self._response
            body = self._bodies[prev_kv] = _length_delimited(
                _HEADER_TAG, response.header.SerializeToString()
            ) + b"".join(
                _length_delimited(
                    _EVENT_TAG,
                    (
                        event if prev_kv else kv_pb2.Event(type=event.type, kv=event.kv)
                    ).SerializeToString(),
                )
                for event in response.events
            )
        return Encoded(watch_id_field + body)


def watch_id_field(watch_id: int) -> bytes:
    """The encoded ``watch_id`` field (nothing for 0, protobuf's default)."""
    return bytes((_WATCH_ID_TAG,)) + _varint(watch_id) if watch_id else b""


@dataclass(eq=False)
class Broadcast:
    """One upstream watch and the client watchers it serves."""

    hub: WatchHub
    key: bytes
    range_end: bytes
    start_revision: int
    receivers: set[ClientWatcher] = field(default_factory=set)
    next_revision: int = 0
    responses: int = 0
    header: rpc_pb2.ResponseHeader = field(default_factory=rpc_pb2.ResponseHeader)
    upstream: UpstreamWatch | None = None
    stopped: bool = False
    metadata: Sequence[tuple[str, Any]] = ()

    def accepts(self, watcher: ClientWatcher) -> bool:
        """True if ``watcher`` can join without missing an event."""
        if self.stopped:
            return False
        if watcher.start_revision == 0:
            # A watcher from "now" is created at the revision the upstream watch
            # reports, whether that is known yet or not.
            return self.responses > 0 or self.start_revision == 0
        if self.responses > 0:
            return self.next_revision <= watcher.start_revision
        return 0 < self.start_revision <= watcher.start_revision

    def join(self, watcher: ClientWatcher) -> None:
        self.receivers.add(watcher)
        if self.responses > 0:
            if watcher.start_revision == 0:
                watcher.next_revision = self.next_revision
            header = rpc_pb2.ResponseHeader()
            header.CopyFrom(self.header)
            header.revision = self.next_revision - 1
            watcher.send_created(header)

    def open(self) -> None:
        start = self.next_revision or self.start_revision
        request = rpc_pb2.WatchCreateRequest(
            key=self.key,
            range_end=self.range_end,
            start_revision=start,
            prev_kv=True,
            progress_notify=True,
        )
        self.upstream = self.hub.open_watch(
            request, self.on_response, self.on_closed, self.metadata
        )

    def on_response(self, response: rpc_pb2.WatchResponse) -> None:
        if self.stopped:
            return
        self.header = response.header
        if response.canceled:
            self.hub.discard(self)
            for watcher in list(self.receivers):
                watcher.send_canceled(
                    response.header, response.cancel_reason, response.compact_revision
                )
                self.hub.forget(watcher)
            return
        if response.created:
            first = self.responses == 0
            self.responses += 1
            if self.next_revision == 0:
                self.next_revision = self.start_revision or response.header.revision + 1
            if first:
                for watcher in self.receivers:
                    if watcher.start_revision == 0:
                        watcher.next_revision = self.next_revision
                    if not watcher.created:
                        watcher.send_created(response.header)
            return
        self.responses += 1
        if response.events:
            self.next_revision = max(self.next_revision, response.events[-1].kv.mod_revision + 1)
            self.hub.events_coalesced += max(0, len(self.receivers) - 1)
        elif response.header.revision + 1 > self.next_revision:
            self.next_revision = response.header.revision + 1
        fanout = Fanout(response) if response.events else None
        for watcher in list(self.receivers):
            watcher.deliver(response, fanout)

    def on_closed(self, reason: str) -> None:
        """The upstream watch broke: open another from the next revision."""
        self.upstream = None
        if not self.stopped:
            self.hub.reopen_later(self)

    def stop(self) -> None:
        self.stopped = True
        if self.upstream is not None:
            upstream, self.upstream = self.upstream, None
            upstream.cancel()


class WatchHub:
    """Every broadcast of a proxy, by key range."""

    def __init__(
        self, open_watch: OpenWatch, call_later: Callable[[float, Callable[[], Any]], Any]
    ) -> None:
        self.open_watch = open_watch
        self._call_later = call_later
        self._ranges: dict[tuple[bytes, bytes], list[Broadcast]] = {}
        self._of: dict[ClientWatcher, Broadcast] = {}
        #: Watchers that joined a running broadcast, and events sent to more than one.
        self.watchers_coalesced = 0
        self.events_coalesced = 0

    @property
    def upstream_watches(self) -> int:
        return sum(len(found) for found in self._ranges.values())

    @property
    def watchers(self) -> int:
        return len(self._of)

    def add(self, watcher: ClientWatcher) -> None:
        """Serve ``watcher`` from a fitting broadcast, or a new one."""
        broadcasts = self._ranges.setdefault((watcher.key, watcher.range_end), [])
        for broadcast in broadcasts:
            if broadcast.accepts(watcher):
                broadcast.join(watcher)
                self._of[watcher] = broadcast
                self.watchers_coalesced += 1
                return
        broadcast = Broadcast(
            self, watcher.key, watcher.range_end, watcher.start_revision, metadata=watcher.metadata
        )
        broadcasts.append(broadcast)
        broadcast.join(watcher)
        self._of[watcher] = broadcast
        broadcast.open()

    def remove(self, watcher: ClientWatcher) -> None:
        """Stop serving ``watcher``; the last one out cancels the upstream watch."""
        broadcast = self._of.pop(watcher, None)
        if broadcast is None:
            return
        broadcast.receivers.discard(watcher)
        if not broadcast.receivers:
            self.discard(broadcast)

    def forget(self, watcher: ClientWatcher) -> None:
        self._of.pop(watcher, None)

    def discard(self, broadcast: Broadcast) -> None:
        broadcast.stop()
        found = self._ranges.get((broadcast.key, broadcast.range_end), [])
        if broadcast in found:
            found.remove(broadcast)
        if not found:
            self._ranges.pop((broadcast.key, broadcast.range_end), None)

    def reopen_later(self, broadcast: Broadcast, delay: float = 0.1) -> None:
        def reopen() -> None:
            if not broadcast.stopped:
                broadcast.open()

        self._call_later(delay, reopen)
