"""Facts of the bbolt file format (version 2) shared by the writer and the reader.

A bbolt file is an array of pages of ``page_size`` bytes. Each page starts with
a 16-byte header ``(id u64, flags u16, count u16, overflow u32)``, little-endian;
``overflow`` more pages follow a page whose content is larger than one page.
Pages 0 and 1 are the two meta pages (the valid one with the higher txid wins),
the meta names the root bucket's page, the freelist page and the high-water mark.
A bucket is a B+tree: branch pages hold ``(pos u32, ksize u32, pgid u64)``
elements, leaf pages ``(flags u32, pos u32, ksize u32, vsize u32)`` elements;
``pos`` counts from the element to its key (the value follows the key). In a
leaf, the flag ``BUCKET_LEAF`` marks a nested bucket, whose value is its header
``(root pgid u64, sequence u64)``, followed, when ``root`` is 0, by the
bucket's single leaf page inline.
"""

from __future__ import annotations

import struct

MAGIC = 0xED0CDAED
VERSION = 2
DEFAULT_PAGE_SIZE = 4096

BRANCH_PAGE = 0x01
LEAF_PAGE = 0x02
META_PAGE = 0x04
FREELIST_PAGE = 0x10

#: Leaf element flag: the value is a nested bucket.
BUCKET_LEAF = 0x01

PAGE_HEADER = struct.Struct("<QHHI")
LEAF_ELEMENT = struct.Struct("<IIII")
BRANCH_ELEMENT = struct.Struct("<IIQ")
BUCKET_HEADER = struct.Struct("<QQ")
#: magic, version, page size, flags, root bucket (root, sequence), freelist, pgid, txid
META = struct.Struct("<IIIIQQQQQ")
CHECKSUM = struct.Struct("<Q")
#: A freelist page whose count is this stores the real count in its first u64.
FREELIST_COUNT_OVERFLOW = 0xFFFF

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_U64 = (1 << 64) - 1


def fnv64a(data: bytes) -> int:
    """FNV-1a, 64 bits: the meta page's checksum over the meta fields before it."""
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & _U64
    return h
