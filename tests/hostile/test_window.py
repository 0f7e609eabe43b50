"""WINDOW_UPDATE 0: a stream error on a stream, a connection error on the connection."""

from __future__ import annotations

from h2.errors import ErrorCodes

from tests.grpc.h2client import HarnessCase, fallback_twin
from tests.hostile.wire import START, RawConnection, raw

ZERO = (0).to_bytes(4, "big")


class ZeroWindowUpdateTests(HarnessCase):
    def test_on_a_stream_resets_that_stream(self) -> None:
        """RST_STREAM(PROTOCOL_ERROR) for the stream; the connection serves other calls."""
        c = RawConnection(self.fast_path)
        c.send(START + c.headers(1) + raw(4, 8, 0, 1, ZERO))
        self.assertIn(("RST_STREAM", 1, ErrorCodes.PROTOCOL_ERROR), c.frames())
        self.assertEqual(c.proto._calls, {})
        c.send(c.headers(3) + c.data(3, c.echo_body()))
        self.assertEqual(c.kinds(3), ["HEADERS", "DATA", "HEADERS"])
        self.assertFalse(c.closing)

    def test_on_a_closed_stream_ignored(self) -> None:
        """On a stream already answered it changes nothing."""
        c = RawConnection(self.fast_path)
        c.send(START + c.headers(1) + c.data(1, c.echo_body()))
        c.frames()
        c.send(raw(4, 8, 0, 1, ZERO))
        self.assertEqual(c.frames(), [])
        self.assertFalse(c.closing)

    def test_on_the_connection_is_a_connection_error(self) -> None:
        """On stream 0 it is GOAWAY(PROTOCOL_ERROR)."""
        c = RawConnection(self.fast_path)
        c.send(START + raw(4, 8, 0, 0, ZERO))
        self.assertIn(("GOAWAY", 0, ErrorCodes.PROTOCOL_ERROR), c.frames())
        self.assertTrue(c.closing)

    def test_on_an_idle_stream_is_a_connection_error(self) -> None:
        """On a stream never opened it is GOAWAY(PROTOCOL_ERROR)."""
        c = RawConnection(self.fast_path)
        c.send(START + raw(4, 8, 0, 5, ZERO))
        self.assertIn(("GOAWAY", 0, ErrorCodes.PROTOCOL_ERROR), c.frames())


ZeroWindowUpdateFallbackTests = fallback_twin(ZeroWindowUpdateTests)
