"""Auth: users, roles, permission ranges, password hashing and simple tokens (pure)."""

from etcd_twisted.auth.errors import AuthError
from etcd_twisted.auth.store import NO_USER, ROOT_ROLE, ROOT_USER, AuthInfo, AuthStore
from etcd_twisted.auth.tokens import SimpleTokens, token_index

__all__ = [
    "NO_USER",
    "ROOT_ROLE",
    "ROOT_USER",
    "AuthError",
    "AuthInfo",
    "AuthStore",
    "SimpleTokens",
    "token_index",
]
