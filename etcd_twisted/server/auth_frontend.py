"""The server side of auth: resolving tokens, and proposing the Auth service's calls.

After etcd 3.5's ``v3_server.go``. Every auth request goes through raft like a write
(reads of users and roles too, so they are linearizable). Passwords never enter the
log: ``UserAdd``/``UserChangePassword`` hash them on the proposing member (on a
thread, it takes tens of milliseconds) and propose the hash; ``Authenticate`` checks
the password on the proposing member first, so a wrong password costs no raft entry,
then proposes the name and a random token prefix; the member that applies it issues
``prefix.<raft index>`` (simple tokens) or signs a JWT (``--auth-token jwt``). If the auth store changed between the password check and
the apply, the check is done again (etcd's optimistic retry).

A simple token names the raft index that issued it; a member that has not applied
that far yet waits for it before deciding the token is unknown (etcd's
``indexWaiter``). A JWT needs no wait: its signature is checked here.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from twisted.internet import threads
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime

from etcd_twisted._pb import rpc_pb2
from etcd_twisted._pb.raft_internal_pb2 import InternalAuthenticateRequest, InternalRaftRequest
from etcd_twisted.auth import ROOT_USER, AuthInfo, AuthStore
from etcd_twisted.auth import password as passwords
from etcd_twisted.auth.errors import AuthFailedError, InvalidAuthTokenError
from etcd_twisted.server.proposer import Proposer

#: Propose-once calls of the Auth service: (request field, request class) by method name.
_PROPOSED: dict[str, str] = {
    "AuthEnable": "auth_enable",
    "AuthDisable": "auth_disable",
    "AuthStatus": "auth_status",
    "UserDelete": "auth_user_delete",
    "UserGrantRole": "auth_user_grant_role",
    "UserRevokeRole": "auth_user_revoke_role",
    "UserGet": "auth_user_get",
    "UserList": "auth_user_list",
    "RoleAdd": "auth_role_add",
    "RoleDelete": "auth_role_delete",
    "RoleGet": "auth_role_get",
    "RoleList": "auth_role_list",
    "RoleGrantPermission": "auth_role_grant_permission",
    "RoleRevokePermission": "auth_role_revoke_permission",
}


class AuthFrontend:
    """Token resolution and the Auth service's calls, over the member's auth store
    (``store()``: it is replaced with the state after a snapshot) and its proposer."""

    def __init__(
        self,
        store: Callable[[], AuthStore],
        proposer: Proposer,
        clock: IReactorTime,
        client_cert_auth: bool = False,
    ) -> None:
        self._store = store
        self._proposer = proposer
        self._clock = clock
        #: ``--client-cert-auth``: a verified client certificate's CN may stand for a user.
        self._client_cert_auth = client_cert_auth

    # --- who is asking

    def auth_info(
        self, token: str | None, common_name: str | None = None
    ) -> AuthInfo | None | Deferred[AuthInfo | None]:
        """The user behind ``token``; ``InvalidAuthTokenError`` if it is not a valid
        token. Waits when the token names an index not applied here yet. Without a
        token, the client certificate's ``common_name`` (see ``from_certificate``)."""
        if token is None:
            return self.from_certificate(common_name)
        index = self._store().tokens.wait_index(token)
        if index > self._proposer.applied.applied:
            d = self._proposer.wait_applied(index)
            return d.addCallback(lambda _: self._resolve(token))
        return self._resolve(token)

    def auth_info_now(self, token: str | None, common_name: str | None = None) -> AuthInfo | None:
        """``auth_info`` without waiting (a token from the future is invalid here)."""
        if token is None:
            return self.from_certificate(common_name)
        return self._resolve(token)

    def from_certificate(self, common_name: str | None) -> AuthInfo | None:
        """The user a verified client certificate names, at the current auth revision,
        as etcd's ``AuthInfoFromTLS``: only with ``--client-cert-auth`` (so the TLS
        handshake verified the certificate against the trusted CA)."""
        if common_name is None or not self._client_cert_auth:
            return None
        return AuthInfo(common_name, self._store().revision)

    def _resolve(self, token: str) -> AuthInfo:
        info = self._store().auth_info_from_token(token, self._clock.seconds())
        if info is None:
            raise InvalidAuthTokenError()
        return info

    def root(self) -> AuthInfo | None:
        """Credentials for requests the server makes itself (lease expiry) while auth is on."""
        auth = self._store()
        return AuthInfo(ROOT_USER, auth.revision) if auth.enabled else None

    def check_admin(self, info: AuthInfo | None) -> None:
        """Raise unless auth is off or ``info`` has the root role (maintenance, membership)."""
        self._store().is_admin_permitted(info)

    def watch_permitted(
        self, token: str | None, key: bytes, range_end: bytes, common_name: str | None = None
    ) -> bool:
        """Whether a watch on the range may be created: read permission on all of it. A
        "from key" watch (``range_end`` "\\0") covers every key from ``key`` on (etcd
        3.5.1 checks only ``key`` itself, so a reader of one key saw every later one)."""
        try:
            info = self.auth_info_now(token, common_name)
            self._store().is_range_permitted(info or AuthInfo(), key or b"\x00", range_end)
        except Exception:  # noqa: BLE001 - any refusal is "permission denied"
            return False
        return True

    # --- the Auth service

    def call(self, method: str) -> Callable[[Any, AuthInfo | None], Deferred[Any]]:
        """The server call behind an Auth method: ``call(request, auth_info)``."""
        if method == "Authenticate":
            return lambda r, auth: self.authenticate(r)
        if method == "UserAdd":
            return self.user_add
        if method == "UserChangePassword":
            return self.user_change_password
        field = _PROPOSED[method]

        def propose(r: Any, auth: AuthInfo | None) -> Deferred[Any]:
            return self._proposer.propose(InternalRaftRequest(**{field: r}), auth)

        return propose

    def authenticate(
        self, r: rpc_pb2.AuthenticateRequest
    ) -> Deferred[rpc_pb2.AuthenticateResponse]:
        """Check the password here, then issue a token through raft."""
        store, proposer = self._store, self._proposer

        def check(_: object) -> Deferred[int]:
            hashed, revision = store().password_of(r.name)
            d = threads.deferToThread(passwords.check_password, hashed, r.password)

            def verdict(ok: bool) -> int:
                if not ok:
                    raise AuthFailedError()
                return revision

            return d.addCallback(verdict)

        def propose(revision: int) -> Deferred[rpc_pb2.AuthenticateResponse]:
            req = InternalRaftRequest(
                authenticate=InternalAuthenticateRequest(
                    name=r.name, simple_token=store().tokens.gen_prefix()
                )
            )

            def done(resp: rpc_pb2.AuthenticateResponse) -> Any:
                if revision != store().revision:
                    return attempt()  # the store changed under the check: check again
                return resp

            return proposer.propose(req).addCallback(done)

        def attempt() -> Deferred[rpc_pb2.AuthenticateResponse]:
            return maybeDeferred(check, None).addCallback(propose)

        return proposer.linearizable(lambda: None).addCallback(lambda _: attempt())

    def user_add(
        self, r: rpc_pb2.AuthUserAddRequest, auth: AuthInfo | None
    ) -> Deferred[rpc_pb2.AuthUserAddResponse]:
        """Add a user, its password hashed before it is proposed."""
        if r.options.no_password:
            return self._proposer.propose(InternalRaftRequest(auth_user_add=r), auth)

        def propose(hashed: str) -> Deferred[rpc_pb2.AuthUserAddResponse]:
            r.hashedPassword, r.password = hashed, ""
            return self._proposer.propose(InternalRaftRequest(auth_user_add=r), auth)

        return self._hash(r.password).addCallback(propose)

    def user_change_password(
        self, r: rpc_pb2.AuthUserChangePasswordRequest, auth: AuthInfo | None
    ) -> Deferred[rpc_pb2.AuthUserChangePasswordResponse]:
        """Change a password, hashed before it is proposed."""
        if not r.password:
            return self._proposer.propose(InternalRaftRequest(auth_user_change_password=r), auth)

        def propose(hashed: str) -> Deferred[rpc_pb2.AuthUserChangePasswordResponse]:
            r.hashedPassword, r.password = hashed, ""
            return self._proposer.propose(InternalRaftRequest(auth_user_change_password=r), auth)

        return self._hash(r.password).addCallback(propose)

    def _hash(self, password: str) -> Deferred[str]:
        cost = self._store().cost
        d = threads.deferToThread(passwords.hash_password, password, cost)
        return d.addCallback(lambda h: base64.b64encode(h).decode())
