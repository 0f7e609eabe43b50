"""The ``etcdserverpb.Cluster`` service (MemberList so far).

Cluster responses carry cluster id, member id and raft term but no revision, as
etcd's cluster server fills them.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.api.errors import to_grpc_error
from etcd_twisted.api.unary import require_leader
from etcd_twisted.grpc import Registry, ServerContext
from etcd_twisted.server.etcd_server import EtcdServer

_SERVICE = "/etcdserverpb.Cluster"


def register(registry: Registry, server: EtcdServer) -> None:
    """Add the Cluster methods to ``registry``."""

    def member_list(
        request: rpc_pb2.MemberListRequest, ctx: ServerContext
    ) -> Deferred[rpc_pb2.MemberListResponse]:
        def run() -> rpc_pb2.MemberListResponse:
            require_leader(server, ctx)
            return server.member_list()

        return maybeDeferred(run).addErrback(_raise)

    registry.add_unary(f"{_SERVICE}/MemberList", rpc_pb2.MemberListRequest, member_list)


def _raise(failure: Failure) -> None:
    raise to_grpc_error(failure)
