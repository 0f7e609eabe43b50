"""The ``etcdserverpb.Lease`` service: grant, revoke, keep-alive stream, time-to-live, list."""

from __future__ import annotations

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.api.errors import to_grpc_error
from etcd_twisted.api.unary import fill_header, require_leader, unary
from etcd_twisted.auth import AuthInfo
from etcd_twisted.grpc import Registry, ServerContext, ServerStream
from etcd_twisted.server.etcd_server import EtcdServer

_SERVICE = "/etcdserverpb.Lease"


def register(registry: Registry, server: EtcdServer) -> None:
    """Add the Lease methods to ``registry``."""
    registry.add_unary(
        f"{_SERVICE}/LeaseGrant",
        rpc_pb2.LeaseGrantRequest,
        unary(server, server.leases.grant, auth=True),
    )
    registry.add_unary(
        f"{_SERVICE}/LeaseRevoke",
        rpc_pb2.LeaseRevokeRequest,
        unary(server, server.leases.revoke, auth=True),
    )
    registry.add_unary(
        f"{_SERVICE}/LeaseTimeToLive",
        rpc_pb2.LeaseTimeToLiveRequest,
        unary(server, lambda r, auth: _time_to_live(server, r, auth), auth=True),
    )
    registry.add_unary(
        f"{_SERVICE}/LeaseLeases", rpc_pb2.LeaseLeasesRequest, unary(server, server.leases.leases)
    )
    registry.add_bidi_stream(
        f"{_SERVICE}/LeaseKeepAlive",
        rpc_pb2.LeaseKeepAliveRequest,
        lambda ctx, stream: _keep_alive(server, ctx, stream),
    )


async def _time_to_live(
    server: EtcdServer, r: rpc_pb2.LeaseTimeToLiveRequest, auth: AuthInfo | None
) -> rpc_pb2.LeaseTimeToLiveResponse:
    """TimeToLive; with ``keys``, only for a caller who may read every key listed (etcd
    3.5.9+, CVE-2023-32082: "permission denied" rather than leak them)."""
    response = await maybeDeferred(server.leases.time_to_live, r)
    if r.keys:
        server.state.auth.is_lease_keys_permitted(auth, response.keys)
    return response


def _keep_alive(server: EtcdServer, ctx: ServerContext, stream: ServerStream) -> None:
    """Renew each lease the client names, answering in order; TTL 0 for unknown leases.

    The next request is read only once the previous answer is accepted by the stream,
    so a client that stops reading stops being served, with bounded memory.
    """

    def on_message(request: rpc_pb2.LeaseKeepAliveRequest) -> Deferred[None]:
        def respond(ttl: int) -> rpc_pb2.LeaseKeepAliveResponse:
            return fill_header(server, rpc_pb2.LeaseKeepAliveResponse(ID=request.ID, TTL=ttl))

        def renew() -> int | Deferred[int]:
            require_leader(server, ctx)
            return server.leases.renew(request.ID)

        d = maybeDeferred(renew).addCallback(respond)
        d.addCallback(stream.send)
        d.addErrback(_end_with_error, stream)
        return d

    stream.set_receiver(on_message, on_end=lambda: stream.finish())


def _end_with_error(failure: Failure, stream: ServerStream) -> None:
    stream.finish(to_grpc_error(failure))
