"""Metadata parsing and encoding, and grpc-timeout."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.grpc.metadata import Metadata, encode_metadata, parse_timeout


class MetadataTests(SynchronousTestCase):
    def test_from_headers(self) -> None:
        """Reserved and pseudo headers are dropped; :authority and user-agent stay."""
        md = Metadata.from_headers(
            [
                (b":path", b"/a/b"),
                (b":authority", b"host"),
                (b"content-type", b"application/grpc"),
                (b"te", b"trailers"),
                (b"grpc-timeout", b"1S"),
                (b"user-agent", b"ua"),
                (b"token", b"t"),
            ]
        )
        self.assertEqual(md.items(), [(":authority", "host"), ("user-agent", "ua"), ("token", "t")])

    def test_bin_values(self) -> None:
        """-bin values are base64-decoded, padded or not, and split on commas."""
        md = Metadata.from_headers(
            [(b"a-bin", b"AAE="), (b"a-bin", b"AAE"), (b"b-bin", b"AQ,Ag==")]
        )
        self.assertEqual(md.get_all("a-bin"), [b"\x00\x01", b"\x00\x01"])
        self.assertEqual(md.get_all("b-bin"), [b"\x01", b"\x02"])

    def test_bad_bin(self) -> None:
        """A -bin value that is not base64 raises ValueError."""
        self.assertRaises(ValueError, Metadata.from_headers, [(b"a-bin", b"*")])

    def test_lookup(self) -> None:
        """Lookups ignore case; get gives the first value or the default; iteration gives keys once."""
        md = Metadata([("K", "1"), ("k", "2"), ("other", "x")])
        self.assertEqual(md.get("k"), "1")
        self.assertEqual(md.get("K"), "1")
        self.assertIsNone(md.get("missing"))
        self.assertIn("K", md)
        self.assertEqual(list(md), ["k", "other"])
        self.assertEqual(len(md), 3)

    def test_encode(self) -> None:
        """Encoded keys are lowercase and -bin values unpadded base64."""
        self.assertEqual(
            encode_metadata([("X-A", "v"), ("x-b-bin", b"\x00\x01")]),
            [(b"x-a", b"v"), (b"x-b-bin", b"AAE")],
        )


class TimeoutTests(SynchronousTestCase):
    def test_units(self) -> None:
        """Each unit H M S m u n scales its digits to seconds."""
        cases = {b"2H": 7200, b"3M": 180, b"4S": 4, b"5m": 0.005, b"6u": 6e-6, b"7n": 7e-9}
        for raw, seconds in cases.items():
            self.assertAlmostEqual(parse_timeout(raw), seconds)

    def test_malformed(self) -> None:
        """Empty, unitless, over 8 digits or unknown unit are ValueError."""
        for raw in (b"", b"S", b"10", b"123456789S", b"18f6n", b"1x", b"-1S"):
            self.assertRaises(ValueError, parse_timeout, raw)
