"""Write a bbolt database file from sorted buckets, as a stream of pages.

The file is built bottom-up in a sweep over the data: each bucket's leaves are
filled in key order, and each finished page hands its first key to the level
above, so a tree is written in post-order (children before their parent) and only
one pending page per level is held in memory. Buckets whose whole content fits in
a quarter page are stored inline in the root bucket, as bbolt does. The meta
pages come first in the file but name the root and the page count, so
``BboltFile`` sweeps twice: once laying out without producing bytes (``size``),
then again emitting the pages (``chunks``); the source must give the same data
both times (e.g. one read transaction), which the second sweep checks.

Layout: pages 0 and 1 meta (txid 1 and 0, as bbolt's ``Tx.WriteTo`` writes a
copy), page 2 an empty freelist, then the buckets' pages and the root bucket's, in
the order they fill.
Every page below the high-water mark is reachable, so ``bbolt check`` (run by
``etcdutl snapshot status``) finds nothing to report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from etcd_twisted.backend.bbolt_format import (
    BRANCH_ELEMENT,
    BRANCH_PAGE,
    BUCKET_HEADER,
    BUCKET_LEAF,
    CHECKSUM,
    DEFAULT_PAGE_SIZE,
    FREELIST_PAGE,
    LEAF_ELEMENT,
    LEAF_PAGE,
    MAGIC,
    META,
    META_PAGE,
    PAGE_HEADER,
    VERSION,
    fnv64a,
)

__all__ = ["BboltFile", "Buckets"]

#: Buckets in name order, each with its ``(key, value)`` pairs in key order.
Buckets = Iterable[tuple[bytes, Iterable[tuple[bytes, bytes]]]]

_FREELIST_PGID = 2
_FIRST_DATA_PGID = 3
_TXID = 1
_ELEMENT = LEAF_ELEMENT.size  # == BRANCH_ELEMENT.size
_HEADER = PAGE_HEADER.size


class _Pages:
    """Page ids handed out in file order, and the pages written (unless counting only)."""

    def __init__(self, page_size: int, emit: bool) -> None:
        self.page_size = page_size
        self.emit = emit
        self.next_pgid = _FIRST_DATA_PGID
        self.out: list[bytes] = []
        #: The root bucket's root page, once every bucket is laid out.
        self.root = 0

    def add(self, flags: int, elements: list[tuple[int, bytes, bytes | int]], size: int) -> int:
        """Allocate and (when emitting) write one leaf or branch page; its id."""
        pgid = self.next_pgid
        npages = -(-size // self.page_size)
        self.next_pgid += npages
        if self.emit:
            page = _page_bytes(pgid, flags, elements, npages - 1)
            self.out.append(page + bytes(npages * self.page_size - len(page)))
        return pgid


def _page_bytes(
    pgid: int, flags: int, elements: list[tuple[int, bytes, bytes | int]], overflow: int
) -> bytes:
    """A page's used bytes: header, element table, then keys and values."""
    count = len(elements)
    head = [PAGE_HEADER.pack(pgid, flags, count, overflow)]
    data: list[bytes] = []
    pos = count * _ELEMENT  # from the first element to the first key
    for i, (eflags, key, value) in enumerate(elements):
        rel = pos - i * _ELEMENT
        if isinstance(value, int):
            head.append(BRANCH_ELEMENT.pack(rel, len(key), value))
            data.append(key)
            pos += len(key)
        else:
            head.append(LEAF_ELEMENT.pack(eflags, rel, len(key), len(value)))
            data.append(key)
            data.append(value)
            pos += len(key) + len(value)
    return b"".join(head + data)


class _Level:
    """The page being filled at one level of a tree."""

    __slots__ = ("elements", "flushed", "size")

    def __init__(self) -> None:
        self.elements: list[tuple[int, bytes, bytes | int]] = []
        self.size = _HEADER
        self.flushed = 0


