"""Random schedules on 3 and 5 nodes (hypothesis): ticks, proposals, reads, message drops,
duplicates and reordering, partitions, crashes and restarts from storage, compactions.

After every step the safety properties of Raft are checked: at most one leader per term,
log matching, leader completeness, state-machine safety, and that a read index is never
behind an entry committed before the read was asked. After each schedule the network
heals and the cluster must elect a leader and commit a new entry everywhere.

``RAFT_HYPOTHESIS_EXAMPLES`` scales the number of schedules (default: 500 per size).
"""

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.raft import MemoryStorage, ProposalDroppedError, StateType
from tests.raft.harness import Network, Node

EXAMPLES = int(os.environ.get("RAFT_HYPOTHESIS_EXAMPLES", "500"))

#: How many schedules ran in this process, per cluster size.
SCHEDULES_RUN = {3: 0, 5: 0}


#: Operation kinds, repeated to weight the everyday ones over the faults.
_KINDS = (
    ["tick_all"] * 8
    + ["propose"] * 6
    + ["deliver"] * 6
    + ["deliver_all"] * 4
    + ["tick", "tick", "read", "read"]
    + ["drop", "duplicate", "partition", "heal", "crash", "restart", "compact"]
)


def _ops(n: int) -> st.SearchStrategy:
    """(kind, node or count, another number); ``Checker.run`` reads them per kind."""
    return st.tuples(st.sampled_from(_KINDS), st.integers(1, n), st.integers(0, 30))


def _schedules(n: int) -> st.SearchStrategy:
    return st.fixed_dictionaries(
        {
            "pre_vote": st.booleans(),
            "check_quorum": st.booleans(),
            "drop_rate": st.sampled_from([0.0, 0.0, 0.05, 0.2]),
            "dup_rate": st.sampled_from([0.0, 0.0, 0.1]),
            "seed": st.integers(0, 2**16),
            "ops": st.lists(_ops(n), min_size=60, max_size=250),
        }
    )


