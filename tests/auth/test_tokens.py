"""Tests for etcd_twisted.auth.tokens: the simple token provider."""

import random

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.auth.tokens import LETTERS, SimpleTokens, token_index


class TokenTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.tokens = SimpleTokens(ttl=300, rng=random.Random(1))
        self.tokens.enable()

    def test_prefix(self) -> None:
        """A prefix is 16 letters; the token adds a dot and the raft index."""
        prefix = self.tokens.gen_prefix()
        self.assertEqual(len(prefix), 16)
        self.assertTrue(set(prefix) <= set(LETTERS))
        token = self.tokens.assign("alice", prefix, 42, now=0)
        self.assertEqual(token, prefix + ".42")
        self.assertEqual(token_index(token), 42)

    def test_token_index(self) -> None:
        """Only ``prefix.<digits>`` names an index."""
        for bad in ("abc", "a.b.1", "a.", "a.-1", "a.1x", "a.١"):
            self.assertIsNone(token_index(bad), bad)

    def test_ttl_slides(self) -> None:
        """A token lives ttl seconds from its last use."""
        token = self.tokens.assign("alice", "p", 1, now=0)
        self.assertEqual(self.tokens.info(token, now=200), "alice")
        self.assertEqual(self.tokens.info(token, now=450), "alice")
        self.assertIsNone(self.tokens.info(token, now=751))
        self.assertIsNone(self.tokens.info(token, now=752))

    def test_invalidate_and_disable(self) -> None:
        """A user's tokens go when it is invalidated; all go on disable; none are kept
        while disabled."""
        a = self.tokens.assign("alice", "p", 1, now=0)
        b = self.tokens.assign("bob", "q", 2, now=0)
        self.tokens.invalidate_user("alice")
        self.assertIsNone(self.tokens.info(a, 1))
        self.assertEqual(self.tokens.info(b, 1), "bob")
        self.tokens.disable()
        self.assertIsNone(self.tokens.info(b, 1))
        c = self.tokens.assign("bob", "r", 3, now=0)
        self.assertIsNone(self.tokens.info(c, 1))

    def test_sweep(self) -> None:
        """Expired tokens are dropped when new ones are issued, without a timer."""
        for i in range(5):
            self.tokens.assign("u", "p", i, now=0)
        self.tokens.assign("u", "p", 99, now=1000)
        self.assertEqual(len(self.tokens), 1)
