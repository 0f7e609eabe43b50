"""Tests for etcd_twisted.peer.codec: the frame format."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import raft_pb2
from etcd_twisted.peer import codec
from tests.peer.fakes import app


class CodecTests(SynchronousTestCase):
    def test_byte_at_a_time(self) -> None:
        """Frames fed one byte at a time decode to exactly what was encoded."""
        messages = [app(2, 1, i, payload=bytes(range(i))) for i in range(20)]
        wire = codec.encode_messages(messages) + codec.encode(codec.PING, b"12345678")
        wire += codec.encode(codec.SNAP_END)
        decoder = codec.FrameDecoder()
        frames: list[tuple[int, bytes]] = []
        for i in range(len(wire)):
            frames += decoder.feed(wire[i : i + 1])
        self.assertEqual(decoder.pending, 0)
        self.assertEqual(
            [k for k, _ in frames], [codec.MESSAGE] * 20 + [codec.PING, codec.SNAP_END]
        )
        self.assertEqual([raft_pb2.Message.FromString(p) for _, p in frames[:20]], messages)
        self.assertEqual(frames[20:], [(codec.PING, b"12345678"), (codec.SNAP_END, b"")])

    def test_whole_buffer(self) -> None:
        """Many frames in one feed all come out, in order."""
        wire = b"".join(codec.encode(codec.SNAP_DATA, bytes([i]) * i) for i in range(100))
        frames = codec.FrameDecoder().feed(wire)
        self.assertEqual(frames, [(codec.SNAP_DATA, bytes([i]) * i) for i in range(100)])

    def test_partial_frame_waits(self) -> None:
        """A frame split anywhere is held until its last byte arrives."""
        frame = codec.encode(codec.MESSAGE, b"hello")
        decoder = codec.FrameDecoder()
        self.assertEqual(decoder.feed(frame[:-1]), [])
        self.assertEqual(decoder.pending, len(frame) - 1)
        self.assertEqual(decoder.feed(frame[-1:] + frame[:3]), [(codec.MESSAGE, b"hello")])
        self.assertEqual(decoder.pending, 3)

    def test_oversized_frame_refused(self) -> None:
        """A length beyond the limit is an error as soon as the header is read."""
        decoder = codec.FrameDecoder(max_payload=10)
        with self.assertRaises(codec.FrameError):
            decoder.feed(codec.header(codec.MESSAGE, 11))

    def test_header_layout(self) -> None:
        """A frame is u8 kind, u32 big-endian length, payload."""
        self.assertEqual(codec.encode(codec.PONG, b"ab"), b"\x03\x00\x00\x00\x02ab")
