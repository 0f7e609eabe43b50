"""The receive fast path (``FrameReader``) must leave h2 exactly as ``receive_data`` would.

Each test feeds the same bytes to two server connections through an `InputGuard` (which
passes on whole frames), one then through `FrameReader` and one straight into h2, and
after every chunk compares the events, the error (with
the GOAWAY h2 queued), the bytes to send, and the connection's whole state: stream
table and states, closed-stream record, windows, content lengths, HPACK table and
h2's input buffer. Between chunks both servers answer the same way (acknowledge data,
end answered streams), so closed streams and window updates are exercised too.
"""

from __future__ import annotations

from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, PriorityUpdated, RequestReceived, StreamEnded
from h2.exceptions import ProtocolError, StreamClosedError, StreamIDTooLowError
from h2.settings import SettingCodes
from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    ExtensionFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.grpc.guard import FrameError, InputGuard, Preface
from etcd_twisted.grpc.hpack_cache import CachingDecoder
from etcd_twisted.grpc.protocol import _OwnStreamLimit
from etcd_twisted.grpc.receive import FrameReader, RequestData, RequestHeaders
from etcd_twisted.grpc.service import Registry
from tests.grpc.h2client import Harness
from tests.grpc.test_protocol import ECHO, Msg, echo_registry

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_STREAMS = 4
REQUEST = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/test.Echo/Echo"),
    (b":authority", b"localhost"),
    (b"content-type", b"application/grpc"),
    (b"te", b"trailers"),
]


def server() -> H2Connection:
    """A server connection configured as ``GrpcProtocol``'s, with a small stream limit
    (advertised: the protocol, not h2, enforces it)."""
    h2 = H2Connection(
        H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
        )
    )
    h2.decoder = CachingDecoder()
    h2.local_settings = _OwnStreamLimit(client=False, initial_values=dict(h2.local_settings))
    h2.initiate_connection()
    h2.update_settings(
        {
            SettingCodes.INITIAL_WINDOW_SIZE: 1000,
            SettingCodes.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
        }
    )
    h2.increment_flow_control_window(3000)
    h2.data_to_send()
    return h2


def normalize(events: list[Any]) -> list[tuple[Any, ...]]:
    """Events as comparable tuples; the fast path's own events as h2's would read.
    PriorityUpdated is left out: the protocol ignores it and the fast path drops it."""
    out: list[tuple[Any, ...]] = []
    for e in events:
        if isinstance(e, RequestHeaders):
            out.append(("request", e.stream_id, list(e.headers)))
        elif isinstance(e, RequestData):
            out.append(("data", e.stream_id, e.data, len(e.data)))
            if e.ended:
                out.append(("ended", e.stream_id))
        elif isinstance(e, RequestReceived):
            out.append(("request", e.stream_id, list(e.headers)))
        elif isinstance(e, DataReceived):
            out.append(("data", e.stream_id, e.data, e.flow_controlled_length))
        elif isinstance(e, StreamEnded):
            out.append(("ended", e.stream_id))
        elif not isinstance(e, PriorityUpdated):
            out.append(
                (type(e).__name__, vars_of(e) if type(e).__repr__ is object.__repr__ else repr(e))
            )
    return out


def vars_of(e: Any) -> tuple[Any, ...]:
    """A slotted object's fields."""
    return tuple(getattr(e, name) for name in type(e).__slots__)


def snapshot(h2: H2Connection) -> tuple[Any, ...]:
    """Everything of h2's receiving state the fast path touches, and more. A closed
    stream counts alike whether h2 has moved it to its closed-stream record yet or not
    (h2 does when it counts streams, the fast path when the protocol asks it to)."""
    streams = []
    closed = dict(h2._closed_streams.items())
    for sid, s in h2.streams.items():
        m = s.state_machine
        if s.closed:
            closed[sid] = s.closed_by
            continue
        streams.append(
            (
                sid,
                m.state,
                m.stream_closed_by,
                m.client,
                m.headers_received,
                m.trailers_received,
                m.headers_sent,
                vars(s._inbound_window_manager).copy(),
                s.outbound_flow_control_window,
                s.max_outbound_frame_size,
                s._expected_content_length,
                s._actual_content_length,
                s.request_method,
            )
        )
    table = h2.decoder.header_table
    return (
        h2.state_machine.state,
        h2.highest_inbound_stream_id,
        streams,
        sorted(closed.items()),
        vars(h2._inbound_flow_control_window_manager).copy(),
        h2.outbound_flow_control_window,
        list(table.dynamic_entries),
        table.maxsize,
        len(h2.incoming_buffer._headers_buffer),
        h2.incoming_buffer._preamble_len,
    )


