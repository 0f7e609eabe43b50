"""Oversized frames, CONTINUATION floods and garbage: closed at the frame header,
with no more than one frame of input held."""

from __future__ import annotations

from h2.errors import ErrorCodes
from hyperframe.frame import ContinuationFrame, HeadersFrame, SettingsFrame

from tests.grpc.h2client import HarnessCase, fallback_twin
from tests.hostile.wire import PREFACE, START, RawConnection, raw


class FrameSizeTests(HarnessCase):
    def test_oversized_frame_closes_at_its_header(self) -> None:
        """A header announcing a 16 MiB frame gets GOAWAY(FRAME_SIZE_ERROR) at once;
        the body that follows is not read."""
        c = RawConnection(self.fast_path)
        c.send(START + c.headers(1) + raw((1 << 24) - 1, 0, 0, 1))
        self.assertIn(("GOAWAY", 0, ErrorCodes.FRAME_SIZE_ERROR), c.frames())
        self.assertTrue(c.closing)
        c.send(b"x" * 100_000)
        self.assertEqual(c.proto._guard.held, 0)

    def test_frame_over_16k_refused(self) -> None:
        """SETTINGS_MAX_FRAME_SIZE stays at 16 KiB: a 16 KiB + 1 frame is too large."""
        c = RawConnection(self.fast_path)
        c.send(START + c.headers(1) + raw(16385, 0, 0, 1, b"x" * 16385))
        self.assertIn(("GOAWAY", 0, ErrorCodes.FRAME_SIZE_ERROR), c.frames())

    def test_partial_frame_held_is_bounded(self) -> None:
        """A frame that trickles in is held only up to its announced (bounded) size."""
        c = RawConnection(self.fast_path)
        c.send(START + c.headers(1) + raw(16384, 0, 0, 1))
        for _ in range(20):
            c.send(b"y" * 800)
        self.assertLessEqual(c.proto._guard.held, 16384 + 9)
        self.assertFalse(c.closing)


class ContinuationTests(HarnessCase):
    def test_flood_closed_at_64k(self) -> None:
        """A header block growing past 64 KiB in CONTINUATIONs gets GOAWAY(ENHANCE_YOUR_CALM)
        before h2 buffers more."""
        c = RawConnection(self.fast_path)
        c.send(START + HeadersFrame(1, data=b"\x82", flags=[]).serialize())
        chunk = ContinuationFrame(1, data=b"\x00" * 16384).serialize()
        for _ in range(3):
            c.send(chunk)
        self.assertFalse(c.closing)
        c.send(chunk)
        self.assertIn(("GOAWAY", 0, ErrorCodes.ENHANCE_YOUR_CALM), c.frames())
        self.assertTrue(c.closing)

    def test_split_header_block_served(self) -> None:
        """A legitimate block in HEADERS + CONTINUATION frames is served."""
        c = RawConnection(self.fast_path)
        block = c.encoder.encode(
            [
                (b":method", b"POST"),
                (b":scheme", b"http"),
                (b":path", b"/test.Echo/Echo"),
                (b":authority", b"x"),
                (b"content-type", b"application/grpc"),
                (b"x-big", b"v" * 30000),
            ]
        )
        wire = HeadersFrame(1, data=block[:16000], flags=[]).serialize()
        wire += ContinuationFrame(1, data=block[16000:], flags=["END_HEADERS"]).serialize()
        c.send(START + wire + c.data(1, c.echo_body()))
        self.assertEqual(c.kinds(1), ["HEADERS", "DATA", "HEADERS"])


class GarbageTests(HarnessCase):
    def test_garbage_after_preface(self) -> None:
        """Bytes after the preface that are not a SETTINGS frame close the connection
        at once, whatever length their first 3 bytes announce."""
        for garbage in (b"GET / HTTP/1.1\r\n\r\n", bytes(range(100)), b"\x00\x00\x04\x08\x00"):
            c = RawConnection(self.fast_path)
            c.send(PREFACE + garbage)
            self.assertTrue(c.closing, garbage)

    def test_settings_ack_first_refused(self) -> None:
        """The first frame must be a SETTINGS frame that is not an ACK."""
        c = RawConnection(self.fast_path)
        c.send(PREFACE + SettingsFrame(0, flags=["ACK"]).serialize())
        self.assertIn(("GOAWAY", 0, ErrorCodes.PROTOCOL_ERROR), c.frames())

    def test_bad_preface(self) -> None:
        """A wrong preface closes the connection."""
        c = RawConnection(self.fast_path)
        c.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
        self.assertTrue(c.closing)


FrameSizeFallbackTests = fallback_twin(FrameSizeTests)
ContinuationFallbackTests = fallback_twin(ContinuationTests)
GarbageFallbackTests = fallback_twin(GarbageTests)
