"""Tests for etcd_twisted.auth.password: hashing and checking."""

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.auth import password


class PasswordTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        """A hash accepts its password and nothing else."""
        hashed = password.hash_password("s3cret", cost=4)
        self.assertTrue(password.check_password(hashed, "s3cret"))
        self.assertFalse(password.check_password(hashed, "s3cret "))
        self.assertFalse(password.check_password(hashed, ""))

    def test_salted(self) -> None:
        """Two hashes of one password differ (random salt) and both check."""
        a, b = password.hash_password("pw", cost=4), password.hash_password("pw", cost=4)
        self.assertNotEqual(a, b)
        self.assertTrue(password.check_password(b, "pw"))

    def test_cost(self) -> None:
        """The cost sets the iterations; an out-of-range cost uses the default."""
        self.assertEqual(password.iterations_for(4), 1600)
        self.assertEqual(password.iterations_for(3), password.iterations_for(10))
        self.assertIn(b"$1600$", password.hash_password("pw", cost=4))

    def test_malformed(self) -> None:
        """Anything that is not one of our hashes (a bcrypt hash, garbage) never checks."""
        for junk in (b"", b"$2a$10$abcdefghijklmnopqrstuv", b"pbkdf2-sha256$x$y$z", b"a$b$c$d"):
            self.assertFalse(password.check_password(junk, ""))
