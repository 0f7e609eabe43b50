"""InputGuard: whole frames out, sizes checked at the frame header, GOAWAY and
WINDOW_UPDATE 0 reported, and the same result however the input is split."""

from __future__ import annotations

from typing import Any

from h2.errors import ErrorCodes
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.grpc.guard import (
    PREFACE,
    FrameError,
    InputGuard,
    PeerGoAway,
    Preface,
    ZeroWindowUpdate,
)

SETTINGS = SettingsFrame(0).serialize()
PING = PingFrame(0, opaque_data=b"12345678").serialize()
HEADERS = HeadersFrame(1, data=b"\x82\x86", flags=["END_HEADERS"]).serialize()
DATA = DataFrame(1, data=b"x" * 300, flags=["END_STREAM"]).serialize()
GOAWAY = GoAwayFrame(0, last_stream_id=5, error_code=2).serialize()
ZERO_WU = b"\x00\x00\x04\x08\x00\x00\x00\x00\x03" + bytes(4)
WIRE = PREFACE + SETTINGS + HEADERS + PING + GOAWAY + DATA + ZERO_WU + PING


def flatten(items: list[Any]) -> list[Any]:
    """Items as comparable values, adjacent byte runs joined."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, Preface):
            out.append("preface")
        elif isinstance(item, bytes):
            if out and isinstance(out[-1], bytes):
                out[-1] += item
            else:
                out.append(bytes(item))
        elif isinstance(item, PeerGoAway):
            out.append(("goaway", item.last_stream_id, item.error_code))
        else:
            assert isinstance(item, ZeroWindowUpdate)
            out.append(("zero", item.stream_id))
    return out


EXPECTED = [
    "preface",
    SETTINGS + HEADERS + PING,
    ("goaway", 5, 2),
    DATA,
    ("zero", 3),
    PING,
]


class GuardTests(SynchronousTestCase):
    def test_every_split(self) -> None:
        """Whole, in two pieces at every offset, or byte by byte: the same items."""
        for cut in range(len(WIRE) + 1):
            g = InputGuard()
            self.assertEqual(flatten(g.receive(WIRE[:cut]) + g.receive(WIRE[cut:])), EXPECTED)
        g = InputGuard()
        items: list[Any] = []
        for i in range(len(WIRE)):
            items += g.receive(WIRE[i : i + 1])
        self.assertEqual(flatten(items), EXPECTED)

    def test_frame_size_checked_at_header(self) -> None:
        """A header announcing more than max_frame_size fails before any body arrives."""
        g = InputGuard()
        g.receive(PREFACE + SETTINGS)
        e = self.assertRaises(FrameError, g.receive, b"\x01\x00\x00\x00\x00\x00\x00\x00\x01")
        self.assertEqual(e.code, ErrorCodes.FRAME_SIZE_ERROR)

    def test_held_is_one_frame_at_most(self) -> None:
        """Bytes of an incomplete frame are held, and no more."""
        g = InputGuard()
        g.receive(PREFACE + SETTINGS + DATA[:100])
        self.assertEqual(g.held, 100)
        self.assertEqual(flatten(g.receive(DATA[100:])), [DATA])
        self.assertEqual(g.held, 0)

    def test_first_frame_must_be_settings(self) -> None:
        """After the preface, anything but SETTINGS (not an ACK) is a PROTOCOL_ERROR."""
        for first in (PING, SettingsFrame(0, flags=["ACK"]).serialize(), b"\x00\x00\x00\x06"):
            e = self.assertRaises(FrameError, InputGuard().receive, PREFACE + first)
            self.assertEqual(e.code, ErrorCodes.PROTOCOL_ERROR)

    def test_bad_preface(self) -> None:
        """A preface that differs anywhere is refused as soon as it differs."""
        e = self.assertRaises(FrameError, InputGuard().receive, b"PRI * HTTP/1.1")
        self.assertEqual(e.code, ErrorCodes.PROTOCOL_ERROR)

    def test_header_block_bound(self) -> None:
        """HEADERS and CONTINUATION bytes of one block add up to max_header_block at most."""
        g = InputGuard(max_header_block=1000)
        g.receive(PREFACE + SETTINGS + HeadersFrame(1, data=b"a" * 600).serialize())
        g.receive(ContinuationFrame(1, data=b"b" * 400).serialize())
        e = self.assertRaises(FrameError, g.receive, ContinuationFrame(1, data=b"c").serialize())
        self.assertEqual(e.code, ErrorCodes.ENHANCE_YOUR_CALM)

    def test_block_ends_with_end_headers(self) -> None:
        """A block that ends resets the count for the next one."""
        g = InputGuard(max_header_block=1000)
        g.receive(PREFACE + SETTINGS)
        for sid in (1, 3, 5):
            g.receive(HeadersFrame(sid, data=b"a" * 600).serialize())
            g.receive(ContinuationFrame(sid, data=b"b" * 400, flags=["END_HEADERS"]).serialize())

    def test_frames_inside_a_header_block_pass_to_h2(self) -> None:
        """A GOAWAY or WINDOW_UPDATE 0 in the middle of a header block is passed on
        (h2 refuses it as a connection error), not reported."""
        g = InputGuard()
        g.receive(PREFACE + SETTINGS)
        start = HeadersFrame(1, data=b"\x82").serialize()
        self.assertEqual(flatten(g.receive(start + GOAWAY)), [start + GOAWAY])

    def test_max_frames_leaves_a_backlog(self) -> None:
        """With max_frames, the rest is held and `backlog` says so until it is read."""
        g = InputGuard()
        pings = PING * 10
        first = g.receive(PREFACE + SETTINGS + pings, max_frames=4)
        self.assertTrue(g.backlog)
        self.assertEqual(flatten(first), ["preface", SETTINGS + PING * 3])
        second = g.receive(b"", max_frames=4)
        third = g.receive(b"", max_frames=4)
        self.assertFalse(g.backlog)
        self.assertEqual(flatten(second + third), [PING * 7])

    def test_window_update_nonzero_passes(self) -> None:
        """A WINDOW_UPDATE with an increment is an ordinary frame."""
        g = InputGuard()
        wu = WindowUpdateFrame(3, window_increment=1).serialize()
        self.assertEqual(flatten(g.receive(PREFACE + SETTINGS + wu)), ["preface", SETTINGS + wu])