def feed(
    h2: H2Connection, guard: InputGuard, receive: Any, acknowledge: Any, chunk: bytes
) -> tuple[Any, ...]:
    """Feed one chunk, answer like the protocol, and report everything observable."""
    events: list[Any] = []
    try:
        for item in guard.receive(chunk):
            if isinstance(item, Preface):
                events += h2.receive_data(item)
            elif type(item) is bytes:
                events += receive(item)
            else:
                events.append(item)
    except FrameError as e:
        return ("frame error", e.code, h2.data_to_send(), snapshot(h2))
    except ProtocolError as e:
        code = getattr(e, "error_code", None)
        return ("error", type(e).__name__, code, h2.data_to_send(), snapshot(h2))
    seen = normalize(events)
    answers = []
    for event in seen:
        try:
            if event[0] == "data" and event[3]:
                acknowledge(event[3], event[1])
            elif event[0] == "ended":
                h2.send_headers(event[1], [(b":status", b"200")], end_stream=True)
        except (StreamClosedError, StreamIDTooLowError):
            answers.append("closed")  # pruned from the stream table or not yet
        except Exception as e:  # the same on both sides, whatever it is
            answers.append(type(e).__name__)
    return ("ok", seen, answers, h2.data_to_send(), snapshot(h2))


class Pair:
    """A fast-path server and a plain-h2 server fed alike."""

    def __init__(self) -> None:
        self.fast = server()
        self.reader = FrameReader(self.fast)
        self.plain = server()
        self.guards = (InputGuard(), InputGuard())

    def feed(self, test: SynchronousTestCase, chunk: bytes) -> bool:
        """Feed both; assert they agree; False once the connection failed."""
        fast, plain = self.fast, self.plain
        got = feed(fast, self.guards[0], self.reader.receive, fast.acknowledge_received_data, chunk)
        want = feed(
            plain, self.guards[1], plain.receive_data, plain.acknowledge_received_data, chunk
        )
        test.assertEqual(got, want)
        return got[0] == "ok"


def client_start() -> bytes:
    """Preface, client SETTINGS, and the ACK of the server's (so its limits apply)."""
    return PREFACE + SettingsFrame(0).serialize() + SettingsFrame(0, flags=["ACK"]).serialize()


def headers_frame(
    sid: int, block: bytes, flags: tuple[str, ...] = ("END_HEADERS",), **kw: Any
) -> bytes:
    frame = HeadersFrame(sid, data=block, flags=list(flags), **kw)
    return frame.serialize()


def data_frame(sid: int, data: bytes, end: bool = True, pad_length: int | None = None) -> bytes:
    frame = DataFrame(sid, data=data, flags=["END_STREAM"] if end else [])
    if pad_length is not None:
        frame.flags.add("PADDED")
        frame.pad_length = pad_length
    return frame.serialize()


class Script:
    """Builds a client byte stream with one HPACK encoder, as a client would."""

    def __init__(self) -> None:
        self.encoder = Encoder()
        self.next_sid = 1
        self.frames: list[bytes] = [client_start()]

    def new(self) -> int:
        """The next stream id."""
        sid = self.next_sid
        self.next_sid += 2
        return sid

    def block(self, extra: list[tuple[bytes, bytes]] = ()) -> bytes:  # type: ignore[assignment]
        return self.encoder.encode(REQUEST + list(extra))

    def call(self, body: bytes = b"\0\0\0\0\x02ab", **headers_kw: Any) -> int:
        sid = self.new()
        self.frames.append(headers_frame(sid, self.block(), **headers_kw))
        self.frames.append(data_frame(sid, body))
        return sid

    def wire(self) -> bytes:
        return b"".join(self.frames)


def at_every_split(test: SynchronousTestCase, wire: bytes) -> None:
    """Feed ``wire`` whole, in two pieces at every offset, and byte by byte."""
    for cut in range(len(wire) + 1):
        pair = Pair()
        for chunk in (wire[:cut], wire[cut:]):
            if not pair.feed(test, chunk):
                break
    pair = Pair()
    for i in range(len(wire)):
        if not pair.feed(test, wire[i : i + 1]):
            break


