"""The ``etcdserverpb.Maintenance`` service: Status, Alarm, Defragment, Hash, HashKV,
MoveLeader, Snapshot."""

from __future__ import annotations

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.api.snapshot import snapshot_handler
from etcd_twisted.api.unary import unary
from etcd_twisted.grpc import Registry
from etcd_twisted.server.etcd_server import EtcdServer

_SERVICE = "/etcdserverpb.Maintenance"


def register(registry: Registry, server: EtcdServer) -> None:
    """Add the Maintenance methods to ``registry``."""
    registry.add_unary(
        f"{_SERVICE}/Status", rpc_pb2.StatusRequest, unary(server, lambda r: server.status())
    )
    registry.add_unary(f"{_SERVICE}/Alarm", rpc_pb2.AlarmRequest, unary(server, server.alarm))
    registry.add_unary(
        f"{_SERVICE}/Defragment",
        rpc_pb2.DefragmentRequest,
        unary(server, server.defragment, admin=True),
    )
    registry.add_unary(
        f"{_SERVICE}/MoveLeader", rpc_pb2.MoveLeaderRequest, unary(server, server.move_leader)
    )
    registry.add_unary(
        f"{_SERVICE}/Hash", rpc_pb2.HashRequest, unary(server, server.hash, admin=True)
    )
    registry.add_unary(
        f"{_SERVICE}/HashKV", rpc_pb2.HashKVRequest, unary(server, server.hash_kv, admin=True)
    )
    registry.add_server_stream(
        f"{_SERVICE}/Snapshot", rpc_pb2.SnapshotRequest, snapshot_handler(server)
    )