class Checker:
    """Runs a schedule on a ``Network`` and checks the safety properties as it goes."""

    def __init__(self, net: Network) -> None:
        self.net = net
        #: index -> (term, data) of every entry any node applied.
        self.applied: dict[int, tuple[int, bytes]] = {}
        #: read ctx -> the highest commit index known anywhere when the read was asked.
        self.reads: dict[bytes, int] = {}
        self.read_seq = 0
        self.prop_seq = 0
        self.leader_terms: set[tuple[int, int]] = set()

    # -- properties ----------------------------------------------------------------------

    def check(self) -> None:
        """Check every property against the current state."""
        for node in self.net.nodes.values():
            for index, entry in node.applied.items():
                have = self.applied.setdefault(index, entry)
                assert have == entry, f"node {node.id} applied {entry} at {index}, others {have}"
            for index, ctx in node.read_states:
                assert index >= self.reads[ctx], f"stale read {ctx!r}: {index} < {self.reads[ctx]}"
            node.read_states.clear()
        for node in self.net.running():
            r = node.raft
            if r.state == StateType.LEADER and (r.term, node.id) not in self.leader_terms:
                prev = self.net.leaders.setdefault(r.term, node.id)
                assert prev == node.id, f"two leaders in term {r.term}: {prev}, {node.id}"
                self.leader_terms.add((r.term, node.id))
                self._check_leader_complete(node)
        self._check_log_matching()

    def _check_leader_complete(self, node: Node) -> None:
        log = node.raft.raft_log
        first = log.first_index()
        for index, (term, _) in self.applied.items():
            if index >= first:
                assert log.term(index) == term, f"leader {node.id} lacks committed entry {index}"

    def _logs(self) -> dict[int, dict[int, tuple[int, bytes]]]:
        logs = {}
        for node in self.net.running():
            log = node.raft.raft_log
            logs[node.id] = {e.index: (e.term, e.data) for e in log.all_entries()}
        return logs

    def _check_log_matching(self) -> None:
        logs = self._logs()
        ids = sorted(logs)
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                la, lb = logs[a], logs[b]
                common = sorted(set(la) & set(lb), reverse=True)
                matched = False
                for index in common:
                    if la[index][0] == lb[index][0]:
                        matched = True
                    if matched:
                        assert la[index] == lb[index], f"logs of {a} and {b} differ at {index}"

    def max_commit(self) -> int:
        """The highest commit index any running node knows."""
        return max((n.raft.raft_log.committed for n in self.net.running()), default=0)

    # -- operations ----------------------------------------------------------------------

    def run(self, op: tuple) -> None:
        """Apply one operation of a schedule."""
        net = self.net
        kind, node_id, k = op
        if kind == "tick":
            net.tick(node_id, 1 + k % 10)
        elif kind == "tick_all":
            net.tick_all(1 + k % 6)
        elif kind == "propose":
            self._propose(node_id)
        elif kind == "read":
            self._read(node_id)
        elif kind == "deliver":
            for _ in range(1 + k % 20):
                if not net.queue:
                    break
                net.deliver((k * node_id) % len(net.queue))
        elif kind == "deliver_all":
            while net.queue:
                net.deliver(0)
        elif kind == "drop" and net.queue:
            net.drop(k % len(net.queue))
        elif kind == "duplicate" and net.queue:
            m = net.queue[k % len(net.queue)]
            dup = type(m)()
            dup.CopyFrom(m)
            net.queue.append(dup)
        elif kind == "partition":
            # The bits of k pick one side (never everyone).
            side = {i for i in net.nodes if (k + node_id) >> (i - 1) & 1} or {node_id}
            if side == set(net.nodes):
                side = {node_id}
            net.partition(side, set(net.nodes) - side)
        elif kind == "heal":
            net.groups = None
        elif kind == "crash":
            net.crash(node_id)
        elif kind == "restart":
            net.restart(node_id)
        elif kind == "compact":
            self._compact(net.nodes[node_id])
        net.process_all_ready()
        self.check()

    def _read(self, node_id: int) -> None:
        raw = self.net.nodes[node_id].raw
        if raw is None:
            return
        self.read_seq += 1
        ctx = b"read-%d" % self.read_seq
        self.reads[ctx] = self.max_commit()
        try:
            raw.read_index(ctx)
        except ProposalDroppedError:
            pass

    def _propose(self, node_id: int) -> bool:
        raw = self.net.nodes[node_id].raw
        if raw is None:
            return False
        self.prop_seq += 1
        try:
            raw.propose(b"p%d" % self.prop_seq)
        except ProposalDroppedError:
            return False
        return True

    def _compact(self, node: Node) -> None:
        index = node.applied_index
        storage = node.storage
        if node.raw is None or index < storage.first_index():
            return
        # A snapshot at this index may already exist (taken on demand for a follower).
        if index > MemoryStorage.snapshot(storage).metadata.index:
            storage.create_snapshot(index, node.conf_state, b"")
        storage.compact(index)

    def converge(self) -> None:
        """Heal everything and require a new entry to commit and apply on every node.

        The entry is proposed again if a leader change loses it before it commits.
        """
        net = self.net
        net.heal()
        for node_id in net.nodes:
            net.restart(node_id)
        target: tuple[int, int, bytes] | None = None
        for _ in range(200):
            net.stabilize()
            self.check()
            leader = net.leader()
            if leader and net.raft(leader).committed_entry_in_current_term():
                log = net.raft(leader).raft_log
                if target is None or log.term_or_zero(target[0]) != target[1]:
                    self.prop_seq += 1
                    data = b"final-%d" % self.prop_seq
                    net.nodes[leader].raw.propose(data)  # type: ignore[union-attr]
                    target = (log.last_index(), net.raft(leader).term, data)
                    continue
                index, term, data = target
                # A node may get the entry in a snapshot rather than apply it, so look at
                # applied indexes; state-machine safety makes the entry the same everywhere.
                if self.applied.get(index) == (term, data) and all(
                    n.applied_index >= index for n in net.nodes.values()
                ):
                    return
            net.tick_all()
        raise AssertionError(f"no progress after healing: {target}")


def _run_schedule(n: int, schedule: dict) -> None:
    net = Network(
        list(range(1, n + 1)),
        seed=schedule["seed"],
        pre_vote=schedule["pre_vote"],
        check_quorum=schedule["check_quorum"],
        election_tick=5,
        max_size_per_msg=256,
        max_inflight_msgs=4,
    )
    net.drop_rate = schedule["drop_rate"]
    net.dup_rate = schedule["dup_rate"]
    checker = Checker(net)
    for op in schedule["ops"]:
        checker.run(op)
    checker.converge()
    SCHEDULES_RUN[n] += 1


_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class RandomScheduleTests(SynchronousTestCase):
    """Safety under random faults, and liveness once they stop."""

    @_SETTINGS
    @given(_schedules(3))
    def test_three_nodes(self, schedule: dict) -> None:
        """Three nodes stay safe under any schedule and make progress after healing."""
        _run_schedule(3, schedule)

    @_SETTINGS
    @given(_schedules(5))
    def test_five_nodes(self, schedule: dict) -> None:
        """Five nodes stay safe under any schedule and make progress after healing."""
        _run_schedule(5, schedule)
