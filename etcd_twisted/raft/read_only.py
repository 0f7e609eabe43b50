"""Linearizable reads by ReadIndex: pending requests and the heartbeat rounds that confirm them."""

from dataclasses import dataclass, field

from etcd_twisted._pb import raft_pb2


@dataclass(frozen=True, slots=True)
class ReadState:
    """A read request answered: it may be served once the applied index reaches ``index``."""

    index: int
    request_ctx: bytes


@dataclass(slots=True)
class _ReadIndexStatus:
    req: raft_pb2.Message
    index: int
    acks: set[int] = field(default_factory=set)


class ReadOnly:
    """The leader's queue of ReadIndex requests waiting for a quorum to confirm its leadership.

    A request is released by a heartbeat round that started after it arrived and that a
    quorum acknowledged. At most one round is kept in flight: requests arriving meanwhile wait
    and are all confirmed by the next round, so a burst of reads costs one round, not one each.
    """

    __slots__ = ("_pending", "_queue", "round_ctx")

    def __init__(self) -> None:
        self._pending: dict[bytes, _ReadIndexStatus] = {}
        self._queue: list[bytes] = []
        #: The context carried by the heartbeat round in flight, if any.
        self.round_ctx: bytes | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def add_request(self, index: int, req: raft_pb2.Message) -> bool:
        """Queue a request (its context is ``req.entries[0].data``); False if a duplicate."""
        ctx = req.entries[0].data
        if ctx in self._pending:
            return False
        self._pending[ctx] = _ReadIndexStatus(req, index)
        self._queue.append(ctx)
        return True

    def recv_ack(self, node_id: int, ctx: bytes) -> set[int] | None:
        """Record that ``node_id`` acknowledged the round carrying ``ctx``; the acks so far."""
        rs = self._pending.get(ctx)
        if rs is None:
            return None
        rs.acks.add(node_id)
        return rs.acks

    def advance(self, ctx: bytes) -> list[tuple[raft_pb2.Message, int]]:
        """Release every request up to and including ``ctx``: (request, read index) pairs."""
        try:
            n = self._queue.index(ctx) + 1
        except ValueError:
            return []
        released = self._queue[:n]
        del self._queue[:n]
        out = []
        for c in released:
            rs = self._pending.pop(c)
            out.append((rs.req, rs.index))
        if self.round_ctx is not None and self.round_ctx not in self._pending:
            self.round_ctx = None
        return out

    def last_pending_request_ctx(self) -> bytes | None:
        """The context of the newest pending request."""
        return self._queue[-1] if self._queue else None
