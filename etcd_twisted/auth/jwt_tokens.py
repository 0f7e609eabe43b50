"""JWT auth tokens, interchangeable with etcd's (``--auth-token jwt,...``).

Options, as etcd's ``server/auth/options.go``: ``sign-method`` (required: RS256/384/512,
PS256/384/512, ES256/384/512 or HS256/384/512), ``pub-key`` and ``priv-key`` (PEM
files; for HS* the private key file's bytes are the shared secret), ``ttl`` (a Go
duration, ``5m`` by default). With only a public key the member verifies tokens but
cannot issue them (``VerifyOnlyError``).

A token is what etcd signs, byte for byte for the deterministic methods: header
``{"alg":...,"typ":"JWT"}``, claims ``{"exp":<unix seconds>,"revision":<auth
revision>,"username":...}``. A token is valid when its signature verifies with the
configured method and key, it carries a string ``username`` and a numeric
``revision``, and ``exp``/``nbf``/``iat`` (where present) admit ``now``. A token
from an older auth revision is still valid here; the permission check then refuses
it as etcd does ("auth revision is old"), and the client authenticates again.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from .errors import (
    AuthError,
    InvalidAuthOptsError,
    InvalidKeyError,
    KeyMismatchError,
    MissingKeyError,
    VerifyOnlyError,
)

#: A short key is reported once, when the member starts (``from_options``), not by
#: PyJWT on every token.
warnings.filterwarnings("ignore", category=jwt.InsecureKeyLengthWarning)

#: How many verified tokens a member remembers (one per active client session, or so).
VERIFIED_CACHE = 4096
KNOWN_OPTIONS = frozenset({"sign-method", "pub-key", "priv-key", "ttl"})
DEFAULT_TTL = 300.0
RSA_METHODS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
HMAC_METHODS = frozenset({"HS256", "HS384", "HS512"})
#: ECDSA methods and the curve each needs (golang-jwt refuses another curve).
EC_METHODS = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}
#: Method names golang-jwt knows but etcd 3.5 cannot use (it fails with this text).
_UNSUPPORTED = {"none": "*jwt.signingMethodNone", "EdDSA": "*jwt.SigningMethodEd25519"}
#: PyJWT checks only the signature; the time claims are checked against our ``now``.
_DECODE_OPTIONS = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
}

_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]*)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_go_duration(text: str) -> float:
    """Seconds in a Go ``time.ParseDuration`` string (``5m``, ``1h30m``, ``1.5s``, ``0``)."""
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f"invalid duration {text!r}")
    total, pos = 0.0, 0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if m is None or m.group(1) in ("", "."):
            raise ValueError(f"invalid duration {text!r}")
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    return sign * total


class JWTTokens:
    """Signs and verifies etcd's JWTs (see the module docstring). Stateless: nothing
    to enable, disable or invalidate; a token lives until its ``exp``."""

    def __init__(
        self,
        method: str,
        sign_key: Any,
        verify_key: Any,
        ttl: float,
        cache_size: int = VERIFIED_CACHE,
    ) -> None:
        self.method = method
        self._cache_size = cache_size
        self.ttl = ttl
        #: None when only a public key was given.
        self._sign_key = sign_key
        self._verify_key = verify_key
        #: Tokens whose signature and claims checked out: token → (username, revision,
        #: claims), so a client's every request does not verify its signature again.
        self._verified: dict[str, tuple[str, int, dict[str, Any]]] = {}

    @classmethod
    def from_options(
        cls,
        options: Mapping[str, str],
        read_file: Callable[[str], bytes],
        warn: Callable[[str], None] = lambda message: None,
    ) -> JWTTokens:
        """The provider for ``--auth-token jwt,<options>``; raises etcd's errors."""
        try:
            ttl = parse_go_duration(options["ttl"]) if options.get("ttl") else DEFAULT_TTL
            public = read_file(options["pub-key"]) if options.get("pub-key") else b""
            private = read_file(options["priv-key"]) if options.get("priv-key") else b""
        except (ValueError, OSError) as e:
            raise InvalidAuthOptsError(f"{InvalidAuthOptsError.message} ({e})") from None
        method = options.get("sign-method", "")
        unknown = sorted(set(options) - KNOWN_OPTIONS)
        if unknown:
            warn(f"unknown JWT options: {', '.join(unknown)}")
        if method in HMAC_METHODS:
            if not private:
                raise MissingKeyError()
            return cls._checked(method, private, private, ttl, warn)
        if method in RSA_METHODS:
            sign, verify = _key_pair(private, public, rsa.RSAPrivateKey, rsa.RSAPublicKey, "RSA")
        elif method in EC_METHODS:
            kinds = (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)
            sign, verify = _key_pair(private, public, *kinds, "ECDSA")
            if not isinstance(verify.curve, EC_METHODS[method]):
                raise AuthError("key is invalid")
        elif method in _UNSUPPORTED:
            raise AuthError(f"unsupported signing method: {_UNSUPPORTED[method]}")
        else:
            raise InvalidAuthOptsError(f"{InvalidAuthOptsError.message} (sign-method {method!r})")
        return cls._checked(method, sign, verify, ttl, warn)

    @classmethod
    def _checked(
        cls,
        method: str,
        sign_key: Any,
        verify_key: Any,
        ttl: float,
        warn: Callable[[str], None],
    ) -> JWTTokens:
        """The provider, once PyJWT has accepted its keys (so a bad one stops the start);
        a key shorter than RFC 7518 recommends is warned about (etcd accepts it)."""
        try:
            algorithm = jwt.get_algorithm_by_name(method)
            if sign_key is not None:
                algorithm.prepare_key(sign_key)
            short = algorithm.check_key_length(algorithm.prepare_key(verify_key))
        except jwt.PyJWTError as e:
            raise AuthError(str(e)) from None
        if short:
            warn(short)
        return cls(method, sign_key, verify_key, ttl)

    @property
    def verify_only(self) -> bool:
        return self._sign_key is None

    def enable(self) -> None:
        pass

    def disable(self) -> None:
        pass

    def invalidate_user(self, username: str) -> None:
        pass

    def gen_prefix(self) -> str:
        return ""

    def wait_index(self, token: str) -> int:
        return 0

    def assign(self, username: str, revision: int, prefix: str, index: int, now: float) -> str:
        """A token for ``username`` at auth ``revision``, expiring ``ttl`` after ``now``."""
        if self._sign_key is None:
            raise VerifyOnlyError()
        claims = {"exp": int(now + self.ttl), "revision": revision, "username": username}
        return jwt.encode(claims, self._sign_key, algorithm=self.method)

    def info(self, token: str, revision: int, now: float) -> tuple[str, int] | None:
        """``(username, revision)`` from a valid token, else None. The signature is
        checked once per token (the last ``cache_size`` tokens are remembered); the
        time claims on every use."""
        verified = self._verified.get(token)
        if verified is None:
            verified = self._verify(token)
            if verified is None:
                return None
            if len(self._verified) >= self._cache_size:
                del self._verified[next(iter(self._verified))]  # the oldest
            self._verified[token] = verified
        username, token_revision, claims = verified
        if not _times_admit(claims, int(now)):
            del self._verified[token]
            return None
        return username, token_revision

    def _verify(self, token: str) -> tuple[str, int, dict[str, Any]] | None:
        try:
            claims = jwt.decode(
                token, self._verify_key, algorithms=[self.method], options=_DECODE_OPTIONS
            )
        except jwt.PyJWTError:
            return None
        username, token_revision = claims.get("username"), claims.get("revision")
        if not isinstance(username, str) or not _is_number(token_revision):
            return None
        if token_revision < 0:
            return None
        return username, int(token_revision), claims


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _times_admit(claims: Mapping[str, Any], now: int) -> bool:
    """golang-jwt's ``MapClaims.Valid`` (exp, iat, nbf optional), stricter in that a
    time claim that is not a number makes the token invalid."""
    for name, ok in (
        ("exp", lambda t: now <= t),
        ("iat", lambda t: now >= t),
        ("nbf", lambda t: now >= t),
    ):
        if name not in claims:
            continue
        value = claims[name]
        if not _is_number(value) or not ok(int(value)):
            return False
    return True


