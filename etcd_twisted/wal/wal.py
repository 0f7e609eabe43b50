"""The write-ahead log: segment files of records in ``DATA_DIR/member/wal/``.

A WAL is a directory of segment files named ``{seq:016x}-{index:016x}.wal``:
``seq`` counts files from 0 and ``index`` is the raft index the file's first
entry will have (0 for the first file). Each file is preallocated with zeros
and begins with a ``CRC`` record (the chain value so far), a ``METADATA``
record and, in every file after the first, the current hard state. The first
file also records the empty snapshot, so a WAL can be opened at index 0.

Use: ``WAL.create(dir, metadata)`` once; later ``WAL.open(dir, snap)`` at the
newest snapshot, ``read_all()``, then ``save``/``save_snapshot``/``cut`` and
``release_lock_to``. Every file from the one holding the open snapshot onward
is locked (``flock``), so ``purge`` never deletes a file the log still needs.

Not thread-safe: one thread uses a WAL at a time.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from etcd_twisted._pb import raft_pb2, wal_pb2
from etcd_twisted.wal import files
from etcd_twisted.wal.errors import (
    CorruptWALError,
    MetadataConflictError,
    SnapshotMismatchError,
    SnapshotNotFoundError,
    WALError,
    WALExistsError,
    WALLockedError,
    WALNotFoundError,
)
from etcd_twisted.wal.record import (
    MAX_RECORD_BYTES,
    CorruptRecordError,
    Decoder,
    Encoder,
    Record,
    RecordType,
    Tail,
)

__all__ = [
    "SEGMENT_BYTES",
    "WAL",
    "exist",
    "parse_wal_name",
    "purge",
    "valid_snapshot_entries",
    "wal_name",
]

#: A segment is cut once it grows past this size (etcd: 64 MB).
SEGMENT_BYTES = 64 * 1024 * 1024
_READ_CHUNK = 1024 * 1024

HardState = raft_pb2.HardState
Entry = raft_pb2.Entry
WalSnapshot = wal_pb2.Snapshot
SyncHook = Callable[[float], None]


def wal_name(seq: int, index: int) -> str:
    """The file name of segment ``seq`` whose first entry has ``index``."""
    return f"{seq:016x}-{index:016x}.wal"


def parse_wal_name(name: str) -> tuple[int, int]:
    """``(seq, index)`` from a segment file name; ValueError if it is not one."""
    stem, dot, ext = name.partition(".")
    seq, dash, index = stem.partition("-")
    if ext != "wal" or not dot or not dash or len(seq) != 16 or len(index) != 16:
        raise ValueError(f"not a WAL file name: {name!r}")
    return int(seq, 16), int(index, 16)


def _wal_names(dirpath: str) -> list[str]:
    names = []
    for name in os.listdir(dirpath):
        try:
            parse_wal_name(name)
        except ValueError:
            continue
        names.append(name)
    return sorted(names)


def exist(dirpath: str) -> bool:
    """Whether ``dirpath`` holds any WAL segment file."""
    return os.path.isdir(dirpath) and bool(_wal_names(dirpath))


def is_empty_hard_state(st: HardState) -> bool:
    """Whether the hard state is all zero (raft's ``IsEmptyHardState``)."""
    return st.term == 0 and st.vote == 0 and st.commit == 0


def must_sync(st: HardState, prev: HardState, n_entries: int) -> bool:
    """Whether saving needs an fdatasync: new entries, or a changed term or vote."""
    return n_entries != 0 or st.vote != prev.vote or st.term != prev.term


@dataclass
class _Segment:
    path: str
    fd: int
    seq: int
    index: int


def _open_locked(path: str) -> int:
    fd = os.open(path, os.O_RDWR)
    if not files.try_lock(fd):
        os.close(fd)
        raise WALLockedError(f"wal: {path} is locked by another open WAL")
    return fd


def _records(path: str, fd: int, decoder: Decoder) -> Iterator[Record]:
    """Decode every record of one file; the decoder's ``close()`` tells how it ended."""
    offset = 0
    try:
        while chunk := os.pread(fd, _READ_CHUNK, offset):
            offset += len(chunk)
            decoder.feed(chunk)
            while (rec := decoder.next()) is not None:
                yield rec
    except CorruptRecordError as e:
        raise CorruptWALError(path, e.offset, e.reason) from None


class WAL:
    """An open write-ahead log. Build one with ``create`` or ``open``."""

    def __init__(
        self,
        dirpath: str,
        start: WalSnapshot,
        segments: list[_Segment],
        *,
        segment_bytes: int,
        max_record_bytes: int,
        on_sync: SyncHook | None,
        unsafe_no_fsync: bool = False,
    ) -> None:
        self.dir = dirpath
        self._start = start
        self._segments = segments
        self._segment_bytes = segment_bytes
        self._max_record_bytes = max_record_bytes
        self._on_sync = on_sync
        #: ``--unsafe-no-fsync``: writes reach the page cache only (tests, not production).
        self._unsafe_no_fsync = unsafe_no_fsync
        self._encoder: Encoder | None = None
        self._tail_offset = 0
        self._enti = 0
        self.metadata = b""
        #: The hard state last saved.
        self.state = HardState()
        #: Where ``read_all`` cut off a torn tail, if it did: ``(path, offset)``.
        self.repaired: tuple[str, int] | None = None

    # -- construction -------------------------------------------------------

    @classmethod
    def create(
        cls,
        dirpath: str,
        metadata: bytes,
        *,
        segment_bytes: int = SEGMENT_BYTES,
        max_record_bytes: int = MAX_RECORD_BYTES,
        on_sync: SyncHook | None = None,
        unsafe_no_fsync: bool = False,
    ) -> WAL:
        """Make a new WAL in ``dirpath`` (absent or empty) holding ``metadata``; ready to save."""
        if exist(dirpath):
            raise WALExistsError(f"wal: {dirpath} already holds a WAL")
        dirpath = os.path.normpath(dirpath)
        tmpdir = dirpath + ".tmp"
        shutil.rmtree(tmpdir, ignore_errors=True)
        os.makedirs(tmpdir, files.DIR_MODE)
        name = wal_name(0, 0)
        fd = os.open(
            os.path.join(tmpdir, name), os.O_RDWR | os.O_CREAT | os.O_EXCL, files.FILE_MODE
        )
        files.try_lock(fd)
        files.preallocate(fd, segment_bytes)
        enc = Encoder()
        head = (
            enc.encode(RecordType.CRC)
            + enc.encode(RecordType.METADATA, metadata)
            + enc.encode(RecordType.SNAPSHOT, WalSnapshot().SerializeToString())
        )
        files.write_all(fd, head, 0)
        if not unsafe_no_fsync:
            os.fdatasync(fd)
        files.fsync_dir(tmpdir)  # the segment's entry, before the directory is renamed into place
        if os.path.isdir(dirpath):
            os.rmdir(dirpath)
        os.rename(tmpdir, dirpath)
        files.fsync_dir(os.path.dirname(dirpath) or ".")
        seg = _Segment(os.path.join(dirpath, name), fd, 0, 0)
        w = cls(
            dirpath,
            WalSnapshot(),
            [seg],
            segment_bytes=segment_bytes,
            max_record_bytes=max_record_bytes,
            on_sync=on_sync,
            unsafe_no_fsync=unsafe_no_fsync,
        )
        w.metadata = metadata
        w._encoder = enc
        w._tail_offset = len(head)
        return w

    @classmethod
    def open(
        cls,
        dirpath: str,
        snap: WalSnapshot | None = None,
        *,
        segment_bytes: int = SEGMENT_BYTES,
        max_record_bytes: int = MAX_RECORD_BYTES,
        on_sync: SyncHook | None = None,
        unsafe_no_fsync: bool = False,
    ) -> WAL:
        """Open the WAL at ``snap`` (default: the empty snapshot); call ``read_all`` next."""
        snap = snap if snap is not None else WalSnapshot()
        if not os.path.isdir(dirpath):
            raise WALNotFoundError(f"wal: {dirpath} does not exist")
        names = _wal_names(dirpath)
        first = _search_index(names, snap.index)
        if first is None:
            raise WALNotFoundError(f"wal: no file in {dirpath} covers index {snap.index}")
        names = names[first:]
        seqs = [parse_wal_name(n)[0] for n in names]
        if seqs != list(range(seqs[0], seqs[0] + len(seqs))):
            raise CorruptWALError(dirpath, 0, f"gap in segment sequence {names}")
        segments: list[_Segment] = []
        try:
            for name in names:
                path = os.path.join(dirpath, name)
                seq, index = parse_wal_name(name)
                segments.append(_Segment(path, _open_locked(path), seq, index))
        except BaseException:
            for seg in segments:
                os.close(seg.fd)
            raise
        for name in os.listdir(dirpath):
            if name.endswith(".wal.tmp"):  # a cut that did not finish
                os.unlink(os.path.join(dirpath, name))
        return cls(
            dirpath,
            snap,
            segments,
            segment_bytes=segment_bytes,
            max_record_bytes=max_record_bytes,
            on_sync=on_sync,
            unsafe_no_fsync=unsafe_no_fsync,
        )

    # -- reading ------------------------------------------------------------

    def read_all(self) -> tuple[bytes, HardState, list[Entry]]:
        """Read the log from the open snapshot: ``(metadata, hard_state, entries)``.

        Entries after the snapshot index come back in order, later records
        replacing conflicting earlier ones. A torn tail in the last file is cut
        off (see ``repaired``); then the WAL is ready to append.
        """
        if self._encoder is not None:
            raise WALError("wal: read_all called twice")
        metadata: bytes | None = None
        state = HardState()
        entries: list[Entry] = []
        matched = False
        crc = 0
        start = self._start
        tail = Tail(0, torn=False)
        for i, seg in enumerate(self._segments):
            decoder = Decoder(crc, max_record_bytes=self._max_record_bytes)
            for rec in _records(seg.path, seg.fd, decoder):
                try:
                    if rec.type == RecordType.ENTRY:
                        e = Entry.FromString(rec.data)
                        if e.index > start.index:
                            up = e.index - start.index - 1
                            if up > len(entries):
                                raise CorruptWALError(
                                    seg.path, rec.offset, f"entry {e.index} follows a gap"
                                )
                            del entries[up:]
                            entries.append(e)
                        self._enti = e.index
                    elif rec.type == RecordType.STATE:
                        state = HardState.FromString(rec.data)
                    elif rec.type == RecordType.METADATA:
                        if metadata is not None and metadata != rec.data:
                            raise MetadataConflictError(f"wal: {seg.path} has different metadata")
                        metadata = rec.data
                    elif rec.type == RecordType.SNAPSHOT:
                        s = WalSnapshot.FromString(rec.data)
                        if s.index == start.index:
                            if s.term != start.term:
                                raise SnapshotMismatchError(
                                    f"wal: snapshot at index {s.index} has term {s.term},"
                                    f" expected {start.term}"
                                )
                            matched = True
                except DecodeError as e:
                    raise CorruptWALError(
                        seg.path, rec.offset, f"bad {rec.type.name}: {e}"
                    ) from None
            tail = decoder.close()
            if tail.torn and i != len(self._segments) - 1:
                raise CorruptWALError(
                    seg.path, tail.offset, f"torn record in an older segment ({tail.reason})"
                )
            crc = decoder.crc
        if not matched:
            raise SnapshotNotFoundError(
                f"wal: snapshot {start.index}/{start.term} not found in {self.dir}"
            )
        last = self._segments[-1]
        if tail.torn:
            self._repair(last, tail.offset)
        self.metadata = metadata or b""
        self.state = state
        self._encoder = Encoder(crc)
        self._tail_offset = tail.offset
        return self.metadata, state, entries

    def _repair(self, seg: _Segment, offset: int) -> None:
        """Cut a torn tail off the last file: zeros from ``offset`` on."""
        size = os.fstat(seg.fd).st_size
        os.ftruncate(seg.fd, offset)
        files.preallocate(seg.fd, max(size, offset))
        self._sync(seg.fd)
        self.repaired = (seg.path, offset)

    # -- writing ------------------------------------------------------------

    def save(self, hard_state: HardState, entries: Sequence[Entry]) -> None:
        """Append entries and the hard state; one fdatasync when raft needs it.

        The sync is skipped when only the commit index changed (raft's
        ``MustSync``). A segment that has grown past the size limit is cut.
        """
        enc = self._writable()
        empty_state = is_empty_hard_state(hard_state)
        if empty_state and not entries:
            return
        sync = must_sync(hard_state, self.state, len(entries))
        buf = bytearray()
        for e in entries:
            buf += enc.encode(RecordType.ENTRY, e.SerializeToString())
        if not empty_state:
            buf += enc.encode(RecordType.STATE, hard_state.SerializeToString())
        self._append(buf)
        if entries:
            self._enti = entries[-1].index
        if not empty_state:
            self.state = HardState()
            self.state.CopyFrom(hard_state)
        if self._tail_offset < self._segment_bytes:
            if sync:
                self._sync(self._segments[-1].fd)
            return
        self.cut()

    def save_snapshot(self, snap: WalSnapshot) -> None:
        """Record that a snapshot was taken at ``snap`` (synced)."""
        enc = self._writable()
        self._append(enc.encode(RecordType.SNAPSHOT, snap.SerializeToString()))
        self._enti = max(self._enti, snap.index)
        self._sync(self._segments[-1].fd)

    def cut(self) -> None:
        """Close the current segment at its used size and start the next one."""
        enc = self._writable()
        old = self._segments[-1]
        os.ftruncate(old.fd, self._tail_offset)
        self._sync(old.fd)
        seq, index = old.seq + 1, self._enti + 1
        name = wal_name(seq, index)
        path = os.path.join(self.dir, name)
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, files.FILE_MODE)
        try:
            files.try_lock(fd)
            files.preallocate(fd, self._segment_bytes)
            head = enc.encode(RecordType.CRC) + enc.encode(RecordType.METADATA, self.metadata)
            if not is_empty_hard_state(self.state):
                head += enc.encode(RecordType.STATE, self.state.SerializeToString())
            files.write_all(fd, head, 0)
            self._sync(fd)
            os.rename(tmp, path)
            files.fsync_dir(self.dir)
        except BaseException:
            os.close(fd)
            raise
        self._segments.append(_Segment(path, fd, seq, index))
        self._tail_offset = len(head)

    def release_lock_to(self, index: int) -> None:
        """Unlock the files wholly before the one holding ``index``, so ``purge`` may remove them."""
        segs = self._segments
        keep_from = len(segs) - 1
        for i, seg in enumerate(segs):
            if seg.index >= index:
                keep_from = i - 1
                break
        if keep_from <= 0:
            return
        for seg in segs[:keep_from]:
            os.close(seg.fd)
        del segs[:keep_from]

    def close(self) -> None:
        """Sync the tail (if writable) and release every file."""
        try:
            if self._encoder is not None and self._segments:
                self._sync(self._segments[-1].fd)
        finally:
            for seg in self._segments:
                os.close(seg.fd)
            self._segments = []
            self._encoder = None

    @property
    def last_index(self) -> int:
        """Index of the last entry (or snapshot) written or read."""
        return self._enti

    def _writable(self) -> Encoder:
        if self._encoder is None:
            raise WALError("wal: not writable (call read_all after open; closed?)")
        return self._encoder

    def _append(self, data: bytes | bytearray) -> None:
        files.write_all(self._segments[-1].fd, data, self._tail_offset)
        self._tail_offset += len(data)

    def _sync(self, fd: int) -> None:
        if self._unsafe_no_fsync:
            return
        t0 = time.monotonic()
        os.fdatasync(fd)
        if self._on_sync is not None:
            self._on_sync(time.monotonic() - t0)


