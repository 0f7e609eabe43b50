"""etcd's "simple" token provider: opaque tokens kept in memory, with a sliding TTL.

A token is 16 random letters, a dot, and the raft index of the Authenticate entry
that issued it (``"aBcD...XyZ.42"``). The proposing member draws the letters before
proposing, so every member that applies the entry knows the same token. A token
lives ``ttl`` seconds from its last use (etcd's ``--auth-token-ttl``, 300 s by
default). Nothing here reads a clock: every call that needs the time takes ``now``.
"""

from __future__ import annotations

import random

LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
PREFIX_LENGTH = 16
DEFAULT_TTL = 300.0


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

    def assign(self, username: str, prefix: str, index: int, now: float) -> str:
        """Issue ``prefix.index`` to ``username`` (kept only while enabled)."""
        token = f"{prefix}.{index}"
        if self._enabled:
            self._sweep(now)
            self._tokens[token] = (username, now + self.ttl)
        return token

    def info(self, token: str, now: float) -> str | None:
        """The user a live token belongs to, refreshing its TTL; None if unknown or expired."""
        entry = self._tokens.get(token)
        if entry is None:
            return None
        username, expires = entry
        if now > expires:
            del self._tokens[token]
            return None
        self._tokens[token] = (username, now + self.ttl)
        return username

    def invalidate_user(self, username: str) -> None:
        """Drop every token of ``username`` (deleted, or its password changed)."""
        for token in [t for t, (name, _) in self._tokens.items() if name == username]:
            del self._tokens[token]

    def __len__(self) -> int:
        return len(self._tokens)

    def _sweep(self, now: float) -> None:
        """Drop expired tokens, at most once a TTL (keeps memory bounded without a timer)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.ttl
        for token in [t for t, (_, exp) in self._tokens.items() if now > exp]:
            del self._tokens[token]
