"""The raft state machine: roles as swapped step and tick functions, driven by plain calls.

A ``Raft`` never does I/O and never reads a clock. Time passes through ``tick()``; messages
from peers arrive through ``step()``; everything it wants done (messages to send, entries to
persist and apply) accumulates in ``msgs``, the log and ``read_states`` until ``RawNode``
packs it into a ``Ready``.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from random import Random

from etcd_twisted._pb import raft_pb2
from etcd_twisted.raft import quorum
from etcd_twisted.raft.errors import (
    CompactedError,
    ConfigError,
    ProposalDroppedError,
    SnapshotTemporarilyUnavailableError,
    UnavailableError,
)
from etcd_twisted.raft.log import RaftLog
from etcd_twisted.raft.progress import Progress, ProgressState
from etcd_twisted.raft.quorum import VoteResult
from etcd_twisted.raft.read_only import ReadOnly, ReadState
from etcd_twisted.raft.storage import Storage
from etcd_twisted.raft.tracker import ProgressTracker
from etcd_twisted.raft.util import NO_LIMIT, payload_size, vote_response_type

Message = raft_pb2.Message
Entry = raft_pb2.Entry

#: The context of a MsgVote sent on a leader's request (MsgTimeoutNow); it bypasses the
#: lease check of CheckQuorum.
CAMPAIGN_TRANSFER = b"CampaignTransfer"

_PRE_ELECTION = 0
_ELECTION = 1
_TRANSFER = 2


class StateType(IntEnum):
    """The role of a node."""

    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2
    PRE_CANDIDATE = 3


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state that need not be persisted: who leads, and our role."""

    lead: int
    raft_state: StateType


@dataclass
class Config:
    """The parameters of one raft node.

    ``election_tick`` and ``heartbeat_tick`` count calls to ``tick()``; a follower that hears
    nothing from a leader for a random number of ticks in ``[election_tick, 2 * election_tick)``
    starts an election. ``applied`` is the last index the application applied before a restart.
    ``max_uncommitted_entries_size`` (0: unlimited) bounds the payload bytes a leader accepts
    before they commit. ``random`` is the only source of randomness.
    """

    id: int
    storage: Storage
    election_tick: int = 10
    heartbeat_tick: int = 1
    applied: int = 0
    max_size_per_msg: int = 1024 * 1024
    max_committed_size_per_ready: int = NO_LIMIT
    max_inflight_msgs: int = 256
    max_uncommitted_entries_size: int = 0
    check_quorum: bool = False
    pre_vote: bool = False
    random: Random = field(default_factory=Random)

    def validate(self) -> None:
        """Raise ``ConfigError`` if a parameter is out of range."""
        if self.id == 0:
            raise ConfigError("cannot use 0 as id")
        if self.heartbeat_tick <= 0:
            raise ConfigError("heartbeat tick must be greater than 0")
        if self.election_tick <= self.heartbeat_tick:
            raise ConfigError("election tick must be greater than heartbeat tick")
        if self.max_inflight_msgs <= 0:
            raise ConfigError("max inflight messages must be greater than 0")
        if self.max_uncommitted_entries_size < 0:
            raise ConfigError("max uncommitted entries size must not be negative")


