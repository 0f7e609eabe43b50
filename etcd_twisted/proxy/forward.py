"""Forwarding calls the proxy does not interpret: their bytes go to a member as they are.

:class:`Raw` stands in for a message class in the server's registry (its
``FromString`` keeps the bytes, its ``SerializeToString`` gives them back), so a
forwarded request is never decoded and its answer never re-encoded.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from etcd_twisted.grpc import GrpcError, Registry, ServerContext, ServerStream, StatusCode
from etcd_twisted.grpc.metadata import MetadataValue
from etcd_twisted.proxy.upstream import Upstream

__all__ = ["FORWARDED_SERVER_STREAMS", "FORWARDED_UNARY", "Raw", "call_metadata", "register"]


class Raw:
    """A message kept as its serialized bytes."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    @classmethod
    def FromString(cls, data: bytes) -> Raw:  # noqa: N802 - protobuf's name
        return cls(data)

    def SerializeToString(self) -> bytes:  # noqa: N802 - protobuf's name
        return self.data


#: Unary methods passed through unchanged, and whether a failed connection may retry them.
FORWARDED_UNARY: dict[str, bool] = {
    **{
        f"/etcdserverpb.Maintenance/{name}": name in ("Status", "Hash", "HashKV")
        for name in ("Alarm", "Status", "Defragment", "Hash", "HashKV", "MoveLeader", "Downgrade")
    },
    **{
        f"/etcdserverpb.Auth/{name}": name.endswith(("Get", "List", "Status"))
        for name in (
            "AuthEnable",
            "AuthDisable",
            "AuthStatus",
            "Authenticate",
            "UserAdd",
            "UserGet",
            "UserList",
            "UserDelete",
            "UserChangePassword",
            "UserGrantRole",
            "UserRevokeRole",
            "RoleAdd",
            "RoleGet",
            "RoleList",
            "RoleDelete",
            "RoleGrantPermission",
            "RoleRevokePermission",
        )
    },  # fmt: skip
    **{
        f"/etcdserverpb.Cluster/{name}": False
        for name in ("MemberAdd", "MemberRemove", "MemberUpdate")
    },
    **{
        f"/etcdserverpb.Lease/{name}": name in ("LeaseTimeToLive", "LeaseLeases")
        for name in ("LeaseGrant", "LeaseRevoke", "LeaseTimeToLive", "LeaseLeases")
    },
    **{
        f"/v3electionpb.Election/{name}": name == "Leader"
        for name in ("Campaign", "Proclaim", "Leader", "Resign")
    },
    "/v3lockpb.Lock/Lock": False,
    "/v3lockpb.Lock/Unlock": False,
}

FORWARDED_SERVER_STREAMS = ("/etcdserverpb.Maintenance/Snapshot", "/v3electionpb.Election/Observe")

#: Request metadata that belongs to the client's connection, not to the call.
_OWN = {":authority", "user-agent"}


def call_metadata(ctx: ServerContext) -> list[tuple[str, MetadataValue]]:
    """The metadata to pass on (the auth token, ``hasleader``, ...)."""
    return [(k, v) for k, v in ctx.metadata.items() if k not in _OWN]


def register(registry: Registry, upstream: Upstream, skip: frozenset[str] = frozenset()) -> None:
    """Add a forwarder for each method above not in ``skip``."""
    for path, retry in FORWARDED_UNARY.items():
        if path not in skip:
            registry.add_unary(path, Raw, _unary(upstream, path, retry))
    for path in FORWARDED_SERVER_STREAMS:
        if path not in skip:
            registry.add_server_stream(path, Raw, _server_stream(upstream, path))


def _unary(upstream: Upstream, path: str, retry: bool) -> Any:
    def handle(request: Raw, ctx: ServerContext) -> Deferred[Raw]:
        d = Deferred.fromCoroutine(
            upstream.unary(path, request.data, call_metadata(ctx), ctx.time_remaining(), retry)
        )
        return d.addCallback(Raw)

    return handle


def _server_stream(upstream: Upstream, path: str) -> Any:
    def handle(request: Raw, ctx: ServerContext, stream: ServerStream) -> Deferred[None]:
        done: Deferred[None] = Deferred()

        def closed(status: GrpcError | None) -> None:
            if status is None:
                done.callback(None)
            else:
                done.errback(status)

        async def start() -> None:
            call = await upstream.stream(
                path, call_metadata(ctx), lambda raw: stream.send(Raw(raw)), closed
            )
            ctx.when_cancelled().addCallback(lambda _: call.cancel())
            call.send(request.data)
            call.end()

        Deferred.fromCoroutine(start()).addErrback(
            lambda f: done.called or done.errback(_as_grpc(f.value))
        )
        return done

    return handle


def _as_grpc(error: BaseException) -> GrpcError:
    if isinstance(error, GrpcError):
        return error
    return GrpcError(StatusCode.UNAVAILABLE, str(error))
