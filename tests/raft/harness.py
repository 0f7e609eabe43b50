"""Test support: raft nodes over an in-memory network that can drop, delay, duplicate,
reorder and partition messages, with each node handling ``Ready`` the way a server would."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from random import Random
from typing import Any

from etcd_twisted._pb import raft_pb2
from etcd_twisted.raft import Config, MemoryStorage, RawNode, Ready, StateType
from etcd_twisted.raft.raft import Raft
from etcd_twisted.raft.rawnode import conf_changes

Message = raft_pb2.Message


def conf_state(voters: Iterable[int], learners: Iterable[int] = ()) -> raft_pb2.ConfState:
    """A ``ConfState`` from id lists."""
    return raft_pb2.ConfState(voters=list(voters), learners=list(learners))


class AppStorage(MemoryStorage):
    """A ``MemoryStorage`` whose ``snapshot()`` is taken on demand from the application's
    applied state, as a server does when a follower needs one."""

    def __init__(self) -> None:
        super().__init__()
        #: Returns (applied index, conf state) of the state machine; set by ``Node``.
        self.applied_state: Callable[[], tuple[int, raft_pb2.ConfState]] | None = None

    def snapshot(self) -> raft_pb2.Snapshot:
        """A snapshot of the applied state, if that is newer than the stored one."""
        snap = super().snapshot()
        if self.applied_state is not None:
            index, cs = self.applied_state()
            if index > snap.metadata.index:
                return self.create_snapshot(index, cs, b"")
        return snap


def new_storage(
    voters: Iterable[int], learners: Iterable[int] = (), index: int = 1, term: int = 1
) -> AppStorage:
    """A storage that starts from a snapshot at ``(index, term)`` holding the configuration."""
    storage = AppStorage()
    snap = raft_pb2.Snapshot()
    snap.metadata.index = index
    snap.metadata.term = term
    snap.metadata.conf_state.CopyFrom(conf_state(voters, learners))
    storage.apply_snapshot(snap)
    return storage


def new_raft(
    node_id: int,
    voters: Sequence[int] = (1, 2, 3),
    election: int = 10,
    heartbeat: int = 1,
    storage: MemoryStorage | None = None,
    learners: Sequence[int] = (),
    seed: int = 0,
    **kw: Any,
) -> Raft:
    """A ``Raft`` over a fresh storage configured with ``voters`` (no snapshot point)."""
    if storage is None:
        storage = MemoryStorage()
        storage._snapshot.metadata.conf_state.CopyFrom(conf_state(voters, learners))
    return Raft(
        Config(
            id=node_id,
            storage=storage,
            election_tick=election,
            heartbeat_tick=heartbeat,
            random=Random(seed * 1000 + node_id),
            **kw,
        )
    )


def take_messages(r: Raft) -> list[Message]:
    """Drain the messages a ``Raft`` produced."""
    msgs, r.msgs = r.msgs, []
    return msgs


def entries(*pairs: tuple[int, int], data: bytes = b"") -> list[raft_pb2.Entry]:
    """Entries from ``(index, term)`` pairs."""
    return [raft_pb2.Entry(index=i, term=t, data=data) for i, t in pairs]


def msg(msg_type: int, frm: int = 0, to: int = 0, **kw: Any) -> Message:
    """A message, spelled briefly."""
    return Message(type=msg_type, from_=frm, to=to, **kw)


@dataclass
class Node:
    """One member: durable storage, a volatile ``RawNode`` (None while crashed), and the
    state machine (the entries applied, in order)."""

    id: int
    storage: AppStorage
    config: dict[str, Any]
    rng: Random
    raw: RawNode | None = None
    conf_state: raft_pb2.ConfState = field(default_factory=raft_pb2.ConfState)
    applied: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    applied_index: int = 0
    read_states: list[tuple[int, bytes]] = field(default_factory=list)

    def start(self) -> None:
        """(Re)create the ``RawNode`` from storage, as after a process restart."""
        self.raw = RawNode(
            Config(
                id=self.id,
                storage=self.storage,
                applied=MemoryStorage.snapshot(self.storage).metadata.index,
                random=self.rng,
                **self.config,
            )
        )
        # The state machine is rebuilt from the snapshot; later entries are applied again.
        snap = MemoryStorage.snapshot(self.storage)
        self.applied_index = snap.metadata.index
        self.conf_state = snap.metadata.conf_state
        self.storage.applied_state = lambda: (self.applied_index, self.conf_state)

    @property
    def raft(self) -> Raft:
        """The node's ``Raft`` (it must be running)."""
        assert self.raw is not None
        return self.raw.raft


