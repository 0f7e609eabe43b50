"""The lessor: leases, their keys, their expiry on the primary, and checkpoints.

Modelled on etcd v3.5's ``server/lease/lessor.go`` but driven by plain calls: every
member applies ``grant``, ``revoke``, ``attach``/``detach`` and ``apply_checkpoint`` from
the raft log; only the primary (the member that leads) renews leases, finds expired
ones and finds due checkpoints, and it passes the time in as ``now`` (seconds on a
monotonic clock). The server turns what the lessor finds into raft proposals: a
``LeaseRevoke`` for each expired lease, a ``LeaseCheckpoint`` for the checkpoints.
"""

import math
from collections import OrderedDict
from typing import NamedTuple

from .errors import (
    LeaseExistsError,
    LeaseExpiredError,
    LeaseNotFoundError,
    LeaseTTLTooLargeError,
    NotPrimaryError,
)
from .expiry_queue import ExpiryQueue
from .lease import FOREVER, Lease
from .storage import LeaseStorage, delete_lease, load_leases, save_lease

#: The largest TTL a lease may be granted, in seconds (etcd's ``MaxLeaseTTL``).
MAX_LEASE_TTL = 9_000_000_000
#: Leases per second the primary aims to revoke at most (etcd's ``leaseRevokeRate``).
LEASE_REVOKE_RATE = 1000
#: Seconds before an expired lease that was not revoked is reported again.
EXPIRED_LEASE_RETRY_INTERVAL = 3.0
#: How often, in seconds, the server asks the primary for expired leases and due checkpoints.
LEASE_CHECK_INTERVAL = 0.5
#: The ``limit`` for each ``expired_leases`` call: half a second's worth of the revoke rate.
REVOKE_LIMIT = LEASE_REVOKE_RATE // 2
#: The ``limit`` for each ``checkpoint_due`` call; one ``LeaseCheckpoint`` proposal per batch.
CHECKPOINT_BATCH_LIMIT = 1000
#: etcd's checkpoint interval when checkpointing is on (``--experimental-lease-checkpoint-interval``).
DEFAULT_CHECKPOINT_INTERVAL = 300.0


class TimeToLive(NamedTuple):
    """A lease's granted TTL, its remaining TTL (whole seconds) and its keys, sorted."""

    granted_ttl: int
    ttl: int
    keys: list[bytes]


