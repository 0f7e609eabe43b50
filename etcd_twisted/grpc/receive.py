"""The receive side of HTTP/2 without h2's per-frame objects for the usual frames.

A unary gRPC call arrives as a HEADERS frame opening a new stream, then one DATA
frame with END_STREAM. `FrameReader` takes whole frames, one by one: those
two kinds, in their plain forms, it handles itself, moving h2's connection and stream
state, stream table and flow-control windows exactly as ``H2Connection.receive_data``
would; every other frame (and anything unusual about these two) it hands to h2, one
whole frame at a time, so h2 sees the same frames in the same order and raises the
same errors. Its own results are `RequestHeaders` and `RequestData`, lighter
stand-ins for h2's ``RequestReceived`` and ``DataReceived`` + ``StreamEnded``.

What counts as plain, checked before anything changes:

- HEADERS: flags END_HEADERS (optionally PRIORITY, not on itself), an odd stream id
  above every one seen, a connection in h2's SERVER_OPEN state (the stream limit is
  the protocol's to enforce, in O(1): h2's own check walks every stream). After HPACK decoding (which h2 does at the same point) a
  block with a malformed ``content-length`` or a ``:status`` goes to h2 with its
  decoded headers (see `_Replay`), as does one that fails to decode.
- DATA: flags none or END_STREAM, an OPEN stream, room in both receive windows,
  and no more (or, at the end, no less) than a ``content-length`` said.

The decoded header block comes with a memo (``CachingDecoder.decode_memo``): the same
dict for every request that repeats the block, where the protocol keeps what it
derived from those headers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from h2.connection import ConnectionState, H2Connection
from h2.stream import H2Stream, StreamState
from h2.utilities import is_informational_response

__all__ = ["FrameReader", "RequestData", "RequestHeaders"]

_DATA, _HEADERS = 0x0, 0x1
_END_STREAM, _END_HEADERS, _PRIORITY = 0x1, 0x4, 0x20
_SERVER_OPEN = ConnectionState.SERVER_OPEN
_OPEN = StreamState.OPEN
_HALF_CLOSED_REMOTE = StreamState.HALF_CLOSED_REMOTE


class RequestHeaders:
    """A new stream's request headers (h2's ``RequestReceived``)."""

    __slots__ = ("stream_id", "headers", "memo")

    def __init__(
        self, stream_id: int, headers: Sequence[tuple[bytes, bytes]], memo: dict[str, Any]
    ) -> None:
        self.stream_id = stream_id
        self.headers = headers
        self.memo = memo


class RequestData:
    """Request body bytes (h2's ``DataReceived``, and ``StreamEnded`` when ``ended``)."""

    __slots__ = ("stream_id", "data", "ended")

    def __init__(self, stream_id: int, data: bytes, ended: bool) -> None:
        self.stream_id = stream_id
        self.data = data
        self.ended = ended


class _Replay:
    """Stands in for h2's HPACK decoder while h2 handles a block already decoded:
    gives the decoded headers, or raises the decoding error, once."""

    def __init__(
        self, headers: Sequence[tuple[bytes, bytes]] | None, error: BaseException | None
    ) -> None:
        self._headers = headers
        self._error = error

    def decode(self, data: bytes, raw: bool = False) -> Sequence[tuple[bytes, bytes]]:
        if self._error is not None:
            raise self._error
        assert self._headers is not None
        return self._headers


class FrameReader:
    """Feeds received bytes to an `H2Connection`, handling plain request frames itself."""

    def __init__(self, h2: H2Connection) -> None:
        self._h2 = h2

    def receive(self, data: bytes) -> list[Any]:
        """Like ``H2Connection.receive_data`` for ``data`` made of whole frames (as
        `InputGuard` passes them on): the events, in order, with `RequestHeaders` and
        `RequestData` among them. Raises h2's ``ProtocolError`` (having queued the
        GOAWAY) exactly when h2 would."""
        h2 = self._h2
        buffer = h2.incoming_buffer
        events: list[Any] = []
        pos = 0
        n = len(data)
        while pos < n:
            start = pos
            end = pos + 9 + int.from_bytes(data[pos : pos + 3], "big")
            pos = end
            if (
                data[start + 3] <= _HEADERS
                and h2.state_machine.state is _SERVER_OPEN
                and not buffer._headers_buffer
                and end - start - 9 <= h2.max_inbound_frame_size
            ):
                event = self._plain(data, start, end)
                if event is not None:
                    if type(event) is list:
                        events += event
                    else:
                        events.append(event)
                    continue
            events += h2.receive_data(data[start:end])
        return events

    def _plain(
        self, data: bytes, start: int, end: int
    ) -> RequestHeaders | RequestData | list[Any] | None:
        """Handle a HEADERS or DATA frame if it is plain; None (having done nothing)
        if h2 must."""
        h2 = self._h2
        flags = data[start + 4]
        sid = int.from_bytes(data[start + 5 : start + 9], "big") & 0x7FFFFFFF
        length = end - start - 9
        if data[start + 3] == _DATA:
            stream = h2.streams.get(sid)
            ended = flags == _END_STREAM
            if (
                stream is None
                or flags | _END_STREAM != _END_STREAM
                or not self._take_data(stream, length, ended)
            ):
                return None
            if ended:
                stream.state_machine.state = _HALF_CLOSED_REMOTE
            return RequestData(sid, data[start + 9 : end], ended)
        if (
            flags | _PRIORITY != _END_HEADERS | _PRIORITY
            or not sid & 1
            or sid <= h2.highest_inbound_stream_id
            or sid in h2.streams
        ):
            return None
        block = start + 9
        if flags & _PRIORITY:
            block += 5
            if length < 5 or int.from_bytes(data[start + 9 : block - 1], "big") & 0x7FFFFFFF == sid:
                return None
        return self._open(sid, data[start:end], data[block:end])

    def _take_data(self, stream: H2Stream, length: int, ended: bool) -> bool:
        """Count a DATA frame against both windows and the content-length, as h2
        would; False (having done nothing) if h2 must take it."""
        machine = stream.state_machine
        connection_window = self._h2._inbound_flow_control_window_manager
        stream_window = stream._inbound_window_manager
        expected = stream._expected_content_length
        actual = stream._actual_content_length + length
        if (
            machine.state is not _OPEN
            or not machine.headers_received
            or length > connection_window.current_window_size
            or length > stream_window.current_window_size
            or (expected is not None and (actual > expected or (ended and actual != expected)))
        ):
            return False
        connection_window.current_window_size -= length
        stream_window.current_window_size -= length
        stream._actual_content_length = actual
        return True

    def _open(self, sid: int, frame: bytes, block: bytes) -> RequestHeaders | list[Any]:
        """Decode a new stream's header block and open the stream, or have h2 do it
        with the block decoded (for errors and unusual headers)."""
        h2 = self._h2
        decoder = h2.decoder
        try:
            headers, memo = decoder.decode_memo(block)
        except Exception as e:
            return self._replay(frame, None, e)
        inspected = memo.get("inspected")
        if inspected is None:
            inspected = memo["inspected"] = _inspect(headers)
        usual, content_length = inspected
        if not usual:
            return self._replay(frame, headers, None)
        stream = H2Stream(
            sid,
            config=h2.config,
            inbound_window_size=h2.local_settings.initial_window_size,
            outbound_window_size=h2.remote_settings.initial_window_size,
        )
        stream.max_outbound_frame_size = h2.max_outbound_frame_size
        machine = stream.state_machine
        machine.state = _OPEN
        machine.client = False
        machine.headers_received = True
        stream._expected_content_length = content_length
        h2.streams[sid] = stream
        h2.highest_inbound_stream_id = sid
        return RequestHeaders(sid, headers, memo)

    def _replay(
        self,
        frame: bytes,
        headers: Sequence[tuple[bytes, bytes]] | None,
        error: BaseException | None,
    ) -> list[Any]:
        """Let h2 take a HEADERS frame whose block is already decoded."""
        h2 = self._h2
        decoder = h2.decoder
        h2.decoder = _Replay(headers, error)
        try:
            return h2.receive_data(frame)
        finally:
            h2.decoder = decoder


def _inspect(headers: Sequence[tuple[bytes, bytes]]) -> tuple[bool, int | None]:
    """Whether h2 would take a request block as it is, and its content-length: h2
    treats a ``:status`` 1xx as informational and refuses a malformed or
    conflicting content-length (`_replay` lets h2 say so)."""
    if is_informational_response(headers):
        return False, None
    content_length = None
    for name, value in headers:
        if name == b"content-length":
            if not value.isdigit():
                return False, None
            length = int(value, 10)
            if content_length is not None and length != content_length:
                return False, None
            content_length = length
    return True, content_length
