"""The JSON gateway (``/v3/...``), with grpc-gateway's encoding as etcd 3.5 serves it.

A request body is JSON for the method's request message (proto or lowerCamel field
names, unknown fields ignored, ``bytes`` as base64, 64-bit integers as strings or
numbers); the response is the response message with proto field names, 64-bit
integers as strings and zero values left out. Calls run through the very same
handlers as gRPC (looked up in the method registry), so both paths answer alike.
Errors come back as ``{"error": msg, "code": grpc_code, "message": msg}`` with
grpc-gateway's HTTP status for the code.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from etcd_twisted._pb import rpc_pb2, v3election_pb2, v3lock_pb2
from etcd_twisted.api.auth import GATEWAY_ROUTES as AUTH_ROUTES
from etcd_twisted.api.errors import HTTP_STATUS, to_grpc_error
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
}

ROUTES.update(AUTH_ROUTES)

#: Headers etcd's gateway sends on every response.
_RESPONSE_HEADERS = (
    (b"access-control-allow-headers", b"accept, content-type, authorization"),
    (b"access-control-allow-methods", b"POST, GET, OPTIONS, PUT, DELETE"),
    (b"access-control-allow-origin", b"*"),
    (b"content-type", b"application/json"),
    (b"grpc-metadata-content-type", b"application/grpc"),
)


def to_json(message: Message) -> bytes:
    """A message as grpc-gateway writes it (proto names, int64 as strings, no zero values)."""
    body = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return json.dumps(body, separators=(",", ":")).encode()


def from_json(body: bytes, cls: type[Message]) -> Message:
    """Parse a request body; an empty body is the empty request. Raises ``GrpcError``."""
    message = cls()
    if body.strip():
        try:
            json_format.Parse(body, message, ignore_unknown_fields=True)
        except (json_format.ParseError, ValueError, UnicodeDecodeError) as e:
            raise GrpcError(StatusCode.INVALID_ARGUMENT, _parse_error_text(e)) from None
    return message


def _parse_error_text(error: Exception) -> str:
    text = str(error)
    return text.splitlines()[0] if text else "invalid JSON request body"


def json_stream(body: bytes) -> list[Any]:
    """The JSON values of a body holding one or more of them back to back."""
    text = body.decode("utf-8")
    decoder = json.JSONDecoder()
    values, pos = [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            return values
        value, pos = decoder.raw_decode(text, pos)
        values.append(value)


def error_body(error: GrpcError) -> bytes:
    """The gateway's JSON error body."""
    return json.dumps(
        {"error": error.message, "code": int(error.code), "message": error.message},
        separators=(",", ":"),
    ).encode()


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

    def when_cancelled(self) -> Deferred[GrpcError]:
        return self._cancelled

    def set_initial_metadata(self, metadata: Any) -> None:
        """Gateway responses carry no extra metadata."""

    def set_trailing_metadata(self, metadata: Any) -> None:
        """Gateway responses carry no extra metadata."""


class GatewayStream:
    """A bidi call's stream as the gateway serves it: the body's requests in, lines out."""

    def __init__(self, request: IRequest, messages: list[Message]) -> None:
        self._request = request
        self._messages = messages
        #: Fires (with no more bytes to write) when the call ends.
        self.done: Deferred[bytes] = Deferred()

    def send(self, message: Message) -> Deferred[None]:
        """Write one response as a ``{"result": ...}`` line."""
        if not self.done.called:
            body = json_format.MessageToDict(message, preserving_proto_field_name=True)
            line = json.dumps({"result": body}, separators=(",", ":")) + "\n"
            self._request.write(line.encode())
            self._flush()
        return succeed(None)

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
            line = json.dumps(
                {"error": {"grpc_code": int(error.code), "http_code": HTTP_STATUS.get(error.code, 500),
                           "message": error.message, "http_status": ""}},
                separators=(",", ":"),
            )  # fmt: skip
            self._request.write(line.encode() + b"\n")
        self._flush()  # chunked even when empty, as grpc-gateway's streams are
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


class Gateway:
    """Serves ``ROUTES`` by calling the unary handlers registered for gRPC."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def handle(self, request: IRequest, path: str) -> Deferred[bytes]:
        """Run the call behind ``path`` for an HTTP POST and render its result."""
        for name, value in _RESPONSE_HEADERS:
            request.setHeader(name, value)
        if path in STREAM_ROUTES:
            return self._handle_stream(request, *STREAM_ROUTES[path])
        route = ROUTES.get(path)
        if route is None:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return succeed(b"Not Found\n")
        grpc_path, request_cls = route
        try:
            method = self.registry.lookup(grpc_path)
            message = from_json(request.content.read(), request_cls)
        except GrpcError as e:
            return succeed(self._error(request, e))
        ctx = GatewayContext(request, grpc_path)
        d = maybeDeferred(method.handler, message, ctx)
        d.addCallback(to_json)
        d.addErrback(lambda f: self._error(request, to_grpc_error(f)))
        return d

    def _handle_stream(
        self, request: IRequest, grpc_path: str, request_cls: type[Message]
    ) -> Deferred[bytes]:
        try:
            method = self.registry.lookup(grpc_path)
            messages = [
                json_format.ParseDict(value, request_cls(), ignore_unknown_fields=True)
                for value in json_stream(request.content.read())
            ]
        except GrpcError as e:
            return succeed(self._error(request, e))
        except (ValueError, json_format.ParseError) as e:
            error = GrpcError(StatusCode.UNKNOWN, _parse_error_text(e))
            return succeed(self._error(request, error))
        ctx = GatewayContext(request, grpc_path)
        if method.kind is MethodKind.SERVER_STREAM:
            # One request; the call ends when the handler's result fires.
            stream = GatewayStream(request, [])
            message = messages[0] if messages else request_cls()
            maybeDeferred(method.handler, message, ctx, stream).addCallbacks(
                lambda _: stream.finish(), lambda f: stream.finish(to_grpc_error(f))
            )
            return stream.done
        stream = GatewayStream(request, messages)
        maybeDeferred(method.handler, ctx, stream).addErrback(
            lambda f: stream.finish(to_grpc_error(f))
        )
        return stream.done

    def _error(self, request: IRequest, error: GrpcError) -> bytes:
        request.setResponseCode(HTTP_STATUS.get(error.code, 500))
        return error_body(error)
