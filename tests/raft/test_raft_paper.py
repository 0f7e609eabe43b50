"""The rules of the Raft paper (sections 5.1 to 5.4), one behaviour per test."""

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import raft_pb2
from etcd_twisted.raft import MemoryStorage, StateType
from etcd_twisted.raft.raft import Raft
from tests.raft.harness import Network, entries, msg, new_raft, take_messages

MsgApp = raft_pb2.MsgApp
MsgAppResp = raft_pb2.MsgAppResp
MsgVote = raft_pb2.MsgVote
MsgVoteResp = raft_pb2.MsgVoteResp
MsgHeartbeat = raft_pb2.MsgHeartbeat


def storage_with(pairs: list[tuple[int, int]], voters=(1, 2, 3)) -> MemoryStorage:
    """A storage holding entries ``(index, term)`` and the given voters."""
    s = MemoryStorage()
    s._snapshot.metadata.conf_state.voters.extend(voters)
    s.append(entries(*pairs))
    return s


def make_leader(r: Raft) -> None:
    """Elect ``r`` without a network and discard the messages that produced."""
    r.become_candidate()
    r.become_leader()
    take_messages(r)


def summary(msgs: list[raft_pb2.Message]) -> list[tuple]:
    """(type, to, term, index, log_term, commit, [entry (index, term)]) per message."""
    return [
        (
            m.type,
            m.to,
            m.term,
            m.index,
            m.log_term,
            m.commit,
            [(e.index, e.term) for e in m.entries],
        )
        for m in msgs
    ]


class TermTests(SynchronousTestCase):
    """Section 5.1: terms."""

    def test_update_term_from_message(self) -> None:
        """A follower, candidate or leader seeing a higher term adopts it and follows."""
        for setup in ("follower", "candidate", "leader"):
            r = new_raft(1)
            if setup == "candidate":
                r.become_candidate()
            elif setup == "leader":
                make_leader(r)
            r.step(msg(MsgApp, 2, 1, term=2))
            self.assertEqual((r.term, r.state), (2, StateType.FOLLOWER), setup)

    def test_reject_stale_term_message(self) -> None:
        """A message from an older term is ignored."""
        r = new_raft(1)
        r._load_state(raft_pb2.HardState(term=2))
        r.step(msg(MsgApp, 2, 1, term=1, commit=5))
        self.assertEqual(r.raft_log.committed, 0)
        self.assertEqual(take_messages(r), [])

    def test_start_as_follower(self) -> None:
        """A node starts as a follower."""
        self.assertEqual(new_raft(1).state, StateType.FOLLOWER)


