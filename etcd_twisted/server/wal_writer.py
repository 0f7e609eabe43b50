"""Runs WAL writes and fdatasyncs on one dedicated thread, off the reactor, in order.

``save(hard_state, entries)`` returns a Deferred that fires (on the reactor
thread) once the batch is on disk. Saves queued while the thread is busy in a
write+fdatasync are merged into the next single ``WAL.save``: one sync serves
them all (group commit). ``call(fn, *args)`` runs any other WAL work
(``save_snapshot``, ``release_lock_to``, a backend ``sync``) in the same order.

The thread owns the WAL while the service runs: touch it only through
``save``/``call``. Entries handed to ``save`` must not be mutated afterwards.
After a write fails, every queued and later operation fails with the same
error: the WAL's state is unknown, and the member must stop (etcd panics).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import Logger
from twisted.python.failure import Failure

from etcd_twisted import failpoints
from etcd_twisted._pb import raft_pb2

__all__ = ["WALWriter"]

log = Logger()


class _Saver(Protocol):
    def save(self, hard_state: raft_pb2.HardState, entries: Sequence[raft_pb2.Entry]) -> None: ...


@dataclass
class _Save:
    hard_state: raft_pb2.HardState
    entries: list[raft_pb2.Entry]
    waiters: list[Deferred[None]] = field(default_factory=list)

    def absorb(self, other: _Save) -> None:
        self.entries.extend(other.entries)
        if other.hard_state.term or other.hard_state.vote or other.hard_state.commit:
            self.hard_state = other.hard_state
        self.waiters.extend(other.waiters)


@dataclass
class _Call:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    waiter: Deferred[Any]


class WALWriter(Service):
    """A service owning one writer thread for a WAL."""

    name = "wal-writer"

    def __init__(self, wal: _Saver, reactor: IReactorFromThreads) -> None:
        self._wal = wal
        self._reactor = reactor
        self._cond = threading.Condition()
        self._queue: deque[_Save | _Call] = deque()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._stopped: Deferred[None] | None = None
        self._failure: Failure | None = None
        #: ``WAL.save`` calls made so far (each at most one fdatasync).
        self.writes = 0

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="wal-writer", daemon=True)
        self._thread.start()

    def stopService(self) -> Deferred[None]:
        """Finish everything queued, then end the thread."""
        super().stopService()
        stopped: Deferred[None] = Deferred()
        with self._cond:
            if self._thread is None:
                stopped.callback(None)
                return stopped
            self._stopped = stopped
            self._stopping = True
            self._cond.notify()
        return stopped

    def save(
        self, hard_state: raft_pb2.HardState, entries: Sequence[raft_pb2.Entry]
    ) -> Deferred[None]:
        """Queue a batch; the Deferred fires when it is durable."""
        d: Deferred[None] = Deferred()
        self._submit(_Save(hard_state, list(entries), [d]), d)
        return d

    def call(self, fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """Run ``fn(*args)`` on the writer thread after everything queued before it."""
        d: Deferred[Any] = Deferred()
        self._submit(_Call(fn, args, d), d)
        return d

    def _submit(self, op: _Save | _Call, d: Deferred[Any]) -> None:
        with self._cond:
            if self._thread is None or self._stopping:
                d.errback(RuntimeError("WAL writer is not running"))
                return
            if self._failure is not None:
                d.errback(self._failure)
                return
            self._queue.append(op)
            self._cond.notify()

    # -- the writer thread ----------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    break
                op = self._queue.popleft()
                if isinstance(op, _Save):
                    while self._queue and isinstance(nxt := self._queue[0], _Save):
                        self._queue.popleft()
                        op.absorb(nxt)
                failed = self._failure
            if failed is None:
                result, failed = self._execute(op)
            else:
                result = None
            waiters = op.waiters if isinstance(op, _Save) else [op.waiter]
            self._reactor.callFromThread(_fire, waiters, result, failed)
        with self._cond:
            stopped, self._stopped, self._thread = self._stopped, None, None
        if stopped is not None:
            self._reactor.callFromThread(stopped.callback, None)

    def _execute(self, op: _Save | _Call) -> tuple[Any, Failure | None]:
        try:
            if isinstance(op, _Save):
                self.writes += 1
                failpoints.hit("before_wal_save")
                self._wal.save(op.hard_state, op.entries)
                failpoints.hit("after_wal_save")
                return None, None
            return op.fn(*op.args), None
        except BaseException:
            failure = Failure()
            with self._cond:
                self._failure = failure
            self._reactor.callFromThread(
                log.failure, "WAL write failed; the WAL writer refuses further work", failure
            )
            return None, failure


def _fire(waiters: list[Deferred[Any]], result: Any, failure: Failure | None) -> None:
    for d in waiters:
        if failure is not None:
            d.errback(failure)
        else:
            d.callback(result)
