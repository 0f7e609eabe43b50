"""The configuration (voters, learners) and the leader's per-node progress and votes."""

from etcd_twisted._pb import raft_pb2
from etcd_twisted.raft import quorum
from etcd_twisted.raft.errors import ConfChangeError
from etcd_twisted.raft.progress import Progress
from etcd_twisted.raft.quorum import VoteResult


class ProgressTracker:
    """Voters and learners, a ``Progress`` for each, and the votes of the current election.

    Configuration changes are applied one at a time (no joint consensus): each change adds,
    removes, promotes or demotes a single node.
    """

    __slots__ = ("voters", "learners", "progress", "votes", "max_inflight", "_ids")

    def __init__(self, max_inflight: int) -> None:
        self.voters: set[int] = set()
        self.learners: set[int] = set()
        self.progress: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}
        self.max_inflight = max_inflight
        self._ids: list[tuple[int, Progress]] = []

    def conf_state(self) -> raft_pb2.ConfState:
        """The configuration as a ``ConfState``."""
        return raft_pb2.ConfState(voters=sorted(self.voters), learners=sorted(self.learners))

    def is_singleton(self) -> bool:
        """Whether there is exactly one voter."""
        return len(self.voters) == 1

    def sorted_voters(self) -> list[int]:
        """Voter ids in increasing order."""
        return sorted(self.voters)

    def visit(self) -> list[tuple[int, Progress]]:
        """Every (id, progress), in increasing id order so that message order is deterministic."""
        return self._ids

    def replace_progress(self, node_id: int, pr: Progress) -> None:
        """Swap in a fresh ``Progress`` for a node already tracked."""
        self.progress[node_id] = pr
        self._changed()

    def _changed(self) -> None:
        progress = self.progress
        self._ids = [(i, progress[i]) for i in sorted(progress)]

    def committed(self) -> int:
        """The largest index that a majority of voters has."""
        progress = self.progress
        return quorum.committed_index([progress[v].match for v in self.voters])

    def quorum_active(self) -> bool:
        """Whether a majority of voters was recently heard from."""
        progress = self.progress
        return quorum.has_quorum(
            self.voters, [v for v in self.voters if v in progress and progress[v].recent_active]
        )

    def reset_votes(self) -> None:
        """Forget the votes of the last election."""
        self.votes = {}

    def record_vote(self, node_id: int, granted: bool) -> None:
        """Record a node's vote (only its first vote counts)."""
        self.votes.setdefault(node_id, granted)

    def tally_votes(self) -> tuple[int, int, VoteResult]:
        """Granted and rejected votes among voters, and the result."""
        granted = rejected = 0
        for node_id, vote in self.votes.items():
            if node_id in self.voters:
                if vote:
                    granted += 1
                else:
                    rejected += 1
        return granted, rejected, quorum.vote_result(self.voters, self.votes)

    def restore(self, conf_state: raft_pb2.ConfState, last_index: int) -> None:
        """Build the configuration of ``conf_state`` from scratch."""
        self.voters.clear()
        self.learners.clear()
        self.progress.clear()
        for v in conf_state.voters:
            self._make_voter(v, last_index)
        for learner in conf_state.learners:
            self._make_learner(learner, last_index)
        self._changed()

    def apply_conf_change(self, cc: raft_pb2.ConfChange, last_index: int) -> None:
        """Apply one membership change; ``last_index`` seeds the progress of a new node.

        A change with node id 0 is ignored: the application uses it to refuse a change.
        """
        node_id = cc.node_id
        if node_id == 0:
            return
        if cc.type == raft_pb2.ConfChangeAddNode:
            self._make_voter(node_id, last_index)
        elif cc.type == raft_pb2.ConfChangeAddLearnerNode:
            if self.voters == {node_id}:
                raise ConfChangeError("cannot demote the last voter")
            self._make_learner(node_id, last_index)
        elif cc.type == raft_pb2.ConfChangeRemoveNode:
            if self.voters == {node_id}:
                raise ConfChangeError("removed all voters")
            self.voters.discard(node_id)
            self.learners.discard(node_id)
            self.progress.pop(node_id, None)
        elif cc.type != raft_pb2.ConfChangeUpdateNode:
            raise ConfChangeError(f"unknown conf change type {cc.type}")
        self._changed()

    def _make_voter(self, node_id: int, last_index: int) -> None:
        pr = self.progress.get(node_id)
        if pr is None:
            self._init_progress(node_id, last_index, is_learner=False)
            return
        pr.is_learner = False
        self.learners.discard(node_id)
        self.voters.add(node_id)

    def _make_learner(self, node_id: int, last_index: int) -> None:
        pr = self.progress.get(node_id)
        if pr is None:
            self._init_progress(node_id, last_index, is_learner=True)
            return
        if pr.is_learner:
            return
        self.voters.discard(node_id)
        self.learners.add(node_id)
        pr.is_learner = True

    def _init_progress(self, node_id: int, last_index: int, is_learner: bool) -> None:
        # A new node counts as recently active so that a CheckQuorum right after the change
        # does not make the leader step down before the node had a chance to answer.
        self.progress[node_id] = Progress(
            next=max(last_index, 1),
            max_inflight=self.max_inflight,
            is_learner=is_learner,
            recent_active=True,
        )
        (self.learners if is_learner else self.voters).add(node_id)