class ElectionTests(SynchronousTestCase):
    """Section 5.2: leader election."""

    def test_leader_bcast_beat(self) -> None:
        """A leader sends heartbeats to every follower each heartbeat interval."""
        r = new_raft(1, heartbeat=1)
        make_leader(r)
        r.tick()
        got = sorted((m.type, m.to, m.term) for m in take_messages(r))
        self.assertEqual(got, [(MsgHeartbeat, 2, 1), (MsgHeartbeat, 3, 1)])

    def test_start_election_on_timeout(self) -> None:
        """A follower or candidate that hears nothing for an election timeout starts an
        election: next term, votes for itself, asks every peer for its vote."""
        for start_as_candidate in (False, True):
            r = new_raft(1)
            if start_as_candidate:
                r.become_candidate()
            term = r.term
            for _ in range(2 * r.election_timeout):
                r.tick()
            self.assertEqual(r.state, StateType.CANDIDATE)
            self.assertEqual(r.term, term + 1)
            self.assertEqual(r.vote, 1)
            self.assertEqual(r.trk.votes, {1: True})
            got = sorted((m.type, m.to, m.term) for m in take_messages(r) if m.term == r.term)
            self.assertEqual(got, [(MsgVote, 2, r.term), (MsgVote, 3, r.term)])

    def test_leader_election_in_one_round(self) -> None:
        """A candidate wins with a majority of votes, loses with a majority of rejections,
        and otherwise stays a candidate."""
        cases = [
            (1, {}, StateType.LEADER),
            (3, {2: True, 3: True}, StateType.LEADER),
            (3, {2: True}, StateType.LEADER),
            (5, {2: True, 3: True, 4: True, 5: True}, StateType.LEADER),
            (5, {2: True, 3: True}, StateType.LEADER),
            (3, {}, StateType.CANDIDATE),
            (5, {2: True}, StateType.CANDIDATE),
            (5, {2: False, 3: False}, StateType.CANDIDATE),
            (3, {2: False, 3: False}, StateType.FOLLOWER),
            (5, {2: False, 3: False, 4: False}, StateType.FOLLOWER),
        ]
        for size, votes, want in cases:
            r = new_raft(1, voters=range(1, size + 1))
            r.hup()
            for node, granted in votes.items():
                r.step(msg(MsgVoteResp, node, 1, term=r.term, reject=not granted))
            self.assertEqual(r.state, want, (size, votes))
            self.assertEqual(r.term, 1)

    def test_follower_vote(self) -> None:
        """A follower votes for at most one candidate per term, first come first served."""
        cases = [
            (0, 2, False),
            (0, 3, False),
            (2, 2, False),
            (3, 3, False),
            (2, 3, True),
            (3, 2, True),
        ]
        for vote, candidate, rejected in cases:
            r = new_raft(1)
            r._load_state(raft_pb2.HardState(term=1, vote=vote))
            r.step(msg(MsgVote, candidate, 1, term=1))
            (resp,) = take_messages(r)
            self.assertEqual((resp.type, resp.to, resp.reject), (MsgVoteResp, candidate, rejected))

    def test_candidate_fallback(self) -> None:
        """A candidate that hears from a leader of its term or later becomes its follower."""
        for term in (1, 2):
            r = new_raft(1)
            r.hup()
            self.assertEqual(r.state, StateType.CANDIDATE)
            r.step(msg(MsgApp, 2, 1, term=term))
            self.assertEqual((r.state, r.term, r.lead), (StateType.FOLLOWER, term, 2))

    def test_election_timeout_randomized(self) -> None:
        """Election timeouts are spread over [election_tick, 2 * election_tick)."""
        seen = set()
        r = new_raft(1, election=10)
        for i in range(200):
            r.become_follower(r.term + 1, 0)
            ticks = 0
            while r.state == StateType.FOLLOWER:
                r.tick()
                ticks += 1
            seen.add(ticks)
            self.assertTrue(10 <= ticks < 20, (i, ticks))
        self.assertEqual(seen, set(range(10, 20)))

    def test_election_timeouts_rarely_collide(self) -> None:
        """Randomized timeouts make it rare for two followers to time out at the same tick."""
        collisions = 0
        for seed in range(200):
            a = new_raft(1, seed=seed)
            b = new_raft(2, seed=seed)
            ta = a.randomized_election_timeout
            tb = b.randomized_election_timeout
            collisions += ta == tb
        self.assertLess(collisions, 200 * 0.3)

    def test_vote_request_carries_last_log_position(self) -> None:
        """MsgVote carries the candidate's last log index and term."""
        r = new_raft(1, storage=storage_with([(1, 1), (2, 2)]))
        r._load_state(raft_pb2.HardState(term=2))
        r.hup()
        got = sorted((m.to, m.term, m.index, m.log_term) for m in take_messages(r))
        self.assertEqual(got, [(2, 3, 2, 2), (3, 3, 2, 2)])

    def test_voter_requires_up_to_date_log(self) -> None:
        """A vote is granted only if the candidate's log is at least as up to date."""
        cases = [
            ([(1, 1)], 1, 1, False),
            ([(1, 1)], 1, 2, False),
            ([(1, 1), (2, 1)], 1, 1, True),
            ([(1, 1)], 2, 1, False),
            ([(1, 1)], 2, 2, False),
            ([(1, 1), (2, 1)], 2, 1, False),
            ([(1, 2)], 1, 1, True),
            ([(1, 2)], 1, 2, True),
            ([(1, 2), (2, 1)], 1, 1, True),
        ]
        for pairs, log_term, index, rejected in cases:
            r = new_raft(1, storage=storage_with(pairs, voters=(1, 2)))
            r.step(msg(MsgVote, 2, 1, term=3, log_term=log_term, index=index))
            (resp,) = take_messages(r)
            self.assertEqual(
                (resp.type, resp.reject), (MsgVoteResp, rejected), (pairs, log_term, index)
            )


