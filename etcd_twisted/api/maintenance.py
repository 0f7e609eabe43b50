"""The ``etcdserverpb.Maintenance`` service: Status, Alarm, Defragment, Hash, HashKV, MoveLeader."""

from __future__ import annotations

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.api.unary import unary
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
        f"{_SERVICE}/Alarm", rpc_pb2.AlarmRequest, unary(server, server.maintenance.alarm)
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
