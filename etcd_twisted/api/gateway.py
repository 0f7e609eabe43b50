"""The JSON gateway (``/v3/...``), with grpc-gateway's encoding as etcd 3.5 serves it.

A request body is JSON for the method's request message, read as Go's jsonpb reads it
(:mod:`etcd_twisted.api.gojson`: proto or lowerCamel field names, unknown fields
ignored, ``bytes`` as base64, integers as numbers or quoted, Go's error texts); the
response is the response message with proto field names, 64-bit integers as strings
and zero values left out, written as Go writes JSON. Calls run through the very same
handlers as gRPC (looked up in the method registry), so both paths answer alike.
Errors come back as ``{"error": msg, "code": grpc_code, "message": msg}`` with
grpc-gateway's HTTP status for the code.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from zope.interface import implementer

from etcd_twisted._pb import rpc_pb2, v3election_pb2, v3lock_pb2
from etcd_twisted.api.auth import GATEWAY_ROUTES as AUTH_ROUTES
from etcd_twisted.api.errors import HTTP_STATUS, to_grpc_error
from etcd_twisted.api.gojson import Decoder, GoJsonError, marshal, parse
from etcd_twisted.api.http1 import too_large_message
from etcd_twisted.grpc import GrpcError, Metadata, Registry, StatusCode
from etcd_twisted.grpc.service import MethodKind

#: HTTP path → (gRPC method path, request message class), as etcd 3.5's gateway maps them.
ROUTES: dict[str, tuple[str, type[Message]]] = {
    "/v3/kv/range": ("/etcdserverpb.KV/Range", rpc_pb2.RangeRequest),
    "/v3/kv/put": ("/etcdserverpb.KV/Put", rpc_pb2.PutRequest),
    "/v3/kv/deleterange": ("/etcdserverpb.KV/DeleteRange", rpc_pb2.DeleteRangeRequest),
    "/v3/kv/txn": ("/etcdserverpb.KV/Txn", rpc_pb2.TxnRequest),
    "/v3/kv/compaction": ("/etcdserverpb.KV/Compact", rpc_pb2.CompactionRequest),
    "/v3/lease/grant": ("/etcdserverpb.Lease/LeaseGrant", rpc_pb2.LeaseGrantRequest),
    "/v3/lease/revoke": ("/etcdserverpb.Lease/LeaseRevoke", rpc_pb2.LeaseRevokeRequest),
    "/v3/kv/lease/revoke": ("/etcdserverpb.Lease/LeaseRevoke", rpc_pb2.LeaseRevokeRequest),
    "/v3/lease/timetolive": (
        "/etcdserverpb.Lease/LeaseTimeToLive",
        rpc_pb2.LeaseTimeToLiveRequest,
    ),
    "/v3/kv/lease/timetolive": (
        "/etcdserverpb.Lease/LeaseTimeToLive",
        rpc_pb2.LeaseTimeToLiveRequest,
    ),
    "/v3/lease/leases": ("/etcdserverpb.Lease/LeaseLeases", rpc_pb2.LeaseLeasesRequest),
    "/v3/kv/lease/leases": ("/etcdserverpb.Lease/LeaseLeases", rpc_pb2.LeaseLeasesRequest),
    "/v3/cluster/member/add": ("/etcdserverpb.Cluster/MemberAdd", rpc_pb2.MemberAddRequest),
    "/v3/cluster/member/remove": (
        "/etcdserverpb.Cluster/MemberRemove",
        rpc_pb2.MemberRemoveRequest,
    ),
    "/v3/cluster/member/update": (
        "/etcdserverpb.Cluster/MemberUpdate",
        rpc_pb2.MemberUpdateRequest,
    ),
    "/v3/cluster/member/list": ("/etcdserverpb.Cluster/MemberList", rpc_pb2.MemberListRequest),
    "/v3/cluster/member/promote": (
        "/etcdserverpb.Cluster/MemberPromote",
        rpc_pb2.MemberPromoteRequest,
    ),
    "/v3/maintenance/alarm": ("/etcdserverpb.Maintenance/Alarm", rpc_pb2.AlarmRequest),
    "/v3/maintenance/status": ("/etcdserverpb.Maintenance/Status", rpc_pb2.StatusRequest),
    "/v3/maintenance/defragment": (
        "/etcdserverpb.Maintenance/Defragment",
        rpc_pb2.DefragmentRequest,
    ),
    # etcd 3.5.1 binds Hash and HashKV both to /v3/maintenance/hash; the first (Hash) wins.
    "/v3/maintenance/hash": ("/etcdserverpb.Maintenance/Hash", rpc_pb2.HashRequest),
    "/v3/maintenance/transfer-leadership": (
        "/etcdserverpb.Maintenance/MoveLeader",
        rpc_pb2.MoveLeaderRequest,
    ),
    "/v3/lock/lock": ("/v3lockpb.Lock/Lock", v3lock_pb2.LockRequest),
    "/v3/lock/unlock": ("/v3lockpb.Lock/Unlock", v3lock_pb2.UnlockRequest),
    "/v3/election/campaign": (
        "/v3electionpb.Election/Campaign",
        v3election_pb2.CampaignRequest,
    ),
    "/v3/election/proclaim": (
        "/v3electionpb.Election/Proclaim",
        v3election_pb2.ProclaimRequest,
    ),
    "/v3/election/leader": ("/v3electionpb.Election/Leader", v3election_pb2.LeaderRequest),
    "/v3/election/resign": ("/v3electionpb.Election/Resign", v3election_pb2.ResignRequest),
}

#: Streaming routes: the body is a sequence of JSON requests, each response one line.
STREAM_ROUTES: dict[str, tuple[str, type[Message]]] = {
    "/v3/watch": ("/etcdserverpb.Watch/Watch", rpc_pb2.WatchRequest),
    "/v3/lease/keepalive": ("/etcdserverpb.Lease/LeaseKeepAlive", rpc_pb2.LeaseKeepAliveRequest),
    "/v3/election/observe": ("/v3electionpb.Election/Observe", v3election_pb2.LeaderRequest),
    "/v3/maintenance/snapshot": ("/etcdserverpb.Maintenance/Snapshot", rpc_pb2.SnapshotRequest),
}

ROUTES.update(AUTH_ROUTES)

#: Headers etcd's gateway sends on every response.
_RESPONSE_HEADERS = (
    (b"access-control-allow-headers", b"accept, content-type, authorization"),
    (b"access-control-allow-methods", b"POST, GET, OPTIONS, PUT, DELETE"),
    (b"access-control-allow-origin", b"*"),
    (b"content-type", b"application/json"),
)

#: The gRPC call's header metadata, which grpc-gateway passes on once the call has
#: sent headers: on success, or with a stream's first message (never on an error).
_GRPC_METADATA = (b"grpc-metadata-content-type", b"application/grpc")


#: Python frames the JSON writers may use: ``MessageToDict`` and ``marshal`` recurse a few
#: frames per message level, and a Txn response may nest ``--max-txn-ops`` levels.
_RESPONSE_RECURSION_LIMIT = 20_000


@contextmanager
def _recursion_room(limit: int) -> Iterator[None]:
    """Let Python recurse ``limit`` frames deep meanwhile (pure-Python recursion since
    3.11 uses no C stack)."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(before, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


