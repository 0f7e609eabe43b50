"""Unique request and lease ids, made as etcd's ``idutil.Generator`` makes them.

An id is the member id's low 16 bits, then 40 bits of the start time in
milliseconds, then an 8-bit counter; the time-and-counter suffix is incremented
for each id, so ids are unique per member and across restarts (as long as the
clock does not go back) without coordination.
"""

from __future__ import annotations

_TS_BITS = 40
_COUNT_BITS = 8
_SUFFIX_BITS = _TS_BITS + _COUNT_BITS
_SUFFIX_MASK = (1 << _SUFFIX_BITS) - 1


class IdGenerator:
    """Generates ids for one member; ``now_ms`` is the start time in milliseconds."""

    def __init__(self, member_id: int, now_ms: int) -> None:
        self._prefix = (member_id & 0xFFFF) << _SUFFIX_BITS
        self._suffix = (now_ms & ((1 << _TS_BITS) - 1)) << _COUNT_BITS

    def next(self) -> int:
        """The next id."""
        self._suffix = (self._suffix + 1) & _SUFFIX_MASK
        return self._prefix | self._suffix