class ReplicationTests(SynchronousTestCase):
    """Section 5.3: log replication."""

    def _leader_with_noop_committed(self) -> Raft:
        r = new_raft(1)
        make_leader(r)
        for f in (2, 3):
            r.step(msg(MsgAppResp, f, 1, term=1, index=1))
        take_messages(r)
        return r

    def test_leader_start_replication(self) -> None:
        """A proposal is appended to the leader's log and sent to every follower in a MsgApp
        naming the preceding entry and the leader's commit index."""
        r = self._leader_with_noop_committed()
        r.propose_data([b"some data"])
        self.assertEqual(r.raft_log.last_index(), 2)
        got = sorted(summary(take_messages(r)))
        self.assertEqual(
            got, [(MsgApp, 2, 1, 1, 1, 1, [(2, 1)]), (MsgApp, 3, 1, 1, 1, 1, [(2, 1)])]
        )

    def test_leader_commit_entry(self) -> None:
        """An entry acknowledged by a majority is committed, applied, and the new commit
        index is sent to the followers."""
        r = self._leader_with_noop_committed()
        r.propose_data([b"x"])
        for m in take_messages(r):
            r.step(msg(MsgAppResp, m.to, 1, term=1, index=m.index + len(m.entries)))
        self.assertEqual(r.raft_log.committed, 2)
        self.assertEqual([e.data for e in r.raft_log.next_ents()], [b"", b"x"])
        commits = sorted((m.to, m.commit) for m in take_messages(r) if m.type == MsgApp)
        self.assertEqual(commits, [(2, 2), (3, 2)])

    def test_leader_acknowledge_commit(self) -> None:
        """The leader commits once the acknowledgements (with its own) form a majority."""
        cases = [
            (1, set(), True),
            (3, set(), False),
            (3, {2}, True),
            (3, {2, 3}, True),
            (5, set(), False),
            (5, {2}, False),
            (5, {2, 3}, True),
            (5, {2, 3, 4, 5}, True),
        ]
        for size, acks, committed in cases:
            r = new_raft(1, voters=range(1, size + 1))
            make_leader(r)
            for f in acks:
                r.step(msg(MsgAppResp, f, 1, term=1, index=1))
            self.assertEqual(r.raft_log.committed == 1, committed, (size, acks))

    def test_leader_commit_preceding_entries(self) -> None:
        """Committing an entry of the current term commits every entry before it."""
        for pairs in ([], [(1, 2)], [(1, 1), (2, 2)], [(1, 1)]):
            storage = storage_with(pairs)
            storage.set_hard_state(raft_pb2.HardState(term=2))
            r = new_raft(1, storage=storage)
            make_leader(r)
            r.propose_data([b"x"])
            last = r.raft_log.last_index()
            for f in (2, 3):
                r.step(msg(MsgAppResp, f, 1, term=3, index=last))
            self.assertEqual(r.raft_log.committed, last, pairs)

    def test_follower_commit_entry(self) -> None:
        """A follower commits up to the leader's commit index, bounded by what it holds."""
        cases = [
            ([(1, 1)], 1),
            ([(1, 1), (2, 1)], 2),
            ([(1, 1), (2, 1)], 1),
            ([(1, 1), (2, 1)], 5),
        ]
        for pairs, commit in cases:
            r = new_raft(1)
            r.become_follower(1, 2)
            r.step(msg(MsgApp, 2, 1, term=1, entries=entries(*pairs), commit=commit))
            self.assertEqual(r.raft_log.committed, min(commit, len(pairs)), (pairs, commit))

    def test_follower_check_msg_app(self) -> None:
        """A follower rejects an append whose preceding entry it does not have, hinting
        where its log could match."""
        storage = storage_with([(1, 1), (2, 2)])
        cases = [
            (0, 0, False, 0, 0),
            (1, 1, False, 0, 0),
            (2, 2, False, 0, 0),
            (1, 2, True, 1, 1),  # index 1 has term 1: hint (1, 1)
            (3, 3, True, 2, 2),  # no index 3: hint at our last, (2, 2)
        ]
        for index, log_term, rejected, hint, hint_term in cases:
            r = new_raft(1, storage=storage)
            r._load_state(raft_pb2.HardState(commit=1))
            r.become_follower(2, 2)
            r.step(msg(MsgApp, 2, 1, term=2, log_term=log_term, index=index))
            (resp,) = take_messages(r)
            self.assertEqual(resp.reject, rejected, (index, log_term))
            if rejected:
                self.assertEqual((resp.reject_hint, resp.log_term), (hint, hint_term))

    def test_follower_append_entries(self) -> None:
        """A follower deletes a conflicting suffix and appends the leader's entries."""
        cases = [
            (2, 2, [(3, 3)], [(1, 1), (2, 2), (3, 3)]),
            (1, 1, [(2, 3), (3, 4)], [(1, 1), (2, 3), (3, 4)]),
            (0, 0, [(1, 1)], [(1, 1), (2, 2)]),
            (0, 0, [(1, 3)], [(1, 3)]),
        ]
        for index, log_term, new, want in cases:
            r = new_raft(1, storage=storage_with([(1, 1), (2, 2)]))
            r.become_follower(2, 2)
            r.step(msg(MsgApp, 2, 1, term=2, log_term=log_term, index=index, entries=entries(*new)))
            got = [(e.index, e.term) for e in r.raft_log.all_entries()]
            self.assertEqual(got, want, (index, log_term, new))

    def test_leader_sync_follower_log(self) -> None:
        """A new leader brings every kind of divergent follower log (Figure 7) to its own."""
        leader_log = [(i + 1, t) for i, t in enumerate([1, 1, 1, 4, 4, 5, 5, 6, 6, 6])]
        followers = [
            [1, 1, 1, 4, 4, 5, 5, 6, 6],
            [1, 1, 1, 4],
            [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
            [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
            [1, 1, 1, 4, 4, 4, 4],
            [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
        ]
        for terms in followers:
            net = Network([1, 2, 3])
            # Replace the logs: the leader's and this follower's; 3 holds an empty log.
            logs = {1: leader_log, 2: [(i + 1, t) for i, t in enumerate(terms)], 3: []}
            for node_id, pairs in logs.items():
                node = net.nodes[node_id]
                node.storage = storage_with(pairs)
                node.storage.set_hard_state(raft_pb2.HardState(term=8))
                node.start()
            # 3 votes for 1 (1's log is longer and newer), so 1 leads at term 9.
            net.campaign(1)
            self.assertEqual(net.leader(), 1)
            net.propose(1, b"sync")
            want = [(e.index, e.term, e.data) for e in net.raft(1).raft_log.all_entries()]
            got = [(e.index, e.term, e.data) for e in net.raft(2).raft_log.all_entries()]
            self.assertEqual(got, want, terms)


class SafetyTests(SynchronousTestCase):
    """Section 5.4: safety."""

    def test_leader_only_commits_log_from_current_term(self) -> None:
        """Acknowledgements of an entry from an earlier term do not commit it; acknowledging
        an entry of the leader's term commits everything before it too."""
        for ack_index, want_commit in ((1, 0), (2, 0), (3, 3)):
            storage = storage_with([(1, 1), (2, 2)])
            storage.set_hard_state(raft_pb2.HardState(term=2))
            r = new_raft(1, storage=storage)
            make_leader(r)  # appends the empty entry 3 at term 3
            r.step(msg(MsgAppResp, 2, 1, term=r.term, index=ack_index))
            self.assertEqual(r.raft_log.committed, want_commit, ack_index)