def to_dict(message: Message) -> Any:
    """``MessageToDict`` with proto names, for messages nested as deep as Txns go."""
    with _recursion_room(_RESPONSE_RECURSION_LIMIT):
        return json_format.MessageToDict(message, preserving_proto_field_name=True)


def to_json(message: Message) -> bytes:
    """A message as grpc-gateway writes it (proto names, int64 as strings, no zero values)."""
    body = to_dict(message)
    with _recursion_room(_RESPONSE_RECURSION_LIMIT):
        return marshal(body).encode()


def from_json(body: bytes, cls: type[Message]) -> Message:
    """Parse a unary request body as grpc-gateway does. Raises ``GrpcError``."""
    try:
        return parse(body, cls)
    except GoJsonError as e:
        raise GrpcError(StatusCode.INVALID_ARGUMENT, e.message) from None


def error_body(error: GrpcError) -> bytes:
    """The gateway's JSON error body."""
    body = {"error": error.message, "code": int(error.code), "message": error.message}
    return marshal(body).encode()


class GatewayContext:
    """What a handler sees of a gateway call: the HTTP request's metadata and peer."""

    def __init__(self, request: IRequest, method: str) -> None:
        self.method = method
        pairs: list[tuple[str, str]] = []
        token = request.getHeader(b"authorization")
        if token:
            pairs.append(("token", token.decode("latin-1")))
        for name, values in request.requestHeaders.getAllRawHeaders():
            lower = name.decode("latin-1").lower()
            if lower.startswith("grpc-metadata-"):
                for value in values:
                    pairs.append((lower[len("grpc-metadata-") :], value.decode("latin-1")))
        self.metadata = Metadata(pairs)
        self.peer = request.getClientAddress()
        self.deadline: float | None = None
        self.is_cancelled = False
        self._cancelled: Deferred[GrpcError] = Deferred()
        request.notifyFinish().addErrback(self._lost)

    def _lost(self, failure: Failure) -> None:
        self.is_cancelled = True
        self._cancelled.callback(GrpcError(StatusCode.CANCELLED, "context canceled"))

    def time_remaining(self) -> float | None:
        return None

    def peer_certificate(self) -> None:
        """None: as etcd's gateway (a proxy holding the server's own certificate), a
        gateway call never takes its user from a client certificate's CN."""
        return None

    def when_cancelled(self) -> Deferred[GrpcError]:
        return self._cancelled

    def set_initial_metadata(self, metadata: Any) -> None:
        """Gateway responses carry no extra metadata."""

    def set_trailing_metadata(self, metadata: Any) -> None:
        """Gateway responses carry no extra metadata."""


