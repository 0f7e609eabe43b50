"""Sans-I/O codec for WAL records: frames in, bytes out, and back.

A frame is an 8-byte little-endian length field, a record body and zero padding
to the next multiple of 8 bytes, so that a length field never straddles a
sector and is never torn. The low 56 bits of the length field are the body
length; when there is padding, the top byte is ``0x80 | pad``.

The body is the protobuf wire form of ``walpb.Record`` (``type``, ``crc``,
``data``; see proto/wal.proto), written and read here by hand so that the
reader can be strict. ``crc`` chains CRC32-Castagnoli over the type byte and
the ``data`` of every record so far (etcd covers the data only; covering the
type too means a flipped type cannot pass); a ``CRC`` record carries the
running value into the next segment file so the chain survives file
boundaries.

The decoder tells three endings apart (``close()``):

* clean end: the input stops on a frame boundary, or a zero length field
  starts the preallocated zero tail;
* torn tail: the last frame is incomplete, or fails its check and holds a
  zeroed sector-aligned chunk (the unwritten part of a write cut short),
  with only zeros after it;
* corruption (``CorruptRecordError``): a frame that fails its check with no
  zeroed chunk, a malformed length field, a length field the record's own
  header contradicts (a torn write leaves a true prefix; a damaged length does
  not), or any non-zero byte after the end of the log or after a torn frame.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

import crc32c

__all__ = [
    "MAX_RECORD_BYTES",
    "CorruptRecordError",
    "Decoder",
    "Encoder",
    "Record",
    "RecordType",
    "Tail",
]

#: Largest body accepted; etcd uses 10 MB. A larger length field is corruption.
MAX_RECORD_BYTES = 10 * 1024 * 1024
SECTOR_BYTES = 512
_LEN = struct.Struct("<Q")
_LOW56 = (1 << 56) - 1


class RecordType(enum.IntEnum):
    """The kinds of WAL record (etcd's numbering)."""

    METADATA = 1
    ENTRY = 2
    STATE = 3
    CRC = 4
    SNAPSHOT = 5


@dataclass(frozen=True, slots=True)
class Record:
    """A decoded record and the offset of its frame in the input."""

    type: RecordType
    crc: int
    data: bytes
    offset: int


@dataclass(frozen=True, slots=True)
class Tail:
    """How the input ended: ``torn`` is False for a clean end."""

    offset: int
    torn: bool
    reason: str = ""


class CorruptRecordError(Exception):
    """The input holds damaged data that is not a torn tail."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"corrupt record at offset {offset}: {reason}")
        self.offset = offset
        self.reason = reason


def _varint(n: int) -> bytes:
    """Protobuf varint of ``n`` (unrolled up to 5 bytes: CRCs and record lengths)."""
    if n < 1 << 7:
        return bytes((n,))
    if n < 1 << 14:
        return bytes((n & 0x7F | 0x80, n >> 7))
    if n < 1 << 21:
        return bytes((n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14))
    if n < 1 << 28:
        return bytes((n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14 & 0x7F | 0x80, n >> 21))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _encode_body(rtype: int, crc: int, data: bytes) -> bytes:
    body = _TYPE_FIELDS[rtype]
    if crc:
        body += b"\x10" + _varint(crc)
    if data:
        body += b"\x1a" + _varint(len(data)) + data
    return body


def _decode_body(body: bytes) -> tuple[int, int, bytes]:
    """Parse a record body strictly: fields in order, nothing else, exact length."""
    pos, rtype, crc, data = 0, 0, 0, b""
    if pos < len(body) and body[pos] == 0x08:
        rtype, pos = _read_varint(body, pos + 1)
    if pos < len(body) and body[pos] == 0x10:
        crc, pos = _read_varint(body, pos + 1)
    if pos < len(body) and body[pos] == 0x1A:
        n, pos = _read_varint(body, pos + 1)
        if pos + n > len(body):
            raise ValueError("data field runs past the record")
        data, pos = body[pos : pos + n], pos + n
    if pos != len(body):
        raise ValueError("unexpected bytes in record body")
    if crc > 0xFFFFFFFF:
        raise ValueError("crc out of range")
    return rtype, crc, data


def _chain(crc: int, rtype: int, data: bytes) -> int:
    """Advance the CRC chain over one record's type byte and data."""
    return crc32c.crc32c(data, crc32c.crc32c(_TYPE_BYTES[rtype], crc))


class Encoder:
    """Turns records into frames, carrying the CRC chain."""

    def __init__(self, crc: int = 0) -> None:
        self.crc = crc

    def encode(self, rtype: RecordType, data: bytes = b"") -> bytes:
        """Return the frame for one record and advance the CRC chain."""
        if rtype != RecordType.CRC:
            self.crc = _chain(self.crc, rtype, data)
        body = _encode_body(rtype, self.crc, data)
        n = len(body)
        pad = -n % 8
        length = n | ((0x80 | pad) << 56) if pad else n
        return _LEN.pack(length) + body + _PADS[pad]


class Decoder:
    """Feed bytes in, take records out, then ``close()`` to learn how it ended.

    ``offset`` is where the input starts (a file offset: torn-write detection
    works on sector-aligned chunks); ``crc`` is the chain value to continue,
    or 0 to accept the first ``CRC`` record's value as the start.
    """

    def __init__(
        self, crc: int = 0, offset: int = 0, max_record_bytes: int = MAX_RECORD_BYTES
    ) -> None:
        self.crc = crc
        #: Offset just past the last good record.
        self.offset = offset
        self._max = max_record_bytes
        self._start = offset
        self._buf = bytearray()
        self._rpos = 0
        self._stop: Tail | None = None
        self._checked = offset  # with _stop set: bytes before this are known zero/consumed

    def feed(self, data: bytes) -> None:
        """Add input."""
        if self._stop is not None:
            self._check_zero(data)
            return
        if self._rpos and self._rpos * 2 > len(self._buf):
            del self._buf[: self._rpos]
            self._rpos = 0
        self._buf += data

    def next(self) -> Record | None:
        """Return the next complete record, or None if more input is needed (or it ended)."""
        if self._stop is not None:
            return None
        buf, start = self._buf, self._rpos
        if len(buf) - start < 8:
            return None
        off = self.offset
        (length,) = _LEN.unpack_from(buf, start)
        if length == 0:
            self._end(Tail(off, torn=False), start)
            return None
        n, top = length & _LOW56, length >> 56
        pad = top & 0x07 if top else 0
        if (top and top & 0xF8 != 0x80) or pad != -n % 8 or (top and not pad):
            raise CorruptRecordError(off, f"malformed length field {length:#018x}")
        if n > self._max:
            raise CorruptRecordError(off, f"record length {n} exceeds limit {self._max}")
        size = 8 + n + pad
        if len(buf) - start < size:
            conflict = _header_conflict(bytes(buf[start + 8 : start + 8 + n]), n)
            if conflict:
                raise CorruptRecordError(off, conflict)
            return None
        frame = bytes(buf[start : start + size])
        reason = self._check(frame, n)
        if isinstance(reason, str):
            conflict = _header_conflict(frame[8 : 8 + n], n)
            if conflict or not _has_zero_chunk(frame, off):
                raise CorruptRecordError(off, conflict or reason)
            self._end(Tail(off, torn=True, reason=reason), start + size)
            return None
        self._rpos = start + size
        self.offset = off + size
        return reason

    def close(self) -> Tail:
        """Signal end of input; return the clean end or torn tail, or raise for corruption."""
        if self._stop is not None:
            return self._stop
        rest = bytes(self._buf[self._rpos :])
        if rest.count(0) == len(rest) < 8:
            return Tail(self.offset, torn=False)
        return Tail(self.offset, torn=True, reason="incomplete record")

    def _check(self, frame: bytes, n: int) -> Record | str:
        """Validate a whole frame: the record, or the reason it is bad."""
        if frame[8 + n :].count(0) != len(frame) - 8 - n:
            return "non-zero padding"
        try:
            rtype, crc, data = _decode_body(frame[8 : 8 + n])
        except ValueError as e:
            return f"unparsable record ({e})"
        if rtype == RecordType.CRC:
            if data or self.offset != self._start:
                return "crc record with data or not at the start of the input"
            if self.crc and crc != self.crc:
                return f"crc record {crc:#010x} does not continue the chain {self.crc:#010x}"
            self.crc = crc
        else:
            if rtype not in _TYPES:
                return f"unknown record type {rtype}"
            expected = _chain(self.crc, rtype, data)
            if crc != expected:
                return f"crc mismatch (stored {crc:#010x}, computed {expected:#010x})"
            self.crc = expected
        return Record(RecordType(rtype), crc, data, self.offset)

    def _end(self, tail: Tail, consumed_to: int) -> None:
        """Stop decoding; everything after the stop point must be zero."""
        self._stop = tail
        rest = bytes(self._buf[consumed_to:])
        self._checked = self.offset + (consumed_to - self._rpos)
        self._buf = bytearray()
        self._rpos = 0
        self._check_zero(rest)

    def _check_zero(self, data: bytes) -> None:
        if data.count(0) != len(data):
            first = next(i for i, b in enumerate(data) if b)
            stop = self._stop
            assert stop is not None
            what = "torn record" if stop.torn else "end of log"
            raise CorruptRecordError(
                self._checked + first, f"data after the {what} at offset {stop.offset}"
            )
        self._checked += len(data)


_TYPES = frozenset(int(t) for t in RecordType)
_TYPE_BYTES = {int(t): bytes([t]) for t in RecordType}
_TYPE_FIELDS = {int(t): b"\x08" + bytes([t]) for t in RecordType}
_PADS = [bytes(n) for n in range(8)]


def _header_conflict(body: bytes, n: int) -> str | None:
    """Why the visible start of a body of length ``n`` contradicts its length field, if it does.

    A torn write leaves a true prefix of the record (then zeros); a damaged
    length field does not, and its frame must not pass for a torn tail.
    """
    if not body or body[0] == 0:
        return None
    if body[0] != 0x08:
        return "record does not start with its type"
    try:
        rtype, pos = _read_varint(body, 1)
        if rtype not in _TYPES:
            return f"unknown record type {rtype}"
        if pos < len(body) and body[pos] == 0x10:
            _, pos = _read_varint(body, pos + 1)
        if pos >= len(body):
            return None
        if body[pos] == 0:  # the record ends here, or its data was never written
            if rtype == RecordType.CRC and pos != n:
                return f"length field says {n} bytes, crc record has {pos}"
            return None
        if body[pos] != 0x1A:
            return "unexpected field in record"
        data_len, pos = _read_varint(body, pos + 1)
    except ValueError:
        return None
    if pos + data_len != n:
        return f"length field says {n} bytes, record says {pos + data_len}"
    return None


def _has_zero_chunk(frame: bytes, offset: int) -> bool:
    """Whether any sector-aligned piece of the frame after its length field is all zeros."""
    pos = 8
    while pos < len(frame):
        end = min(len(frame), pos + SECTOR_BYTES - (offset + pos) % SECTOR_BYTES)
        piece = frame[pos:end]
        if piece.count(0) == len(piece):
            return True
        pos = end
    return False