class FixedStreamTests(SynchronousTestCase):
    def test_plain_calls(self) -> None:
        """Unary calls (a first with new headers, then repeats) agree at every split."""
        s = Script()
        for _ in range(3):
            s.call()
        at_every_split(self, s.wire())

    def test_content_length_priority_and_interleaving(self) -> None:
        """content-length (h2load sends it), PRIORITY, and headers of several streams first."""
        s = Script()
        blocks = [s.encoder.encode(REQUEST + [(b"content-length", b"7")]) for _ in range(3)]
        s.frames.append(headers_frame(1, blocks[0]))
        s.frames.append(
            headers_frame(3, blocks[1], ("END_HEADERS", "PRIORITY"), depends_on=1, stream_weight=7)
        )
        s.frames.append(headers_frame(5, blocks[2]))
        for sid in (1, 3, 5):
            s.frames.append(data_frame(sid, b"\0\0\0\0\x02ab"))
        at_every_split(self, s.wire())

    def test_window_updates(self) -> None:
        """Acknowledged bodies reopen the stream and connection windows as h2 would."""
        s = Script()
        for size in [990] * 20 + [400] * 90 + [600, 10]:
            s.call(b"x" * size)
        wire = s.wire()
        for step in (1, 7, 1000):
            pair = Pair()
            for pos in range(0, len(wire), step):
                self.assertTrue(pair.feed(self, wire[pos : pos + step]))

    def test_unusual_frames_go_to_h2(self) -> None:
        """Padding, CONTINUATION, trailers, END_STREAM on HEADERS, PING, WINDOW_UPDATE,
        RST_STREAM, PRIORITY and unknown frames, mixed with plain calls."""
        s = Script()
        s.call()
        block = s.block()
        s.frames.append(headers_frame(3, block[:5], ()))
        s.frames.append(ContinuationFrame(3, data=block[5:], flags=["END_HEADERS"]).serialize())
        s.frames.append(data_frame(3, b"\0\0\0\0\x01a", pad_length=4))
        s.call()
        s.frames.append(headers_frame(7, s.block(), ("END_HEADERS", "END_STREAM")))
        s.frames.append(headers_frame(9, s.block(), ("END_HEADERS", "PADDED"), pad_length=3))
        s.frames.append(data_frame(9, b"x", end=False))
        s.frames.append(PingFrame(0, opaque_data=b"12345678").serialize())
        s.frames.append(WindowUpdateFrame(9, window_increment=5).serialize())
        s.frames.append(PriorityFrame(9, depends_on=0, stream_weight=3).serialize())
        s.frames.append(ExtensionFrame(0xEE, 9, body=b"zz").serialize())
        s.frames.append(
            headers_frame(
                9, s.encoder.encode([(b"x-trailer", b"1")]), ("END_HEADERS", "END_STREAM")
            )
        )
        s.call()
        s.frames.append(headers_frame(13, s.block()))
        s.frames.append(RstStreamFrame(13, error_code=8).serialize())
        s.call()
        at_every_split(self, s.wire())


def raw(length: int, kind: int, flags: int, sid: int, body: bytes) -> bytes:
    """A frame built by hand (hyperframe refuses to build some of the bad ones)."""
    return length.to_bytes(3, "big") + bytes((kind, flags)) + sid.to_bytes(4, "big") + body


def with_length(s: Script, value: bytes, *more: bytes) -> bytes:
    block = s.block([(b"content-length", v) for v in (value, *more)])
    return headers_frame(s.new(), block)


