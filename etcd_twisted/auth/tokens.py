"""Token providers, chosen by ``--auth-token`` as etcd's ``NewTokenProvider`` does.

The flag is ``TYPE[,name=value...]``: ``simple`` (the default), ``jwt,...`` (see
:mod:`etcd_twisted.auth.jwt_tokens`), or empty (no tokens: Authenticate fails). Any
other type, an option that is not ``name=value`` or a repeated option is
``InvalidAuthOptsError`` and the member does not start, as etcd's.

etcd's "simple" provider: opaque tokens kept in memory, with a sliding TTL. A token
is 16 random letters, a dot, and the raft index of the Authenticate entry that issued
it (``"aBcD...XyZ.42"``). The proposing member draws the letters before proposing,
so every member that applies the entry knows the same token. A token lives ``ttl``
seconds from its last use (etcd's ``--auth-token-ttl``, 300 s by default).

Nothing here reads a clock: every call that needs the time takes ``now``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from .errors import AuthFailedError, InvalidAuthOptsError
from .jwt_tokens import JWTTokens

LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
PREFIX_LENGTH = 16
DEFAULT_TTL = 300.0


class TokenProvider(Protocol):
    """What the auth store asks of a token provider (etcd's ``TokenProvider``)."""

    def enable(self) -> None: ...
    def disable(self) -> None: ...
    def gen_prefix(self) -> str:
        """What the proposing member puts in the Authenticate entry ("" if unused)."""
        ...

    def assign(self, username: str, revision: int, prefix: str, index: int, now: float) -> str:
        """A token for ``username``, authenticated at auth ``revision`` by the entry at
        raft ``index`` that carried ``prefix``."""
        ...

    def info(self, token: str, revision: int, now: float) -> tuple[str, int] | None:
        """``(username, auth revision)`` for a valid token (``revision`` is the store's
        current one); None if the token is not valid."""
        ...

    def invalidate_user(self, username: str) -> None: ...
    def wait_index(self, token: str) -> int:
        """The raft index that must be applied before ``info`` can know ``token`` (0: none)."""
        ...


def token_index(token: str) -> int | None:
    """The raft index a well-formed simple token names, or None."""
    parts = token.split(".")
    if len(parts) != 2 or not parts[1].isdigit() or not parts[1].isascii():
        return None
    return int(parts[1])


class SimpleTokens:
    """Token → user name, each with an expiry; empty and inert while auth is disabled."""

    def __init__(self, ttl: float = DEFAULT_TTL, rng: random.Random | None = None) -> None:
        self.ttl = ttl if ttl > 0 else DEFAULT_TTL
        self._rng = rng if rng is not None else random.SystemRandom()
        self._tokens: dict[str, tuple[str, float]] = {}
        self._enabled = False
        self._next_sweep = 0.0

    def gen_prefix(self) -> str:
        """A fresh random prefix (drawn by the proposing member)."""
        return "".join(self._rng.choice(LETTERS) for _ in range(PREFIX_LENGTH))

    def enable(self) -> None:
        self._enabled = True

    def disable(self) -> None:
        """Forget every token."""
        self._enabled = False
        self._tokens.clear()

    def assign(self, username: str, revision: int, prefix: str, index: int, now: float) -> str:
        """Issue ``prefix.index`` to ``username`` (kept only while enabled)."""
        token = f"{prefix}.{index}"
        if self._enabled:
            self._sweep(now)
            self._tokens[token] = (username, now + self.ttl)
        return token

    def info(self, token: str, revision: int, now: float) -> tuple[str, int] | None:
        """The user a live token belongs to, at the current ``revision``, refreshing its
        TTL; None if unknown or expired."""
        entry = self._tokens.get(token)
        if entry is None:
            return None
        username, expires = entry
        if now > expires:
            del self._tokens[token]
            return None
        self._tokens[token] = (username, now + self.ttl)
        return username, revision

    def invalidate_user(self, username: str) -> None:
        """Drop every token of ``username`` (deleted, or its password changed)."""
        for token in [t for t, (name, _) in self._tokens.items() if name == username]:
            del self._tokens[token]

    def wait_index(self, token: str) -> int:
        return token_index(token) or 0

    def __len__(self) -> int:
        return len(self._tokens)

    def _sweep(self, now: float) -> None:
        """Drop expired tokens, at most once a TTL (keeps memory bounded without a timer)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.ttl
        for token in [t for t, (_, exp) in self._tokens.items() if now > exp]:
            del self._tokens[token]


class NopTokens:
    """``--auth-token ""``: no token is ever issued or valid (etcd's ``tokenNop``)."""

    def enable(self) -> None:
        pass

    def disable(self) -> None:
        pass

    def gen_prefix(self) -> str:
        return ""

    def assign(self, username: str, revision: int, prefix: str, index: int, now: float) -> str:
        raise AuthFailedError()

    def info(self, token: str, revision: int, now: float) -> tuple[str, int] | None:
        return None

    def invalidate_user(self, username: str) -> None:
        pass

    def wait_index(self, token: str) -> int:
        return 0


def parse_token_flag(flag: str) -> tuple[str, dict[str, str]]:
    """``TYPE,name=value,...`` → the type and its options (etcd's ``decomposeOpts``)."""
    token_type, *pairs = flag.split(",")
    options: dict[str, str] = {}
    for pair in pairs:
        parts = pair.split("=")
        if len(parts) != 2:
            raise InvalidAuthOptsError(f"{InvalidAuthOptsError.message} (bad option {pair!r})")
        name, value = parts
        if name in options:
            raise InvalidAuthOptsError(f"{InvalidAuthOptsError.message} (repeated option {name!r})")
        options[name] = value
    return token_type, options


def new_token_provider(
    flag: str,
    ttl: float = DEFAULT_TTL,
    read_file: Callable[[str], bytes] = lambda path: Path(path).read_bytes(),
    warn: Callable[[str], None] = lambda message: None,
) -> TokenProvider:
    """The provider ``--auth-token flag`` asks for; ``ttl`` is ``--auth-token-ttl``
    (simple tokens only: JWTs carry their own ``ttl`` option)."""
    token_type, options = parse_token_flag(flag)
    if token_type == "simple":
        return SimpleTokens(ttl=ttl)
    if token_type == "jwt":
        return JWTTokens.from_options(options, read_file, warn)
    if token_type == "":
        return NopTokens()
    raise InvalidAuthOptsError(
        f"{InvalidAuthOptsError.message} (unknown token type {token_type!r})"
    )
