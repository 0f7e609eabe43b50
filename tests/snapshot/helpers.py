"""Snapshot files for the tests: a backend's content as ``etcdctl snapshot save`` leaves it."""

from __future__ import annotations

import hashlib
import os

from etcd_twisted.api.snapshot import etcd_snapshot_file
from etcd_twisted.backend import Backend, buckets
from etcd_twisted.membership.cluster import Cluster, Member

OLD_MEMBER = Member(0xAA, "old", ["http://127.0.0.1:1"], ["http://127.0.0.1:2"])


def filled_backend(path: str, keys: int = 1000) -> Backend:
    """A backend with keys, a lease, a user, a member, a removed member and an index."""
    be = Backend(path)
    tx = be.batch_tx
    for i in range(1, keys + 1):
        tx.put(buckets.KEY, i.to_bytes(8, "big") + b"_" + bytes(8), b"kv %d" % i)
    tx.put(buckets.LEASE, (7).to_bytes(8, "big"), b"\x08\x07\x10\x3c")
    tx.put(buckets.AUTH_USERS, b"alice", b"\n\x05alice\x12\x04hash")
    tx.put(buckets.META, b"finishedCompactRev", (5).to_bytes(8, "big") + b"_" + bytes(8))
    cluster = Cluster(1, tx)
    cluster.add(OLD_MEMBER)
    cluster.remove(0xBB)
    be.set_consistent_index(1234, 9)
    be.force_commit()
    return be


def save_snapshot(backend: Backend, path: str) -> bytes:
    """Write the backend as a snapshot file with its sha256; the database bytes."""
    with backend.snapshot() as snap:
        db = b"".join(etcd_snapshot_file(snap).chunks())
    with open(path, "wb") as f:
        f.write(db + hashlib.sha256(db).digest())
    return db


def snapshot_of_filled_backend(directory: str, keys: int = 1000) -> str:
    """A snapshot file of ``filled_backend`` under ``directory``; its path."""
    os.makedirs(directory, exist_ok=True)
    be = filled_backend(os.path.join(directory, "source.db"), keys)
    try:
        path = os.path.join(directory, "snapshot.db")
        save_snapshot(be, path)
    finally:
        be.close()
    return path
