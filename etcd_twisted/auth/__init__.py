"""Auth: users, roles, permission ranges, password hashing and tokens (pure)."""

from etcd_twisted.auth.errors import AuthError
from etcd_twisted.auth.store import NO_USER, ROOT_ROLE, ROOT_USER, AuthInfo, AuthStore
from etcd_twisted.auth.tokens import SimpleTokens, TokenProvider, new_token_provider, token_index

__all__ = [
    "NO_USER",
    "ROOT_ROLE",
    "ROOT_USER",
    "AuthError",
    "AuthInfo",
    "AuthStore",
    "SimpleTokens",
    "TokenProvider",
    "new_token_provider",
    "token_index",
]
