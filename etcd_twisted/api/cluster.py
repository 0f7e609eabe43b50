"""The ``etcdserverpb.Cluster`` service: MemberAdd, MemberRemove, MemberUpdate, MemberList,
MemberPromote.

Cluster responses carry cluster id, member id and raft term but no revision, as
etcd's cluster server fills them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.api.errors import to_grpc_error
from etcd_twisted.api.unary import check_learner, require_leader, with_auth
from etcd_twisted.grpc import Registry, ServerContext
from etcd_twisted.server.etcd_server import EtcdServer

_SERVICE = "/etcdserverpb.Cluster"


def register(registry: Registry, server: EtcdServer) -> None:
    """Add the Cluster methods to ``registry``."""
    # The reconfigurator is looked up per call: a snapshot from the leader replaces it.
    methods = (
        ("MemberAdd", rpc_pb2.MemberAddRequest, lambda r: server.reconfig.add(r)),
        ("MemberRemove", rpc_pb2.MemberRemoveRequest, lambda r: server.reconfig.remove(r)),
        ("MemberUpdate", rpc_pb2.MemberUpdateRequest, lambda r: server.reconfig.update(r)),
        ("MemberPromote", rpc_pb2.MemberPromoteRequest, server.maintenance.member_promote),
        ("MemberList", rpc_pb2.MemberListRequest, lambda r: server.maintenance.member_list()),
    )
    for name, request_cls, call in methods:
        # Changing membership needs the root role while auth is on (listing does not).
        admin = name != "MemberList"
        registry.add_unary(f"{_SERVICE}/{name}", request_cls, _handler(server, call, admin))


def _handler(
    server: EtcdServer, call: Callable[[Any], Any], admin: bool = False
) -> Callable[[Any, ServerContext], Deferred[Any]]:
    def handle(request: Any, ctx: ServerContext) -> Deferred[Any]:
        def run() -> Any:
            require_leader(server, ctx)
            check_learner(server, request)
            if admin:

                def checked(info: Any) -> Any:
                    server.auth_frontend.check_admin(info)
                    return call(request)

                return with_auth(server, ctx, checked)
            return call(request)

        d = maybeDeferred(run)
        d.addCallback(lambda response: _fill(server, response))
        return d.addErrback(_raise)

    return handle


def _fill(server: EtcdServer, response: Any) -> Any:
    header = response.header
    header.cluster_id = server.cluster_id
    header.member_id = server.member_id
    header.raft_term = server.term
    return response


def _raise(failure: Failure) -> None:
    raise to_grpc_error(failure)
