"""Revisions and their 17-byte backend key encoding (etcd's ``server/mvcc/revision.go``).

A revision ``(main, sub)`` names one change: ``main`` is the store revision of an
atomic write, ``sub`` the change's position within it. In the backend's key bucket
each change is stored under its revision: 8 bytes big-endian ``main``, ``_``,
8 bytes big-endian ``sub``, and for a deletion a trailing ``t`` marker byte.
Big-endian keeps byte order equal to revision order.
"""

import struct
from typing import NamedTuple

#: Length of an encoded revision.
REV_BYTES_LEN = 17
#: Length of an encoded revision carrying the tombstone marker.
MARKED_REV_BYTES_LEN = REV_BYTES_LEN + 1
TOMBSTONE_MARK = ord("t")

_pack = struct.Struct(">QBQ").pack
_pack_marked = struct.Struct(">QBQB").pack
_unpack = struct.Struct(">QxQ").unpack_from
_SEPARATOR = ord("_")


class Revision(NamedTuple):
    """A point in the store's history; tuples order as etcd's ``GreaterThan``."""

    main: int
    sub: int = 0


def rev_to_bytes(rev: Revision, tombstone: bool = False) -> bytes:
    """Encode *rev* as a backend key, marked as a tombstone if asked."""
    if tombstone:
        return _pack_marked(rev[0], _SEPARATOR, rev[1], TOMBSTONE_MARK)
    return _pack(rev[0], _SEPARATOR, rev[1])


def bytes_to_rev(data: bytes) -> Revision:
    """Decode a backend key (marked or not) back into its revision."""
    return Revision(*_unpack(data))


def is_tombstone(data: bytes) -> bool:
    """Whether a backend key carries the tombstone marker."""
    return len(data) == MARKED_REV_BYTES_LEN and data[REV_BYTES_LEN] == TOMBSTONE_MARK
