"""Tests for etcd_twisted.auth.jwt_tokens: etcd's JWTs, signed and checked."""

from __future__ import annotations

import base64
import json
from functools import cache

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.auth.errors import (
    AuthError,
    InvalidAuthOptsError,
    InvalidKeyError,
    KeyMismatchError,
    MissingKeyError,
    VerifyOnlyError,
)
from etcd_twisted.auth.jwt_tokens import JWTTokens, parse_go_duration

NOW = 1_700_000_000.0
CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}


@cache
def rsa_key(n: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def ec_key(method: str, n: int) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(CURVES[method]())


def private_pem(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def public_pem(key: object) -> bytes:
    return key.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_files(method: str, n: int = 0) -> dict[str, bytes]:
    """The key files a method needs, by path."""
    if method.startswith("HS"):
        return {"priv": b"a shared secret of some length\n"}
    key = ec_key(method, n) if method.startswith("ES") else rsa_key(n)
    return {"priv": private_pem(key), "pub": public_pem(key)}


def provider(method: str, options: str = "", n: int = 0, warn=lambda m: None) -> JWTTokens:
    files = key_files(method, n)
    opts = {"sign-method": method, **{f"{k}-key": k for k in files}}
    for pair in filter(None, options.split(",")):
        name, value = pair.split("=")
        if value:
            opts[name] = value
        else:
            opts.pop(name)
    return JWTTokens.from_options(opts, files.__getitem__, warn)


def segments(token: str) -> tuple[bytes, bytes]:
    """The decoded header and claims of a token, as the JSON bytes signed."""
    header, claims, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return base64.urlsafe_b64decode(pad(header)), base64.urlsafe_b64decode(pad(claims))


METHODS = [f"{family}{bits}" for family in ("RS", "PS", "ES", "HS") for bits in (256, 384, 512)]


class JWTTokenTests(SynchronousTestCase):
    def test_every_method_round_trips(self) -> None:
        """Each of the twelve sign methods issues a token that it accepts."""
        for method in METHODS:
            tokens = provider(method)
            token = tokens.assign("alice", 7, "", 42, NOW)
            self.assertEqual(tokens.info(token, 9, NOW + 1), ("alice", 7), method)

    def test_etcd_format(self) -> None:
        """Header and claims are the JSON etcd signs: sorted keys, no spaces, exp in
        whole seconds ttl after now."""
        tokens = provider("RS256", "ttl=5m")
        header, claims = segments(tokens.assign("alice", 7, "", 1, NOW + 0.9))
        self.assertEqual(header, b'{"alg":"RS256","typ":"JWT"}')
        self.assertEqual(claims, b'{"exp":%d,"revision":7,"username":"alice"}' % (NOW + 300))

    def test_default_ttl(self) -> None:
        """Without a ttl option a token lives five minutes, as etcd's."""
        tokens = provider("HS256")
        token = tokens.assign("u", 1, "", 1, NOW)
        self.assertEqual(json.loads(segments(token)[1])["exp"], NOW + 300)
        self.assertIsNotNone(tokens.info(token, 1, NOW + 300))
        self.assertIsNone(tokens.info(token, 1, NOW + 301))

    def test_refused(self) -> None:
        """A token signed by another key, with another method, tampered, unsigned, or
        without etcd's claims is not valid."""
        tokens = provider("RS256")
        good = tokens.assign("alice", 7, "", 1, NOW)
        other = provider("RS256", n=1).assign("alice", 7, "", 1, NOW)
        ps = provider("PS256").assign("alice", 7, "", 1, NOW)
        header, claims, signature = good.split(".")
        forged_claims = base64.urlsafe_b64encode(b'{"revision":7,"username":"root"}')
        cases = {
            "other key": other,
            "other method": ps,
            "tampered": f"{header}.{forged_claims.decode().rstrip('=')}.{signature}",
            "unsigned": jwt.encode({"username": "root", "revision": 7}, None, algorithm="none"),
            "garbage": "abc.def",
            "simple": "aBcDeFgHiJkLmNoP.12",
        }
        key = rsa_key(0)
        for name, claims_ in {
            "no username": {"revision": 1},
            "no revision": {"username": "u"},
            "username not a string": {"username": 1, "revision": 1},
            "revision not a number": {"username": "u", "revision": "1"},
            "expired": {"username": "u", "revision": 1, "exp": NOW - 1},
            "not yet": {"username": "u", "revision": 1, "nbf": NOW + 5},
            "issued later": {"username": "u", "revision": 1, "iat": NOW + 5},
            "exp not a number": {"username": "u", "revision": 1, "exp": "soon"},
        }.items():
            cases[name] = jwt.encode(claims_, key, algorithm="RS256")
        for name, token in cases.items():
            self.assertIsNone(tokens.info(token, 7, NOW), name)

    def test_without_exp(self) -> None:
        """A token without exp never expires (golang-jwt does not require it)."""
        token = jwt.encode({"username": "u", "revision": 2}, rsa_key(0), algorithm="RS256")
        self.assertEqual(provider("RS256").info(token, 9, NOW * 2), ("u", 2))

    def test_verify_only(self) -> None:
        """Given only a public key, a member checks tokens but cannot issue them."""
        for method in ("RS256", "ES384"):
            full = provider(method)
            verifier = provider(method, "priv-key=")
            self.assertTrue(verifier.verify_only)
            token = full.assign("alice", 3, "", 1, NOW)
            self.assertEqual(verifier.info(token, 3, NOW), ("alice", 3))
            with self.assertRaises(VerifyOnlyError):
                verifier.assign("alice", 3, "", 1, NOW)

    def test_key_errors(self) -> None:
        """Missing, mismatched, wrong-family and non-PEM keys stop the start with etcd's
        errors."""
        files = {
            "rsa": private_pem(rsa_key(0)),
            "rsa-pub": public_pem(rsa_key(0)),
            "rsa2-pub": public_pem(rsa_key(1)),
            "ec": private_pem(ec_key("ES256", 0)),
            "ec384": private_pem(ec_key("ES384", 0)),
            "text": b"hello\n",
        }

        def read(path: str) -> bytes:
            if path not in files:
                raise FileNotFoundError(2, "No such file or directory", path)
            return files[path]

        def load(**opts: str) -> JWTTokens:
            return JWTTokens.from_options(opts, read)

        cases = [
            ({"sign-method": "RS256"}, MissingKeyError, "auth: missing key data"),
            ({"sign-method": "HS512"}, MissingKeyError, "auth: missing key data"),
            (
                {"sign-method": "RS256", "priv-key": "rsa", "pub-key": "rsa2-pub"},
                KeyMismatchError,
                "auth: public and private keys don't match",
            ),
            (
                {"sign-method": "RS256", "priv-key": "text"},
                InvalidKeyError,
                "Invalid Key: Key must be a PEM encoded PKCS1 or PKCS8 key",
            ),
            (
                {"sign-method": "ES256", "priv-key": "rsa"},
                AuthError,
                "Key is not a valid ECDSA private key",
            ),
            ({"sign-method": "ES256", "priv-key": "ec384"}, AuthError, "key is invalid"),
            (
                {"sign-method": "none", "priv-key": "text"},
                AuthError,
                "unsupported signing method: *jwt.signingMethodNone",
            ),
        ]
        for opts, error, text in cases:
            with self.assertRaises(error, msg=opts) as caught:
                load(**opts)
            self.assertEqual(str(caught.exception), text)
        for opts in (
            {"sign-method": "XX256", "priv-key": "rsa"},
            {"priv-key": "rsa"},
            {"sign-method": "RS256", "priv-key": "rsa", "ttl": "5 minutes"},
            {"sign-method": "RS256", "priv-key": "missing"},
        ):
            with self.assertRaises(InvalidAuthOptsError, msg=opts):
                load(**opts)
        self.assertTrue(load(**{"sign-method": "RS256", "pub-key": "rsa-pub"}).verify_only)

    def test_unknown_option_warns(self) -> None:
        """An option etcd does not know is warned about, as etcd does."""
        warnings: list[str] = []
        provider("HS256", "colour=blue", warn=warnings.append)
        self.assertEqual(warnings[0], "unknown JWT options: colour")

    def test_short_key_warns_once(self) -> None:
        """A short HMAC secret is warned about at start, and works (etcd accepts it)."""
        warnings: list[str] = []
        tokens = provider("HS256", warn=warnings.append)
        self.assertEqual(len(warnings), 1)
        self.assertIn("31 bytes", warnings[0])
        self.assertIsNotNone(tokens.info(tokens.assign("u", 1, "", 1, NOW), 1, NOW))


class DurationTests(SynchronousTestCase):
    def test_go_durations(self) -> None:
        """Go's duration syntax: units ns..h, fractions, sums, bare 0."""
        for text, seconds in [
            ("5m", 300.0),
            ("1h30m", 5400.0),
            ("1.5s", 1.5),
            ("300ms", 0.3),
            ("0", 0.0),
            ("2h0m0s", 7200.0),
        ]:
            self.assertAlmostEqual(parse_go_duration(text), seconds, msg=text)
        for bad in ("", "5", "m", "5 m", "five", "1d"):
            with self.assertRaises(ValueError, msg=bad):
                parse_go_duration(bad)


class VerifiedCacheTests(SynchronousTestCase):
    def test_cache_keeps_expiry(self) -> None:
        """A token verified once is remembered, but its exp is still checked on each use,
        and the cache stays bounded."""
        tokens = provider("HS256", "ttl=10s")
        token = tokens.assign("u", 1, "", 1, NOW)
        self.assertEqual(tokens.info(token, 1, NOW), ("u", 1))
        self.assertIn(token, tokens._verified)
        self.assertEqual(tokens.info(token, 1, NOW + 10), ("u", 1))
        self.assertIsNone(tokens.info(token, 1, NOW + 11))
        self.assertNotIn(token, tokens._verified)
        secret = b"a secret of thirty-two bytes, ok"
        tokens = JWTTokens("HS256", secret, secret, 10.0, cache_size=3)
        issued = [tokens.assign(f"u{i}", 1, "", 1, NOW) for i in range(5)]
        for token in issued:
            self.assertIsNotNone(tokens.info(token, 1, NOW))
        self.assertEqual(list(tokens._verified), issued[2:])
