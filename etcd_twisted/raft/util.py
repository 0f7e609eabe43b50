"""Small helpers over entries and message types."""

from collections.abc import Sequence

from etcd_twisted._pb import raft_pb2

#: A size limit meaning "no limit".
NO_LIMIT = (1 << 64) - 1

#: Messages that a node produces for itself and that never travel between nodes.
LOCAL_MESSAGES = frozenset(
    {
        raft_pb2.MsgHup,
        raft_pb2.MsgBeat,
        raft_pb2.MsgUnreachable,
        raft_pb2.MsgSnapStatus,
        raft_pb2.MsgCheckQuorum,
    }
)

#: Messages that answer a request; only accepted from nodes in the configuration.
RESPONSE_MESSAGES = frozenset(
    {
        raft_pb2.MsgAppResp,
        raft_pb2.MsgVoteResp,
        raft_pb2.MsgHeartbeatResp,
        raft_pb2.MsgUnreachable,
        raft_pb2.MsgPreVoteResp,
    }
)


def vote_response_type(msg_type: int) -> int:
    """The response type that answers a MsgVote or MsgPreVote."""
    if msg_type == raft_pb2.MsgVote:
        return raft_pb2.MsgVoteResp
    if msg_type == raft_pb2.MsgPreVote:
        return raft_pb2.MsgPreVoteResp
    raise ValueError(f"not a vote message: {msg_type}")


def limit_size(ents: list[raft_pb2.Entry], max_size: int) -> list[raft_pb2.Entry]:
    """The longest prefix of ``ents`` within ``max_size`` bytes, but never fewer than one entry."""
    if max_size >= NO_LIMIT or len(ents) <= 1:
        return ents
    size = ents[0].ByteSize()
    for n in range(1, len(ents)):
        size += ents[n].ByteSize()
        if size > max_size:
            return ents[:n]
    return ents


def payload_size(ents: Sequence[raft_pb2.Entry]) -> int:
    """The bytes of entry data, the measure used for the uncommitted-size limit."""
    return sum(len(e.data) for e in ents)
