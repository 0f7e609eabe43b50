"""The ``etcdserverpb.Auth`` service: auth enable/disable/status, authenticate, users, roles.

Every call but ``Authenticate`` runs with the caller's token resolved (the applier
checks that it may); the server proposes each through raft (see
``server/auth_frontend.py``). Responses carry etcd's full header.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from google.protobuf.message import Message

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.api.unary import unary
from etcd_twisted.grpc import Registry

if TYPE_CHECKING:
    from etcd_twisted.server.etcd_server import EtcdServer

_SERVICE = "/etcdserverpb.Auth"

#: Method name → (request class, gateway path), as etcd 3.5 serves them.
METHODS: dict[str, tuple[type[Message], str]] = {
    "AuthEnable": (rpc_pb2.AuthEnableRequest, "/v3/auth/enable"),
    "AuthDisable": (rpc_pb2.AuthDisableRequest, "/v3/auth/disable"),
    "AuthStatus": (rpc_pb2.AuthStatusRequest, "/v3/auth/status"),
    "Authenticate": (rpc_pb2.AuthenticateRequest, "/v3/auth/authenticate"),
    "UserAdd": (rpc_pb2.AuthUserAddRequest, "/v3/auth/user/add"),
    "UserGet": (rpc_pb2.AuthUserGetRequest, "/v3/auth/user/get"),
    "UserList": (rpc_pb2.AuthUserListRequest, "/v3/auth/user/list"),
    "UserDelete": (rpc_pb2.AuthUserDeleteRequest, "/v3/auth/user/delete"),
    "UserChangePassword": (rpc_pb2.AuthUserChangePasswordRequest, "/v3/auth/user/changepw"),
    "UserGrantRole": (rpc_pb2.AuthUserGrantRoleRequest, "/v3/auth/user/grant"),
    "UserRevokeRole": (rpc_pb2.AuthUserRevokeRoleRequest, "/v3/auth/user/revoke"),
    "RoleAdd": (rpc_pb2.AuthRoleAddRequest, "/v3/auth/role/add"),
    "RoleGet": (rpc_pb2.AuthRoleGetRequest, "/v3/auth/role/get"),
    "RoleList": (rpc_pb2.AuthRoleListRequest, "/v3/auth/role/list"),
    "RoleDelete": (rpc_pb2.AuthRoleDeleteRequest, "/v3/auth/role/delete"),
    "RoleGrantPermission": (rpc_pb2.AuthRoleGrantPermissionRequest, "/v3/auth/role/grant"),
    "RoleRevokePermission": (rpc_pb2.AuthRoleRevokePermissionRequest, "/v3/auth/role/revoke"),
}

#: The JSON gateway's routes for the Auth service.
GATEWAY_ROUTES: dict[str, tuple[str, type[Message]]] = {
    path: (f"{_SERVICE}/{name}", cls) for name, (cls, path) in METHODS.items()
}


def register(registry: Registry, server: EtcdServer) -> None:
    """Add the Auth methods to ``registry``."""
    frontend = server.auth_frontend
    for name, (request_cls, _) in METHODS.items():
        registry.add_unary(
            f"{_SERVICE}/{name}", request_cls, unary(server, frontend.call(name), auth=True)
        )
