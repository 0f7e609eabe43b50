"""Auth in the applier: permission checks on applied requests, and the auth requests.

After etcd 3.5's ``apply_auth.go``. Every proposed request carries the user it came
from and the auth revision that user was authorised at (``RequestHeader.username``,
``auth_revision``); the checks run when the entry is applied, so a permission
revoked between proposing and applying is honoured (``AuthOldRevisionError``).

* admin requests (auth enable/disable/status, user and role management, lists)
  need the root role;
* ``user get`` is also allowed for oneself and ``role get`` for a role one has;
* put needs write on the key, read too with ``prev_kv``, and write on every key of
  the lease it attaches (whoever cannot revoke the lease must not extend it);
* delete range needs write on the range, read too with ``prev_kv``;
* txn needs read on every compare and the permission of every op in both branches
  (nested txns included; etcd 3.5.1 does not look inside them, we do);
* lease revoke needs write on every attached key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from etcd_twisted._pb import rpc_pb2
from etcd_twisted._pb.raft_internal_pb2 import InternalRaftRequest
from etcd_twisted.auth.store import AuthInfo, AuthStore

#: Request kinds (``InternalRaftRequest`` oneof names) that need the root role.
ADMIN_KINDS = frozenset(
    {
        "auth_enable",
        "auth_disable",
        "auth_status",
        "auth_user_add",
        "auth_user_delete",
        "auth_user_change_password",
        "auth_user_grant_role",
        "auth_user_revoke_role",
        "auth_user_list",
        "auth_role_add",
        "auth_role_delete",
        "auth_role_grant_permission",
        "auth_role_revoke_permission",
        "auth_role_list",
    }
)
#: Every auth request kind this applier answers.
AUTH_KINDS = ADMIN_KINDS | {"authenticate", "auth_user_get", "auth_role_get"}

#: ``lease_keys(id)``: the keys attached to a lease (empty for an unknown lease).
LeaseKeys = Callable[[int], Iterable[bytes]]


def _no_lease_keys(lease_id: int) -> Iterable[bytes]:
    return ()


class AuthApplier:
    """Checks and auth requests against an :class:`AuthStore`."""

    def __init__(self, store: AuthStore, lease_keys: LeaseKeys = _no_lease_keys) -> None:
        self.store = store
        self.lease_keys = lease_keys

    # --- checks before a request is applied

    def check(self, req: InternalRaftRequest) -> None:
        """Raise if the request's user may not do what it asks."""
        kind = req.WhichOneof("request")
        info = AuthInfo(req.header.username, req.header.auth_revision)
        store = self.store
        if kind in ADMIN_KINDS:
            store.is_admin_permitted(info)
        elif kind == "put":
            self.check_put(info, req.put)
        elif kind == "delete_range":
            self.check_delete_range(info, req.delete_range)
        elif kind == "txn":
            self.check_txn(info, req.txn)
        elif kind == "lease_revoke":
            self.check_lease_puts(info, req.lease_revoke.ID)
        elif kind == "auth_user_get":
            if req.auth_user_get.name != info.username:
                store.is_admin_permitted(info)
        elif kind == "auth_role_get":
            if not store.has_role(info.username, req.auth_role_get.role):
                store.is_admin_permitted(info)

    def check_put(self, info: AuthInfo, p: rpc_pb2.PutRequest) -> None:
        self.store.is_put_permitted(info, p.key)
        self.check_lease_puts(info, p.lease)
        if p.prev_kv:
            self.store.is_range_permitted(info, p.key, b"")

    def check_delete_range(self, info: AuthInfo, d: rpc_pb2.DeleteRangeRequest) -> None:
        self.store.is_delete_range_permitted(info, d.key, d.range_end)
        if d.prev_kv:
            self.store.is_range_permitted(info, d.key, d.range_end)

    def check_lease_puts(self, info: AuthInfo, lease_id: int) -> None:
        if not lease_id or not self.store.enabled:
            return
        for key in self.lease_keys(lease_id):
            self.store.is_put_permitted(info, key)

    def check_txn(self, info: AuthInfo, t: rpc_pb2.TxnRequest) -> None:
        """etcd's ``checkTxnAuth``: compares need read; each op its own permission."""
        store = self.store
        if not store.enabled:
            return
        for c in t.compare:
            store.is_range_permitted(info, c.key, c.range_end)
        for op in (*t.success, *t.failure):
            kind = op.WhichOneof("request")
            if kind == "request_range":
                store.is_range_permitted(info, op.request_range.key, op.request_range.range_end)
            elif kind == "request_put":
                store.is_put_permitted(info, op.request_put.key)
            elif kind == "request_delete_range":
                d = op.request_delete_range
                if d.prev_kv:
                    store.is_range_permitted(info, d.key, d.range_end)
                store.is_delete_range_permitted(info, d.key, d.range_end)
            elif kind == "request_txn":
                self.check_txn(info, op.request_txn)

    # --- auth requests

    def apply(self, req: InternalRaftRequest, index: int, now: float) -> object:
        """Run an auth request (one of ``AUTH_KINDS``); ``index`` is its raft index."""
        kind = req.WhichOneof("request")
        store = self.store
        if kind in _CHANGES:
            method, response = _CHANGES[kind]
            getattr(store, method)(getattr(req, kind))
            return response()
        if kind == "authenticate":
            a = req.authenticate
            token = store.authenticate(a.name, a.simple_token, index, now)
            return rpc_pb2.AuthenticateResponse(token=token)
        if kind == "auth_enable":
            store.auth_enable()
            return rpc_pb2.AuthEnableResponse()
        if kind == "auth_disable":
            store.auth_disable()
            return rpc_pb2.AuthDisableResponse()
        if kind == "auth_status":
            return rpc_pb2.AuthStatusResponse(enabled=store.enabled, authRevision=store.revision)
        if kind == "auth_user_get":
            return rpc_pb2.AuthUserGetResponse(roles=store.user_get(req.auth_user_get))
        if kind == "auth_user_list":
            return rpc_pb2.AuthUserListResponse(users=store.user_list())
        if kind == "auth_role_get":
            return rpc_pb2.AuthRoleGetResponse(perm=store.role_get(req.auth_role_get))
        if kind == "auth_role_list":
            return rpc_pb2.AuthRoleListResponse(roles=store.role_list())
        raise ValueError(f"not an auth request: {kind}")


#: Auth requests that change the store and answer with an empty response:
#: request field → (the store's method, the response class).
_CHANGES: dict[str, tuple[str, type]] = {
    "auth_user_add": ("user_add", rpc_pb2.AuthUserAddResponse),
    "auth_user_delete": ("user_delete", rpc_pb2.AuthUserDeleteResponse),
    "auth_user_change_password": ("user_change_password", rpc_pb2.AuthUserChangePasswordResponse),
    "auth_user_grant_role": ("user_grant_role", rpc_pb2.AuthUserGrantRoleResponse),
    "auth_user_revoke_role": ("user_revoke_role", rpc_pb2.AuthUserRevokeRoleResponse),
    "auth_role_add": ("role_add", rpc_pb2.AuthRoleAddResponse),
    "auth_role_delete": ("role_delete", rpc_pb2.AuthRoleDeleteResponse),
    "auth_role_grant_permission": (
        "role_grant_permission",
        rpc_pb2.AuthRoleGrantPermissionResponse,
    ),
    "auth_role_revoke_permission": (
        "role_revoke_permission",
        rpc_pb2.AuthRoleRevokePermissionResponse,
    ),
}
