"""``MemberState``: everything a member keeps in its backend, opened together.

A member opens it at start, and again when a snapshot from the leader replaces its
whole database: the membership, the lessor, the MVCC store, the auth store and the
alarms all read their buckets from the same backend, in that order (the lessor
before the KV store, which re-attaches keys to leases).
"""

from __future__ import annotations

from dataclasses import dataclass

from etcd_twisted.auth import AuthStore
from etcd_twisted.auth.tokens import TokenProvider
from etcd_twisted.backend import Backend, buckets
from etcd_twisted.lease import Lessor
from etcd_twisted.membership.cluster import Cluster
from etcd_twisted.mvcc.kvstore import KVStore

from .alarms import AlarmStore

#: Cluster-bucket key holding the decided cluster version.
CLUSTER_VERSION_KEY = b"clusterVersion"


@dataclass(frozen=True, slots=True)
class StateOptions:
    """The flags that shape the stores: lease minimum TTL and checkpoints, bcrypt cost."""

    min_lease_ttl: int
    lease_checkpoint_interval: float | None
    bcrypt_cost: int


class MemberState:
    """The stores of one backend: ``cluster``, ``lessor``, ``kv``, ``auth``, ``alarms``."""

    def __init__(
        self, backend: Backend, cluster_id: int, options: StateOptions, tokens: TokenProvider
    ) -> None:
        self.backend = backend
        self.cluster = Cluster(cluster_id, backend.batch_tx)
        self.cluster.load()
        self.lessor = Lessor(
            backend.batch_tx,
            min_ttl=options.min_lease_ttl,
            checkpoint_interval=options.lease_checkpoint_interval,
        )
        self.lessor.restore()
        self.kv = KVStore(backend, leases=self.lessor)
        self.auth = AuthStore(backend.batch_tx, tokens, cost=options.bcrypt_cost)
        self.alarms = AlarmStore(backend.batch_tx)

    def lease_exists(self, lease_id: int) -> bool:
        """Whether the lessor knows ``lease_id``."""
        return self.lessor.lookup(lease_id) is not None

    def lease_keys(self, lease_id: int) -> set[bytes]:
        """The keys attached to a lease (empty for an unknown lease)."""
        lease = self.lessor.lookup(lease_id)
        return set() if lease is None else lease.keys

    def cluster_version(self) -> str:
        """The cluster version the leader decided ("" until then)."""
        return (self.backend.batch_tx.get(buckets.CLUSTER, CLUSTER_VERSION_KEY) or b"").decode()

    def set_cluster_version(self, version: str) -> None:
        """Record the cluster version (applied from raft)."""
        self.backend.batch_tx.put(buckets.CLUSTER, CLUSTER_VERSION_KEY, version.encode())
