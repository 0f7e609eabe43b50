"""Which start-up path a data dir belongs to, as etcd's ``identifyDataDirOrDie`` tells.

A data dir holds ``member/`` (a member's WAL, snapshots and backend) or ``proxy/``
(the v2 proxy's cluster file), never both. etcd starts whatever the dir already
holds; since the v2 proxy is not provided here, a proxy's dir is refused rather than
started as a member, and the reverse cannot arise.
"""

from __future__ import annotations

import os

__all__ = ["DataDirKind", "InvalidDataDir", "identify", "refusal"]

DataDirKind = str  # "empty", "member" or "proxy"


class InvalidDataDir(Exception):
    """The data dir cannot be used; the message is etcd's line."""


def identify(path: str) -> DataDirKind:
    """The kind of the data dir at ``path`` (other entries do not count, as in etcd).

    Raises :class:`InvalidDataDir` when it holds both ``member/`` and ``proxy/``."""
    try:
        names = set(os.listdir(path))
    except FileNotFoundError:
        return "empty"
    member, proxy = "member" in names, "proxy" in names
    if member and proxy:
        raise InvalidDataDir("invalid datadir; both member and proxy directories exist")
    return "member" if member else "proxy" if proxy else "empty"


def refusal(path: str) -> str | None:
    """The one-line reason a member cannot start on ``path``, or None when it can."""
    try:
        kind = identify(path)
    except InvalidDataDir as e:
        return str(e)
    if kind == "proxy":
        return (
            f"data dir {path} belongs to a v2 proxy (it holds proxy/); "
            "the v2 proxy is not provided, and a proxy's dir is never started as a member"
        )
    return None