BAD: dict[str, Any] = {
    "even stream": lambda s: headers_frame(s.new() + 1, s.block()),
    "stream id reused": lambda s: headers_frame(1, s.block()),
    "stream id too low": lambda s: (
        headers_frame(s.new() + 2, s.block()) + headers_frame(s.new() - 2, s.block())
    ),
    "depends on itself": lambda s: headers_frame(
        s.next_sid, s.block(), ("END_HEADERS", "PRIORITY"), depends_on=s.new()
    ),
    "priority too short": lambda s: raw(3, 1, 0x24, s.new(), b"\0\0\0"),
    "bad hpack": lambda s: headers_frame(s.new(), b"\xff\xff\xff\xff"),
    "informational": lambda s: headers_frame(
        s.new(), s.encoder.encode([(b":status", b"100")] + REQUEST)
    ),
    "bad content-length": lambda s: with_length(s, b"x1"),
    "conflicting content-length": lambda s: with_length(s, b"1", b"2"),
    "body longer than content-length": lambda s: (
        with_length(s, b"3") + data_frame(s.next_sid - 2, b"abcd", end=False)
    ),
    "body shorter than content-length": lambda s: (
        with_length(s, b"3") + data_frame(s.next_sid - 2, b"ab")
    ),
    "body in two frames": lambda s: (
        with_length(s, b"3")
        + data_frame(s.next_sid - 2, b"ab", end=False)
        + data_frame(s.next_sid - 2, b"c")
    ),
    "data on idle stream": lambda s: data_frame(s.next_sid + 4, b"ab"),
    "data after end": lambda s: data_frame(3, b"ab"),
    "data on stream 0": lambda s: raw(1, 0, 1, 0, b"a"),
    "stream window exceeded": lambda s: (
        headers_frame(s.new(), s.block()) + data_frame(s.next_sid - 2, b"x" * 1001)
    ),
    "connection window exceeded": lambda s: b"".join(
        headers_frame(sid, s.block()) + data_frame(sid, b"x" * 900, end=False)
        for sid in [s.new() for _ in range(5)]
    ),
    "too many streams": lambda s: b"".join(
        headers_frame(s.new(), s.block()) for _ in range(MAX_STREAMS + 1)
    ),
    "frame too large": lambda s: raw((1 << 20) + 1, 1, 4, s.new(), b"x" * ((1 << 20) + 1)),
    "headers on stream 0": lambda s: raw(1, 1, 4, 0, b"\x82"),
    "unknown flag bits": lambda s: raw(1, 1, 6, s.new(), b"\x82"),
    "reserved bit in stream id": lambda s: (
        raw(1, 1, 4, s.next_sid | 1 << 31, b"\x82") + raw(2, 0, 1, s.new() | 1 << 31, b"ab")
    ),
    "headers inside a header block": lambda s: (
        headers_frame(s.new(), s.block()[:3], ()) + headers_frame(s.new(), s.block())
    ),
    "goaway then headers": lambda s: raw(8, 7, 0, 0, bytes(8)) + headers_frame(s.new(), s.block()),
}


class BadInputTests(SynchronousTestCase):
    def test_bad_input(self) -> None:
        """Protocol errors (GOAWAY codes, RST_STREAMs, state) match h2's, split anywhere."""
        for name, spoil in BAD.items():
            with self.subTest(name):
                s = Script()
                s.call()
                s.call()
                before = len(s.wire())
                s.frames.append(spoil(s))
                s.call()
                wire = s.wire()
                if len(wire) > 5000:
                    # Too long to split everywhere: the calls, then the rest at once.
                    pair = Pair()
                    if pair.feed(self, wire[:before]):
                        pair.feed(self, wire[before:])
                else:
                    at_every_split(self, wire)


# A random client: any mix of plain and unusual frames on new, old and odd ids.
_sid = st.sampled_from(["new", "last", "old", "even", "skip", "gap"])
_frame = st.one_of(
    st.tuples(
        st.just("headers"),
        _sid,
        st.sampled_from(
            [
                (),
                ("END_HEADERS",),
                ("END_HEADERS", "PRIORITY"),
                ("END_HEADERS", "END_STREAM"),
                ("END_HEADERS", "PADDED"),
            ]
        ),
        st.sampled_from([[], [(b"content-length", b"3")], [(b"x-n", b"1")], [(b"x-n", b"2")]]),
    ),
    st.tuples(st.just("data"), _sid, st.integers(0, 700), st.booleans(), st.booleans()),
    st.tuples(st.just("continuation"), _sid, st.booleans()),
    st.tuples(st.just("rst"), _sid),
    st.tuples(st.just("window"), _sid),
    st.tuples(st.just("settings"), st.integers(1, 6)),
    st.tuples(st.just("ping")),
)


