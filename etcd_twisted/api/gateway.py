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

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.api.errors import HTTP_STATUS, to_grpc_error
from etcd_twisted.grpc import GrpcError, Metadata, Registry, StatusCode

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
}

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


class Gateway:
    """Serves ``ROUTES`` by calling the unary handlers registered for gRPC."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def handle(self, request: IRequest, path: str) -> Deferred[bytes]:
        """Run the unary call behind ``path`` for an HTTP POST and render its result."""
        for name, value in _RESPONSE_HEADERS:
            request.setHeader(name, value)
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

    def _error(self, request: IRequest, error: GrpcError) -> bytes:
        request.setResponseCode(HTTP_STATUS.get(error.code, 500))
        return error_body(error)
