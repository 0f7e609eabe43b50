"""Tests for etcd_twisted.grpc.hpack_cache: constant encodings and the decode cache."""

from hpack import Decoder, Encoder, HPACKError
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.grpc.hpack_cache import CachingDecoder, CachingEncoder, encode_static

RESPONSE = [(b":status", b"200"), (b"content-type", b"application/grpc")]
TRAILERS = [(b"grpc-status", b"0")]


class EncodeTests(SynchronousTestCase):
    def test_static_blocks_decode_anywhere(self) -> None:
        """A constant block decodes the same whatever the receiver's dynamic table holds."""
        busy = Decoder()
        busy.decode(Encoder().encode([(b"x-a", b"1"), (b"content-type", b"text/plain")]), raw=True)
        for block in (RESPONSE, TRAILERS, RESPONSE + TRAILERS, [(b":status", b"415")]):
            encoded = encode_static(block)
            self.assertEqual(Decoder().decode(encoded, raw=True), block)
            self.assertEqual(busy.decode(encoded, raw=True), block)

    def test_long_values_use_multibyte_lengths(self) -> None:
        """Values past the 7-bit prefix encode their length in continuation bytes."""
        block = [(b"grpc-message", b"x" * 300)]
        self.assertEqual(Decoder().decode(encode_static(block), raw=True), block)

    def test_caching_encoder_keeps_state_for_other_blocks(self) -> None:
        """Constant blocks bypass the table; other blocks still decode in order."""
        encoder = CachingEncoder([RESPONSE, TRAILERS])
        decoder = Decoder()
        blocks = [RESPONSE, [(b"grpc-status", b"5"), (b"grpc-message", b"nope")], TRAILERS] * 3
        for block in blocks:
            self.assertEqual(decoder.decode(encoder.encode(list(block)), raw=True), block)
        self.assertIs(encoder.encode(list(RESPONSE)), encoder.encode(list(RESPONSE)))

    def test_resize_is_signalled_before_constants(self) -> None:
        """After a table size change the next block goes through hpack, which announces it."""
        encoder = CachingEncoder([RESPONSE])
        encoder.header_table_size = 0
        first = encoder.encode(list(RESPONSE))
        self.assertNotEqual(first, encode_static(RESPONSE))
        self.assertEqual(encoder.encode(list(RESPONSE)), encode_static(RESPONSE))


headers = st.lists(
    st.tuples(
        st.sampled_from([b":path", b"content-type", b"te", b"x-a", b"x-b", b"grpc-timeout"]),
        st.sampled_from([b"/a", b"/b", b"application/grpc", b"trailers", b"1", b"2" * 40]),
    ),
    min_size=1,
    max_size=5,
)


class DecodeTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.one_of(headers, st.integers(0, 4096)), min_size=1, max_size=30))
    def test_agrees_with_hpack(self, script: list) -> None:
        """Whatever blocks and table resizes come, the caching decoder answers as hpack does
        (and fails where it fails: hpack's encoder drops a shrink that is undone before
        the next block, so some scripts make blocks no decoder can read)."""
        encoder, plain, caching = Encoder(), Decoder(), CachingDecoder()
        for step in script:
            if isinstance(step, int):
                encoder.header_table_size = step
                continue
            block = encoder.encode(step)
            try:
                expected = plain.decode(block, raw=True)
            except HPACKError as e:
                self.assertRaises(type(e), caching.decode, block, raw=True)
                return
            self.assertEqual(caching.decode(block, raw=True), expected)

    def test_repeated_block_hits_cache(self) -> None:
        """A block of table references decodes once while the table stays the same."""
        encoder, decoder = Encoder(), CachingDecoder()
        request = [(b":path", b"/etcdserverpb.KV/Range"), (b"te", b"trailers")]
        decoder.decode(encoder.encode(request), raw=True)
        block = encoder.encode(request)
        first = decoder.decode(block, raw=True)
        calls = []
        original = Decoder.decode
        try:
            Decoder.decode = lambda self, data, raw=False: (
                calls.append(1) or original(self, data, raw)
            )
            self.assertEqual(decoder.decode(block, raw=True), first)
        finally:
            Decoder.decode = original
        self.assertEqual(calls, [])
