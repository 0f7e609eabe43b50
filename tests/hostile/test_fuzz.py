"""Fuzzing: whatever a client sends over HTTP/2, and whatever bytes a WAL file holds,
ends in answers or a clean close (a named error), never a traceback."""

from __future__ import annotations

from typing import Any

from hpack import Encoder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.logger import ILogObserver, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import provider

from etcd_twisted.wal.record import CorruptRecordError, Decoder, RecordType
from etcd_twisted.wal.record import Encoder as WalEncoder
from tests.grpc.h2client import HarnessCase, fallback_twin
from tests.grpc.test_protocol import ECHO, Msg
from tests.hostile.wire import PREFACE, START, RawConnection, raw

_REQUEST = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", ECHO.encode()),
    (b":authority", b"x"),
    (b"content-type", b"application/grpc"),
]
_BODY = b"\x00" + (4).to_bytes(4, "big") + Msg(service="ab").SerializeToString()

# One frame: a plausible kind of HTTP/2 frame with random flags, stream and body.
_frame = st.one_of(
    st.tuples(st.just("headers"), st.integers(0, 9), st.integers(0, 0x2D), st.booleans()),
    st.tuples(
        st.just("data"),
        st.integers(0, 9),
        st.integers(0, 9),
        st.sampled_from([_BODY, _BODY[:3], b""]),
    ),
    st.tuples(
        st.just("raw"),
        st.integers(0, 12),
        st.integers(0, 255),
        st.integers(0, 9),
        st.binary(max_size=40),
    ),
    st.tuples(st.just("bytes"), st.binary(min_size=1, max_size=30)),
)


def render(start: str, frames: list[tuple[Any, ...]]) -> bytes:
    """Client bytes: a start (proper, preface only, or none) and then the frames."""
    encoder = Encoder()
    out = [{"proper": START, "preface": PREFACE, "none": b""}[start]]
    for f in frames:
        if f[0] == "headers":
            _, sid, flags, extra = f
            headers = _REQUEST + ([(b"grpc-encoding", b"gzip")] if extra else [])
            block = encoder.encode(headers)
            out.append(raw(len(block), 1, flags & 0x2D, sid, block))
        elif f[0] == "data":
            _, sid, flags, body = f
            out.append(raw(len(body), 0, flags & 0x9, sid, body))
        elif f[0] == "raw":
            _, kind, flags, sid, body = f
            out.append(raw(len(body), kind, flags, sid, body))
        else:
            out.append(f[1])
    return b"".join(out)


class ErrorEvents:
    """Collects logged failures and error-level events."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

        @provider(ILogObserver)
        def observe(event: dict[str, Any]) -> None:
            level = event.get("log_level")
            if "log_failure" in event or (
                level is not None and level.name in ("error", "critical")
            ):
                self.events.append(event)

        self.observer = observe


class FramingFuzzTests(HarnessCase):
    # The fallback twin runs this same test on purpose (differing_executors).
    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors],
    )
    @given(
        st.sampled_from(["proper", "proper", "proper", "preface", "none"]),
        st.lists(_frame, max_size=30),
        st.lists(st.integers(1, 200), max_size=6),
    )
    def test_any_input(self, start: str, frames: list[tuple[Any, ...]], cuts: list[int]) -> None:
        """Any bytes, split anywhere: no exception, nothing logged as an error, well-formed
        output; then the connection is closing or still answers a fresh call."""
        wire = render(start, frames)
        errors = ErrorEvents()
        globalLogPublisher.addObserver(errors.observer)
        try:
            c = RawConnection(self.fast_path)
            pos = 0
            for size in [*cuts, len(wire)]:
                c.send(wire[pos : pos + size])
                pos += size
            c.clock.advance(60)
            for kind, _, _ in c.frames():  # parses, or raises
                self.assertIsInstance(kind, str)
            self.assertEqual(c.proto._guard.held <= 16384 + 9, True)
            if not c.closing:
                c.send(c.headers(101) + c.data(101, _BODY))
                self.assertTrue(c.closing or "HEADERS" in c.kinds(101))
        finally:
            globalLogPublisher.removeObserver(errors.observer)
        self.assertEqual(errors.events, [])
        self.assertEqual(self.flushLoggedErrors(), [])


FramingFuzzFallbackTests = fallback_twin(FramingFuzzTests)


def _records() -> bytes:
    encoder = WalEncoder()
    return b"".join(
        [
            encoder.encode(RecordType.CRC),
            encoder.encode(RecordType.METADATA, b"meta"),
            *(encoder.encode(RecordType.ENTRY, b"entry %d" % i * (i + 1)) for i in range(6)),
            encoder.encode(RecordType.STATE, b"\x08\x01"),
        ]
    )


VALID = _records()


def decode_all(data: bytes, cuts: list[int]) -> None:
    """Feed ``data`` in pieces, take every record, close."""
    d = Decoder()
    pos = 0
    for size in [*cuts, len(data)]:
        d.feed(data[pos : pos + size])
        pos += size
        while d.next() is not None:
            pass
    d.close()


class WalRecordFuzzTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=600), st.lists(st.integers(1, 100), max_size=5))
    def test_random_bytes(self, data: bytes, cuts: list[int]) -> None:
        """Any bytes decode to records, a clean or torn end, or CorruptRecordError."""
        try:
            decode_all(data, cuts)
        except CorruptRecordError:
            pass

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(1, 255)), max_size=4),
        st.integers(0, len(VALID)),
        st.lists(st.integers(1, 100), max_size=5),
    )
    def test_damaged_log(self, flips: list[tuple[int, int]], cut: int, cuts: list[int]) -> None:
        """A real log with bytes flipped and cut short decodes cleanly or raises CorruptRecordError."""
        data = bytearray(VALID)
        for where, mask in flips:
            data[where] ^= mask
        try:
            decode_all(bytes(data[:cut]), cuts)
        except CorruptRecordError:
            pass
