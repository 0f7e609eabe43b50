"""``Proposer``: request ids, waiters, the per-turn batch, deadlines and read batching.

A write becomes an ``InternalRaftRequest`` with a fresh id; its Deferred waits under
that id until the applier's answer arrives through :meth:`Proposer.answer`, or its
deadline passes. Everything proposed in one reactor turn goes to raft as one batch
(one append message per follower); without a leader, proposals wait for one. A
linearizable read waits for a batched ReadIndex round (``read_index.py``) and then
runs locally.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from etcd_twisted._pb import raft_pb2
from etcd_twisted._pb.raft_internal_pb2 import InternalRaftRequest
from etcd_twisted.auth import AuthInfo
from etcd_twisted.raft import ProposalDroppedError, ReadState
from etcd_twisted.server.deadlines import Deadlines
from etcd_twisted.server.errors import (
    NoLeaderError,
    RequestTooLargeError,
    StoppedError,
    TooManyRequestsError,
)
from etcd_twisted.server.id_gen import IdGenerator
from etcd_twisted.server.read_index import AppliedIndex, LinearizableReads

#: Refuse new proposals while more than this many committed entries wait to be applied.
MAX_GAP_BETWEEN_APPLY_AND_COMMIT = 5000

T = TypeVar("T")


class RaftInput(Protocol):
    """The raft calls proposals and reads need (``RaftService``)."""

    def propose_batch(self, datas: list[bytes]) -> None: ...
    def propose_conf_change(self, cc: raft_pb2.ConfChange) -> None: ...
    def read_index(self, ctx: bytes) -> None: ...


class Proposer:
    """Proposes requests through raft and answers their waiters (see the module docstring)."""

    def __init__(
        self,
        raft: RaftInput,
        clock: IReactorTime,
        ids: IdGenerator,
        deadlines: Deadlines,
        applied: AppliedIndex,
        max_request_bytes: int,
    ) -> None:
        self._raft = raft
        self._clock = clock
        self.ids = ids
        self.deadlines = deadlines
        self.applied = applied
        self._max_request_bytes = max_request_bytes
        self.reads = LinearizableReads(raft.read_index, applied, clock, ids.next)
        #: The leader as raft last reported it (0: none).
        self.leader_id = 0
        #: The highest committed index handed to the applier.
        self.committed_index = 0
        self._waiters: dict[int, Deferred[Any]] = {}
        #: Proposals waiting for the end of this reactor turn, as (request id, data).
        self._batch: list[tuple[int, bytes]] = []
        self._leader_waiters: list[Deferred[None]] = []
        self._stopped = False

    # --- writes

    def propose(self, req: InternalRaftRequest, auth: AuthInfo | None = None) -> Deferred[Any]:
        """Propose ``req`` (as ``auth``'s user); fires with the applier's answer."""
        if self._stopped:
            raise StoppedError()
        if self.committed_index - self.applied.applied > MAX_GAP_BETWEEN_APPLY_AND_COMMIT:
            raise TooManyRequestsError()
        request_id = req.header.ID = self.ids.next()
        if auth is not None:
            # Who asks, and at which auth revision: the applier checks permissions.
            req.header.username = auth.username
            req.header.auth_revision = auth.revision
        data = req.SerializeToString()
        if len(data) > self._max_request_bytes:
            raise RequestTooLargeError()
        d = self._wait(request_id)
        if self.leader_id:
            self._queue(request_id, data)
        else:
            self.wait_for_leader().addCallback(lambda _: self._queue(request_id, data))
        return d

    def propose_conf_change(self, cc: raft_pb2.ConfChange) -> Deferred[Any]:
        """Propose a membership change; fires when it is applied (or refused)."""
        if self._stopped:
            raise StoppedError()
        d = self._wait(cc.id)
        try:
            self._raft.propose_conf_change(cc)
        except ProposalDroppedError:
            self._waiters.pop(cc.id, None)
            raise NoLeaderError() from None
        return d

    def _wait(self, request_id: int) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self._waiters[request_id] = d
        self.deadlines.add(d)
        d.addBoth(self._forget, request_id)
        return d

    def _forget(self, result: Any, request_id: int) -> Any:
        self._waiters.pop(request_id, None)
        return result

    def _queue(self, request_id: int, data: bytes) -> None:
        self._batch.append((request_id, data))
        if len(self._batch) == 1:
            self._clock.callLater(0, self._flush)

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        live = [(rid, data) for rid, data in batch if rid in self._waiters]
        if not live:
            return
        try:
            self._raft.propose_batch([data for _, data in live])
        except ProposalDroppedError:
            for request_id, _ in live:
                self.answer(request_id, Failure(NoLeaderError()))

    def answer(self, request_id: int, result: Any) -> None:
        """Fire the waiter of ``request_id`` (if any) with a response or a Failure."""
        waiter = self._waiters.pop(request_id, None)
        if waiter is None or waiter.called:
            return
        if isinstance(result, Failure):
            waiter.errback(result)
        else:
            waiter.callback(result)

    # --- reads and waits

    def linearizable(self, read: Callable[[], T]) -> Deferred[T]:
        """Run ``read`` once a ReadIndex round says local state is current."""
        d = self.reads.wait()
        self.deadlines.add(d)
        return d.addCallback(lambda _: read())

    def wait_applied(self, index: int) -> Deferred[None]:
        """Fires once ``index`` is applied here (or fails at the request deadline)."""
        d = self.applied.wait(index)
        self.deadlines.add(d)
        return d

    def wait_for_leader(self) -> Deferred[None]:
        """Fires once raft knows a leader."""
        d: Deferred[None] = Deferred()
        if self.leader_id:
            d.callback(None)
        else:
            self._leader_waiters.append(d)
        return d

    # --- what raft reports

    def leader_changed(self, lead: int) -> None:
        """Raft reported its leader (0: none); proposals waiting for one go now."""
        self.leader_id = lead
        if lead:
            waiters, self._leader_waiters = self._leader_waiters, []
            for d in waiters:
                d.callback(None)

    def on_read_states(self, states: list[ReadState]) -> None:
        """Raft answered ReadIndex requests."""
        self.reads.on_read_states(states)

    def stop(self) -> None:
        """Refuse new proposals and stop asking raft for read indexes (on shutdown)."""
        self._stopped = True
        self.reads.stop()

    def fail_waiting(self) -> None:
        """Fail every request still waiting for its answer (once raft has stopped)."""
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            if not waiter.called:
                waiter.errback(StoppedError())
