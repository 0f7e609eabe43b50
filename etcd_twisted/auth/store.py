"""The auth store: users, roles, the enabled flag and the auth revision, in the backend.

After etcd 3.5's ``server/auth/store.go``. Users live in the ``authUsers`` bucket and
roles in ``authRoles`` (encoded ``authpb.User``/``authpb.Role``, keyed by name); the
``auth`` bucket holds ``authEnabled`` (one byte) and ``authRevision`` (8 bytes, big
endian). Every change to users or roles adds one to the auth revision; a request
that was authorised at an older revision is refused (``AuthOldRevisionError``), so a
permission revoked meanwhile cannot be used.

The store is pure: it is driven by the applier (one call per applied request) and
by permission checks, and takes ``now`` where tokens need the time. Password hashes
arrive already computed (the proposing member hashes them off the reactor).
"""

from __future__ import annotations

import base64
import binascii
import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from etcd_twisted._pb import auth_pb2, rpc_pb2
from etcd_twisted.backend import buckets

from . import password as passwords
from .errors import (
    AuthFailedError,
    AuthNotEnabledError,
    AuthOldRevisionError,
    InvalidAuthMgmtError,
    NoPasswordUserError,
    PermissionDeniedError,
    PermissionNotGivenError,
    PermissionNotGrantedError,
    RoleAlreadyExistError,
    RoleEmptyError,
    RoleNotFoundError,
    RoleNotGrantedError,
    RootRoleNotExistError,
    RootUserNotExistError,
    UserAlreadyExistError,
    UserEmptyError,
    UserNotFoundError,
)
from .perms import READ, WRITE, UnifiedPerms
from .tokens import SimpleTokens, TokenProvider

ROOT_USER = "root"
ROOT_ROLE = "root"
ENABLE_FLAG_KEY = b"authEnabled"
REVISION_KEY = b"authRevision"
_ENABLED = b"\x01"
_DISABLED = b"\x00"


class Storage(Protocol):
    """The backend calls the auth store needs (``Backend.batch_tx`` or a memory stand-in)."""

    def put(self, bucket: bytes, key: bytes, value: bytes) -> None: ...
    def get(self, bucket: bytes, key: bytes) -> bytes | None: ...
    def delete(self, bucket: bytes, key: bytes) -> object: ...
    def range(
        self, bucket: bytes, start: bytes, end: bytes | None = None, limit: int = 0
    ) -> list[tuple[bytes, bytes]]: ...


@dataclass(frozen=True)
class AuthInfo:
    """Who a request comes from, and the auth revision it was authorised at (0: no one)."""

    username: str = ""
    revision: int = 0


NO_USER = AuthInfo()


