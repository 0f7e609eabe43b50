"""Tests for etcd_twisted.wal.record: the sans-I/O record codec."""

from __future__ import annotations

import crc32c
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import wal_pb2
from etcd_twisted.wal.record import (
    SECTOR_BYTES,
    CorruptRecordError,
    Decoder,
    Encoder,
    Record,
    RecordType,
    Tail,
)

DATA_TYPES = [RecordType.METADATA, RecordType.ENTRY, RecordType.STATE, RecordType.SNAPSHOT]
records = st.lists(
    st.tuples(st.sampled_from(DATA_TYPES), st.binary(max_size=700)), min_size=1, max_size=12
)


def encode(recs: list[tuple[RecordType, bytes]]) -> tuple[bytes, list[int]]:
    """The stream for ``recs`` (after a CRC record, as a segment file starts) and each frame's end."""
    enc = Encoder()
    out = enc.encode(RecordType.CRC)
    ends = [len(out)]
    for rtype, data in recs:
        out += enc.encode(rtype, data)
        ends.append(len(out))
    return out, ends


def decode(stream: bytes, step: int = 0) -> tuple[list[Record], Tail]:
    """Decode ``stream`` in pieces of ``step`` bytes (0: all at once)."""
    dec = Decoder()
    out: list[Record] = []
    pieces = [stream] if step == 0 else [stream[i : i + step] for i in range(0, len(stream), step)]
    for piece in pieces:
        dec.feed(piece)
        while (rec := dec.next()) is not None:
            out.append(rec)
    return out, dec.close()


class CodecTests(SynchronousTestCase):
    @given(records)
    def test_round_trip(self, recs: list[tuple[RecordType, bytes]]) -> None:
        """Every encoded record decodes to its type and data, ending cleanly at the end."""
        stream, ends = encode(recs)
        out, tail = decode(stream)
        self.assertEqual([(r.type, r.data) for r in out[1:]], recs)
        self.assertEqual([r.offset for r in out], [0, *ends[:-1]])
        self.assertEqual(tail, Tail(len(stream), torn=False))

    @given(records)
    @settings(max_examples=30)
    def test_one_byte_at_a_time(self, recs: list[tuple[RecordType, bytes]]) -> None:
        """Feeding one byte at a time decodes the same records as feeding all at once."""
        stream, _ = encode(recs)
        self.assertEqual(decode(stream, step=1), decode(stream))

    @given(records, st.data())
    def test_truncation_is_a_torn_tail(
        self, recs: list[tuple[RecordType, bytes]], data: st.DataObject
    ) -> None:
        """Any truncation yields the whole records before it, then a clean end or a torn tail there."""
        stream, ends = encode(recs)
        cut = data.draw(st.integers(0, len(stream)))
        out, tail = decode(stream[:cut])
        whole = [e for e in ends if e <= cut]
        self.assertEqual([(r.type, r.data) for r in out[1:]], recs[: max(0, len(whole) - 1)])
        boundary = whole[-1] if whole else 0
        self.assertEqual((tail.offset, tail.torn), (boundary, cut != boundary))

    @given(records, st.data())
    def test_zeroed_tail_is_torn(
        self, recs: list[tuple[RecordType, bytes]], data: st.DataObject
    ) -> None:
        """A write cut short at a sector boundary (zeros after it, as in a preallocated file) is a torn tail."""
        stream, ends = encode(recs)
        cut = data.draw(st.integers(0, len(stream) // SECTOR_BYTES)) * SECTOR_BYTES
        damaged = stream[:cut] + bytes(len(stream) - cut + 4096)
        out, tail = decode(damaged)
        whole = [e for e in ends if e <= cut]
        self.assertEqual([(r.type, r.data) for r in out[1:]], recs[: max(0, len(whole) - 1)])
        boundary = whole[-1] if whole else 0
        self.assertEqual((tail.offset, tail.torn), (boundary, cut != boundary))

    @given(records, st.data())
    def test_bit_flip_before_the_last_record_is_detected(
        self, recs: list[tuple[RecordType, bytes]], data: st.DataObject
    ) -> None:
        """Flipping any bit in a frame that another frame follows raises CorruptRecordError at or before it."""
        recs = [*recs, (RecordType.ENTRY, b"last")]
        stream, ends = encode(recs)
        pos = data.draw(st.integers(0, ends[-2] - 1))
        bit = data.draw(st.integers(0, 7))
        damaged = bytearray(stream)
        damaged[pos] ^= 1 << bit
        with self.assertRaises(CorruptRecordError) as caught:
            decode(bytes(damaged))
        frame_start = max([0, *(e for e in ends if e <= pos)])
        self.assertGreaterEqual(caught.exception.offset, frame_start)

    def test_data_after_end_of_log_is_corruption(self) -> None:
        """Non-zero bytes after a zero length field are corruption, reported at their offset."""
        stream, _ = encode([(RecordType.ENTRY, b"x")])
        with self.assertRaises(CorruptRecordError) as caught:
            decode(stream + bytes(16) + b"\x01")
        self.assertEqual(caught.exception.offset, len(stream) + 16)

    def test_matches_protobuf_record(self) -> None:
        """The hand-written body is the protobuf encoding of walpb.Record."""
        enc = Encoder(crc=7)
        frame = enc.encode(RecordType.ENTRY, b"hello")
        length = int.from_bytes(frame[:8], "little") & ((1 << 56) - 1)
        rec = wal_pb2.Record.FromString(frame[8 : 8 + length])
        self.assertEqual((rec.type, rec.crc, rec.data), (2, enc.crc, b"hello"))
        self.assertEqual(rec.SerializeToString(), frame[8 : 8 + length])

    def test_frame_layout(self) -> None:
        """Frames are 8-byte aligned, the pad length is in the top byte, and the CRC chains."""
        enc = Encoder()
        frame = enc.encode(RecordType.ENTRY, b"abc")
        body_len = len(wal_pb2.Record(type=2, crc=enc.crc, data=b"abc").SerializeToString())
        pad = -body_len % 8
        self.assertEqual(len(frame) % 8, 0)
        self.assertEqual(int.from_bytes(frame[:8], "little"), body_len | ((0x80 | pad) << 56))
        self.assertEqual(enc.crc, crc32c.crc32c(b"abc", crc32c.crc32c(b"\x02")))

    def test_crc_record_continues_the_chain(self) -> None:
        """A CRC record seeds a decoder started at 0, and one that breaks the chain fails."""
        enc = Encoder()
        enc.encode(RecordType.ENTRY, b"before")
        stream = enc.encode(RecordType.CRC) + enc.encode(RecordType.ENTRY, b"after")
        out, _ = decode(stream)
        self.assertEqual([r.type for r in out], [RecordType.CRC, RecordType.ENTRY])
        dec = Decoder(crc=12345)
        dec.feed(stream + b"\x01")
        with self.assertRaises(CorruptRecordError):
            dec.next()

    def test_oversized_length_is_corruption(self) -> None:
        """A length field beyond the record size limit is corruption, not a torn tail."""
        dec = Decoder(max_record_bytes=1024)
        dec.feed((2048).to_bytes(8, "little"))
        with self.assertRaises(CorruptRecordError):
            dec.next()
