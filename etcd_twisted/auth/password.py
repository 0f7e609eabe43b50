"""Password hashing for the auth store: PBKDF2-HMAC-SHA256 with a random salt.

etcd uses bcrypt; bcrypt is not a dependency here, so stored hashes are ours and
not interchangeable with etcd's (a data directory is never shared with etcd, so
nothing needs them to be). A hash is self-describing::

    pbkdf2-sha256$<iterations>$<salt, base64>$<digest, base64>

``--bcrypt-cost`` keeps its meaning of "how expensive": ``cost`` c means
``100 * 2**c`` iterations (10, the default, is 102 400; 4, bcrypt's minimum, 1 600).
Hashing takes tens of milliseconds: callers on the reactor run it on a thread.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

SCHEME = b"pbkdf2-sha256"
MIN_COST = 4
MAX_COST = 31
DEFAULT_COST = 10
_SALT_BYTES = 16


def iterations_for(cost: int) -> int:
    """PBKDF2 iterations for a bcrypt-style cost (out-of-range costs use the default)."""
    if not MIN_COST <= cost <= MAX_COST:
        cost = DEFAULT_COST
    return 100 * (1 << cost)


def hash_password(password: str, cost: int = DEFAULT_COST, salt: bytes | None = None) -> bytes:
    """A new self-describing hash of ``password``."""
    if salt is None:
        salt = os.urandom(_SALT_BYTES)
    rounds = iterations_for(cost)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, rounds)
    return b"$".join(
        (SCHEME, str(rounds).encode(), base64.b64encode(salt), base64.b64encode(digest))
    )


def check_password(hashed: bytes, password: str) -> bool:
    """Whether ``password`` matches ``hashed`` (False for anything malformed)."""
    try:
        scheme, rounds, salt, digest = hashed.split(b"$")
        if scheme != SCHEME:
            return False
        want = base64.b64decode(digest, validate=True)
        got = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), base64.b64decode(salt, validate=True), int(rounds)
        )
    except ValueError:
        return False
    return hmac.compare_digest(want, got)
