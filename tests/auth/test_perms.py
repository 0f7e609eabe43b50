"""Tests for etcd_twisted.auth.perms: merged permission ranges and the checks."""

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import auth_pb2
from etcd_twisted.auth.perms import READ, READWRITE, WRITE, UnifiedPerms, covers

P = auth_pb2.Permission


def perms(*ps: P) -> UnifiedPerms:
    return UnifiedPerms.merge([auth_pb2.Role(name=b"r", keyPermission=list(ps))])


class PermsTests(SynchronousTestCase):
    def test_single_key(self) -> None:
        """A one-key permission allows that key only, and not a range starting there."""
        u = perms(P(key=b"a", permType=READ))
        self.assertTrue(u.allows(b"a", b"", READ))
        self.assertFalse(u.allows(b"a", b"", WRITE))
        self.assertFalse(u.allows(b"ab", b"", READ))
        self.assertFalse(u.allows(b"a", b"b", READ))
        self.assertTrue(u.allows(b"a", b"a\x00", READ))

    def test_prefix(self) -> None:
        """A prefix permission allows its keys and sub-ranges, not ranges that leave it."""
        u = perms(P(key=b"k", range_end=b"l", permType=READWRITE))
        for kind in (READ, WRITE):
            self.assertTrue(u.allows(b"k", b"", kind))
            self.assertTrue(u.allows(b"k1", b"", kind))
            self.assertTrue(u.allows(b"k", b"l", kind))
            self.assertTrue(u.allows(b"ka", b"kb", kind))
            self.assertFalse(u.allows(b"l", b"", kind))
            self.assertFalse(u.allows(b"j", b"", kind))
            self.assertFalse(u.allows(b"k", b"m", kind))
            self.assertFalse(u.allows(b"k", b"\x00", kind))

    def test_from_key(self) -> None:
        """range_end "\\0" is every key from key on, in a permission and in a request."""
        u = perms(P(key=b"c", range_end=b"\x00", permType=WRITE))
        self.assertTrue(u.allows(b"c", b"", WRITE))
        self.assertTrue(u.allows(b"zzz", b"", WRITE))
        self.assertTrue(u.allows(b"d", b"\x00", WRITE))
        self.assertTrue(u.allows(b"c", b"\xff\xff", WRITE))
        self.assertFalse(u.allows(b"b", b"", WRITE))
        self.assertFalse(u.allows(b"b", b"\x00", WRITE))
        self.assertFalse(u.allows(b"c", b"", READ))

    def test_ranges_merge(self) -> None:
        """Adjacent or overlapping permissions, from any role, cover a range together; a
        gap does not."""
        u = UnifiedPerms.merge(
            [
                auth_pb2.Role(keyPermission=[P(key=b"a", range_end=b"c", permType=READ)]),
                auth_pb2.Role(keyPermission=[P(key=b"c", range_end=b"e", permType=READ)]),
                auth_pb2.Role(keyPermission=[P(key=b"f", range_end=b"g", permType=READ)]),
            ]
        )
        self.assertTrue(u.allows(b"a", b"e", READ))
        self.assertTrue(u.allows(b"b", b"d", READ))
        self.assertFalse(u.allows(b"a", b"g", READ))
        self.assertFalse(u.allows(b"e", b"", READ))

    def test_covers_infinite(self) -> None:
        """An empty end is +infinity on both sides of the check."""
        self.assertTrue(covers([(b"a", b"")], b"b", b""))
        self.assertFalse(covers([(b"a", b"z")], b"b", b""))
        self.assertFalse(covers([], b"a", b"b"))
