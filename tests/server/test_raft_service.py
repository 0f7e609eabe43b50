"""Tests for etcd_twisted.server.raft_service: the Ready loop's order and group commit."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import raft_pb2
from etcd_twisted.raft import Config, MemoryStorage, Peer, RawNode
from etcd_twisted.server.raft_service import RaftService


class Persister:
    """Holds each save until the test says it is durable."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.pending: list[tuple[list[raft_pb2.Entry], Deferred[None]]] = []

    def save(self, hard_state: raft_pb2.HardState, entries: list[raft_pb2.Entry]) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self.log.append(f"save {[e.index for e in entries]}")
        self.pending.append((list(entries), d))
        return d

    def finish(self) -> None:
        entries, d = self.pending.pop(0)
        d.callback(None)


class Applier:
    def __init__(self, node: RawNode, log: list[str]) -> None:
        self.node = node
        self.log = log
        self.leader = 0

    def apply_entries(self, entries: list[raft_pb2.Entry]) -> None:
        for e in entries:
            if e.type == raft_pb2.EntryConfChange:
                self.node.apply_conf_change(raft_pb2.ConfChange.FromString(e.data))
        self.log.append(f"apply {[e.index for e in entries]}")

    def on_soft_state(self, soft: object) -> None:
        self.leader = soft.lead

    def on_read_states(self, states: list) -> None:
        self.log.append(f"read {[s.index for s in states]}")

    def after_ready(self) -> None:
        pass


class RaftServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.log: list[str] = []
        storage = MemoryStorage()
        self.node = RawNode(Config(id=1, storage=storage, election_tick=10))
        self.node.bootstrap([Peer(1)])
        self.persister = Persister(self.log)
        self.applier = Applier(self.node, self.log)
        self.failures: list[Failure] = []
        self.service = RaftService(
            self.node, storage, self.persister, self.applier, self.clock, 0.1,
            on_fatal=self.failures.append,
        )  # fmt: skip
        self.service.startService()
        self.clock.advance(0)  # first Ready: the bootstrap entry
        self.persister.finish()

    def elect(self) -> None:
        self.service.campaign()
        self.clock.advance(0)
        while self.persister.pending:
            self.persister.finish()
            self.clock.advance(0)
        self.assertEqual(self.applier.leader, 1)

    def test_apply_waits_for_persist(self) -> None:
        """Committed entries are applied only after their Ready is durable."""
        self.elect()
        self.log.clear()
        self.service.propose(b"x")
        self.clock.advance(0)
        self.assertEqual(self.log, ["save [3]"])  # committed already (alone), but not applied
        self.persister.finish()
        self.assertEqual(self.log[-1], "apply [3]")
        self.assertLess(self.log.index("save [3]"), self.log.index("apply [3]"))

    def test_proposals_during_a_write_share_the_next_one(self) -> None:
        """Proposals arriving while a write is on disk go out together in one write."""
        self.elect()
        self.log.clear()
        self.service.propose(b"first")
        self.clock.advance(0)
        for i in range(20):
            self.service.propose(b"%d" % i)
        self.clock.advance(0)
        self.assertEqual(self.log, ["save [3]"])  # nothing else until the write is durable
        self.persister.finish()
        self.clock.advance(0)
        saves = [line for line in self.log if line.startswith("save")]
        self.assertEqual(saves[-1], f"save {list(range(4, 24))}")

    def test_failed_write_stops_the_loop(self) -> None:
        """A failed WAL write is fatal: nothing is applied after it and the loop stops."""
        self.elect()
        self.service.propose(b"x")
        self.clock.advance(0)
        _, d = self.persister.pending.pop(0)
        d.errback(OSError("disk on fire"))
        self.assertEqual(len(self.failures), 1)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.service.propose(b"y")
        self.clock.advance(0)
        self.assertEqual(self.persister.pending, [])

    def test_failed_apply_stops_the_loop(self) -> None:
        """An error while handling a durable Ready is fatal too, not left unhandled."""
        self.elect()

        def broken(entries: list) -> None:
            raise RuntimeError("apply broke")

        self.applier.apply_entries = broken  # type: ignore[method-assign]
        self.service.propose(b"x")
        self.clock.advance(0)
        self.persister.finish()
        self.assertEqual(len(self.failures), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.service.propose(b"y")
        self.clock.advance(0)
        self.assertEqual(self.persister.pending, [])

    def test_ticks_drive_heartbeats_and_elections(self) -> None:
        """The LoopingCall ticks raft at the heartbeat interval."""
        node_ticks = []
        original = self.node.tick
        self.node.tick = lambda: (node_ticks.append(1), original())[1]
        self.clock.pump([0.1, 0.1, 0.1, 0.05])
        self.assertEqual(len(node_ticks), 3)

    def test_stop_waits_for_the_write_in_flight(self) -> None:
        """stopService fires only once the Ready being handled is done."""
        self.elect()
        self.service.propose(b"x")
        self.clock.advance(0)
        stopped = self.service.stopService()
        self.assertFalse(stopped.called)
        self.persister.finish()
        self.assertTrue(stopped.called)