def _search_index(names: list[str], index: int) -> int | None:
    """Position of the last file whose first index is at most ``index``."""
    for i in range(len(names) - 1, -1, -1):
        if parse_wal_name(names[i])[1] <= index:
            return i
    return None


def valid_snapshot_entries(dirpath: str) -> list[WalSnapshot]:
    """Snapshots the WAL records at or below its committed index, oldest first.

    Read-only; the server picks the newest snapshot file among these (etcd's
    ``ValidSnapshotEntries``). A torn tail simply ends the scan.
    """
    snaps: list[WalSnapshot] = []
    state = HardState()
    crc = 0
    for name in _wal_names(dirpath):
        path = os.path.join(dirpath, name)
        fd = os.open(path, os.O_RDONLY)
        try:
            decoder = Decoder(crc)
            for rec in _records(path, fd, decoder):
                if rec.type == RecordType.SNAPSHOT:
                    snaps.append(WalSnapshot.FromString(rec.data))
                elif rec.type == RecordType.STATE:
                    state = HardState.FromString(rec.data)
            decoder.close()
            crc = decoder.crc
        finally:
            os.close(fd)
    return [s for s in snaps if s.index <= state.commit]


def purge(dirpath: str, max_files: int) -> list[str]:
    """Delete the oldest segment files beyond ``max_files``; return their paths.

    Stops at the first file an open WAL still holds locked (``release_lock_to``),
    so a file needed after the newest snapshot is never removed. 0 keeps all.
    """
    if max_files <= 0:
        return []
    names = _wal_names(dirpath)
    removed = []
    for name in names[: max(0, len(names) - max_files)]:
        path = os.path.join(dirpath, name)
        fd = os.open(path, os.O_RDONLY)
        try:
            if not files.try_lock(fd):
                break
            os.unlink(path)
            removed.append(path)
        finally:
            os.close(fd)
    if removed:
        files.fsync_dir(dirpath)
    return removed
