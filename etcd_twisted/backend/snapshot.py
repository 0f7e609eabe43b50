"""Whole-database snapshots as a byte stream, and restoring one into a new file.

The stream is logical, not LMDB's page file, so it does not depend on page size
or LMDB version and can be checked end to end::

    magic "ETBKSNP1"
    u8 bucket count, then per bucket: u8 name length, name
    per pair:  u8 bucket number, u32 key length, u32 value length, key, value
    trailer:   u8 0xFF, u64 pair count, u32 CRC32-Castagnoli of every byte before it

All integers are big-endian. A stream that stops early, carries extra bytes or
fails the CRC is refused.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Iterator

import crc32c
import lmdb

from etcd_twisted.backend.errors import CorruptSnapshotStreamError
from etcd_twisted.wal import files

__all__ = ["BackendSnapshot", "restore_snapshot"]

MAGIC = b"ETBKSNP1"
_PAIR = struct.Struct(">BII")
_TRAILER = struct.Struct(">QI")
_END = 0xFF
_CHUNK = 1024 * 1024
_RESTORE_BATCH = 10_000


class BackendSnapshot:
    """A consistent, pinned view of the committed database, streamed by ``chunks()``.

    It holds an LMDB read transaction, so it may be streamed from any thread
    while the owner keeps writing; ``close()`` (or ``with``) releases it.
    """

    def __init__(
        self,
        txn: lmdb.Transaction,
        dbs: dict[bytes, lmdb._Database],
        on_close: Callable[[BackendSnapshot], None] | None = None,
    ) -> None:
        self._txn: lmdb.Transaction | None = txn
        self._dbs = dbs
        self._on_close = on_close

    def chunks(self, chunk_bytes: int = _CHUNK) -> Iterator[bytes]:
        """Yield the stream in pieces of about ``chunk_bytes``."""
        txn = self._txn
        if txn is None:
            raise ValueError("snapshot is closed")
        names = list(self._dbs)
        buf = bytearray(MAGIC)
        buf.append(len(names))
        for name in names:
            buf.append(len(name))
            buf += name
        crc, count = 0, 0
        for number, name in enumerate(names):
            for key, value in txn.cursor(db=self._dbs[name]):
                buf += _PAIR.pack(number, len(key), len(value))
                buf += key
                buf += value
                count += 1
                if len(buf) >= chunk_bytes:
                    crc = crc32c.crc32c(buf, crc)
                    yield bytes(buf)
                    buf.clear()
        buf.append(_END)
        crc = crc32c.crc32c(buf, crc)
        buf += _TRAILER.pack(count, crc)
        yield bytes(buf)

    def buckets(self) -> Iterator[tuple[bytes, Iterator[tuple[bytes, bytes]]]]:
        """Every bucket's pairs, in name and key order (bbolt's order); one bucket at a time."""
        txn = self._txn
        if txn is None:
            raise ValueError("snapshot is closed")
        for name in sorted(self._dbs):
            yield name, iter(txn.cursor(db=self._dbs[name]))

    def close(self) -> None:
        """Release the read transaction."""
        if self._txn is not None:
            self._txn.abort()
            self._txn = None
            if self._on_close is not None:
                self._on_close(self)

    def __enter__(self) -> BackendSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Reader:
    """Incremental parser over the stream's chunks."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buf = bytearray()
        self._pos = 0
        self.crc = 0

    def take(self, n: int) -> bytes:
        while len(self._buf) - self._pos < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                raise CorruptSnapshotStreamError("snapshot stream ends early")
            del self._buf[: self._pos]
            self._pos = 0
            self._buf += chunk
        out = bytes(self._buf[self._pos : self._pos + n])
        self._pos += n
        self.crc = crc32c.crc32c(out, self.crc)
        return out

    def at_end(self) -> bool:
        if len(self._buf) > self._pos:
            return False
        return all(not chunk for chunk in self._chunks)


def restore_snapshot(path: str, chunks: Iterable[bytes], *, map_size: int) -> None:
    """Build a database file at ``path`` from a snapshot stream, replacing any old one.

    The new file is written beside ``path`` and renamed over it only once the
    whole stream has checked out; ``path`` must not be open.
    """
    tmp = path + ".restore"
    for p in (tmp, tmp + "-lock"):
        if os.path.exists(p):
            os.unlink(p)
    env = lmdb.open(tmp, subdir=False, map_size=map_size, max_dbs=32, sync=False)
    try:
        _load(env, _Reader(chunks))
        env.sync(True)
    except BaseException:
        env.close()
        os.unlink(tmp)
        raise
    env.close()
    os.unlink(tmp + "-lock")
    os.replace(tmp, path)
    files.fsync_dir(os.path.dirname(path) or ".")


def _load(env: lmdb.Environment, r: _Reader) -> None:
    if r.take(len(MAGIC)) != MAGIC:
        raise CorruptSnapshotStreamError("not a backend snapshot stream")
    txn = env.begin(write=True)
    try:
        dbs = []
        for _ in range(r.take(1)[0]):
            name = r.take(r.take(1)[0])
            dbs.append(env.open_db(name, txn=txn))
        count = 0
        while (number := r.take(1)[0]) != _END:
            if number >= len(dbs):
                raise CorruptSnapshotStreamError(f"bad bucket number {number}")
            klen, vlen = _PAIR.unpack(bytes([number]) + r.take(_PAIR.size - 1))[1:]
            txn.put(r.take(klen), r.take(vlen), db=dbs[number])
            count += 1
            if count % _RESTORE_BATCH == 0:
                txn.commit()
                txn = env.begin(write=True)
        crc = r.crc
        want_count, want_crc = _TRAILER.unpack(r.take(_TRAILER.size))
        if (want_count, want_crc) != (count, crc) or not r.at_end():
            raise CorruptSnapshotStreamError("snapshot stream fails its check")
        txn.commit()
    except BaseException:
        txn.abort()
        raise