class AuthStore:
    """Users, roles and permission checks (see the module docstring)."""

    def __init__(
        self,
        storage: Storage,
        tokens: TokenProvider | None = None,
        cost: int = passwords.DEFAULT_COST,
    ) -> None:
        self._storage = storage
        self.tokens: TokenProvider = tokens if tokens is not None else SimpleTokens()
        self.cost = cost
        self._perm_cache: dict[str, UnifiedPerms] = {}
        self.enabled = storage.get(buckets.AUTH, ENABLE_FLAG_KEY) == _ENABLED
        raw = storage.get(buckets.AUTH, REVISION_KEY)
        self.revision = int.from_bytes(raw, "big") if raw else 0
        if self.enabled:
            self.tokens.enable()
        if self.revision == 0:
            self._commit_revision()  # a new store starts at auth revision 1, as etcd's

    # --- enable, disable, status

    def auth_enable(self) -> None:
        """Turn auth on; needs user root holding role root. Enabling twice is a no-op."""
        if self.enabled:
            return
        user = self._get_user(ROOT_USER)
        if user is None:
            raise RootUserNotExistError()
        if not _has_root_role(user):
            raise RootRoleNotExistError()
        self._storage.put(buckets.AUTH, ENABLE_FLAG_KEY, _ENABLED)
        self.enabled = True
        self.tokens.enable()
        self._perm_cache.clear()

    def auth_disable(self) -> None:
        """Turn auth off and forget every token (this does bump the revision, as etcd's)."""
        if not self.enabled:
            return
        self._storage.put(buckets.AUTH, ENABLE_FLAG_KEY, _DISABLED)
        self._commit_revision()
        self.enabled = False
        self.tokens.disable()

    # --- authentication

    def password_of(self, name: str) -> tuple[bytes, int]:
        """The stored hash of ``name``'s password and the current auth revision, for a
        password check (which the caller runs off the reactor)."""
        if not self.enabled:
            raise AuthNotEnabledError()
        user = self._get_user(name)
        if user is None:
            raise AuthFailedError()
        if user.options.no_password:
            raise NoPasswordUserError()
        return user.password, self.revision

    def check_password(self, name: str, password: str) -> int:
        """The auth revision if ``password`` is ``name``'s, else ``AuthFailedError``."""
        hashed, revision = self.password_of(name)
        if not passwords.check_password(hashed, password):
            raise AuthFailedError()
        return revision

    def authenticate(self, name: str, prefix: str, index: int, now: float) -> str:
        """Issue a token to ``name`` (a simple one is ``prefix.index``); the password was
        checked already."""
        if not self.enabled:
            raise AuthNotEnabledError()
        user = self._get_user(name)
        if user is None or user.options.no_password:
            raise AuthFailedError()
        return self.tokens.assign(name, self.revision, prefix, index, now)

    def auth_info_from_token(self, token: str, now: float) -> AuthInfo | None:
        """Who a token belongs to, and the auth revision it was issued at (a simple
        token: the current one); None if it is not valid."""
        found = self.tokens.info(token, self.revision, now)
        return None if found is None else AuthInfo(*found)

    # --- users

    def user_add(self, r: rpc_pb2.AuthUserAddRequest) -> None:
        if not r.name:
            raise UserEmptyError()
        if self._get_user(r.name) is not None:
            raise UserAlreadyExistError()
        user = auth_pb2.User(name=r.name.encode())
        user.options.CopyFrom(r.options)
        if not r.options.no_password:
            user.password = self._select_password(r.password, r.hashedPassword)
        self._put_user(user)
        self._commit_revision()

    def user_delete(self, r: rpc_pb2.AuthUserDeleteRequest) -> None:
        if self.enabled and r.name == ROOT_USER:
            raise InvalidAuthMgmtError()
        if self._get_user(r.name) is None:
            raise UserNotFoundError()
        self._storage.delete(buckets.AUTH_USERS, r.name.encode())
        self._commit_revision()
        self._perm_cache.pop(r.name, None)
        self.tokens.invalidate_user(r.name)

    def user_change_password(self, r: rpc_pb2.AuthUserChangePasswordRequest) -> None:
        user = self._get_user(r.name)
        if user is None:
            raise UserNotFoundError()
        updated = auth_pb2.User(name=user.name, roles=user.roles, options=user.options)
        if not user.options.no_password:
            updated.password = self._select_password(r.password, r.hashedPassword)
        self._put_user(updated)
        self._commit_revision()
        self._perm_cache.pop(r.name, None)
        self.tokens.invalidate_user(r.name)

    def user_grant_role(self, r: rpc_pb2.AuthUserGrantRoleRequest) -> None:
        user = self._get_user(r.user)
        if user is None:
            raise UserNotFoundError()
        if r.role != ROOT_ROLE and self._get_role(r.role) is None:
            raise RoleNotFoundError()
        roles = list(user.roles)
        i = bisect.bisect_left(roles, r.role)
        if i < len(roles) and roles[i] == r.role:
            return  # already granted: nothing changes, not even the revision
        roles.insert(i, r.role)
        del user.roles[:]
        user.roles.extend(roles)
        self._put_user(user)
        self._perm_cache.pop(r.user, None)
        self._commit_revision()

    def user_revoke_role(self, r: rpc_pb2.AuthUserRevokeRoleRequest) -> None:
        if self.enabled and r.name == ROOT_USER and r.role == ROOT_ROLE:
            raise InvalidAuthMgmtError()
        user = self._get_user(r.name)
        if user is None:
            raise UserNotFoundError()
        roles = [role for role in user.roles if role != r.role]
        if len(roles) == len(user.roles):
            raise RoleNotGrantedError()
        updated = auth_pb2.User(
            name=user.name, password=user.password, options=user.options, roles=roles
        )
        self._put_user(updated)
        self._perm_cache.pop(r.name, None)
        self._commit_revision()

    def user_get(self, r: rpc_pb2.AuthUserGetRequest) -> list[str]:
        """The user's roles, sorted."""
        user = self._get_user(r.name)
        if user is None:
            raise UserNotFoundError()
        return list(user.roles)

    def user_list(self) -> list[str]:
        """Every user name, sorted (as bytes)."""
        return [
            key.decode() for key, _ in self._storage.range(buckets.AUTH_USERS, b"\x00", b"\xff")
        ]

    # --- roles

    def role_add(self, r: rpc_pb2.AuthRoleAddRequest) -> None:
        if not r.name:
            raise RoleEmptyError()
        if self._get_role(r.name) is not None:
            raise RoleAlreadyExistError()
        self._put_role(auth_pb2.Role(name=r.name.encode()))
        self._commit_revision()

    def role_delete(self, r: rpc_pb2.AuthRoleDeleteRequest) -> None:
        """Delete a role and take it from every user that has it."""
        if self.enabled and r.role == ROOT_ROLE:
            raise InvalidAuthMgmtError()
        if self._get_role(r.role) is None:
            raise RoleNotFoundError()
        self._storage.delete(buckets.AUTH_ROLES, r.role.encode())
        for _, raw in self._storage.range(buckets.AUTH_USERS, b"\x00", b"\xff"):
            user = auth_pb2.User.FromString(raw)
            roles = [role for role in user.roles if role != r.role]
            if len(roles) == len(user.roles):
                continue
            updated = auth_pb2.User(
                name=user.name, password=user.password, options=user.options, roles=roles
            )
            self._put_user(updated)
            self._perm_cache.pop(user.name.decode(), None)
        self._commit_revision()

    def role_get(self, r: rpc_pb2.AuthRoleGetRequest) -> list[auth_pb2.Permission]:
        """The role's permissions, sorted by key."""
        role = self._get_role(r.role)
        if role is None:
            raise RoleNotFoundError()
        return list(role.keyPermission)

    def role_list(self) -> list[str]:
        """Every role name, sorted (as bytes)."""
        return [
            key.decode() for key, _ in self._storage.range(buckets.AUTH_ROLES, b"\x00", b"\xff")
        ]

    def role_grant_permission(self, r: rpc_pb2.AuthRoleGrantPermissionRequest) -> None:
        """Add a permission, or change the type of one on the same range."""
        if not r.HasField("perm"):
            raise PermissionNotGivenError()
        role = self._get_role(r.name)
        if role is None:
            raise RoleNotFoundError()
        perms = list(role.keyPermission)
        keys = [p.key for p in perms]
        i = bisect.bisect_left(keys, r.perm.key)
        if i < len(perms) and perms[i].key == r.perm.key and perms[i].range_end == r.perm.range_end:
            role.keyPermission[i].permType = r.perm.permType
        else:
            new = auth_pb2.Permission(
                key=r.perm.key, range_end=r.perm.range_end, permType=r.perm.permType
            )
            # Go's sort.Sort is not stable; equal keys keep insertion order here.
            perms.append(new)
            perms.sort(key=lambda p: p.key)
            del role.keyPermission[:]
            role.keyPermission.extend(perms)
        self._put_role(role)
        self._perm_cache.clear()
        self._commit_revision()

    def role_revoke_permission(self, r: rpc_pb2.AuthRoleRevokePermissionRequest) -> None:
        role = self._get_role(r.role)
        if role is None:
            raise RoleNotFoundError()
        kept = [p for p in role.keyPermission if p.key != r.key or p.range_end != r.range_end]
        if len(kept) == len(role.keyPermission):
            raise PermissionNotGrantedError()
        self._put_role(auth_pb2.Role(name=role.name, keyPermission=kept))
        self._perm_cache.clear()
        self._commit_revision()

    # --- permission checks

    def is_put_permitted(self, info: AuthInfo, key: bytes) -> None:
        self._is_op_permitted(info, key, b"", WRITE)

    def is_range_permitted(self, info: AuthInfo, key: bytes, range_end: bytes) -> None:
        self._is_op_permitted(info, key, range_end, READ)

    def is_delete_range_permitted(self, info: AuthInfo, key: bytes, range_end: bytes) -> None:
        self._is_op_permitted(info, key, range_end, WRITE)

    def is_admin_permitted(self, info: AuthInfo | None) -> None:
        """Raises unless auth is off or the user has the root role."""
        if not self.enabled:
            return
        if info is None or not info.username:
            raise UserEmptyError()
        user = self._get_user(info.username)
        if user is None:
            raise UserNotFoundError()
        if not _has_root_role(user):
            raise PermissionDeniedError()

    def is_lease_keys_permitted(self, info: AuthInfo | None, keys: Iterable[bytes]) -> None:
        """Listing a lease's keys (``LeaseTimeToLive`` with ``keys``) needs a user with
        read on each key: etcd 3.5.9's fix of CVE-2023-32082 (3.5.1 showed them to anyone)."""
        if not self.enabled:
            return
        if info is None or info.revision == 0:
            raise UserEmptyError()
        for key in keys:
            self.is_range_permitted(info, key, b"")

    def has_role(self, username: str, role: str) -> bool:
        user = self._get_user(username)
        return user is not None and role in user.roles

    def _is_op_permitted(self, info: AuthInfo, key: bytes, range_end: bytes, perm: int) -> None:
        if not self.enabled:
            return
        if info.revision == 0:
            raise UserEmptyError()  # no user was given
        if info.revision < self.revision:
            raise AuthOldRevisionError()
        user = self._get_user(info.username)
        if user is None:
            raise PermissionDeniedError()
        if _has_root_role(user):
            return
        perms = self._perm_cache.get(info.username)
        if perms is None:
            roles = [self._get_role(name) for name in user.roles]
            perms = UnifiedPerms.merge(role for role in roles if role is not None)
            self._perm_cache[info.username] = perms
        if not perms.allows(key, range_end, perm):
            raise PermissionDeniedError()

    # --- storage

    def _select_password(self, password: str, hashed: str) -> bytes:
        """The hash to store: the one the proposer computed, or (for a request without
        one) a hash made here."""
        if password and not hashed:
            return passwords.hash_password(password, self.cost)
        try:
            return base64.b64decode(hashed, validate=True)
        except binascii.Error:
            raise NoPasswordUserError() from None

    def _get_user(self, name: str) -> auth_pb2.User | None:
        if not name:
            return None  # no such user (and LMDB refuses empty keys)
        raw = self._storage.get(buckets.AUTH_USERS, name.encode())
        return None if raw is None else auth_pb2.User.FromString(raw)

    def _put_user(self, user: auth_pb2.User) -> None:
        self._storage.put(buckets.AUTH_USERS, user.name, user.SerializeToString())

    def _get_role(self, name: str) -> auth_pb2.Role | None:
        if not name:
            return None
        raw = self._storage.get(buckets.AUTH_ROLES, name.encode())
        return None if raw is None else auth_pb2.Role.FromString(raw)

    def _put_role(self, role: auth_pb2.Role) -> None:
        self._storage.put(buckets.AUTH_ROLES, role.name, role.SerializeToString())

    def _commit_revision(self) -> None:
        self.revision += 1
        self._storage.put(buckets.AUTH, REVISION_KEY, self.revision.to_bytes(8, "big"))


def _has_root_role(user: auth_pb2.User) -> bool:
    return ROOT_ROLE in user.roles