@implementer(IPushProducer)
class GatewayStream:
    """A streaming call as the gateway serves it: the body's requests in, lines out.

    It is the response's push producer: while the connection's buffer is full,
    ``send`` answers a Deferred that fires once the client has read enough (as a
    gRPC stream's ``send`` waits for the flow-control window), and once the client
    is gone ``send`` fails with CANCELLED.
    """

    def __init__(self, request: IRequest, messages: list[Message]) -> None:
        self._request = request
        self._messages = messages
        self._sent = False
        self._paused = False
        self._stopped = False
        self._waiters: list[Deferred[None]] = []
        #: Fires (with no more bytes to write) when the call ends.
        self.done: Deferred[bytes] = Deferred()
        request.registerProducer(self, True)

    def send(self, message: Message) -> Deferred[None]:
        """Write one response as a ``{"result": ...}`` line."""
        if self._stopped:
            return fail(GrpcError(StatusCode.CANCELLED, "context canceled"))
        if not self.done.called:
            if not self._sent:
                self._sent = True
                self._request.setHeader(*_GRPC_METADATA)
            self._request.write(b'{"result":' + to_json(message) + b"}\n")
            self._flush()
            if self._paused:
                d: Deferred[None] = Deferred()
                self._waiters.append(d)
                return d
        return succeed(None)

    def pauseProducing(self) -> None:
        """The connection's buffer is full: later sends wait."""
        self._paused = True

    def resumeProducing(self) -> None:
        """The client read enough: waiting sends go on."""
        self._paused = False
        self._wake()

    def stopProducing(self) -> None:
        """The connection is gone."""
        self._stopped = True
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

    def _flush(self) -> None:
        """Send what is written now, as grpc-gateway flushes after each message."""
        flush = getattr(self._request, "flush", None)
        if flush is not None:
            flush()

    def finish(self, error: GrpcError | None = None) -> None:
        """End the response (an error becomes a last ``{"error": ...}`` line)."""
        if self.done.called:
            return
        if error is not None:
            code = HTTP_STATUS.get(error.code, 500)
            if not self._sent:  # grpc-gateway sets the status while it still can
                self._request.setResponseCode(code)
            line = marshal(
                {"error": {"grpc_code": int(error.code), "http_code": code,
                           "message": error.message, "http_status": HTTPStatus(code).phrase}}
            )  # fmt: skip
            self._request.write(line.encode() + b"\n")
        self._flush()  # chunked even when empty, as grpc-gateway's streams are
        self._request.unregisterProducer()
        self._wake()
        self.done.callback(b"")

    def set_receiver(self, on_message: Any, on_end: Any = None) -> None:
        """Feed the body's requests in order (each after the previous one's Deferred)."""
        messages = iter(self._messages)

        def next_message(_: object = None) -> None:
            for message in messages:
                result = on_message(message)
                if isinstance(result, Deferred):
                    result.addCallback(next_message)
                    return
            if on_end is not None:
                on_end()

        next_message()


