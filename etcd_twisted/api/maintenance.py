"""The ``etcdserverpb.Maintenance`` service: Status, Alarm, Defragment, Hash, HashKV,
MoveLeader, Snapshot."""

from __future__ import annotations

from twisted.internet.defer import Deferred

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.api.snapshot import snapshot_handler
from etcd_twisted.api.unary import unary
from etcd_twisted.auth import AuthInfo
from etcd_twisted.grpc import Registry
from etcd_twisted.server.etcd_server import EtcdServer

_SERVICE = "/etcdserverpb.Maintenance"


def register(registry: Registry, server: EtcdServer) -> None:
    """Add the Maintenance methods to ``registry``."""
    registry.add_unary(
        f"{_SERVICE}/Status",
        rpc_pb2.StatusRequest,
        unary(server, lambda r: server.maintenance.status()),
    )
    registry.add_unary(
        f"{_SERVICE}/Alarm",
        rpc_pb2.AlarmRequest,
        unary(server, lambda r, auth: _alarm(server, r, auth), auth=True),
    )
    registry.add_unary(
        f"{_SERVICE}/Defragment",
        rpc_pb2.DefragmentRequest,
        unary(server, server.maintenance.defragment, admin=True),
    )
    registry.add_unary(
        f"{_SERVICE}/MoveLeader",
        rpc_pb2.MoveLeaderRequest,
        unary(server, server.maintenance.move_leader),
    )
    registry.add_unary(
        f"{_SERVICE}/Hash", rpc_pb2.HashRequest, unary(server, server.maintenance.hash, admin=True)
    )
    registry.add_unary(
        f"{_SERVICE}/HashKV",
        rpc_pb2.HashKVRequest,
        unary(server, server.maintenance.hash_kv, admin=True),
    )
    registry.add_server_stream(
        f"{_SERVICE}/Snapshot", rpc_pb2.SnapshotRequest, snapshot_handler(server)
    )


def _alarm(
    server: EtcdServer, r: rpc_pb2.AlarmRequest, auth: AuthInfo | None
) -> Deferred[rpc_pb2.AlarmResponse]:
    """List alarms (anyone), or raise or clear one: root only, as etcd 3.5.28+ (3.5.1
    let any user raise NOSPACE, which stops every write)."""
    if r.action != rpc_pb2.AlarmRequest.GET:
        server.auth_frontend.check_admin(auth)
    return server.maintenance.alarm(r)
