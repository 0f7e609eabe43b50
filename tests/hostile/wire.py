"""A raw HTTP/2 client for attack tests: hand-built frames in, parsed frames out."""

from __future__ import annotations

from typing import Any

from hpack import Decoder, Encoder
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    RstStreamFrame,
    SettingsFrame,
)
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from etcd_twisted.grpc.framing import encode_message
from etcd_twisted.grpc.protocol import GrpcFactory, GrpcProtocol
from tests.grpc.h2client import PEER
from tests.grpc.test_protocol import ECHO, Msg, echo_registry

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
START = PREFACE + SettingsFrame(0).serialize() + SettingsFrame(0, flags=["ACK"]).serialize()


def raw(length: int, kind: int, flags: int, sid: int, body: bytes = b"") -> bytes:
    """A frame built by hand (its length field need not match its body)."""
    return length.to_bytes(3, "big") + bytes((kind, flags)) + sid.to_bytes(4, "big") + body


class RawConnection:
    """A `GrpcProtocol` on a StringTransport, fed raw bytes."""

    def __init__(self, fast_path: bool, **factory_kw: Any) -> None:
        self.clock = Clock()
        self.factory = GrpcFactory(echo_registry(), self.clock, fast_path=fast_path, **factory_kw)
        proto = self.factory.buildProtocol(PEER)
        assert isinstance(proto, GrpcProtocol)
        self.proto = proto
        self.transport = StringTransport(peerAddress=PEER)
        proto.makeConnection(self.transport)
        self.encoder = Encoder()
        self.decoder = Decoder()
        self._out = b""

    def send(self, data: bytes) -> None:
        self.proto.dataReceived(data)
        self.clock.advance(0)

    def headers(self, sid: int, path: str = ECHO, end: bool = False, **extra: bytes) -> bytes:
        block = self.encoder.encode(
            [
                (b":method", b"POST"),
                (b":scheme", b"http"),
                (b":path", path.encode()),
                (b":authority", b"localhost"),
                (b"content-type", b"application/grpc"),
                (b"te", b"trailers"),
                *[(k.replace("_", "-").encode(), v) for k, v in extra.items()],
            ]
        )
        flags = ["END_HEADERS"] + (["END_STREAM"] if end else [])
        return HeadersFrame(sid, data=block, flags=flags).serialize()

    @staticmethod
    def data(sid: int, payload: bytes, end: bool = True) -> bytes:
        return DataFrame(sid, data=payload, flags=["END_STREAM"] if end else []).serialize()

    @staticmethod
    def echo_body(text: str = "hi") -> bytes:
        return encode_message(Msg(service=text).SerializeToString())

    def frames(self) -> list[tuple[str, int, Any]]:
        """Frames the server wrote since the last call: (kind, stream or last id, detail)."""
        self._out += self.transport.value()
        self.transport.clear()
        out: list[tuple[str, int, Any]] = []
        data, pos = self._out, 0
        while len(data) - pos >= 9:
            frame, length = Frame.parse_frame_header(memoryview(data[pos : pos + 9]))
            if len(data) - pos < 9 + length:
                break
            frame.parse_body(memoryview(data[pos + 9 : pos + 9 + length]))
            pos += 9 + length
            if isinstance(frame, HeadersFrame):
                out.append(
                    ("HEADERS", frame.stream_id, dict(self.decoder.decode(frame.data, raw=True)))
                )
            elif isinstance(frame, DataFrame):
                out.append(("DATA", frame.stream_id, bytes(frame.data)))
            elif isinstance(frame, GoAwayFrame):
                out.append(("GOAWAY", frame.last_stream_id, frame.error_code))
            elif isinstance(frame, RstStreamFrame):
                out.append(("RST_STREAM", frame.stream_id, frame.error_code))
            else:
                out.append((type(frame).__name__, frame.stream_id, None))
        self._out = data[pos:]
        return out

    def kinds(self, sid: int | None = None) -> list[str]:
        """The kinds of the frames written since the last call (on stream ``sid`` only)."""
        return [k for k, s, _ in self.frames() if sid is None or (s == sid and k != "GOAWAY")]

    @property
    def closing(self) -> bool:
        return self.transport.disconnecting or self.transport.disconnected
