"""Read the buckets of a bbolt database file (an etcd backend or snapshot), without bbolt.

The file is mapped, not loaded, so reading a multi-GB snapshot keeps memory
small. Bytes after the last page (the sha256 etcd appends to a snapshot) are
ignored. Only top-level buckets holding plain pairs are read (etcd's layout);
a nested bucket is refused.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator

from etcd_twisted.backend.bbolt_format import (
    BRANCH_ELEMENT,
    BRANCH_PAGE,
    BUCKET_HEADER,
    BUCKET_LEAF,
    CHECKSUM,
    LEAF_ELEMENT,
    LEAF_PAGE,
    MAGIC,
    META,
    META_PAGE,
    PAGE_HEADER,
    VERSION,
    fnv64a,
)

__all__ = ["BboltFormatError", "BboltReader"]


class BboltFormatError(ValueError):
    """The file is not a bbolt database this reader understands."""


class BboltReader:
    """Buckets and pairs of a bbolt file, from its newest valid meta page."""

    def __init__(self, path: str) -> None:
        with open(path, "rb") as f:
            try:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:
                raise BboltFormatError(f"{path}: empty file") from None
        try:
            self._read_meta(path)
        except BaseException:
            self._map.close()
            raise

    def _read_meta(self, path: str) -> None:
        metas = []
        page_size = 0
        for pgid in (0, 1):
            offset = pgid * page_size
            end = offset + PAGE_HEADER.size + META.size + CHECKSUM.size
            if end > len(self._map):
                continue
            fields = self._map[offset + PAGE_HEADER.size : end - CHECKSUM.size]
            (checksum,) = CHECKSUM.unpack(self._map[end - CHECKSUM.size : end])
            flags = PAGE_HEADER.unpack_from(self._map, offset)[1]
            magic, version, psize, _, root, _, freelist, high_water, txid = META.unpack(fields)
            if pgid == 0:
                page_size = psize
            if flags & META_PAGE and magic == MAGIC and version == VERSION and psize >= 512:
                if checksum == fnv64a(fields):
                    metas.append((txid, psize, root, high_water))
            if page_size < 512:
                break
        if not metas:
            raise BboltFormatError(f"{path}: no valid bbolt meta page")
        txid, self.page_size, self._root, self.high_water = max(metas)
        self.txid = txid
        if self.high_water * self.page_size > len(self._map):
            raise BboltFormatError(
                f"{path}: file is {len(self._map)} bytes, the meta says {self.high_water} pages"
            )

    @property
    def size(self) -> int:
        """The database's length in bytes (without any trailer)."""
        return self.high_water * self.page_size

    def _pairs(self, pgid: int) -> Iterator[tuple[int, bytes, bytes]]:
        """``(flags, key, value)`` of the tree rooted at page ``pgid``, in key order."""
        if not 2 <= pgid < self.high_water:
            raise BboltFormatError(f"page {pgid} out of bounds")
        offset = pgid * self.page_size
        _, flags, count, _ = PAGE_HEADER.unpack_from(self._map, offset)
        if flags & BRANCH_PAGE:
            children = []
            for i in range(count):
                at = offset + PAGE_HEADER.size + i * BRANCH_ELEMENT.size
                children.append(BRANCH_ELEMENT.unpack_from(self._map, at)[2])
            for child in children:
                yield from self._pairs(child)
        elif flags & LEAF_PAGE:
            yield from _leaf_pairs(self._map, offset, count)
        else:
            raise BboltFormatError(f"page {pgid} is neither a branch nor a leaf (flags {flags:#x})")

    def _bucket_pairs(self, value: bytes) -> Iterator[tuple[int, bytes, bytes]]:
        root, _ = BUCKET_HEADER.unpack_from(value)
        if root:
            return self._pairs(root)
        _, flags, count, _ = PAGE_HEADER.unpack_from(value, BUCKET_HEADER.size)
        if not flags & LEAF_PAGE:
            raise BboltFormatError("inline bucket is not a leaf")
        return _leaf_pairs(value, BUCKET_HEADER.size, count)

    def buckets(self) -> Iterator[tuple[bytes, Iterator[tuple[bytes, bytes]]]]:
        """Each top-level bucket's name and its pairs, in name and key order."""
        for flags, name, value in self._pairs(self._root):
            if not flags & BUCKET_LEAF:
                raise BboltFormatError(f"top-level key {name!r} is not a bucket")
            yield name, self._plain(name, self._bucket_pairs(value))

    @staticmethod
    def _plain(
        name: bytes, pairs: Iterator[tuple[int, bytes, bytes]]
    ) -> Iterator[tuple[bytes, bytes]]:
        for flags, key, value in pairs:
            if flags & BUCKET_LEAF:
                raise BboltFormatError(f"nested bucket {key!r} in {name!r} is not supported")
            yield key, value

    def close(self) -> None:
        """Unmap the file."""
        self._map.close()

    def __enter__(self) -> BboltReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _leaf_pairs(
    buf: bytes | mmap.mmap, offset: int, count: int
) -> Iterator[tuple[int, bytes, bytes]]:
    for i in range(count):
        at = offset + PAGE_HEADER.size + i * LEAF_ELEMENT.size
        flags, pos, ksize, vsize = LEAF_ELEMENT.unpack_from(buf, at)
        start = at + pos
        yield (
            flags,
            bytes(buf[start : start + ksize]),
            bytes(buf[start + ksize : start + ksize + vsize]),
        )
