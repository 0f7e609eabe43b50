"""The ``etcdserverpb.KV`` service: Range, Put, DeleteRange, Txn, Compact."""

from __future__ import annotations

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.api.unary import unary
from etcd_twisted.grpc import Registry
from etcd_twisted.server.etcd_server import EtcdServer

_SERVICE = "/etcdserverpb.KV"


def register(registry: Registry, server: EtcdServer) -> None:
    """Add the KV methods to ``registry``."""
    registry.add_unary(
        f"{_SERVICE}/Range",
        rpc_pb2.RangeRequest,
        unary(server, server.kv_frontend.range, auth=True),
    )
    registry.add_unary(
        f"{_SERVICE}/Put", rpc_pb2.PutRequest, unary(server, server.kv_frontend.put, auth=True)
    )
    registry.add_unary(
        f"{_SERVICE}/DeleteRange",
        rpc_pb2.DeleteRangeRequest,
        unary(server, server.kv_frontend.delete_range, auth=True),
    )
    registry.add_unary(
        f"{_SERVICE}/Txn", rpc_pb2.TxnRequest, unary(server, server.kv_frontend.txn, auth=True)
    )
    registry.add_unary(
        f"{_SERVICE}/Compact",
        rpc_pb2.CompactionRequest,
        unary(server, server.kv_frontend.compact, auth=True),
    )
