"""Permission ranges: a user's roles merged into read and write intervals, and the checks.

As etcd's ``range_perm_cache.go``, keys compare as bytes with the empty key standing
for +infinity (an "affine" order), so ``[key, "")`` is every key from ``key`` on.
A permission's ``range_end`` follows the wire conventions: empty is the single key,
``"\\0"`` is "from key" (every key >= key), anything else is ``[key, range_end)``.

A request for one key (empty ``range_end``) is allowed when any interval holds the
key; a request for a range is allowed only when the intervals that overlap it,
merged, cover it with no gap (etcd's ``IntervalTree.Contains``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from etcd_twisted._pb import auth_pb2

Permission = auth_pb2.Permission
READ = Permission.READ
WRITE = Permission.WRITE
READWRITE = Permission.READWRITE

#: An interval ``[begin, end)``; an empty ``end`` is +infinity.
Interval = tuple[bytes, bytes]


def _key(b: bytes) -> tuple[int, bytes]:
    """Sort key of the affine order: the empty string is greater than everything."""
    return (1, b"") if not b else (0, b)


def _lt(a: bytes, b: bytes) -> bool:
    return _key(a) < _key(b)


def perm_interval(key: bytes, range_end: bytes) -> Interval:
    """The interval a stored permission covers."""
    if not range_end:
        return key, key + b"\x00"  # one key: the smallest interval holding only it
    if range_end == b"\x00":
        return key, b""
    return key, range_end


@dataclass
class UnifiedPerms:
    """A user's permissions from all of its roles, as read and write intervals."""

    read: list[Interval] = field(default_factory=list)
    write: list[Interval] = field(default_factory=list)

    @classmethod
    def merge(cls, roles: Iterable[auth_pb2.Role]) -> UnifiedPerms:
        perms = cls()
        for role in roles:
            for perm in role.keyPermission:
                ivl = perm_interval(perm.key, perm.range_end)
                if perm.permType in (READ, READWRITE):
                    perms.read.append(ivl)
                if perm.permType in (WRITE, READWRITE):
                    perms.write.append(ivl)
        return perms

    def allows(self, key: bytes, range_end: bytes, perm_type: int) -> bool:
        """Whether the user may do ``perm_type`` (READ or WRITE) on the wire range."""
        intervals = self.read if perm_type == READ else self.write
        if not range_end:
            return any(not _lt(key, b) and _lt(key, e) for b, e in intervals)
        end = b"" if range_end == b"\x00" else range_end
        return covers(intervals, key, end)


def covers(intervals: Iterable[Interval], begin: bytes, end: bytes) -> bool:
    """Whether the intervals overlapping ``[begin, end)``, merged, hold all of it."""
    overlapping = sorted(
        ((b, e) for b, e in intervals if _lt(b, end) and _lt(begin, e)),
        key=lambda iv: (_key(iv[0]), _key(iv[1])),
    )
    if not overlapping:
        return False
    min_begin, max_end = overlapping[0]
    for b, e in overlapping[1:]:
        if _lt(max_end, b):
            return False  # a gap
        if _lt(max_end, e):
            max_end = e
    return not _lt(max_end, end) and not _lt(begin, min_begin)
