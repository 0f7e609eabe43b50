"""The sans-I/O message codec."""

from __future__ import annotations

import gzip

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.grpc.framing import MessageDecoder, encode_message
from etcd_twisted.grpc.status import GrpcError, StatusCode

MESSAGES = [b"", b"a", b"hello world", bytes(range(256)) * 3, b"\x00" * 5]
STREAM = b"".join(encode_message(m) for m in MESSAGES)


class EncodeTests(SynchronousTestCase):
    def test_prefix(self) -> None:
        """A message is framed as flag 0, 4-byte big-endian length, payload."""
        self.assertEqual(encode_message(b"abc"), b"\x00\x00\x00\x00\x03abc")


class DecoderTests(SynchronousTestCase):
    def test_whole(self) -> None:
        """Several messages in one chunk come out in order."""
        self.assertEqual(MessageDecoder(10_000).feed(STREAM), MESSAGES)

    def test_one_byte_at_a_time(self) -> None:
        """Fed one byte per call, the decoder yields the same messages."""
        d = MessageDecoder(10_000)
        out: list[bytes] = []
        for i in range(len(STREAM)):
            out.extend(d.feed(STREAM[i : i + 1]))
        self.assertEqual(out, MESSAGES)
        self.assertFalse(d.has_partial)

    def test_every_split(self) -> None:
        """Split in two at every offset, the stream decodes the same."""
        for cut in range(len(STREAM) + 1):
            d = MessageDecoder(10_000)
            out = d.feed(STREAM[:cut]) + d.feed(STREAM[cut:])
            self.assertEqual(out, MESSAGES, cut)

    def test_every_three_way_split(self) -> None:
        """Split in three at every pair of offsets around message edges, it decodes the same."""
        small = b"".join(encode_message(m) for m in (b"x", b"", b"yz"))
        for a in range(len(small) + 1):
            for b in range(a, len(small) + 1):
                d = MessageDecoder(100)
                out = d.feed(small[:a]) + d.feed(small[a:b]) + d.feed(small[b:])
                self.assertEqual(out, [b"x", b"", b"yz"], (a, b))

    def test_partial(self) -> None:
        """has_partial is true while part of a message is buffered."""
        d = MessageDecoder(100)
        self.assertEqual(d.feed(encode_message(b"abc")[:6]), [])
        self.assertTrue(d.has_partial)
        self.assertEqual(d.feed(b"bc"), [b"abc"])
        self.assertFalse(d.has_partial)

    def test_max_size(self) -> None:
        """A prefix announcing more than the limit fails RESOURCE_EXHAUSTED before the body arrives."""
        d = MessageDecoder(10)
        self.assertEqual(d.feed(encode_message(b"x" * 10)), [b"x" * 10])
        e = self.assertRaises(GrpcError, d.feed, b"\x00\x00\x00\x00\x0b")
        self.assertEqual(e.code, StatusCode.RESOURCE_EXHAUSTED)
        self.assertEqual(e.message, "grpc: received message larger than max (11 vs. 10)")

    def test_max_size_split_prefix(self) -> None:
        """The limit holds when the prefix itself arrives in pieces."""
        d = MessageDecoder(10)
        d.feed(b"\x00\x00")
        self.assertRaises(GrpcError, d.feed, b"\x01\x00\x00")

    def test_compressed_without_encoding(self) -> None:
        """The compressed flag with no grpc-encoding is INTERNAL, as in grpc-go."""
        e = self.assertRaises(GrpcError, MessageDecoder(10).feed, b"\x01\x00\x00\x00\x00")
        self.assertEqual(e.code, StatusCode.INTERNAL)
        self.assertEqual(e.message, "grpc: compressed flag set with identity or empty encoding")

    def test_compressed_with_identity(self) -> None:
        """The compressed flag with grpc-encoding identity is INTERNAL too."""
        e = self.assertRaises(
            GrpcError, MessageDecoder(10, "identity").feed, b"\x01\x00\x00\x00\x00"
        )
        self.assertEqual(e.code, StatusCode.INTERNAL)

    def test_compressed_with_unsupported_encoding(self) -> None:
        """The compressed flag with an encoding we cannot decompress is UNIMPLEMENTED."""
        e = self.assertRaises(GrpcError, MessageDecoder(10, "br").feed, b"\x01\x00\x00\x00\x00")
        self.assertEqual(e.code, StatusCode.UNIMPLEMENTED)
        self.assertEqual(e.message, 'grpc: Decompressor is not installed for grpc-encoding "br"')

    def test_bad_flag(self) -> None:
        """A flag byte other than 0 or 1 is INTERNAL."""
        e = self.assertRaises(GrpcError, MessageDecoder(10).feed, b"\x02\x00\x00\x00\x00")
        self.assertEqual(e.message, "grpc: received unexpected payload format 2")


def gzipped(payload: bytes) -> bytes:
    body = gzip.compress(payload)
    return b"\x01" + len(body).to_bytes(4, "big") + body


class GzipTests(SynchronousTestCase):
    def test_gzip_messages(self) -> None:
        """With grpc-encoding gzip, compressed messages are inflated, split anywhere."""
        wire = gzipped(b"one") + encode_message(b"two") + gzipped(b"x" * 5000)
        for cut in range(len(wire) + 1):
            d = MessageDecoder(1 << 20, "gzip")
            self.assertEqual(d.feed(wire[:cut]) + d.feed(wire[cut:]), [b"one", b"two", b"x" * 5000])

    def test_inflated_size_limit(self) -> None:
        """A message larger than the limit once inflated is RESOURCE_EXHAUSTED, by its trailer
        or while inflating (a lying trailer does not let it through)."""
        d = MessageDecoder(1000, "gzip")
        e = self.assertRaises(GrpcError, d.feed, gzipped(b"\0" * 5000))
        self.assertEqual(e.code, StatusCode.RESOURCE_EXHAUSTED)
        self.assertEqual(
            e.message, "grpc: received message after decompression larger than max (5000 vs. 1000)"
        )
        lying = bytearray(gzipped(b"\0" * 5000))
        lying[-4:] = (10).to_bytes(4, "little")
        e = self.assertRaises(GrpcError, MessageDecoder(1000, "gzip").feed, bytes(lying))
        self.assertEqual(e.code, StatusCode.RESOURCE_EXHAUSTED)

    def test_corrupt(self) -> None:
        """Bad gzip data is INTERNAL with grpc-go's prefix and Go's reason where known."""
        cases = {
            b"": "EOF",
            b"not gzip at all": "gzip: invalid header",
            gzip.compress(bytes(100), compresslevel=0)[:60]: "unexpected EOF",
        }
        for body, reason in cases.items():
            wire = b"\x01" + len(body).to_bytes(4, "big") + body
            e = self.assertRaises(GrpcError, MessageDecoder(1 << 20, "gzip").feed, wire)
            self.assertEqual(e.code, StatusCode.INTERNAL)
            self.assertEqual(e.message, f"grpc: failed to decompress the received message {reason}")
