"""``RawNode``: the application's handle on a ``Raft``, and ``Ready``, what it must do next.

The application drives a node with ``tick()``, ``step()`` (messages from peers) and the
proposal calls, and after each batch of those::

    while node.has_ready():
        rd = node.ready()
        persist rd.hard_state, rd.entries and rd.snapshot (fsync if rd.must_sync)
        send rd.messages
        apply rd.snapshot, then rd.committed_entries (calling apply_conf_change for those)
        serve reads whose rd.read_states index has been applied
        node.advance(rd)

The order is the contract: nothing may be sent before what it depends on is durable.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from etcd_twisted._pb import raft_pb2
from etcd_twisted.raft.errors import (
    ProposalDroppedError,
    StepLocalMessageError,
    StepPeerNotFoundError,
)
from etcd_twisted.raft.progress import Progress
from etcd_twisted.raft.raft import Config, Raft, SoftState, StateType
from etcd_twisted.raft.read_only import ReadState
from etcd_twisted.raft.util import LOCAL_MESSAGES, RESPONSE_MESSAGES

HardState = raft_pb2.HardState


@dataclass(slots=True)
class Ready:
    """What the application must persist, send and apply, in that order.

    ``soft_state`` and ``hard_state`` are None when unchanged since the last ``Ready``.
    ``must_sync`` says whether ``entries``/``hard_state``/``snapshot`` must reach disk (fsync)
    before the messages go out; a commit-index-only change need not.
    """

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    read_states: list[ReadState] = field(default_factory=list)
    entries: list[raft_pb2.Entry] = field(default_factory=list)
    snapshot: raft_pb2.Snapshot | None = None
    committed_entries: list[raft_pb2.Entry] = field(default_factory=list)
    messages: list[raft_pb2.Message] = field(default_factory=list)
    must_sync: bool = False


@dataclass(frozen=True, slots=True)
class Peer:
    """A member of a new cluster for ``RawNode.bootstrap``; ``context`` goes in its ConfChange."""

    id: int
    context: bytes = b""


@dataclass(slots=True)
class Status:
    """A snapshot of a node's state for monitoring; ``progress`` is filled on the leader only."""

    id: int
    hard_state: HardState
    soft_state: SoftState
    applied: int
    lead_transferee: int
    conf_state: raft_pb2.ConfState
    progress: dict[int, Progress]


