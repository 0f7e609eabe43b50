"""Majority arithmetic."""

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.raft import NO_LIMIT
from etcd_twisted.raft.quorum import VoteResult, committed_index, has_quorum, vote_result


class QuorumTests(SynchronousTestCase):
    """Committed index and vote outcomes."""

    def test_committed_index(self) -> None:
        """The committed index is the highest index a majority has reached."""
        self.assertEqual(committed_index([7]), 7)
        self.assertEqual(committed_index([5, 3, 9]), 5)
        self.assertEqual(committed_index([5, 0, 0]), 0)
        self.assertEqual(committed_index([4, 3, 2, 1]), 2)
        self.assertEqual(committed_index([5, 5, 1, 0, 0]), 1)
        self.assertEqual(committed_index([]), NO_LIMIT)

    def test_vote_result(self) -> None:
        """Won with a majority of grants, lost when a majority is out of reach."""
        voters = {1, 2, 3}
        self.assertEqual(vote_result(voters, {1: True}), VoteResult.PENDING)
        self.assertEqual(vote_result(voters, {1: True, 2: True}), VoteResult.WON)
        self.assertEqual(vote_result(voters, {1: True, 2: False}), VoteResult.PENDING)
        self.assertEqual(vote_result(voters, {2: False, 3: False}), VoteResult.LOST)
        self.assertEqual(vote_result(voters, {4: True, 5: True}), VoteResult.PENDING)
        self.assertEqual(vote_result(set(), {}), VoteResult.WON)

    def test_has_quorum(self) -> None:
        """Only ids that are voters count."""
        self.assertTrue(has_quorum({1, 2, 3}, {1, 2}))
        self.assertFalse(has_quorum({1, 2, 3}, {1, 4, 5}))
