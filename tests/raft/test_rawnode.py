"""RawNode: the Ready / advance contract and the input methods."""

from random import Random

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import raft_pb2
from etcd_twisted.raft import (
    Config,
    ConfigError,
    MemoryStorage,
    Peer,
    ProposalDroppedError,
    RawNode,
    StateType,
    StepLocalMessageError,
    StepPeerNotFoundError,
)
from etcd_twisted.raft.rawnode import conf_changes
from tests.raft.harness import Network, msg, new_storage


def single_node(**kw) -> tuple[RawNode, MemoryStorage]:
    storage = new_storage([1], index=1)
    return RawNode(Config(id=1, storage=storage, random=Random(1), **kw)), storage


def handle(raw: RawNode, storage: MemoryStorage):
    """Persist and advance one Ready; return it."""
    rd = raw.ready()
    if rd.snapshot is not None:
        storage.apply_snapshot(rd.snapshot)
    storage.append(rd.entries)
    if rd.hard_state is not None:
        storage.set_hard_state(rd.hard_state)
    raw.advance(rd)
    return rd


class RawNodeTests(SynchronousTestCase):
    """The application-facing API."""

    def test_ready_then_advance(self) -> None:
        """A Ready carries entries to persist and committed entries; after advance it is empty."""
        raw, storage = single_node()
        raw.campaign()
        self.assertTrue(raw.has_ready())
        rd = handle(raw, storage)
        self.assertEqual(rd.soft_state.raft_state, StateType.LEADER)
        self.assertEqual((rd.hard_state.term, rd.hard_state.vote), (1, 1))
        self.assertTrue(rd.must_sync)
        self.assertEqual([e.index for e in rd.entries], [2])
        self.assertEqual([e.index for e in rd.committed_entries], [2])
        self.assertFalse(raw.has_ready())

    def test_commit_only_change_need_not_sync(self) -> None:
        """A Ready that only moves the commit index does not require fsync."""
        net = Network([1, 2, 3])
        net.campaign(1)
        raw = net.nodes[2].raw
        raw.step(msg(raft_pb2.MsgHeartbeat, 1, 2, term=1, commit=2))
        self.assertFalse(raw.ready().must_sync)

    def test_propose_batch(self) -> None:
        """A batch of proposals becomes consecutive entries in one append per follower."""
        net = Network([1, 2, 3])
        net.campaign(1)
        net.nodes[1].raw.propose_batch([b"a", b"b", b"c"])
        rd = net.nodes[1].raw.ready()
        self.assertEqual([e.data for e in rd.entries], [b"a", b"b", b"c"])
        self.assertEqual([len(m.entries) for m in rd.messages], [3, 3])

    def test_propose_without_leader_is_dropped(self) -> None:
        """A proposal with no leader raises ProposalDroppedError."""
        net = Network([1, 2, 3])
        self.assertRaises(ProposalDroppedError, net.nodes[1].raw.propose, b"x")
        self.assertRaises(ProposalDroppedError, net.nodes[1].raw.read_index, b"r")

    def test_step_rejects_local_messages(self) -> None:
        """Local message types cannot come from the network."""
        raw, _ = single_node()
        self.assertRaises(StepLocalMessageError, raw.step, msg(raft_pb2.MsgHup, 1, 1))

    def test_step_rejects_responses_from_strangers(self) -> None:
        """A response from a node outside the configuration is refused."""
        raw, _ = single_node()
        self.assertRaises(StepPeerNotFoundError, raw.step, msg(raft_pb2.MsgAppResp, 9, 1, term=1))

    def test_forwarded_proposal_drop_is_silent(self) -> None:
        """A proposal forwarded to a node that cannot take it is dropped without error."""
        net = Network([1, 2, 3])
        proposal = msg(raft_pb2.MsgProp, 2, 1, entries=[raft_pb2.Entry(data=b"x")])
        net.nodes[1].raw.step(proposal)
        self.assertFalse(net.nodes[1].raw.has_ready())

    def test_bootstrap(self) -> None:
        """bootstrap() logs one committed AddNode per peer and applies the configuration."""
        storage = MemoryStorage()
        raw = RawNode(Config(id=1, storage=storage, random=Random(1)))
        raw.bootstrap([Peer(1, b"m1"), Peer(2, b"m2")])
        rd = handle(raw, storage)
        ccs = conf_changes(rd.committed_entries)
        self.assertEqual([(c.node_id, c.context) for c in ccs], [(1, b"m1"), (2, b"m2")])
        self.assertEqual(rd.hard_state.commit, 2)
        for cc in ccs:
            cs = raw.apply_conf_change(cc)
        self.assertEqual(list(cs.voters), [1, 2])
        self.assertRaises(ValueError, raw.bootstrap, [Peer(1)])

    def test_restart_from_storage(self) -> None:
        """A node restarted from its storage resumes its term, vote, log and applied index."""
        raw, storage = single_node()
        raw.campaign()
        handle(raw, storage)
        raw.propose(b"x")
        handle(raw, storage)
        again = RawNode(Config(id=1, storage=storage, applied=3, random=Random(2)))
        st = again.status()
        self.assertEqual((st.hard_state.term, st.hard_state.vote, st.hard_state.commit), (1, 1, 3))
        self.assertEqual(st.applied, 3)
        self.assertFalse(again.has_ready())

    def test_max_committed_size_per_ready(self) -> None:
        """Committed entries are handed out in bounded batches."""
        raw, storage = single_node(max_committed_size_per_ready=1)
        raw.campaign()
        handle(raw, storage)
        raw.propose_batch([b"a", b"b", b"c"])
        sizes = []
        while raw.has_ready():
            sizes.append(len(handle(raw, storage).committed_entries))
        self.assertEqual(sizes, [1, 1, 1])

    def test_max_uncommitted_size(self) -> None:
        """A leader refuses proposals beyond the uncommitted-size limit until they commit."""
        net = Network([1, 2, 3], max_uncommitted_entries_size=10)
        net.campaign(1)
        net.partition([1], [2, 3])
        raw = net.nodes[1].raw
        raw.propose(b"0123456789")
        self.assertRaises(ProposalDroppedError, raw.propose, b"more")
        net.heal()
        net.tick(1)
        net.stabilize()
        raw.propose(b"more")

    def test_status_progress_on_leader(self) -> None:
        """status() reports each follower's progress on the leader only."""
        net = Network([1, 2, 3])
        net.campaign(1)
        self.assertEqual(sorted(net.nodes[1].raw.status().progress), [1, 2, 3])
        self.assertEqual(net.nodes[2].raw.status().progress, {})

    def test_report_unreachable_and_snapshot(self) -> None:
        """Transport reports move a follower back to probing."""
        net = Network([1, 2, 3])
        net.campaign(1)
        r = net.raft(1)
        net.nodes[1].raw.report_unreachable(2)
        self.assertEqual(r.trk.progress[2].state.name, "PROBE")
        r.trk.progress[3].become_snapshot(7)
        net.nodes[1].raw.report_snapshot(3, False)
        pr = r.trk.progress[3]
        self.assertEqual((pr.state.name, pr.pending_snapshot, pr.probe_sent), ("PROBE", 0, True))

    def test_config_validation(self) -> None:
        """Invalid parameters are refused."""
        storage = MemoryStorage()
        for bad in (
            {"id": 0},
            {"id": 1, "heartbeat_tick": 0},
            {"id": 1, "election_tick": 1, "heartbeat_tick": 1},
            {"id": 1, "max_inflight_msgs": 0},
        ):
            self.assertRaises(ConfigError, RawNode, Config(storage=storage, **bad))

    def test_removed_leader_steps_down(self) -> None:
        """A leader that applies its own removal steps down so the others can elect."""
        net = Network([1, 2, 3])
        net.campaign(1)
        net.nodes[1].raw.propose_conf_change(
            raft_pb2.ConfChange(type=raft_pb2.ConfChangeRemoveNode, node_id=1)
        )
        net.stabilize()
        self.assertEqual(net.raft(1).state, StateType.FOLLOWER)
        self.assertRaises(ProposalDroppedError, net.nodes[1].raw.propose, b"x")
        for _ in range(30):
            net.tick_all()
            net.stabilize()
        self.assertIn(net.leader(), (2, 3))
