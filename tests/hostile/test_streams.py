"""Many open streams: the limit is advertised and enforced, admission is O(1)."""

from __future__ import annotations

from typing import Any

from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import Frame, SettingsFrame
from twisted.trial.unittest import SynchronousTestCase

from tests.grpc.h2client import HarnessCase, fallback_twin
from tests.grpc.test_protocol import ECHO, Msg, echo_registry, texts
from tests.hostile.wire import START, RawConnection


class CountingStreams(dict):  # type: ignore[type-arg]
    """h2's stream table, counting how many entries are visited by walks over it."""

    visited = 0

    def items(self) -> Any:
        for item in super().items():
            CountingStreams.visited += 1
            yield item


class StreamLimitTests(HarnessCase):
    def test_limit_advertised(self) -> None:
        """The server's SETTINGS carry MAX_CONCURRENT_STREAMS."""
        c = RawConnection(self.fast_path, max_concurrent_streams=7)
        data = c.transport.value()
        advertised = {}
        pos = 0
        while pos < len(data):
            frame, length = Frame.parse_frame_header(memoryview(data[pos : pos + 9]))
            frame.parse_body(memoryview(data[pos + 9 : pos + 9 + length]))
            pos += 9 + length
            if isinstance(frame, SettingsFrame):
                advertised.update(frame.settings)
        self.assertEqual(advertised[SettingCodes.MAX_CONCURRENT_STREAMS], 7)

    def test_streams_over_the_limit_are_refused(self) -> None:
        """Streams beyond the limit get RST_STREAM(REFUSED_STREAM); the connection and the
        open streams carry on, and room is made again as they finish."""
        c = RawConnection(self.fast_path, max_concurrent_streams=3)
        c.send(START + b"".join(c.headers(sid) for sid in (1, 3, 5, 7, 9)))
        frames = c.frames()
        refused = [
            s for k, s, code in frames if k == "RST_STREAM" and code == ErrorCodes.REFUSED_STREAM
        ]
        self.assertEqual(refused, [7, 9])
        self.assertFalse(c.closing)
        c.send(c.data(1, c.echo_body("one")))
        self.assertIn("DATA", c.kinds(1))
        c.send(c.headers(11) + c.data(11, c.echo_body("eleven")))
        frames = c.frames()
        self.assertEqual([k for k, s, _ in frames if s == 11], ["HEADERS", "DATA", "HEADERS"])

    def test_zero_is_unlimited(self) -> None:
        """A limit of 0 is unlimited (2**32 - 1), as grpc-go takes etcd's flag."""
        h = self.harness(echo_registry(), max_concurrent_streams=0)
        self.assertEqual(h.client.remote_settings.max_concurrent_streams, 2**32 - 1)

    def test_default_limit(self) -> None:
        """Without a setting, a connection may have 10000 streams open."""
        h = self.harness(echo_registry())
        self.assertEqual(h.client.remote_settings.max_concurrent_streams, 10000)

    def test_other_calls_served_while_streams_held(self) -> None:
        """A client holding many streams open does not stop a call on another connection."""
        c = RawConnection(self.fast_path, max_concurrent_streams=500)
        c.send(START + b"".join(c.headers(2 * i + 1) for i in range(2000)))
        other = self.harness(echo_registry())
        self.assertEqual(texts(other.call(ECHO, Msg(service="x")).messages), ["x"])


StreamLimitFallbackTests = fallback_twin(StreamLimitTests)


class FastAdmissionTests(SynchronousTestCase):
    """The fast path only: with h2's public API, h2 itself counts open streams by walking them."""

    def test_admission_does_not_walk_open_streams(self) -> None:
        """With thousands of streams open, admitting more (or refusing them) visits
        a bounded number of table entries, not every open stream each time."""
        c = RawConnection(True, max_concurrent_streams=3000)
        c.send(START)
        h2 = c.proto._h2
        h2.streams = CountingStreams(h2.streams)
        CountingStreams.visited = 0
        c.send(b"".join(c.headers(2 * i + 1) for i in range(4000)))
        self.assertEqual(len(c.proto._calls), 3000)
        # one walk of ~3000 at most (closed streams leave the table in amortized O(1))
        self.assertLess(CountingStreams.visited, 8000)