class _Tree:
    """One bucket's B+tree, built bottom-up from pairs in key order."""

    def __init__(self, pages: _Pages) -> None:
        self._pages = pages
        self._levels = [_Level()]

    def add(self, key: bytes, value: bytes, flags: int = 0) -> None:
        """Append a pair (keys must increase)."""
        self._push(0, (flags, key, value), _ELEMENT + len(key) + len(value))

    def _push(self, depth: int, element: tuple[int, bytes, bytes | int], size: int) -> None:
        level = self._levels[depth]
        if level.elements and level.size + size > self._pages.page_size:
            self._flush(depth)
        level.elements.append(element)
        level.size += size

    def _flush(self, depth: int) -> int:
        """Write the level's page and give its first key to the level above; its id."""
        level = self._levels[depth]
        pgid = self._pages.add(LEAF_PAGE if depth == 0 else BRANCH_PAGE, level.elements, level.size)
        first_key = level.elements[0][1]
        level.elements = []
        level.size = _HEADER
        level.flushed += 1
        if depth + 1 == len(self._levels):
            self._levels.append(_Level())
        self._push(depth + 1, (0, first_key, pgid), _ELEMENT + len(first_key))
        return pgid

    def inline_page(self) -> bytes | None:
        """The bucket's only leaf as bbolt inlines it (at most a quarter page), else None."""
        leaf = self._levels[0]
        if len(self._levels) > 1 or leaf.size > self._pages.page_size // 4:
            return None
        if any(flags & BUCKET_LEAF for flags, _, _ in leaf.elements):
            return None
        return _page_bytes(0, LEAF_PAGE, leaf.elements, 0)

    def finish(self) -> int:
        """Write the pending pages; the root page's id."""
        depth = 0
        while True:
            level = self._levels[depth]
            if level.flushed == 0 and depth + 1 == len(self._levels):
                return self._pages.add(
                    LEAF_PAGE if depth == 0 else BRANCH_PAGE, level.elements, level.size
                )
            self._flush(depth)
            depth += 1


class BboltFile:
    """A bbolt file of ``buckets()``'s content: ``size`` bytes, produced by ``chunks()``."""

    def __init__(self, buckets: Callable[[], Buckets], page_size: int = DEFAULT_PAGE_SIZE) -> None:
        self._buckets = buckets
        self.page_size = page_size
        self._layout: tuple[int, int] | None = None

    @property
    def size(self) -> int:
        """The file's length in bytes (lays the data out once, without writing)."""
        return self._plan()[1] * self.page_size

    def _plan(self) -> tuple[int, int]:
        """``(root page, page count)``, from a layout that writes nothing."""
        if self._layout is None:
            pages = _Pages(self.page_size, emit=False)
            for _ in self._build(pages):
                pass
            self._layout = (pages.root, pages.next_pgid)
        return self._layout

    def _build(self, pages: _Pages) -> Iterator[None]:
        """Lay out every bucket, then the root bucket (``pages.root``); yields after
        each pair or bucket, so the caller can take ``pages.out`` as it fills."""
        root = _Tree(pages)
        previous: bytes | None = None
        for name, items in self._buckets():
            if previous is not None and name <= previous:
                raise ValueError(f"bucket {name!r} out of order")
            previous = name
            tree = _Tree(pages)
            last: bytes | None = None
            for key, value in items:
                if not key or (last is not None and key <= last):
                    raise ValueError(f"key {key!r} of bucket {name!r} empty or out of order")
                last = key
                tree.add(key, value)
                if pages.out:
                    yield None
            inline = tree.inline_page()
            if inline is not None:
                root.add(name, BUCKET_HEADER.pack(0, 0) + inline, BUCKET_LEAF)
            else:
                root.add(name, BUCKET_HEADER.pack(tree.finish(), 0), BUCKET_LEAF)
            yield None
        pages.root = root.finish()
        yield None

    def _meta_page(self, pgid: int, txid: int, root: int, high_water: int) -> bytes:
        fields = META.pack(
            MAGIC, VERSION, self.page_size, 0, root, 0, _FREELIST_PGID, high_water, txid
        )
        page = PAGE_HEADER.pack(pgid, META_PAGE, 0, 0) + fields + CHECKSUM.pack(fnv64a(fields))
        return page + bytes(self.page_size - len(page))

    def chunks(self) -> Iterator[bytes]:
        """The file's bytes, in whole pages (a few at a time)."""
        root, high_water = self._plan()
        yield self._meta_page(0, _TXID, root, high_water)
        yield self._meta_page(1, _TXID - 1, root, high_water)
        freelist = PAGE_HEADER.pack(_FREELIST_PGID, FREELIST_PAGE, 0, 0)
        yield freelist + bytes(self.page_size - len(freelist))
        pages = _Pages(self.page_size, emit=True)
        for _ in self._build(pages):
            if pages.out:
                yield b"".join(pages.out)
                pages.out.clear()
        if (pages.root, pages.next_pgid) != (root, high_water):
            raise RuntimeError("the data changed between laying out and writing the file")