#: The gRPC server's default limit on a received message (etcd's ``--max-request-bytes``
#: 1.5 MiB plus 512 KiB).
DEFAULT_MAX_RECEIVE_BYTES = 2 << 20
#: How much longer than the message a JSON body may be: base64 makes bytes 4/3 longer,
#: and names, quotes and spaces add more.
BODY_TO_MESSAGE_RATIO = 2


class Gateway:
    """Serves ``ROUTES`` by calling the unary handlers registered for gRPC.

    A request whose message is over ``max_receive_bytes`` is refused as etcd's gRPC
    server refuses it behind the gateway (429, "grpc: received message larger than
    max"); a body over ``max_body_bytes`` is refused so before it is read (by
    :class:`etcd_twisted.api.http1.GoHTTPChannel`).
    """

    def __init__(
        self, registry: Registry, *, max_receive_bytes: int = DEFAULT_MAX_RECEIVE_BYTES
    ) -> None:
        self.registry = registry
        self.max_receive_bytes = max_receive_bytes
        self.max_body_bytes = BODY_TO_MESSAGE_RATIO * max_receive_bytes

    def handle(self, request: IRequest, path: str) -> Deferred[bytes]:
        """Run the call behind ``path`` for an HTTP POST and render its result."""
        for name, value in _RESPONSE_HEADERS:
            request.setHeader(name, value)
        if path in STREAM_ROUTES:
            return self._handle_stream(request, *STREAM_ROUTES[path])
        route = ROUTES.get(path)
        if route is None:  # grpc-gateway's http.NotFound
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            request.setHeader(b"x-content-type-options", b"nosniff")
            return succeed(b"Not Found\n")
        grpc_path, request_cls = route
        try:
            method = self.registry.lookup(grpc_path)
            message = from_json(request.content.read(), request_cls)
            self._check_size(message)
        except GrpcError as e:
            return succeed(self._error(request, e))
        ctx = GatewayContext(request, grpc_path)
        d = maybeDeferred(method.handler, message, ctx)
        d.addCallback(self._success, request)
        d.addErrback(lambda f: self._error(request, to_grpc_error(f)))
        return d

    def _check_size(self, message: Message) -> None:
        """Refuse a message the gRPC server behind etcd's gateway would refuse."""
        size = message.ByteSize()
        if size > self.max_receive_bytes:
            raise GrpcError(
                StatusCode.RESOURCE_EXHAUSTED, too_large_message(size, self.max_receive_bytes)
            )

    def _success(self, response: Any, request: IRequest) -> bytes:
        request.setHeader(*_GRPC_METADATA)
        if not isinstance(response, Message):  # a response kept encoded (a long range)
            response = response.to_message()
        return to_json(response)

    def _handle_stream(
        self, request: IRequest, grpc_path: str, request_cls: type[Message]
    ) -> Deferred[bytes]:
        try:
            method = self.registry.lookup(grpc_path)
        except GrpcError as e:
            return succeed(self._error(request, e))
        body = request.content.read()
        ctx = GatewayContext(request, grpc_path)
        if method.kind is MethodKind.SERVER_STREAM:
            # One request, read as a unary one; the call ends when the handler's result fires.
            try:
                message = from_json(body, request_cls)
            except GrpcError as e:
                return succeed(self._error(request, e))
            stream = GatewayStream(request, [])
            maybeDeferred(method.handler, message, ctx, stream).addCallbacks(
                lambda _: stream.finish(), lambda f: stream.finish(to_grpc_error(f))
            )
            return stream.done
        # grpc-gateway decodes the requests one by one: a bad first one fails the call
        # (UNKNOWN, Go's text), a bad later one ends the requests sent.
        decoder = Decoder(body)
        messages: list[Message] = []
        try:
            while (next_message := decoder.decode(request_cls)) is not None:
                messages.append(next_message)
        except GoJsonError as e:
            if not messages:
                return succeed(self._error(request, GrpcError(StatusCode.UNKNOWN, e.message)))
        stream = GatewayStream(request, messages)
        maybeDeferred(method.handler, ctx, stream).addErrback(
            lambda f: stream.finish(to_grpc_error(f))
        )
        return stream.done

    def _error(self, request: IRequest, error: GrpcError) -> bytes:
        request.setResponseCode(HTTP_STATUS.get(error.code, 500))
        return error_body(error)
