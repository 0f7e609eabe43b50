"""Deterministic member and cluster ids, computed as etcd computes them.

A member's id is the first 8 bytes (big-endian) of SHA-1 over its sorted peer URLs
joined with no separator, followed by the cluster token (and, for a member added at
run time, the Unix time of the addition). The cluster id is the first 8 bytes of
SHA-1 over the sorted member ids, each as 8 big-endian bytes.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable


def member_id(peer_urls: Iterable[str], cluster_token: str, now: int | None = None) -> int:
    """The id of a member with these peer URLs in the cluster named ``cluster_token``."""
    data = "".join(sorted(peer_urls)) + cluster_token
    if now is not None:
        data += str(now)
    return struct.unpack(">Q", hashlib.sha1(data.encode()).digest()[:8])[0]


def cluster_id(member_ids: Iterable[int]) -> int:
    """The id of a cluster whose bootstrap members have these ids."""
    ids = sorted(member_ids)
    data = struct.pack(f">{len(ids)}Q", *ids)
    return struct.unpack(">Q", hashlib.sha1(data).digest()[:8])[0]


def format_id(value: int) -> str:
    """An id as etcd prints it: lower-case hex without leading zeros."""
    return f"{value:x}"
