"""Status codes, GrpcError and grpc-message encoding."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.grpc.status import GrpcError, StatusCode, percent_decode, percent_encode


class StatusTests(SynchronousTestCase):
    def test_codes(self) -> None:
        """There are 17 codes, OK is 0 and UNAUTHENTICATED is 16."""
        self.assertEqual(len(StatusCode), 17)
        self.assertEqual((StatusCode.OK, StatusCode.UNAUTHENTICATED), (0, 16))

    def test_error(self) -> None:
        """GrpcError carries its code, message and trailing metadata."""
        e = GrpcError(StatusCode.NOT_FOUND, "gone", [("k", "v")])
        self.assertEqual((e.code, e.message, e.trailing_metadata), (5, "gone", [("k", "v")]))
        self.assertEqual(str(e), "NOT_FOUND: gone")

    def test_percent_encode_ascii(self) -> None:
        """Printable ASCII other than % passes unchanged."""
        self.assertEqual(percent_encode("etcdserver: key not found"), b"etcdserver: key not found")

    def test_percent_encode_escapes(self) -> None:
        """%, control characters and non-ASCII are %XX-escaped UTF-8."""
        self.assertEqual(percent_encode("50%\n\u00e9"), b"50%25%0A%C3%A9")

    def test_percent_round_trip(self) -> None:
        """Decoding inverts encoding; a malformed escape stays literal."""
        text = "a%b\tc \u4e16"
        self.assertEqual(percent_decode(percent_encode(text)), text)
        self.assertEqual(percent_decode(b"100%zz%4"), "100%zz%4")