class Lessor:
    """Grants, renews and revokes leases; tracks which key belongs to which lease.

    ``min_ttl`` is the smallest TTL granted (etcd: ceil(1.5 × election timeout), 2 s by
    default). ``checkpoint_interval`` turns checkpointing on (etcd's
    ``--experimental-enable-lease-checkpoint``; ``DEFAULT_CHECKPOINT_INTERVAL`` is etcd's
    interval); ``checkpoint_persist`` also stores checkpointed remaining TTLs in the
    backend. A new lessor is not primary and holds no leases until ``restore()``.
    """

    def __init__(
        self,
        storage: LeaseStorage,
        min_ttl: int,
        *,
        checkpoint_interval: float | None = None,
        checkpoint_persist: bool = False,
        retry_interval: float = EXPIRED_LEASE_RETRY_INTERVAL,
    ) -> None:
        self._storage = storage
        self._min_ttl = min_ttl
        self._checkpoint_interval = checkpoint_interval
        self._checkpoint_persist = checkpoint_persist
        self._retry_interval = retry_interval
        self._primary = False
        self._leases: dict[int, Lease] = {}
        self._items: dict[bytes, int] = {}  # key -> id of the lease it is attached to
        # Both queues and the pending clears are empty unless the lessor is primary.
        self._expiry = ExpiryQueue()
        self._checkpoints = ExpiryQueue()
        self._pending_clears: OrderedDict[int, None] = OrderedDict()

    @property
    def primary(self) -> bool:
        """Whether this lessor renews and expires leases (its member leads)."""
        return self._primary

    # --- applied on every member

    def grant(self, lease_id: int, ttl: int, now: float) -> Lease:
        """Create a lease of ``ttl`` seconds (raised to the minimum) and store it."""
        if lease_id == 0:
            raise LeaseNotFoundError()
        if ttl > MAX_LEASE_TTL:
            raise LeaseTTLTooLargeError()
        if lease_id in self._leases:
            raise LeaseExistsError()
        lease = Lease(lease_id, max(ttl, self._min_ttl))
        self._leases[lease_id] = lease
        save_lease(self._storage, lease)
        if self._primary:
            self._refresh(lease, now, 0.0)
        return lease

    def revoke(self, lease_id: int) -> list[bytes]:
        """Remove a lease; returns its keys, sorted, which the caller deletes at one revision.

        The keys are already detached: the KV store's ``detach`` calls while it deletes
        them are no-ops.
        """
        lease = self._leases.pop(lease_id, None)
        if lease is None:
            raise LeaseNotFoundError()
        keys = sorted(lease.keys)
        lease.keys.clear()
        items = self._items
        for key in keys:
            del items[key]
        self._expiry.remove(lease_id)
        self._checkpoints.remove(lease_id)
        self._pending_clears.pop(lease_id, None)
        delete_lease(self._storage, lease_id)
        return keys

    def attach(self, lease_id: int, key: bytes) -> None:
        """Attach ``key`` to a lease, moving it off any other lease it was attached to."""
        lease = self._leases.get(lease_id)
        if lease is None:
            raise LeaseNotFoundError()
        old = self._items.get(key)
        if old is not None and old != lease_id:
            self._leases[old].keys.discard(key)
        lease.keys.add(key)
        self._items[key] = lease_id

    def detach(self, lease_id: int, key: bytes) -> None:
        """Detach ``key`` from the lease; a no-op unless it is attached to that lease."""
        if self._items.get(key) == lease_id:
            del self._items[key]
            self._leases[lease_id].keys.discard(key)

    def apply_checkpoint(self, lease_id: int, remaining_ttl: int) -> None:
        """Record a lease's checkpointed remaining TTL (0 clears it); unknown ids are ignored."""
        lease = self._leases.get(lease_id)
        if lease is None:
            return
        lease.remaining_ttl = remaining_ttl
        if self._checkpoint_persist:
            save_lease(self._storage, lease)

    def restore(self) -> None:
        """Load every lease from storage, replacing what is held, and stop being primary.

        Keys are re-attached by the KV store as it restores (``attach``); call ``promote``
        afterwards if this member leads.
        """
        self.demote()
        self._leases.clear()
        self._items.clear()
        for record in load_leases(self._storage):
            ttl = max(record.TTL, self._min_ttl)
            self._leases[record.ID] = Lease(record.ID, ttl, record.RemainingTTL)

    # --- reads

    def lookup(self, lease_id: int) -> Lease | None:
        """The lease with this id, or None."""
        return self._leases.get(lease_id)

    def leases(self) -> list[Lease]:
        """Every lease, soonest expiry first, then by id (etcd's ``Leases()`` order, which
        ``LeaseLeases`` and ``etcdctl lease list`` show; all ``FOREVER`` unless primary)."""
        return sorted(self._leases.values(), key=lambda lease: (lease.expiry, lease.id))

    def get_lease(self, key: bytes) -> int:
        """The id of the lease ``key`` is attached to, or 0."""
        return self._items.get(key, 0)

    def time_to_live(self, lease_id: int, now: float) -> TimeToLive:
        """The lease's granted TTL, remaining whole seconds at ``now`` and keys.

        The primary counts down to the expiry (0 once expired); elsewhere the remaining
        TTL is what a promotion would grant (the checkpointed remaining TTL, or the TTL).
        """
        lease = self._leases.get(lease_id)
        if lease is None:
            raise LeaseNotFoundError()
        if lease.expiry == FOREVER:
            ttl = lease.refresh_ttl()
        else:
            ttl = max(0, int(lease.remaining(now)))
        return TimeToLive(lease.ttl, ttl, sorted(lease.keys))

    # --- the primary

    def promote(self, extend: float, now: float) -> None:
        """Become primary: every lease expires ``extend`` seconds after its refresh TTL.

        With ``LEASE_REVOKE_RATE`` leases or more, expiries that would bunch up are pushed
        back so that no one-second window holds more than 3/4 of that rate, as etcd does.
        """
        self._primary = True
        for lease in self._leases.values():
            self._refresh(lease, now, extend)
        if len(self._leases) >= LEASE_REVOKE_RATE:
            self._spread_expiries(extend, now)

    def demote(self) -> None:
        """Stop being primary: no lease expires, renews or checkpoints here any more."""
        self._primary = False
        for lease in self._leases.values():
            lease.expiry = FOREVER
        self._expiry.clear()
        self._checkpoints.clear()
        self._pending_clears.clear()

    def renew(self, lease_id: int, now: float) -> int:
        """Restart a lease's full TTL from ``now``; returns the TTL.

        A checkpointed remaining TTL no longer applies: the full TTL is granted and, when
        checkpointing is on, a checkpoint clearing it is queued for ``checkpoint_due``.
        """
        if not self._primary:
            raise NotPrimaryError()
        lease = self._leases.get(lease_id)
        if lease is None:
            raise LeaseNotFoundError()
        if lease.expiry <= now:
            raise LeaseExpiredError()
        if lease.remaining_ttl > 0 and self._checkpoint_interval is not None:
            self._pending_clears[lease_id] = None
        lease.expiry = now + lease.ttl
        self._expiry.schedule(lease_id, lease.expiry)
        return lease.ttl

    def expired_leases(self, now: float, limit: int) -> list[Lease]:
        """Up to ``limit`` leases whose expiry is ``<= now``, earliest first, for revoking.

        A lease reported here is not reported again unless it is still held (neither
        revoked nor renewed) ``retry_interval`` seconds later.
        """
        found: list[Lease] = []
        queue, leases, retry_at = self._expiry, self._leases, now + self._retry_interval
        while len(found) < limit:
            lease_id = queue.pop_due(now)
            if lease_id is None:
                break
            queue.schedule(lease_id, retry_at)
            found.append(leases[lease_id])
        return found

    def checkpoint_due(self, now: float, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` ``(lease id, remaining TTL)`` checkpoints for the server to propose.

        First the clears queued by ``renew`` (remaining TTL 0), then the leases whose
        checkpoint time has come, with their remaining whole seconds rounded up; a lease
        is checkpointed again ``checkpoint_interval`` later while it has more than that left.
        """
        interval = self._checkpoint_interval
        if interval is None:
            return []
        due: list[tuple[int, int]] = []
        clears = self._pending_clears
        while clears and len(due) < limit:
            due.append((clears.popitem(last=False)[0], 0))
        while len(due) < limit:
            lease_id = self._checkpoints.pop_due(now)
            if lease_id is None:
                break
            lease = self._leases[lease_id]
            if lease.expiry <= now:
                continue
            remaining = math.ceil(lease.remaining(now))
            if remaining > interval:
                self._checkpoints.schedule(lease_id, now + interval)
            if remaining < lease.ttl:
                due.append((lease_id, remaining))
        return due

    def _refresh(self, lease: Lease, now: float, extend: float) -> None:
        lease.expiry = now + extend + lease.refresh_ttl()
        self._expiry.schedule(lease.id, lease.expiry)
        interval = self._checkpoint_interval
        if interval is not None and lease.refresh_ttl() > interval:
            self._checkpoints.schedule(lease.id, now + interval)

    def _spread_expiries(self, extend: float, now: float) -> None:
        # Walk the leases by expiry in windows of one second from the first expiry in
        # the window; past the target count, each lease is pushed back by its share of
        # a second, and the window stretches to cover it.
        target = 3 * LEASE_REVOKE_RATE // 4
        ordered = sorted(self._leases.values(), key=lambda lease: (lease.expiry, lease.id))
        base = ordered[0].remaining(now)
        window_end = base + 1.0
        count = 0
        for lease in ordered:
            remaining = lease.remaining(now)
            if remaining > window_end:
                base, window_end, count = remaining, remaining + 1.0, 1
                continue
            count += 1
            if count <= target:
                continue
            delay = count / target - (remaining - base)
            window_end = base + delay
            self._refresh(lease, now, extend + delay)
