"""A client's GOAWAY drains the connection (RFC 9113 §6.8), as Go's server does."""

from __future__ import annotations

from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from tests.grpc.h2client import HarnessCase, fallback_twin
from tests.grpc.test_protocol import Msg
from tests.hostile.wire import START, RawConnection

GOAWAY = GoAwayFrame(0, last_stream_id=0, error_code=0).serialize()


class ClientGoAwayTests(HarnessCase):
    def test_open_call_finishes(self) -> None:
        """HEADERS, GOAWAY(0, last_stream_id=0), then DATA with END_STREAM: the call is
        answered with HEADERS, DATA and trailers grpc-status 0 (etcd 3.5.1 does the same)."""
        c = RawConnection(self.fast_path)
        c.send(START + c.headers(1) + GOAWAY)
        self.assertFalse(c.closing)
        c.send(c.data(1, c.echo_body("still here")))
        frames = [f for f in c.frames() if f[1] == 1 and f[0] != "GOAWAY"]
        self.assertEqual([k for k, _, _ in frames], ["HEADERS", "DATA", "HEADERS"])
        self.assertEqual(Msg.FromString(frames[1][2][5:]).service, "still here")
        self.assertEqual(frames[2][2][b"grpc-status"], b"0")

    def test_then_closes(self) -> None:
        """Once the open calls are done the server says GOAWAY(NO_ERROR) and closes."""
        c = RawConnection(self.fast_path)
        c.send(START + c.headers(1) + GOAWAY)
        c.send(c.data(1, c.echo_body()))
        self.assertIn(("GOAWAY", 1, ErrorCodes.NO_ERROR), c.frames())
        self.assertTrue(c.closing)

    def test_new_streams_refused(self) -> None:
        """Streams opened after the client's GOAWAY are refused; the open one is served."""
        c = RawConnection(self.fast_path)
        c.send(START + c.headers(1) + GOAWAY + c.headers(3) + c.data(3, c.echo_body()))
        self.assertIn(("RST_STREAM", 3, ErrorCodes.REFUSED_STREAM), c.frames())
        self.assertFalse(c.closing)
        c.send(c.data(1, c.echo_body()))
        self.assertTrue(c.closing)

    def test_idle_connection_closes(self) -> None:
        """A GOAWAY on a connection without calls closes it at once."""
        c = RawConnection(self.fast_path)
        c.send(START + GOAWAY)
        self.assertTrue(c.closing)


ClientGoAwayFallbackTests = fallback_twin(ClientGoAwayTests)
