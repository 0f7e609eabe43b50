"""Linearizable reads, batched: one ReadIndex round serves every read that arrived before it.

A read registers and waits. If no round is in flight, a round starts: every read
waiting so far joins it, and raft is asked for a read index tagged with a fresh
context. When raft answers with that context, the round waits until the applied
index reaches the answered index, then releases its reads; reads that arrived in
the meantime form the next round. A round raft does not answer in time (the
leader changed, a message was lost) is asked again with a new context.
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Callable
from itertools import count

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from etcd_twisted.raft import ReadState

#: How long a round waits for raft's answer before it asks again (etcd: 500 ms).
RETRY_INTERVAL = 0.5

_CTX = struct.Struct(">Q")


class AppliedIndex:
    """The applied index, and Deferreds waiting for it to reach a value."""

    def __init__(self, applied: int = 0) -> None:
        self.applied = applied
        self._waiters: list[tuple[int, int, Deferred[None]]] = []
        self._order = count()

    def wait(self, index: int) -> Deferred[None]:
        """Fires once the applied index is at least ``index``."""
        d: Deferred[None] = Deferred()
        if index <= self.applied:
            d.callback(None)
        else:
            heapq.heappush(self._waiters, (index, next(self._order), d))
        return d

    def advance(self, applied: int) -> None:
        """Record that everything up to ``applied`` is applied; release waiters."""
        self.applied = applied
        waiters = self._waiters
        while waiters and waiters[0][0] <= applied:
            _, _, d = heapq.heappop(waiters)
            d.callback(None)


class LinearizableReads:
    """Batches linearizable reads into ReadIndex rounds."""

    def __init__(
        self,
        request_read_index: Callable[[bytes], None],
        applied: AppliedIndex,
        clock: IReactorTime,
        next_id: Callable[[], int],
    ) -> None:
        self._request = request_read_index
        self._applied = applied
        self._clock = clock
        self._next_id = next_id
        self._waiting: list[Deferred[None]] = []
        self._round: list[Deferred[None]] | None = None
        self._ctx = b""
        self._retry: IDelayedCall | None = None
        #: ReadIndex rounds started (for tests and metrics).
        self.rounds = 0

    def wait(self) -> Deferred[None]:
        """Fires when a read that starts now may be served from local state."""
        d: Deferred[None] = Deferred(lambda d: self._forget(d))
        self._waiting.append(d)
        if self._round is None:
            self._start_round()
        return d

    def _forget(self, d: Deferred[None]) -> None:
        if d in self._waiting:
            self._waiting.remove(d)

    def _start_round(self) -> None:
        self._round, self._waiting = self._waiting, []
        self.rounds += 1
        self._ask()

    def _ask(self) -> None:
        self._ctx = _CTX.pack(self._next_id())
        self._retry = self._clock.callLater(RETRY_INTERVAL, self._ask)
        try:
            self._request(self._ctx)
        except Exception:  # noqa: BLE001 - no leader yet: the retry asks again
            pass

    def on_read_states(self, states: list[ReadState]) -> None:
        """Raft answered read-index requests; finish the round whose context matches."""
        for state in states:
            if self._round is not None and state.request_ctx == self._ctx:
                if self._retry is not None and self._retry.active():
                    self._retry.cancel()
                self._retry = None
                round_, self._round = self._round, None
                self._applied.wait(state.index).addCallback(self._release, round_)

    def _release(self, _: None, round_: list[Deferred[None]]) -> None:
        for d in round_:
            if not d.called:
                d.callback(None)
        if self._waiting and self._round is None:
            self._start_round()

    def stop(self) -> None:
        """Stop asking raft (on shutdown); waiting reads are left to their timeouts."""
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