class RawNode:
    """A raft node without any concurrency or I/O (see the module docstring)."""

    def __init__(self, config: Config) -> None:
        self.raft = Raft(config)
        self._prev_soft = self.raft.soft_state()
        self._prev_hard = self._hard_tuple()

    def _hard_tuple(self) -> tuple[int, int, int]:
        r = self.raft
        return r.term, r.vote, r.raft_log.committed

    def bootstrap(self, peers: Sequence[Peer]) -> None:
        """Start a new cluster: log one ConfChangeAddNode per peer (empty storage only).

        The entries come out committed in the first ``Ready``; the application applies them
        like any conf change.
        """
        if not peers:
            raise ValueError("must provide at least one peer to bootstrap")
        r = self.raft
        if r.raft_log.storage.last_index() != 0:
            raise ValueError("can't bootstrap a nonempty storage")
        self._prev_hard = (0, 0, 0)
        r.become_follower(1, 0)
        ents = []
        for i, peer in enumerate(peers, 1):
            cc = raft_pb2.ConfChange(
                type=raft_pb2.ConfChangeAddNode, node_id=peer.id, context=peer.context
            )
            ents.append(
                raft_pb2.Entry(
                    type=raft_pb2.EntryConfChange, term=1, index=i, data=cc.SerializeToString()
                )
            )
        r.raft_log.append(ents)
        r.raft_log.committed = len(ents)
        for peer in peers:
            r.apply_conf_change(
                raft_pb2.ConfChange(type=raft_pb2.ConfChangeAddNode, node_id=peer.id)
            )

    # -- inputs --------------------------------------------------------------------------

    def tick(self) -> None:
        """Advance logical time by one tick (elections and heartbeats count ticks)."""
        self.raft.tick()

    def campaign(self) -> None:
        """Start an election now (a pre-election first when PreVote is on)."""
        self.raft.hup()

    def propose(self, data: bytes) -> None:
        """Propose one normal entry; raises ``ProposalDroppedError`` when it cannot be taken."""
        self.raft.propose_data((data,))

    def propose_batch(self, datas: Sequence[bytes]) -> None:
        """Propose several entries at once: one append message per follower, not one each."""
        if datas:
            self.raft.propose_data(datas)

    def propose_conf_change(self, cc: raft_pb2.ConfChange) -> None:
        """Propose a membership change (applied, once committed, via ``apply_conf_change``)."""
        self.raft.propose(
            [raft_pb2.Entry(type=raft_pb2.EntryConfChange, data=cc.SerializeToString())]
        )

    def step(self, m: raft_pb2.Message) -> None:
        """Handle a message from a peer.

        A proposal forwarded to us that we cannot take is dropped silently: its proposer
        finds out by timing out, as in etcd.
        """
        if m.type in LOCAL_MESSAGES:
            raise StepLocalMessageError(m.type)
        if m.type in RESPONSE_MESSAGES and m.from_ not in self.raft.trk.progress:
            raise StepPeerNotFoundError(m.from_)
        try:
            self.raft.step(m)
        except ProposalDroppedError:
            if m.type != raft_pb2.MsgProp:
                raise

    def read_index(self, ctx: bytes) -> None:
        """Request a read index; a ``ReadState`` with ``ctx`` comes in a later ``Ready``.

        ``ctx`` must be unique among outstanding requests. Raises ``ProposalDroppedError`` if
        there is no leader to ask. A request in flight when leadership changes is lost: retry
        after a timeout.
        """
        self.raft.read_index(ctx)

    def transfer_leader(self, transferee: int) -> None:
        """Ask the leader to hand leadership to ``transferee``."""
        self.raft.transfer_leader(transferee)

    def apply_conf_change(self, cc: raft_pb2.ConfChange) -> raft_pb2.ConfState:
        """Apply a committed conf change entry's change; returns the new ``ConfState``."""
        return self.raft.apply_conf_change(cc)

    def report_unreachable(self, node_id: int) -> None:
        """The transport could not deliver to ``node_id``."""
        self.raft.report_unreachable(node_id)

    def report_snapshot(self, node_id: int, ok: bool) -> None:
        """The transport finished (``ok``) or failed sending a snapshot to ``node_id``."""
        self.raft.report_snapshot(node_id, ok)

    # -- outputs -------------------------------------------------------------------------

    def has_ready(self) -> bool:
        """Whether ``ready()`` has anything to do."""
        r = self.raft
        if r.msgs or r.read_states:
            return True
        log = r.raft_log
        if log.unstable.entries or log.unstable.snapshot is not None or log.has_next_ents():
            return True
        if self._hard_tuple() != self._prev_hard:
            return True
        return r.soft_state() != self._prev_soft

    def ready(self) -> Ready:
        """Collect what to persist, send and apply; call ``advance`` once it is done."""
        r = self.raft
        log = r.raft_log
        rd = Ready(
            entries=log.unstable_entries(),
            committed_entries=log.next_ents(),
            messages=r.msgs,
            snapshot=log.unstable.snapshot,
        )
        r.msgs = []
        if r.read_states:
            rd.read_states = r.read_states
            r.read_states = []
        soft = r.soft_state()
        if soft != self._prev_soft:
            rd.soft_state = soft
            self._prev_soft = soft
        hard = self._hard_tuple()
        prev = self._prev_hard
        if hard != prev:
            rd.hard_state = HardState(term=hard[0], vote=hard[1], commit=hard[2])
        rd.must_sync = (
            bool(rd.entries) or rd.snapshot is not None or hard[0] != prev[0] or hard[1] != prev[1]
        )
        return rd

    def advance(self, rd: Ready) -> None:
        """Tell raft that ``rd`` was persisted, sent and applied."""
        if rd.hard_state is not None:
            hs = rd.hard_state
            self._prev_hard = (hs.term, hs.vote, hs.commit)
        self.raft.advance(rd.entries, rd.committed_entries, rd.snapshot)

    # -- reads for the application (nothing outside raft/ reads ``self.raft``) -----------

    @property
    def term(self) -> int:
        """The current term."""
        return self.raft.term

    @property
    def committed(self) -> int:
        """The highest log index known to be committed."""
        return self.raft.raft_log.committed

    @property
    def is_leader(self) -> bool:
        """Whether this node is the leader now."""
        return self.raft.state == StateType.LEADER

    def conf_state(self) -> raft_pb2.ConfState:
        """The current membership: voters, learners."""
        return self.raft.trk.conf_state()

    def match_index(self, node_id: int) -> int | None:
        """On the leader, how far ``node_id``'s log is known to match (None: unknown)."""
        if self.raft.state != StateType.LEADER:
            return None
        pr = self.raft.trk.progress.get(node_id)
        return None if pr is None else pr.match

    def status(self) -> Status:
        """The node's current state (with every follower's progress on the leader)."""
        r = self.raft
        progress = {}
        if r.state == StateType.LEADER:
            progress = {i: pr.copy() for i, pr in r.trk.progress.items()}
        return Status(
            id=r.id,
            hard_state=r.hard_state(),
            soft_state=r.soft_state(),
            applied=r.raft_log.applied,
            lead_transferee=r.lead_transferee,
            conf_state=r.trk.conf_state(),
            progress=progress,
        )


def conf_changes(entries: Iterable[raft_pb2.Entry]) -> list[raft_pb2.ConfChange]:
    """Decode the conf changes among committed entries (a convenience for appliers)."""
    out = []
    for e in entries:
        if e.type == raft_pb2.EntryConfChange:
            cc = raft_pb2.ConfChange()
            cc.ParseFromString(e.data)
            out.append(cc)
    return out
