"""Password hashing for the auth store: bcrypt, stored exactly as etcd stores it.

etcd keeps ``bcrypt.GenerateFromPassword(password, cost)`` in ``authpb.User.password``:
the 60 ASCII bytes ``$2a$<cost>$<22 salt chars><31 hash chars>``. Ours are the same
bytes, so users move between etcd's data and ours unchanged, both ways.

Two details keep the hashes identical to Go's:

* the ``2a`` prefix (Python's bcrypt writes ``2b`` unless told; the algorithm is the same);
* only the first 72 bytes of a password count. etcd 3.5's bcrypt ignores the rest
  silently; Python's refuses longer passwords, so they are cut here first.

``--bcrypt-cost`` outside bcrypt's range (4..31) falls back to the default, 10, as
etcd's does (the server logs a warning, :func:`effective_cost` says when).

Data directories written before bcrypt hold hashes of our own, self-describing
``pbkdf2-sha256$<iterations>$<salt, base64>$<digest, base64>``. They keep verifying
(nobody's password is known, so they cannot be converted), and each is replaced by a
bcrypt hash when its password is next set. New hashes are always bcrypt.

Hashing and checking take tens of milliseconds by design: callers on the reactor run
them on a thread (the bcrypt package releases the GIL while it works).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import bcrypt

MIN_COST = 4
MAX_COST = 31
DEFAULT_COST = 10
#: bcrypt reads at most this many bytes of a password.
MAX_PASSWORD_BYTES = 72
#: The prefix Go's bcrypt writes (and so every hash etcd stores).
BCRYPT_PREFIX = b"2a"
#: The scheme of the hashes data directories from before bcrypt may still hold.
LEGACY_SCHEME = b"pbkdf2-sha256"


def effective_cost(cost: int) -> int:
    """The cost actually used: ``cost`` if bcrypt accepts it, else the default (as etcd)."""
    return cost if MIN_COST <= cost <= MAX_COST else DEFAULT_COST


def _secret(password: str) -> bytes:
    return password.encode()[:MAX_PASSWORD_BYTES]


def hash_password(password: str, cost: int = DEFAULT_COST) -> bytes:
    """A new bcrypt hash of ``password``, as etcd would store it."""
    salt = bcrypt.gensalt(rounds=effective_cost(cost), prefix=BCRYPT_PREFIX)
    return bcrypt.hashpw(_secret(password), salt)


def check_password(hashed: bytes, password: str) -> bool:
    """Whether ``password`` matches ``hashed`` (bcrypt, or a legacy PBKDF2 hash);
    False for anything malformed."""
    if hashed.startswith(LEGACY_SCHEME + b"$"):
        return _check_legacy(hashed, password)
    try:
        return bcrypt.checkpw(_secret(password), hashed)
    except ValueError:
        return False


def _check_legacy(hashed: bytes, password: str) -> bool:
    try:
        _, rounds, salt, digest = hashed.split(b"$")
        want = base64.b64decode(digest, validate=True)
        got = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), base64.b64decode(salt, validate=True), int(rounds)
        )
    except ValueError:
        return False
    return hmac.compare_digest(want, got)
