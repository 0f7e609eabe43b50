"""The ``etcdserverpb.KV`` service: Range, Put, DeleteRange, Txn, Compact."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.api.txn_wire import TooManyOpsRefusal, TxnDecoder
from etcd_twisted.api.unary import unary
from etcd_twisted.apply.errors import TooManyOpsError
from etcd_twisted.auth import AuthInfo
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

    def txn(t: rpc_pb2.TxnRequest | TooManyOpsRefusal, auth: Any = None) -> Any:
        if isinstance(t, TooManyOpsRefusal):
            raise TooManyOpsError()
        return server.kv_frontend.txn(t, auth)

    registry.add_unary(
        f"{_SERVICE}/Txn", TxnDecoder(server.config.max_txn_ops), unary(server, txn, auth=True)
    )
    registry.add_unary(
        f"{_SERVICE}/Compact",
        rpc_pb2.CompactionRequest,
        unary(server, lambda r, auth: _compact(server, r, auth), auth=True),
    )


def _compact(
    server: EtcdServer, r: rpc_pb2.CompactionRequest, auth: AuthInfo | None
) -> Deferred[rpc_pb2.CompactionResponse]:
    """Compaction: root only while auth is on, as etcd 3.5.28+ (3.5.1 let any user
    compact away the history every other user's watches and reads need)."""
    server.auth_frontend.check_admin(auth)
    return server.kv_frontend.compact(r, auth)
