"""The ``etcdserverpb.Cluster`` service (MemberList so far)."""

from __future__ import annotations

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.api.unary import unary
from etcd_twisted.grpc import Registry
from etcd_twisted.server.etcd_server import EtcdServer

_SERVICE = "/etcdserverpb.Cluster"


def register(registry: Registry, server: EtcdServer) -> None:
    """Add the Cluster methods to ``registry``."""
    registry.add_unary(
        f"{_SERVICE}/MemberList",
        rpc_pb2.MemberListRequest,
        unary(server, lambda request: server.member_list()),
    )
