"""Tests for etcd_twisted.auth.tokens: the simple provider and choosing one by flag."""

import random

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.auth.errors import AuthFailedError, InvalidAuthOptsError, MissingKeyError
from etcd_twisted.auth.jwt_tokens import JWTTokens
from etcd_twisted.auth.tokens import (
    LETTERS,
    NopTokens,
    SimpleTokens,
    new_token_provider,
    parse_token_flag,
    token_index,
)


class SimpleTokenTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.tokens = SimpleTokens(ttl=300, rng=random.Random(1))
        self.tokens.enable()

    def test_prefix(self) -> None:
        """A prefix is 16 letters; the token adds a dot and the raft index."""
        prefix = self.tokens.gen_prefix()
        self.assertEqual(len(prefix), 16)
        self.assertTrue(set(prefix) <= set(LETTERS))
        token = self.tokens.assign("alice", 3, prefix, 42, now=0)
        self.assertEqual(token, prefix + ".42")
        self.assertEqual(token_index(token), 42)
        self.assertEqual(self.tokens.wait_index(token), 42)
        self.assertEqual(self.tokens.wait_index("junk"), 0)

    def test_token_index(self) -> None:
        """Only ``prefix.<digits>`` names an index."""
        for bad in ("abc", "a.b.1", "a.", "a.-1", "a.1x", "a.١"):
            self.assertIsNone(token_index(bad), bad)

    def test_current_revision(self) -> None:
        """A simple token stands for its user at the store's current revision."""
        token = self.tokens.assign("alice", 3, "p", 1, now=0)
        self.assertEqual(self.tokens.info(token, 7, now=1), ("alice", 7))

    def test_ttl_slides(self) -> None:
        """A token lives ttl seconds from its last use."""
        token = self.tokens.assign("alice", 1, "p", 1, now=0)
        self.assertEqual(self.tokens.info(token, 1, now=200), ("alice", 1))
        self.assertEqual(self.tokens.info(token, 1, now=450), ("alice", 1))
        self.assertIsNone(self.tokens.info(token, 1, now=751))
        self.assertIsNone(self.tokens.info(token, 1, now=752))

    def test_invalidate_and_disable(self) -> None:
        """A user's tokens go when it is invalidated; all go on disable; none are kept
        while disabled."""
        a = self.tokens.assign("alice", 1, "p", 1, now=0)
        b = self.tokens.assign("bob", 1, "q", 2, now=0)
        self.tokens.invalidate_user("alice")
        self.assertIsNone(self.tokens.info(a, 1, 1))
        self.assertEqual(self.tokens.info(b, 1, 1), ("bob", 1))
        self.tokens.disable()
        self.assertIsNone(self.tokens.info(b, 1, 1))
        c = self.tokens.assign("bob", 1, "r", 3, now=0)
        self.assertIsNone(self.tokens.info(c, 1, 1))

    def test_sweep(self) -> None:
        """Expired tokens are dropped when new ones are issued, without a timer."""
        for i in range(5):
            self.tokens.assign("u", 1, "p", i, now=0)
        self.tokens.assign("u", 1, "p", 99, now=1000)
        self.assertEqual(len(self.tokens), 1)


class FlagTests(SynchronousTestCase):
    def test_parse(self) -> None:
        """``TYPE,name=value,...`` splits as etcd's decomposeOpts."""
        self.assertEqual(parse_token_flag("simple"), ("simple", {}))
        self.assertEqual(
            parse_token_flag("jwt,sign-method=RS256,ttl=5m"),
            ("jwt", {"sign-method": "RS256", "ttl": "5m"}),
        )
        for bad in ("simple,x", "jwt,a=b=c", "jwt,ttl=1s,ttl=2s"):
            with self.assertRaises(InvalidAuthOptsError, msg=bad) as caught:
                parse_token_flag(bad)
            self.assertTrue(str(caught.exception).startswith("auth: invalid auth options"))

    def test_choose(self) -> None:
        """simple, jwt and "" pick their providers; simple takes --auth-token-ttl."""
        simple = new_token_provider("simple", 60.0)
        self.assertIsInstance(simple, SimpleTokens)
        self.assertEqual(simple.ttl, 60.0)
        self.assertIsInstance(new_token_provider(""), NopTokens)
        jwt = new_token_provider("jwt,sign-method=HS256,priv-key=k", read_file=lambda p: b"secret")
        self.assertIsInstance(jwt, JWTTokens)
        with self.assertRaises(MissingKeyError):
            new_token_provider("jwt,sign-method=HS256")

    def test_unknown_type(self) -> None:
        """An unknown token type stops the member with etcd's error, naming the type."""
        with self.assertRaises(InvalidAuthOptsError) as caught:
            new_token_provider("foo")
        self.assertEqual(
            str(caught.exception), "auth: invalid auth options (unknown token type 'foo')"
        )

    def test_nop(self) -> None:
        """With no token type, Authenticate fails and no token is valid (etcd's tokenNop)."""
        nop = NopTokens()
        with self.assertRaises(AuthFailedError):
            nop.assign("root", 1, "", 1, now=0)
        self.assertIsNone(nop.info("anything", 1, now=0))