class Raft:
    """One node's raft state machine (see the module docstring)."""

    def __init__(self, config: Config) -> None:
        config.validate()
        self.id = config.id
        self.raft_log = RaftLog(config.storage, config.max_committed_size_per_ready)
        hard_state, conf_state = config.storage.initial_state()
        self.term = 0
        self.vote = 0
        self.max_msg_size = config.max_size_per_msg
        self.max_uncommitted_size = config.max_uncommitted_entries_size or NO_LIMIT
        self.trk = ProgressTracker(config.max_inflight_msgs)
        self.trk.restore(conf_state, self.raft_log.last_index())
        pr = self.trk.progress.get(self.id)
        self.is_learner = pr is not None and pr.is_learner
        #: Messages to send, drained by ``RawNode.ready()``.
        self.msgs: list[Message] = []
        #: Answered read requests, drained by ``RawNode.ready()``.
        self.read_states: list[ReadState] = []
        self.state = StateType.FOLLOWER
        self.lead = 0
        self.lead_transferee = 0
        #: Index of the newest conf change proposed; another is refused until it is applied.
        self.pending_conf_index = 0
        self.uncommitted_size = 0
        self.read_only = ReadOnly()
        self.pending_read_index_messages: list[Message] = []
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.check_quorum = config.check_quorum
        self.pre_vote = config.pre_vote
        self.heartbeat_timeout = config.heartbeat_tick
        self.election_timeout = config.election_tick
        self.randomized_election_timeout = 0
        self._random = config.random
        self._tick: Callable[[], None] = self.tick_election
        self._step: Callable[[Message], None] = self._step_follower
        if hard_state.term or hard_state.vote or hard_state.commit:
            self._load_state(hard_state)
        if config.applied > 0:
            self.raft_log.applied_to(config.applied)
        self.become_follower(self.term, 0)

    # -- state views --------------------------------------------------------------------

    def soft_state(self) -> SoftState:
        """Who leads and our role."""
        return SoftState(self.lead, self.state)

    def hard_state(self) -> raft_pb2.HardState:
        """The state that must be persisted before messages are sent."""
        return raft_pb2.HardState(term=self.term, vote=self.vote, commit=self.raft_log.committed)

    def promotable(self) -> bool:
        """Whether this node may become leader: a voter without a snapshot pending."""
        pr = self.trk.progress.get(self.id)
        return pr is not None and not pr.is_learner and not self.raft_log.has_pending_snapshot()

    def committed_entry_in_current_term(self) -> bool:
        """Whether the leader has committed an entry of its own term (needed before ReadIndex)."""
        return self.raft_log.term_or_zero(self.raft_log.committed) == self.term

    def _load_state(self, hs: raft_pb2.HardState) -> None:
        log = self.raft_log
        if hs.commit < log.committed or hs.commit > log.last_index():
            raise AssertionError(
                f"{self.id} state.commit {hs.commit} is out of range [{log.committed}, {log.last_index()}]"
            )
        log.committed = hs.commit
        self.term = hs.term
        self.vote = hs.vote

    # -- sending -----------------------------------------------------------------------

    def _msg(self, msg_type: int, to: int, **fields: object) -> None:
        self.msgs.append(Message(type=msg_type, to=to, from_=self.id, term=self.term, **fields))

    def send_append(self, to: int) -> None:
        """Send entries (or an empty append carrying the commit index) to ``to``."""
        self.maybe_send_append(to, True)

    def maybe_send_append(self, to: int, send_if_empty: bool) -> bool:
        """Send the next entries to ``to`` unless its progress is paused; whether one was sent.

        Falls back to a snapshot when the entries it needs were compacted.
        """
        pr = self.trk.progress[to]
        if pr.is_paused():
            return False
        log = self.raft_log
        if not send_if_empty and pr.next > log.last_index():
            return False
        prev = pr.next - 1
        try:
            prev_term = log.term(prev)
            ents = log.entries(pr.next, self.max_msg_size)
        except (CompactedError, UnavailableError):
            return self._maybe_send_snapshot(to, pr)
        if not ents and not send_if_empty:
            return False
        self.msgs.append(
            Message(
                type=raft_pb2.MsgApp,
                to=to,
                from_=self.id,
                term=self.term,
                index=prev,
                log_term=prev_term,
                entries=ents,
                commit=log.committed,
            )
        )
        if pr.state == ProgressState.REPLICATE:
            if ents:
                last = ents[-1].index
                pr.optimistic_update(last)
                pr.inflights.add(last)
        else:
            pr.probe_sent = True
        return True

    def _maybe_send_snapshot(self, to: int, pr: Progress) -> bool:
        if not pr.recent_active:
            return False
        try:
            snap = self.raft_log.snapshot()
        except SnapshotTemporarilyUnavailableError:
            return False
        if snap.metadata.index == 0:
            raise AssertionError("need a non-empty snapshot")
        pr.become_snapshot(snap.metadata.index)
        self._msg(raft_pb2.MsgSnap, to, snapshot=snap)
        return True

    def _send_heartbeat(self, to: int, ctx: bytes) -> None:
        # A follower may not have the leader's whole log yet, so it must not commit past
        # what it is known to match.
        commit = min(self.trk.progress[to].match, self.raft_log.committed)
        self._msg(raft_pb2.MsgHeartbeat, to, commit=commit, context=ctx)

    def bcast_append(self) -> None:
        """Send appends to every other node."""
        for node_id, _ in self.trk.visit():
            if node_id != self.id:
                self.maybe_send_append(node_id, True)

    def bcast_heartbeat(self) -> None:
        """Send heartbeats carrying the newest pending read request, if any."""
        self._bcast_heartbeat_with_ctx(self.read_only.last_pending_request_ctx() or b"")

    def _bcast_heartbeat_with_ctx(self, ctx: bytes) -> None:
        for node_id, _ in self.trk.visit():
            if node_id != self.id:
                self._send_heartbeat(node_id, ctx)

    def _send_timeout_now(self, to: int) -> None:
        self._msg(raft_pb2.MsgTimeoutNow, to)

    # -- role changes --------------------------------------------------------------------

    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = 0
        self.lead = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self._reset_randomized_election_timeout()
        self.abort_leader_transfer()
        self.trk.reset_votes()
        last = self.raft_log.last_index()
        max_inflight = self.trk.max_inflight
        for node_id, pr in self.trk.visit():
            fresh = Progress(next=last + 1, max_inflight=max_inflight, is_learner=pr.is_learner)
            if node_id == self.id:
                fresh.match = last
            self.trk.replace_progress(node_id, fresh)
        self.pending_conf_index = 0
        self.uncommitted_size = 0
        self.read_only = ReadOnly()
        self.pending_read_index_messages = []

    def _reset_randomized_election_timeout(self) -> None:
        self.randomized_election_timeout = self.election_timeout + self._random.randrange(
            self.election_timeout
        )

    def become_follower(self, term: int, lead: int) -> None:
        """Follow ``lead`` (0: unknown) at ``term``."""
        self._step = self._step_follower
        self._reset(term)
        self._tick = self.tick_election
        self.lead = lead
        self.state = StateType.FOLLOWER

    def become_candidate(self) -> None:
        """Start an election at the next term, voting for ourselves."""
        if self.state == StateType.LEADER:
            raise AssertionError("invalid transition [leader -> candidate]")
        self._step = self._step_candidate
        self._reset(self.term + 1)
        self._tick = self.tick_election
        self.vote = self.id
        self.state = StateType.CANDIDATE

    def become_pre_candidate(self) -> None:
        """Poll for votes at the next term without changing our term or vote (PreVote)."""
        if self.state == StateType.LEADER:
            raise AssertionError("invalid transition [leader -> pre-candidate]")
        self._step = self._step_candidate
        self.trk.reset_votes()
        self._tick = self.tick_election
        self.lead = 0
        self.state = StateType.PRE_CANDIDATE

    def become_leader(self) -> None:
        """Lead: append an empty entry of our term so that earlier entries can commit."""
        if self.state == StateType.FOLLOWER:
            raise AssertionError("invalid transition [follower -> leader]")
        self._step = self._step_leader
        self._reset(self.term)
        self._tick = self.tick_heartbeat
        self.lead = self.id
        self.state = StateType.LEADER
        own = self.trk.progress.get(self.id)
        if own is not None:
            own.become_replicate()
            own.recent_active = True
        # Conservatively treat any unapplied entry as a possible conf change.
        self.pending_conf_index = self.raft_log.last_index()
        if not self._append_entries([Entry()]):
            raise AssertionError("empty entry was dropped")

    # -- ticks -----------------------------------------------------------------------------

    def tick(self) -> None:
        """Advance logical time by one tick."""
        self._tick()

    def tick_election(self) -> None:
        """The tick of followers and candidates: start an election on timeout."""
        self.election_elapsed += 1
        if self.election_elapsed >= self.randomized_election_timeout and self.promotable():
            self.election_elapsed = 0
            self.hup()

    def tick_heartbeat(self) -> None:
        """The tick of leaders: heartbeats, and the CheckQuorum test once per election timeout."""
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.check_quorum:
                self._check_quorum()
            if self.state == StateType.LEADER and self.lead_transferee:
                self.abort_leader_transfer()
        if self.state != StateType.LEADER:
            return
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self.bcast_heartbeat()

    def _check_quorum(self) -> None:
        own = self.trk.progress.get(self.id)
        if own is not None:
            own.recent_active = True
        if not self.trk.quorum_active():
            self.become_follower(self.term, 0)
        for node_id, pr in self.trk.progress.items():
            if node_id != self.id:
                pr.recent_active = False

    # -- elections -----------------------------------------------------------------------

    def hup(self, transfer: bool = False) -> None:
        """Start an election (a pre-election first when PreVote is on), if allowed."""
        if self.state == StateType.LEADER or not self.promotable():
            return
        if self._has_unapplied_conf_change():
            return
        if transfer:
            self._campaign(_TRANSFER)
        elif self.pre_vote:
            self._campaign(_PRE_ELECTION)
        else:
            self._campaign(_ELECTION)

    def _has_unapplied_conf_change(self) -> bool:
        log = self.raft_log
        if log.committed <= log.applied:
            return False
        ents = log.slice(log.applied + 1, log.committed + 1, NO_LIMIT)
        return any(e.type == raft_pb2.EntryConfChange for e in ents)

    def _campaign(self, kind: int) -> None:
        if kind == _PRE_ELECTION:
            self.become_pre_candidate()
            vote_type = raft_pb2.MsgPreVote
            # PreVote asks for the term we would campaign at, without moving to it.
            term = self.term + 1
        else:
            self.become_candidate()
            vote_type = raft_pb2.MsgVote
            term = self.term
        _, _, result = self._poll(self.id, True)
        if result == VoteResult.WON:
            # A single-voter cluster wins at once.
            if kind == _PRE_ELECTION:
                self._campaign(_ELECTION)
            else:
                self.become_leader()
            return
        ctx = CAMPAIGN_TRANSFER if kind == _TRANSFER else b""
        log = self.raft_log
        last_index = log.last_index()
        last_term = log.last_term()
        for node_id in self.trk.sorted_voters():
            if node_id == self.id:
                continue
            self.msgs.append(
                Message(
                    type=vote_type,
                    to=node_id,
                    from_=self.id,
                    term=term,
                    index=last_index,
                    log_term=last_term,
                    context=ctx,
                )
            )

    def _poll(self, node_id: int, granted: bool) -> tuple[int, int, VoteResult]:
        self.trk.record_vote(node_id, granted)
        return self.trk.tally_votes()

    # -- step ----------------------------------------------------------------------------

    def step(self, m: Message) -> None:
        """Handle a message: the term rules common to all roles, then the role's own step."""
        mt = m.type
        if m.term == 0:
            pass  # a local message or a forwarded proposal/read
        elif m.term > self.term:
            if mt == raft_pb2.MsgVote or mt == raft_pb2.MsgPreVote:
                force = m.context == CAMPAIGN_TRANSFER
                in_lease = (
                    self.check_quorum
                    and self.lead != 0
                    and self.election_elapsed < self.election_timeout
                )
                if not force and in_lease:
                    # We heard from a leader within the election timeout: a node that
                    # was cut off must not disrupt it.
                    return
            if mt == raft_pb2.MsgPreVote or (mt == raft_pb2.MsgPreVoteResp and not m.reject):
                # A pre-vote does not change our term; nor does a granted pre-vote answer,
                # which carries the term the candidate asked for.
                pass
            elif mt in (raft_pb2.MsgApp, raft_pb2.MsgHeartbeat, raft_pb2.MsgSnap):
                self.become_follower(m.term, m.from_)
            else:
                self.become_follower(m.term, 0)
        elif m.term < self.term:
            if (self.check_quorum or self.pre_vote) and mt in (
                raft_pb2.MsgHeartbeat,
                raft_pb2.MsgApp,
            ):
                # A stale leader (e.g. one that was partitioned away) learns our term from
                # this and steps down, instead of being ignored forever.
                self._msg(raft_pb2.MsgAppResp, m.from_)
            elif mt == raft_pb2.MsgPreVote:
                self._msg(raft_pb2.MsgPreVoteResp, m.from_, reject=True)
            return

        if mt == raft_pb2.MsgVote or mt == raft_pb2.MsgPreVote:
            self._handle_vote(m)
        else:
            self._step(m)

    def _handle_vote(self, m: Message) -> None:
        mt = m.type
        can_vote = (
            self.vote == m.from_
            or (self.vote == 0 and self.lead == 0)
            or (mt == raft_pb2.MsgPreVote and m.term > self.term)
        )
        if can_vote and self.raft_log.is_up_to_date(m.index, m.log_term):
            # The response carries the term of the request: for a pre-vote that is the
            # future term, which the pre-candidate counts as a grant.
            self.msgs.append(
                Message(type=vote_response_type(mt), to=m.from_, from_=self.id, term=m.term)
            )
            if mt == raft_pb2.MsgVote:
                self.election_elapsed = 0
                self.vote = m.from_
        else:
            self._msg(vote_response_type(mt), m.from_, reject=True)

    def _step_leader(self, m: Message) -> None:
        mt = m.type
        if mt == raft_pb2.MsgProp:
            self._leader_append_proposal(list(m.entries))
            return
        if mt == raft_pb2.MsgReadIndex:
            self._leader_read_index(m)
            return
        pr = self.trk.progress.get(m.from_)
        if pr is None:
            return
        if mt == raft_pb2.MsgAppResp:
            self._handle_append_response(m, pr)
        elif mt == raft_pb2.MsgHeartbeatResp:
            self._handle_heartbeat_response(m, pr)
        elif mt == raft_pb2.MsgTransferLeader:
            self._handle_transfer_leader(m.from_, pr)

    def _handle_append_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        log = self.raft_log
        if m.reject:
            # The follower told us where its log may match: (reject_hint, log_term). Jump
            # back past every entry of ours with a larger term than that in one step.
            next_probe = m.reject_hint
            if m.log_term > 0:
                next_probe, _ = log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decr_to(m.index, next_probe):
                if pr.state == ProgressState.REPLICATE:
                    pr.become_probe()
                self.send_append(m.from_)
            return
        old_paused = pr.is_paused()
        if not (
            pr.maybe_update(m.index) or (pr.match == m.index and pr.state == ProgressState.PROBE)
        ):
            return
        if pr.state == ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state == ProgressState.SNAPSHOT and pr.match + 1 >= log.first_index():
            # The follower caught up (from the snapshot or otherwise): stream entries again.
            pr.become_probe()
            pr.become_replicate()
        elif pr.state == ProgressState.REPLICATE:
            pr.inflights.free_le(m.index)
        if self.maybe_commit():
            self._release_pending_read_index_messages()
            self.bcast_append()
        elif old_paused:
            # The follower may be missing the latest commit index.
            self.send_append(m.from_)
        while self.maybe_send_append(m.from_, False):
            pass
        if m.from_ == self.lead_transferee and pr.match == log.last_index():
            self._send_timeout_now(m.from_)

    def _handle_heartbeat_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        pr.probe_sent = False
        if pr.state == ProgressState.REPLICATE and pr.inflights.full():
            pr.inflights.free_first_one()
        if pr.match < self.raft_log.last_index():
            self.send_append(m.from_)
        ctx = m.context
        if not ctx:
            return
        read_only = self.read_only
        acks = read_only.recv_ack(m.from_, ctx)
        if acks is None or not quorum.has_quorum(self.trk.voters, acks):
            return
        for req, index in read_only.advance(ctx):
            self._respond_to_read_index(req, index)
        if read_only.round_ctx is None and len(read_only):
            self._start_read_round()

    def _handle_transfer_leader(self, transferee: int, pr: Progress) -> None:
        if pr.is_learner:
            return
        if self.lead_transferee:
            if self.lead_transferee == transferee:
                return
            self.abort_leader_transfer()
        if transferee == self.id:
            return
        # The transfer must finish within one election timeout, or it is aborted.
        self.election_elapsed = 0
        self.lead_transferee = transferee
        if pr.match == self.raft_log.last_index():
            self._send_timeout_now(transferee)
        else:
            self.send_append(transferee)

    def _step_candidate(self, m: Message) -> None:
        mt = m.type
        if self.state == StateType.PRE_CANDIDATE:
            my_resp = raft_pb2.MsgPreVoteResp
        else:
            my_resp = raft_pb2.MsgVoteResp
        if mt == raft_pb2.MsgProp:
            raise ProposalDroppedError("no leader")
        if mt == raft_pb2.MsgApp:
            self.become_follower(m.term, m.from_)
            self._handle_append_entries(m)
        elif mt == raft_pb2.MsgHeartbeat:
            self.become_follower(m.term, m.from_)
            self._handle_heartbeat(m)
        elif mt == raft_pb2.MsgSnap:
            self.become_follower(m.term, m.from_)
            self._handle_snapshot(m)
        elif mt == my_resp:
            _, _, result = self._poll(m.from_, not m.reject)
            if result == VoteResult.WON:
                if self.state == StateType.PRE_CANDIDATE:
                    self._campaign(_ELECTION)
                else:
                    self.become_leader()
                    self.bcast_append()
            elif result == VoteResult.LOST:
                # A pre-candidate that lost goes back to following at its own term.
                self.become_follower(self.term, 0)
        elif mt == raft_pb2.MsgReadIndex and m.from_ in (0, self.id):
            raise ProposalDroppedError("no leader")

    def _step_follower(self, m: Message) -> None:
        mt = m.type
        if mt == raft_pb2.MsgProp:
            if self.lead == 0:
                raise ProposalDroppedError("no leader")
            m.to = self.lead
            self.msgs.append(m)
        elif mt == raft_pb2.MsgApp:
            self.election_elapsed = 0
            self.lead = m.from_
            self._handle_append_entries(m)
        elif mt == raft_pb2.MsgHeartbeat:
            self.election_elapsed = 0
            self.lead = m.from_
            self._handle_heartbeat(m)
        elif mt == raft_pb2.MsgSnap:
            self.election_elapsed = 0
            self.lead = m.from_
            self._handle_snapshot(m)
        elif mt == raft_pb2.MsgTransferLeader:
            if self.lead == 0:
                return
            m.to = self.lead
            m.term = self.term
            self.msgs.append(m)
        elif mt == raft_pb2.MsgTimeoutNow:
            # Leadership transfers skip the pre-vote: the leader asked for this election.
            self.hup(transfer=True)
        elif mt == raft_pb2.MsgReadIndex:
            if self.lead == 0:
                if m.from_ in (0, self.id):
                    raise ProposalDroppedError("no leader")
                return
            m.to = self.lead
            m.from_ = m.from_ or self.id
            self.msgs.append(m)
        elif mt == raft_pb2.MsgReadIndexResp:
            if len(m.entries) == 1:
                self.read_states.append(ReadState(m.index, m.entries[0].data))

    # -- follower handlers ---------------------------------------------------------------

    def _handle_append_entries(self, m: Message) -> None:
        log = self.raft_log
        if m.index < log.committed:
            self._msg(raft_pb2.MsgAppResp, m.from_, index=log.committed)
            return
        last_new = log.maybe_append(m.index, m.log_term, m.commit, list(m.entries))
        if last_new is not None:
            self._msg(raft_pb2.MsgAppResp, m.from_, index=last_new)
            return
        # Reject, with a hint: the last index at or before the probed one whose term is at
        # most the probed term, so the leader can skip the mismatching run in one step.
        hint_index = min(m.index, log.last_index())
        hint_index, hint_term = log.find_conflict_by_term(hint_index, m.log_term)
        self._msg(
            raft_pb2.MsgAppResp,
            m.from_,
            index=m.index,
            reject=True,
            reject_hint=hint_index,
            log_term=hint_term,
        )

    def _handle_heartbeat(self, m: Message) -> None:
        self.raft_log.commit_to(m.commit)
        self._msg(raft_pb2.MsgHeartbeatResp, m.from_, context=m.context)

    def _handle_snapshot(self, m: Message) -> None:
        if self.restore(m.snapshot):
            self._msg(raft_pb2.MsgAppResp, m.from_, index=self.raft_log.last_index())
        else:
            self._msg(raft_pb2.MsgAppResp, m.from_, index=self.raft_log.committed)

    def restore(self, snap: raft_pb2.Snapshot) -> bool:
        """Install a snapshot from the leader; False if it brings nothing new."""
        meta = snap.metadata
        log = self.raft_log
        if meta.index <= log.committed:
            return False
        if self.state != StateType.FOLLOWER:
            # Only a follower receives snapshots; be defensive and step down.
            self.become_follower(self.term + 1, 0)
            return False
        cs = meta.conf_state
        if self.id not in cs.voters and self.id not in cs.learners:
            return False
        if log.match_term(meta.index, meta.term):
            # We already have the snapshot's last entry: just commit up to it.
            log.commit_to(meta.index)
            return False
        log.restore(snap)
        self.trk.restore(cs, log.last_index())
        self._switch_to_config()
        pr = self.trk.progress[self.id]
        pr.maybe_update(pr.next - 1)
        return True

    # -- proposals -----------------------------------------------------------------------

    def propose(self, entries: list[Entry]) -> None:
        """Propose entries: appended if leader, forwarded to the leader if follower."""
        self.step(Message(type=raft_pb2.MsgProp, from_=self.id, entries=entries))

    def propose_data(self, datas: Sequence[bytes]) -> None:
        """Propose normal entries with the given payloads (the fast path for a leader)."""
        if self.state != StateType.LEADER:
            self.propose([Entry(data=d) for d in datas])
            return
        self._check_leader_accepts_proposals()
        log = self.raft_log
        first = log.last_index() + 1
        term = self.term
        ents = [Entry(term=term, index=first + i, data=d) for i, d in enumerate(datas)]
        if not self._append_stamped(ents):
            raise ProposalDroppedError("too many uncommitted entries")
        self.bcast_append()

    def _check_leader_accepts_proposals(self) -> None:
        if self.id not in self.trk.progress:
            raise ProposalDroppedError("this leader was removed from the configuration")
        if self.lead_transferee:
            raise ProposalDroppedError("leadership transfer in progress")

    def _leader_append_proposal(self, ents: list[Entry]) -> None:
        if not ents:
            raise AssertionError("stepped empty MsgProp")
        self._check_leader_accepts_proposals()
        last = self.raft_log.last_index()
        for i, e in enumerate(ents):
            if e.type == raft_pb2.EntryConfChange:
                if self.pending_conf_index > self.raft_log.applied:
                    # One change at a time: an unapplied one is pending, so this one
                    # becomes a no-op (the proposer learns by timing out, as in etcd).
                    ents[i] = Entry()
                else:
                    self.pending_conf_index = last + i + 1
        if not self._append_entries(ents):
            raise ProposalDroppedError("too many uncommitted entries")
        self.bcast_append()

    def _append_entries(self, ents: list[Entry]) -> bool:
        first = self.raft_log.last_index() + 1
        term = self.term
        for i, e in enumerate(ents):
            e.term = term
            e.index = first + i
        return self._append_stamped(ents)

    def _append_stamped(self, ents: list[Entry]) -> bool:
        if self.max_uncommitted_size != NO_LIMIT:
            size = payload_size(ents)
            if (
                self.uncommitted_size > 0
                and size > 0
                and self.uncommitted_size + size > self.max_uncommitted_size
            ):
                return False
            self.uncommitted_size += size
        last = self.raft_log.append(ents)
        self.trk.progress[self.id].maybe_update(last)
        self.maybe_commit()
        return True

    def reduce_uncommitted_size(self, ents: Sequence[Entry]) -> None:
        """Committed entries no longer count against the uncommitted-size limit."""
        if self.uncommitted_size == 0:
            return
        self.uncommitted_size = max(0, self.uncommitted_size - payload_size(ents))

    def maybe_commit(self) -> bool:
        """Advance the commit index to what a quorum has, if that entry is from our term."""
        return self.raft_log.maybe_commit(self.trk.committed(), self.term)

    # -- reads ---------------------------------------------------------------------------

    def _leader_read_index(self, m: Message) -> None:
        if self.trk.is_singleton():
            self._respond_to_read_index(m, self.raft_log.committed)
            return
        if not self.committed_entry_in_current_term():
            # Our commit index may be behind the previous leader's until an entry of our
            # own term commits; answer once it does.
            self.pending_read_index_messages.append(m)
            return
        self._queue_read_index(m)

    def _queue_read_index(self, m: Message) -> None:
        read_only = self.read_only
        if not read_only.add_request(self.raft_log.committed, m):
            return
        read_only.recv_ack(self.id, m.entries[0].data)
        if read_only.round_ctx is None:
            self._start_read_round()

    def _start_read_round(self) -> None:
        ctx = self.read_only.last_pending_request_ctx()
        if ctx is None:
            return
        self.read_only.round_ctx = ctx
        self._bcast_heartbeat_with_ctx(ctx)

    def _release_pending_read_index_messages(self) -> None:
        if not self.pending_read_index_messages or not self.committed_entry_in_current_term():
            return
        pending, self.pending_read_index_messages = self.pending_read_index_messages, []
        for m in pending:
            self._queue_read_index(m)

    def _respond_to_read_index(self, req: Message, index: int) -> None:
        if req.from_ == 0 or req.from_ == self.id:
            self.read_states.append(ReadState(index, req.entries[0].data))
        else:
            self._msg(raft_pb2.MsgReadIndexResp, req.from_, index=index, entries=req.entries)

    def read_index(self, ctx: bytes) -> None:
        """Ask for a read index for ``ctx`` (must be unique); answered by a ``ReadState``."""
        self.step(Message(type=raft_pb2.MsgReadIndex, entries=[Entry(data=ctx)]))

    # -- leadership transfer -------------------------------------------------------------

    def transfer_leader(self, transferee: int) -> None:
        """Ask the leader (this node or, forwarded, ours) to hand leadership to ``transferee``."""
        self.step(Message(type=raft_pb2.MsgTransferLeader, from_=transferee))

    def abort_leader_transfer(self) -> None:
        """Give up a leadership transfer in progress."""
        self.lead_transferee = 0

    # -- reports from the application -------------------------------------------------------

    def report_unreachable(self, node_id: int) -> None:
        """The transport failed to reach ``node_id``: fall back to probing it."""
        if self.state != StateType.LEADER:
            return
        pr = self.trk.progress.get(node_id)
        if pr is not None and pr.state == ProgressState.REPLICATE:
            pr.become_probe()

    def report_snapshot(self, node_id: int, ok: bool) -> None:
        """The transport finished sending a snapshot to ``node_id`` (``ok``) or gave up."""
        if self.state != StateType.LEADER:
            return
        pr = self.trk.progress.get(node_id)
        if pr is None or pr.state != ProgressState.SNAPSHOT:
            return
        if not ok:
            pr.pending_snapshot = 0
        pr.become_probe()
        # Wait for a heartbeat response before probing, to not flood a slow follower.
        pr.probe_sent = True

    # -- configuration ------------------------------------------------------------------------

    def apply_conf_change(self, cc: raft_pb2.ConfChange) -> raft_pb2.ConfState:
        """Apply a committed conf change; returns the new configuration."""
        self.trk.apply_conf_change(cc, self.raft_log.last_index())
        return self._switch_to_config()

    def _switch_to_config(self) -> raft_pb2.ConfState:
        cs = self.trk.conf_state()
        pr = self.trk.progress.get(self.id)
        self.is_learner = pr is not None and pr.is_learner
        if self.state != StateType.LEADER:
            return cs
        if pr is None or self.is_learner:
            # The leader was removed or demoted: step down so that the others elect one.
            self.become_follower(self.term, 0)
            return cs
        # A smaller quorum may commit more; a new node needs its first probe.
        if self.maybe_commit():
            self.bcast_append()
        else:
            for node_id, _ in self.trk.visit():
                if node_id != self.id:
                    self.maybe_send_append(node_id, False)
        if self.lead_transferee and self.lead_transferee not in self.trk.voters:
            self.abort_leader_transfer()
        return cs

    # -- after a Ready ------------------------------------------------------------------------

    def advance(
        self,
        entries: Sequence[Entry],
        committed_entries: Sequence[Entry],
        snapshot: raft_pb2.Snapshot | None,
    ) -> None:
        """The application persisted ``entries``/``snapshot`` and applied ``committed_entries``."""
        log = self.raft_log
        if committed_entries:
            self.reduce_uncommitted_size(committed_entries)
            log.applied_to(committed_entries[-1].index)
        elif snapshot is not None:
            log.applied_to(snapshot.metadata.index)
        if entries:
            e = entries[-1]
            log.stable_to(e.index, e.term)
        if snapshot is not None:
            log.stable_snap_to(snapshot.metadata.index)
