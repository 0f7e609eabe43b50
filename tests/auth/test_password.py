"""Tests for etcd_twisted.auth.password: bcrypt hashes as etcd stores them."""

import base64
import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.auth import password

#: golang.org/x/crypto/bcrypt's published vector: "allmine" at cost 10.
GO_VECTOR = b"$2a$10$XajjQvNhvvRt5GSeFk1xFeyqRrsxkhBkUiQeg0dt.wU1qD4aFDcga"


class PasswordTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        """A hash accepts its password and nothing else."""
        hashed = password.hash_password("s3cret", cost=4)
        self.assertTrue(password.check_password(hashed, "s3cret"))
        self.assertFalse(password.check_password(hashed, "s3cret "))
        self.assertFalse(password.check_password(hashed, ""))

    def test_format_is_gos(self) -> None:
        """A hash is Go's: 60 bytes, prefix $2a$, the cost in two digits."""
        hashed = password.hash_password("pw", cost=5)
        self.assertEqual(len(hashed), 60)
        self.assertTrue(hashed.startswith(b"$2a$05$"), hashed)

    def test_go_vector(self) -> None:
        """A hash made by Go's bcrypt (etcd's) verifies here."""
        self.assertTrue(password.check_password(GO_VECTOR, "allmine"))
        self.assertFalse(password.check_password(GO_VECTOR, "allmine2"))

    def test_salted(self) -> None:
        """Two hashes of one password differ (random salt) and both check."""
        a, b = password.hash_password("pw", cost=4), password.hash_password("pw", cost=4)
        self.assertNotEqual(a, b)
        self.assertTrue(password.check_password(b, "pw"))

    def test_cost(self) -> None:
        """The cost is bcrypt's; one outside 4..31 is replaced by the default 10, as etcd's."""
        self.assertEqual(password.effective_cost(4), 4)
        self.assertEqual(password.effective_cost(31), 31)
        self.assertEqual(password.effective_cost(3), 10)
        self.assertEqual(password.effective_cost(32), 10)
        self.assertTrue(password.hash_password("pw", cost=3).startswith(b"$2a$10$"))

    def test_long_password(self) -> None:
        """Only the first 72 bytes count, as in etcd 3.5's bcrypt (no error for longer)."""
        hashed = password.hash_password("x" * 72 + "tail", cost=4)
        self.assertTrue(password.check_password(hashed, "x" * 72))
        self.assertTrue(password.check_password(hashed, "x" * 72 + "other"))
        self.assertFalse(password.check_password(hashed, "x" * 71))

    def test_legacy_pbkdf2(self) -> None:
        """A PBKDF2 hash from a data directory written before bcrypt still verifies."""
        salt = b"0123456789abcdef"
        digest = hashlib.pbkdf2_hmac("sha256", b"old", salt, 1600)
        legacy = b"$".join(
            (b"pbkdf2-sha256", b"1600", base64.b64encode(salt), base64.b64encode(digest))
        )
        self.assertTrue(password.check_password(legacy, "old"))
        self.assertFalse(password.check_password(legacy, "new"))

    def test_malformed(self) -> None:
        """Anything that is not a hash never checks (and never raises)."""
        for junk in (b"", b"$2a$10$abcdefghijklmnopqrstuv", b"pbkdf2-sha256$x$y$z", b"a$b$c$d"):
            self.assertFalse(password.check_password(junk, ""))

    @settings(max_examples=10, deadline=None)
    @given(st.text(max_size=80))
    def test_any_password(self, pw: str) -> None:
        """Any text password round-trips."""
        self.assertTrue(password.check_password(password.hash_password(pw, cost=4), pw))
