"""The one owner of the ``RawNode``: ticks it, feeds it, and handles each ``Ready`` in order.

A ``LoopingCall`` ticks raft every heartbeat interval. Proposals, messages and
read-index requests go in through this service and ask for a turn of the Ready
loop on the next reactor iteration, so everything that arrives in one iteration
shares one Ready. A Ready is handled strictly in order — persist (one write and
at most one fdatasync on the WAL writer thread), then send, then apply, then
``advance`` — and while its write is on disk, new proposals pile up in raft for
the next Ready: that is group commit, with no timer and no batch size to tune.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from etcd_twisted import failpoints
from etcd_twisted._pb import raft_pb2
from etcd_twisted.raft import MemoryStorage, RawNode, Ready, SoftState


class Persister(Protocol):
    """Saves a Ready's hard state and entries durably (``WALWriter``)."""

    def save(
        self, hard_state: raft_pb2.HardState, entries: Sequence[raft_pb2.Entry]
    ) -> Deferred[None]: ...


class Applier(Protocol):
    """What the Ready loop hands committed work and state changes to (the server)."""

    def apply_entries(self, entries: list[raft_pb2.Entry]) -> None: ...
    def apply_snapshot(self, snapshot: raft_pb2.Snapshot) -> Deferred[None] | None: ...
    def on_soft_state(self, soft: SoftState) -> None: ...
    def on_read_states(self, read_states: list) -> None: ...
    def after_ready(self) -> None: ...


#: Sends raft messages to peers (the peer transport); a single member sends nothing.
Sender = Callable[[list[raft_pb2.Message]], None]


def drop_messages(messages: list[raft_pb2.Message]) -> None:
    """The sender of a cluster of one: there is nobody to send to."""


class RaftService(Service):
    """Drives a ``RawNode``: ticks, inputs, and the persist → send → apply → advance loop."""

    name = "raft"
    log = Logger()

    def __init__(
        self,
        node: RawNode,
        storage: MemoryStorage,
        persister: Persister,
        applier: Applier,
        clock: IReactorTime,
        tick_interval: float,
        send: Sender = drop_messages,
        on_fatal: Callable[[Failure], None] | None = None,
        persist_snapshot: Callable[[raft_pb2.Snapshot], Deferred[None]] | None = None,
    ) -> None:
        self.node = node
        self.storage = storage
        self._persister = persister
        self._applier = applier
        self._clock = clock
        self._tick_interval = tick_interval
        #: Where outbound raft messages go (the peer transport's ``send``).
        self.send = send
        self._on_fatal = on_fatal
        self._persist_snapshot = persist_snapshot
        self._ticker: LoopingCall | None = None
        self._scheduled: IDelayedCall | None = None
        self._busy = False
        self._failed: Failure | None = None
        self._idle_waiters: list[Deferred[None]] = []

    # --- lifecycle

    def startService(self) -> None:
        super().startService()
        self._ticker = LoopingCall(self._tick)
        self._ticker.clock = self._clock
        self._ticker.start(self._tick_interval, now=False)
        self.kick()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()
        if self._scheduled is not None and self._scheduled.active():
            self._scheduled.cancel()
        self._scheduled = None
        return self.when_idle()

    def when_idle(self) -> Deferred[None]:
        """Fires once no Ready is being handled."""
        if not self._busy:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle_waiters.append(d)
        return d

    # --- inputs (all of them ask for a turn of the Ready loop)

    def _tick(self) -> None:
        self.node.tick()
        self.kick()

    def propose(self, data: bytes) -> None:
        """Propose one entry (raises ``ProposalDroppedError`` if raft refuses it)."""
        self.node.propose(data)
        self.kick()

    def propose_batch(self, datas: list[bytes]) -> None:
        """Propose several entries at once (one append message per follower)."""
        self.node.propose_batch(datas)
        self.kick()

    def step(self, message: raft_pb2.Message) -> None:
        """Feed a message from a peer."""
        self.node.step(message)
        self.kick()

    def propose_conf_change(self, cc: raft_pb2.ConfChange) -> None:
        """Propose a membership change."""
        self.node.propose_conf_change(cc)
        self.kick()

    def read_index(self, ctx: bytes) -> None:
        """Ask raft for a read index tagged ``ctx``."""
        self.node.read_index(ctx)
        self.kick()

    def campaign(self) -> None:
        """Start an election now."""
        self.node.campaign()
        self.kick()

    def report_unreachable(self, node_id: int) -> None:
        """The transport could not reach a peer: raft probes it again, gently."""
        self.node.report_unreachable(node_id)
        self.kick()

    def report_snapshot(self, node_id: int, ok: bool) -> None:
        """A snapshot sent to a peer was (or was not) delivered."""
        self.node.report_snapshot(node_id, ok)
        self.kick()

    def transfer_leader(self, transferee: int) -> None:
        """Ask raft to hand leadership to ``transferee``."""
        self.node.transfer_leader(transferee)
        self.kick()

    # --- the Ready loop

    def kick(self) -> None:
        """Handle pending Ready work on the next reactor turn (once, however often called)."""
        if self._busy or self._failed is not None or not self.running:
            return
        if self._scheduled is None or not self._scheduled.active():
            self._scheduled = self._clock.callLater(0, self._process)

    def _process(self) -> None:
        self._scheduled = None
        if self._busy or not self.node.has_ready():
            return
        self._busy = True
        rd = self.node.ready()
        if rd.soft_state is not None:
            self._applier.on_soft_state(rd.soft_state)
        d: Deferred[None] = succeed(None)
        if rd.snapshot is not None and self._persist_snapshot is not None:
            snapshot = rd.snapshot
            d.addCallback(lambda _: self._persist_snapshot(snapshot))
        if rd.entries or rd.hard_state is not None:
            hard_state = rd.hard_state if rd.hard_state is not None else raft_pb2.HardState()
            d.addCallback(lambda _: self._persister.save(hard_state, rd.entries))
        d.addCallback(lambda _: self._persisted(rd))
        d.addErrback(self._fail)

    def _persisted(self, rd: Ready) -> None:
        """The Ready is durable: a snapshot from the leader is applied first, then the rest."""
        if rd.snapshot is not None:
            self.storage.apply_snapshot(rd.snapshot)
            d = maybeDeferred(self._applier.apply_snapshot, rd.snapshot)
            d.addCallback(lambda _: self._handled(rd))
            d.addErrback(self._fail)
        else:
            self._handled(rd)

    def _handled(self, rd: Ready) -> None:
        if rd.entries:
            self.storage.append(rd.entries)
        if rd.messages:
            if failpoints.ENABLED:
                leading = self.node.is_leader
                failpoints.hit("before_leader_send" if leading else "before_follower_send")
            self.send(rd.messages)
        if rd.committed_entries:
            self._applier.apply_entries(rd.committed_entries)
        if rd.read_states:
            self._applier.on_read_states(rd.read_states)
        self.node.advance(rd)
        self._busy = False
        self._applier.after_ready()
        if self.node.has_ready():
            self.kick()
        waiters, self._idle_waiters = self._idle_waiters, []
        for d in waiters:
            d.callback(None)

    def _fail(self, failure: Failure) -> None:
        """Persisting or handling a Ready failed: the state is no longer known to match
        the log, so the loop stops (and the member exits, to restart from disk)."""
        self._failed = failure
        self._busy = False
        self.log.failure("raft: handling a Ready failed; the member stops", failure)
        waiters, self._idle_waiters = self._idle_waiters, []
        for d in waiters:
            d.callback(None)
        if self._on_fatal is not None:
            self._on_fatal(failure)
