"""What the leader knows about one follower's log."""

from enum import IntEnum

from etcd_twisted.raft.inflights import Inflights


class ProgressState(IntEnum):
    """How the leader is sending entries to a follower."""

    #: One message at a time, until the follower's match index is found.
    PROBE = 0
    #: Optimistically streaming entries, bounded by the inflights window.
    REPLICATE = 1
    #: Waiting for a snapshot to be sent and applied; nothing else is sent.
    SNAPSHOT = 2


class Progress:
    """A follower's replication progress as the leader tracks it.

    ``match`` is the highest index known to be in the follower's log, ``next`` the next index
    to send.
    """

    __slots__ = (
        "match",
        "next",
        "state",
        "pending_snapshot",
        "recent_active",
        "probe_sent",
        "inflights",
        "is_learner",
    )

    def __init__(
        self,
        next: int,
        max_inflight: int,
        match: int = 0,
        is_learner: bool = False,
        recent_active: bool = False,
    ) -> None:
        self.match = match
        self.next = next
        self.state = ProgressState.PROBE
        self.pending_snapshot = 0
        self.recent_active = recent_active
        self.probe_sent = False
        self.inflights = Inflights(max_inflight)
        self.is_learner = is_learner

    def __repr__(self) -> str:
        s = f"{self.state.name} match={self.match} next={self.next}"
        if self.is_learner:
            s += " learner"
        if self.probe_sent:
            s += " paused"
        if self.pending_snapshot:
            s += f" pending_snap={self.pending_snapshot}"
        if not self.recent_active:
            s += " inactive"
        if len(self.inflights):
            s += f" inflight={len(self.inflights)}"
            if self.inflights.full():
                s += "[full]"
        return s

    def copy(self) -> "Progress":
        """An independent copy (for ``Status``)."""
        other = Progress(self.next, self.inflights.size, self.match, self.is_learner)
        other.state = self.state
        other.pending_snapshot = self.pending_snapshot
        other.recent_active = self.recent_active
        other.probe_sent = self.probe_sent
        other.inflights = self.inflights.copy()
        return other

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        """Go back to probing from just after ``match`` (or after a snapshot that was sent)."""
        if self.state == ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        """Start streaming entries after ``match``."""
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        """Wait for the snapshot at ``snapshot_index`` to be installed."""
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, index: int) -> bool:
        """The follower has entries up to ``index``; returns whether ``match`` advanced."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.probe_sent = False
        if self.next < index + 1:
            self.next = index + 1
        return updated

    def optimistic_update(self, index: int) -> None:
        """Entries up to ``index`` were sent; continue after them without waiting."""
        self.next = index + 1

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """Handle a rejection of the append at ``rejected``; returns False if it is stale.

        ``match_hint`` is the highest index that may match the follower's log.
        """
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        """Whether the leader must not send entries now."""
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return self.inflights.full()
        return True
