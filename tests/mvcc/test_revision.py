"""Revisions: ordering and the backend key encoding."""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.mvcc.revision import (
    MARKED_REV_BYTES_LEN,
    REV_BYTES_LEN,
    Revision,
    bytes_to_rev,
    is_tombstone,
    rev_to_bytes,
)

revisions = st.builds(Revision, st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1))


class RevisionTests(SynchronousTestCase):
    def test_ordering(self) -> None:
        """Revisions order by main, then sub, as etcd's GreaterThan."""
        self.assertLess(Revision(1, 5), Revision(2, 0))
        self.assertLess(Revision(2, 0), Revision(2, 1))
        self.assertEqual(Revision(3), Revision(3, 0))

    def test_layout(self) -> None:
        """A revision is 8 bytes big-endian main, '_', 8 bytes big-endian sub."""
        data = rev_to_bytes(Revision(0x0102, 3))
        self.assertEqual(len(data), REV_BYTES_LEN)
        self.assertEqual(data, b"\0" * 6 + b"\x01\x02" + b"_" + b"\0" * 7 + b"\x03")

    def test_tombstone_marker(self) -> None:
        """A tombstone key is the revision plus a trailing 't'."""
        data = rev_to_bytes(Revision(7, 1), tombstone=True)
        self.assertEqual(len(data), MARKED_REV_BYTES_LEN)
        self.assertEqual(data, rev_to_bytes(Revision(7, 1)) + b"t")
        self.assertTrue(is_tombstone(data))
        self.assertFalse(is_tombstone(rev_to_bytes(Revision(7, 1))))

    def test_decode_marked(self) -> None:
        """Decoding ignores the tombstone marker."""
        self.assertEqual(bytes_to_rev(rev_to_bytes(Revision(9, 2), tombstone=True)), Revision(9, 2))

    @given(revisions, st.booleans())
    def test_round_trip(self, rev: Revision, tombstone: bool) -> None:
        """Every revision decodes back to itself."""
        self.assertEqual(bytes_to_rev(rev_to_bytes(rev, tombstone)), rev)

    @given(revisions, revisions)
    def test_byte_order_is_revision_order(self, a: Revision, b: Revision) -> None:
        """Encoded revisions sort as the revisions do, so backend scans are in history order."""
        self.assertEqual(a < b, rev_to_bytes(a) < rev_to_bytes(b))