def _key_pair(
    private_pem: bytes, public_pem: bytes, private_type: type, public_type: type, family: str
) -> tuple[Any, Any]:
    """``(signing key or None, verifying key)`` from the PEM files, as etcd's
    ``rsaKey``/``ecKey``: at least one is needed, and two must match."""
    private = _load_private(private_pem, private_type, family) if private_pem else None
    public = _load_public(public_pem, public_type, family) if public_pem else None
    if private is None and public is None:
        raise MissingKeyError()
    if private is None:
        return None, public
    if public is not None and public.public_numbers() != private.public_key().public_numbers():
        raise KeyMismatchError()
    return private, private.public_key()


def _load_private(pem: bytes, kind: type, family: str) -> Any:
    if b"-----BEGIN" not in pem:
        raise InvalidKeyError()
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise AuthError(f"{family} private key: {e}") from None
    if not isinstance(key, kind):
        raise AuthError(f"Key is not a valid {family} private key")
    return key


def _load_public(pem: bytes, kind: type, family: str) -> Any:
    """A public key from a ``PUBLIC KEY`` block or, as golang-jwt allows, a certificate."""
    if b"-----BEGIN" not in pem:
        raise InvalidKeyError()
    try:
        key = load_pem_public_key(pem)
    except (ValueError, TypeError):
        try:
            key = x509.load_pem_x509_certificate(pem).public_key()
        except ValueError as e:
            raise AuthError(f"{family} public key: {e}") from None
    if not isinstance(key, kind):
        raise AuthError(f"Key is not a valid {family} public key")
    return key
