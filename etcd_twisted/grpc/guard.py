"""The first look at a server connection's HTTP/2 bytes, before h2 sees them.

`InputGuard` cuts the received bytes into whole frames and checks each frame's
9-byte header before its body is buffered, so that no client can make a
connection hold more than one frame (at most ``max_frame_size`` + 9 bytes) of
unparsed input, or a header block (HEADERS and its CONTINUATIONs) larger than
``max_header_block`` bytes:

- the client preface, and then a SETTINGS frame first (RFC 9113 §3.4), else
  PROTOCOL_ERROR;
- a frame longer than ``max_frame_size``: FRAME_SIZE_ERROR at its header;
- a header block growing past ``max_header_block``: ENHANCE_YOUR_CALM.

Two frames it takes out of the stream and reports instead, because h2 would
answer them in a way HTTP/2 does not ask for:

- a client's GOAWAY (`PeerGoAway`): h2 refuses every later frame, but the
  streams already open must still be served (RFC 9113 §6.8);
- a stream's WINDOW_UPDATE with increment 0 (`ZeroWindowUpdate`): a stream
  error (RFC 9113 §6.9), where h2 ends the whole connection.

Everything it passes on is whole frames (and, first, the preface), in order.
"""

from __future__ import annotations

from h2.errors import ErrorCodes

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "FrameError",
    "InputGuard",
    "PeerGoAway",
    "Preface",
    "ZeroWindowUpdate",
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: HTTP/2's initial SETTINGS_MAX_FRAME_SIZE, which we keep (as grpc-go does).
DEFAULT_MAX_FRAME_SIZE = 16384

_HEADERS, _SETTINGS, _PUSH_PROMISE, _GOAWAY, _WINDOW_UPDATE, _CONTINUATION = 1, 4, 5, 7, 8, 9
_ACK, _END_HEADERS = 0x1, 0x4


class FrameError(Exception):
    """The connection must end with GOAWAY(``code``)."""

    def __init__(self, code: ErrorCodes, message: str) -> None:
        super().__init__(message)
        self.code = code


class Preface(bytes):
    """The client preface, to be given to h2 before any frame."""


class PeerGoAway:
    """The client sent GOAWAY."""

    __slots__ = ("last_stream_id", "error_code")

    def __init__(self, last_stream_id: int, error_code: int) -> None:
        self.last_stream_id = last_stream_id
        self.error_code = error_code


class ZeroWindowUpdate:
    """The client sent WINDOW_UPDATE 0 on a stream."""

    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


Item = bytes | PeerGoAway | ZeroWindowUpdate


class InputGuard:
    """Checks frame headers as they arrive; see the module docstring."""

    def __init__(
        self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE, max_header_block: int = 1 << 16
    ) -> None:
        self.max_frame_size = max_frame_size
        self.max_header_block = max_header_block
        self._held = b""
        self._preface_done = False
        self._settings_seen = False
        #: The stream of a header block still waiting for END_HEADERS (0: none).
        self._block_stream = 0
        self._block_bytes = 0
        #: Whole frames are held because ``receive`` was told to stop.
        self.backlog = False

    @property
    def held(self) -> int:
        """Bytes received and not yet passed on (part of one frame at most)."""
        return len(self._held)

    def receive(self, data: bytes, max_frames: int = 1 << 62) -> list[Item]:
        """Whole frames (in runs of bytes) and reports, in order, at most ``max_frames``
        of them: `backlog` then says that whole frames are held for the next call
        (with no more data, or more). Raises `FrameError`."""
        self.backlog = False
        if self._held:
            data = self._held + data
            self._held = b""
        out: list[Item] = []
        pos = 0
        n = len(data)
        if not self._preface_done:
            if data[:24] != PREFACE[: min(n, 24)]:
                raise FrameError(ErrorCodes.PROTOCOL_ERROR, "invalid HTTP/2 client preface")
            if n < 24:
                self._held = data
                return out
            self._preface_done = True
            out.append(Preface(PREFACE))
            pos = 24
        run = pos
        max_frame = self.max_frame_size
        while n - pos >= 9:
            if not max_frames:
                self.backlog = True
                break
            max_frames -= 1
            length = int.from_bytes(data[pos : pos + 3], "big")
            if length > max_frame:
                raise FrameError(
                    ErrorCodes.FRAME_SIZE_ERROR,
                    f"frame of {length} bytes, more than the {max_frame} allowed",
                )
            kind = data[pos + 3]
            flags = data[pos + 4]
            if not self._settings_seen:
                if kind != _SETTINGS or flags & _ACK:
                    raise FrameError(ErrorCodes.PROTOCOL_ERROR, "the first frame is not SETTINGS")
                self._settings_seen = True
            end = pos + 9 + length
            if end > n:
                break
            sid = int.from_bytes(data[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            mid_block = self._block_stream
            if mid_block:
                if kind == _CONTINUATION and sid == self._block_stream:
                    self._block_bytes += length
                    if self._block_bytes > self.max_header_block:
                        raise FrameError(
                            ErrorCodes.ENHANCE_YOUR_CALM,
                            f"header block over {self.max_header_block} bytes",
                        )
                    if flags & _END_HEADERS:
                        self._block_stream = 0
                else:
                    self._block_stream = 0  # h2 refuses the frame
            elif kind in (_HEADERS, _PUSH_PROMISE) and not flags & _END_HEADERS and sid:
                self._block_stream = sid
                self._block_bytes = length
            if kind == _GOAWAY and not mid_block and length >= 8 and not sid:
                if run < pos:
                    out.append(data[run:pos])
                last = int.from_bytes(data[pos + 9 : pos + 13], "big") & 0x7FFFFFFF
                out.append(PeerGoAway(last, int.from_bytes(data[pos + 13 : pos + 17], "big")))
                run = end
            elif (
                kind == _WINDOW_UPDATE
                and sid
                and length == 4
                and not mid_block
                and not int.from_bytes(data[pos + 9 : end], "big") & 0x7FFFFFFF
            ):
                if run < pos:
                    out.append(data[run:pos])
                out.append(ZeroWindowUpdate(sid))
                run = end
            pos = end
        if not self._settings_seen and n - pos >= 4 and data[pos + 3] != _SETTINGS:
            raise FrameError(ErrorCodes.PROTOCOL_ERROR, "the first frame is not SETTINGS")
        if run < pos:
            out.append(data[run:pos] if run or pos < n else data)
        if pos < n:
            self._held = data[pos:]
        return out