class Network:
    """Nodes joined by a message queue.

    Messages wait in ``queue`` until delivered; the fault knobs decide, when a message is
    sent, whether it is dropped (``drop_rate``, partitions, ``cut`` links, crashed target)
    or duplicated; ``deliver(i)`` can take any queued message, so tests may reorder.
    """

    def __init__(
        self,
        ids: Sequence[int],
        learners: Sequence[int] = (),
        seed: int = 0,
        index: int = 1,
        **config: Any,
    ) -> None:
        self.rng = Random(seed)
        self.seed = seed
        config.setdefault("election_tick", 10)
        config.setdefault("heartbeat_tick", 1)
        self.config = config
        self.nodes: dict[int, Node] = {}
        for i in list(ids) + list(learners):
            self.add_node(i, new_storage(ids, learners, index=index))
        self.queue: list[Message] = []
        self.drop_rate = 0.0
        self.dup_rate = 0.0
        self.groups: list[set[int]] | None = None
        self.cut: set[tuple[int, int]] = set()
        #: Every (term, leader id) observed, for election-safety checks.
        self.leaders: dict[int, int] = {}

    def add_node(self, node_id: int, storage: AppStorage, **config: Any) -> Node:
        """Start a node over ``storage`` (config overrides the network's defaults)."""
        config = {**self.config, **config}
        rng = config.pop("random", None) or Random(self.seed * 1000 + node_id)
        node = Node(node_id, storage, config, rng)
        node.start()
        self.nodes[node_id] = node
        return node

    # -- topology ------------------------------------------------------------------------

    def partition(self, *groups: Iterable[int]) -> None:
        """Only nodes in the same group can talk; the queue's cross-group messages are lost."""
        self.groups = [set(g) for g in groups]
        self.drop_where(lambda m: not self._linked(m.from_, m.to))

    def heal(self) -> None:
        """Undo partitions, cut links and random faults."""
        self.groups = None
        self.cut.clear()
        self.drop_rate = self.dup_rate = 0.0

    def isolate(self, node_id: int) -> None:
        """Cut ``node_id`` off from everyone."""
        others = [i for i in self.nodes if i != node_id]
        self.partition([node_id], others)

    def _linked(self, a: int, b: int) -> bool:
        if (a, b) in self.cut:
            return False
        if self.groups is None:
            return True
        return any(a in g and b in g for g in self.groups)

    # -- nodes -----------------------------------------------------------------------------

    def raft(self, node_id: int) -> Raft:
        """The ``Raft`` of a running node."""
        return self.nodes[node_id].raft

    def crash(self, node_id: int) -> None:
        """Lose everything of ``node_id`` that is not in its storage."""
        self.nodes[node_id].raw = None
        self.nodes[node_id].read_states.clear()

    def restart(self, node_id: int) -> None:
        """Start a crashed node again from its storage."""
        node = self.nodes[node_id]
        if node.raw is None:
            node.start()

    def running(self) -> list[Node]:
        """Nodes not crashed."""
        return [n for n in self.nodes.values() if n.raw is not None]

    def leader(self) -> int:
        """The id of a running leader with the highest term, or 0."""
        best = (0, 0)
        for n in self.running():
            r = n.raft
            if r.state == StateType.LEADER and r.term >= best[0]:
                best = (r.term, n.id)
        return best[1]

    def _lost(self, m: Message) -> None:
        # The transport tells the sender when a snapshot did not get through, as etcd's
        # does; without that the leader would wait for it forever.
        if m.type == raft_pb2.MsgSnap:
            sender = self.nodes.get(m.from_)
            if sender is not None and sender.raw is not None:
                sender.raw.report_snapshot(m.to, False)

    def drop_where(self, pred: Callable[[Message], bool]) -> list[Message]:
        """Remove (and return) the queued messages for which ``pred`` holds."""
        dropped = [m for m in self.queue if pred(m)]
        if dropped:
            self.queue = [m for m in self.queue if not pred(m)]
            for m in dropped:
                self._lost(m)
        return dropped

    def drop(self, i: int) -> None:
        """Lose the ``i``-th queued message."""
        self._lost(self.queue.pop(i))

    # -- driving ---------------------------------------------------------------------------

    def send(self, msgs: Iterable[Message]) -> None:
        """Put messages on the wire, applying the fault knobs."""
        for m in msgs:
            if (
                not self._linked(m.from_, m.to)
                or m.to not in self.nodes
                or (self.drop_rate and self.rng.random() < self.drop_rate)
            ):
                self._lost(m)
                continue
            self.queue.append(m)
            if self.dup_rate and self.rng.random() < self.dup_rate:
                dup = Message()
                dup.CopyFrom(m)
                self.queue.append(dup)

    def process_ready(self, node: Node) -> Ready | None:
        """Handle one ``Ready`` of ``node`` as a server would, and return it."""
        raw = node.raw
        if raw is None or not raw.has_ready():
            return None
        rd = raw.ready()
        if rd.soft_state is not None and rd.soft_state.raft_state == StateType.LEADER:
            term = raw.raft.term
            prev = self.leaders.setdefault(term, node.id)
            assert prev == node.id, f"two leaders in term {term}: {prev} and {node.id}"
        storage = node.storage
        if rd.snapshot is not None:
            storage.apply_snapshot(rd.snapshot)
            node.applied_index = rd.snapshot.metadata.index
            node.conf_state = rd.snapshot.metadata.conf_state
        storage.append(rd.entries)
        if rd.hard_state is not None:
            storage.set_hard_state(rd.hard_state)
        self.send(rd.messages)
        for e in rd.committed_entries:
            assert e.index == node.applied_index + 1, (e.index, node.applied_index)
            node.applied[e.index] = (e.term, e.data)
            node.applied_index = e.index
            for cc in conf_changes([e]):
                node.conf_state = raw.apply_conf_change(cc)
        node.read_states.extend((rs.index, rs.request_ctx) for rs in rd.read_states)
        raw.advance(rd)
        return rd

    def process_all_ready(self) -> bool:
        """Handle every pending ``Ready``; whether any existed."""
        any_ready = False
        for node in self.nodes.values():
            while self.process_ready(node) is not None:
                any_ready = True
        return any_ready

    def deliver(self, i: int = 0, process: bool = True) -> Message:
        """Deliver the ``i``-th queued message (lost if its target is down) and return it.

        With ``process``, the target handles its ``Ready`` right away.
        """
        m = self.queue.pop(i)
        node = self.nodes[m.to]
        if node.raw is None:
            self._lost(m)
            return m
        node.raw.step(m)
        if m.type == raft_pb2.MsgSnap:
            sender = self.nodes[m.from_]
            if sender.raw is not None:
                sender.raw.report_snapshot(m.to, True)
        if process:
            self.process_ready(node)
        return m

    def stabilize(self, limit: int = 100_000) -> None:
        """Process readies and deliver messages, in order, until nothing is left."""
        self.process_all_ready()
        n = 0
        while self.queue:
            self.deliver(0)
            n += 1
            if n > limit:
                raise AssertionError("network did not settle")
        self.process_all_ready()

    def tick(self, node_id: int, n: int = 1) -> None:
        """Tick one node ``n`` times, handling its readies."""
        node = self.nodes[node_id]
        for _ in range(n):
            if node.raw is not None:
                node.raw.tick()
                self.process_ready(node)

    def tick_all(self, n: int = 1) -> None:
        """Tick every running node ``n`` times."""
        for _ in range(n):
            for node in self.running():
                node.raw.tick()  # type: ignore[union-attr]
            self.process_all_ready()

    def campaign(self, node_id: int) -> None:
        """Make ``node_id`` campaign and let the network settle."""
        self.nodes[node_id].raw.campaign()  # type: ignore[union-attr]
        self.stabilize()

    def propose(self, node_id: int, data: bytes) -> None:
        """Propose on ``node_id`` and let the network settle."""
        self.nodes[node_id].raw.propose(data)  # type: ignore[union-attr]
        self.stabilize()