def render(ops: list[tuple[Any, ...]]) -> bytes:
    """A client byte stream from random frame descriptions."""
    s = Script()
    opened: list[int] = []

    def pick(kind: str) -> int:
        if kind == "new" or not opened:
            sid = s.next_sid
            s.next_sid += 2
            opened.append(sid)
            return sid
        if kind == "last":
            return opened[-1]
        if kind == "old":
            return opened[0]
        if kind == "even":
            return s.next_sid + 1
        if kind == "gap":
            s.next_sid += 4
            return pick("new")
        return s.next_sid + 2

    for op in ops:
        kind = op[0]
        if kind == "headers":
            _, which, flags, extra = op
            block = s.encoder.encode(REQUEST + extra)
            kw: dict[str, Any] = {}
            if "PRIORITY" in flags:
                kw["depends_on"] = 1
            if "PADDED" in flags:
                kw["pad_length"] = 2
            s.frames.append(headers_frame(pick(which), block, flags, **kw))
        elif kind == "data":
            _, which, size, end, padded = op
            extra = {"flags": ["PADDED"] + (["END_STREAM"] if end else []), "pad_length": 1}
            frame = DataFrame(pick(which), data=b"d" * size, **(extra if padded else {}))
            if not padded and end:
                frame.flags.add("END_STREAM")
            s.frames.append(frame.serialize())
        elif kind == "continuation":
            _, which, last = op
            flags = ["END_HEADERS"] if last else []
            s.frames.append(ContinuationFrame(pick(which), data=b"\x82", flags=flags).serialize())
        elif kind == "rst":
            s.frames.append(RstStreamFrame(pick(op[1]), error_code=8).serialize())
        elif kind == "window":
            s.frames.append(WindowUpdateFrame(pick(op[1]), window_increment=100).serialize())
        elif kind == "settings":
            s.frames.append(
                SettingsFrame(
                    0, settings={SettingCodes.MAX_FRAME_SIZE: 1 << 14 | op[1]}
                ).serialize()
            )
        else:
            s.frames.append(PingFrame(0, opaque_data=b"abcdefgh").serialize())
    return s.wire()


class RandomClientTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(st.lists(_frame, max_size=25), st.lists(st.integers(1, 400), max_size=8))
    def test_random_frames(self, ops: list[tuple[Any, ...]], cuts: list[int]) -> None:
        """Whatever a client sends, split wherever, the fast path agrees with h2."""
        wire = render(ops)
        pair = Pair()
        pos = 0
        for size in [*cuts, len(wire)]:
            if not pair.feed(self, wire[pos : pos + size]):
                return
            pos += size
            if pos >= len(wire):
                return


class ProtocolUsesFastPathTests(SynchronousTestCase):
    def test_repeated_calls_skip_h2_frame_parsing(self) -> None:
        """Once the connection is open, plain unary calls are read without h2's receive_data."""
        h = Harness(echo_registry())
        h.call(ECHO, Msg(service="first"))
        h2 = h.proto._h2
        calls: list[bytes] = []
        original = h2.receive_data
        h2.receive_data = lambda data: calls.append(bytes(data)) or original(data)  # type: ignore[method-assign]
        for i in range(3):
            self.assertEqual(h.call(ECHO, Msg(service=str(i))).status, 0)
        self.assertEqual(calls, [])

    def test_repeated_header_blocks_are_parsed_once(self) -> None:
        """Calls repeating a header block share one parse; each still gets the
        metadata and its own deadline."""
        seen: list[tuple[Any, Any]] = []

        def handler(request: Msg, ctx: Any) -> Msg:
            seen.append((ctx.metadata.get("x-user"), ctx.time_remaining()))
            return request

        registry = Registry()
        registry.add_unary(ECHO, Msg, handler)
        h = Harness(registry)
        parses = []
        original = h.proto._parse_request

        def spy(headers: Any) -> Any:
            parses.append(1)
            return original(headers)

        h.proto._parse_request = spy  # type: ignore[method-assign]
        metadata = [(b"x-user", b"ann"), (b"grpc-timeout", b"5S")]
        for i in range(6):
            h.clock.advance(1)
            self.assertEqual(h.call(ECHO, Msg(service=str(i)), metadata).status, 0)
        # the first block adds to the HPACK table; the second is the first repeat
        self.assertEqual(len(parses), 2)
        self.assertEqual(seen, [("ann", 5.0)] * 6)
