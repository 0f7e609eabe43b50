"""Sans-I/O framing for peer links: a kind byte, a payload length, the payload.

::

    u8 kind | u32 big-endian payload length | payload

Raft messages travel as ``MESSAGE`` frames holding a serialized ``raftpb.Message``;
the other kinds keep the link alive, measure its round trip, and carry a snapshot's
database stream.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from etcd_twisted._pb import raft_pb2

#: A serialized ``raftpb.Message``.
MESSAGE = 1
#: An 8-byte token the other end echoes in a ``PONG`` (keep-alive and round trip).
PING = 2
PONG = 3
#: A piece of a snapshot's database stream.
SNAP_DATA = 4
#: The database stream is complete.
SNAP_END = 5
#: The receiver took the snapshot (``SNAP_OK``) or refused it (``SNAP_FAILED``, reason).
SNAP_OK = 6
SNAP_FAILED = 7

#: Larger frames are refused: raft messages are capped far below, snapshot data is chunked.
MAX_PAYLOAD = 64 * 1024 * 1024

_HEADER = struct.Struct(">BI")
HEADER_SIZE = _HEADER.size


class FrameError(Exception):
    """The peer sent bytes that are not a valid frame."""


def header(kind: int, length: int) -> bytes:
    """A frame header, for writing a large payload without copying it."""
    return _HEADER.pack(kind, length)


def encode(kind: int, payload: bytes = b"") -> bytes:
    """One whole frame."""
    return _HEADER.pack(kind, len(payload)) + payload


def encode_messages(messages: Iterable[raft_pb2.Message]) -> bytes:
    """``MESSAGE`` frames for ``messages``, in order, as one buffer."""
    pack = _HEADER.pack
    parts = []
    for message in messages:
        data = message.SerializeToString()
        parts.append(pack(MESSAGE, len(data)))
        parts.append(data)
    return b"".join(parts)


class FrameDecoder:
    """Turns received bytes into ``(kind, payload)`` frames, however the bytes are split."""

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self._buffer = bytearray()
        self._max_payload = max_payload

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add ``data``; return the frames it completes."""
        buf = self._buffer
        buf += data
        frames: list[tuple[int, bytes]] = []
        pos, end = 0, len(buf)
        unpack = _HEADER.unpack_from
        while end - pos >= HEADER_SIZE:
            kind, length = unpack(buf, pos)
            if length > self._max_payload:
                raise FrameError(f"frame of {length} bytes exceeds {self._max_payload}")
            start = pos + HEADER_SIZE
            if end - start < length:
                break
            frames.append((kind, bytes(buf[start : start + length])))
            pos = start + length
        if pos:
            del buf[:pos]
        return frames

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a whole frame."""
        return len(self._buffer)
