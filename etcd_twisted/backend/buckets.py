"""The named buckets of the backend (etcd's bucket names)."""

from __future__ import annotations

KEY = b"key"
META = b"meta"
LEASE = b"lease"
AUTH = b"auth"
AUTH_USERS = b"authUsers"
AUTH_ROLES = b"authRoles"
MEMBERS = b"members"
MEMBERS_REMOVED = b"members_removed"
ALARM = b"alarm"
CLUSTER = b"cluster"

ALL: tuple[bytes, ...] = (
    KEY,
    META,
    LEASE,
    AUTH,
    AUTH_USERS,
    AUTH_ROLES,
    MEMBERS,
    MEMBERS_REMOVED,
    ALARM,
    CLUSTER,
)

#: Keys of the consistent (applied) index and its term in the meta bucket.
CONSISTENT_INDEX_KEY = b"consistent_index"
TERM_KEY = b"term"
