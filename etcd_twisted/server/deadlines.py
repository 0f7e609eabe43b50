"""Request timeouts without a timer per request.

Every request gets the same timeout, so deadlines arrive in the order requests do:
they wait in a queue, and one sweep every quarter second fails those whose time is
up (a request may run up to one sweep interval longer than its timeout). A timer per
request costs a ``callLater`` and a cancel on the hot path; this costs an append.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

SWEEP_INTERVAL = 0.25


class Deadlines(Service):
    """Fails Deferreds still unfired ``timeout`` seconds after they were added; a named
    service whose running sweeps the queue."""

    name = "deadlines"

    def __init__(self, clock: IReactorTime, timeout: float, error: Callable[[], Exception]) -> None:
        self._clock = clock
        self.timeout = timeout
        self._error = error
        self._queue: deque[tuple[float, Deferred[Any]]] = deque()
        self._sweeper = LoopingCall(self.sweep)
        self._sweeper.clock = clock

    def add(self, d: Deferred[Any]) -> None:
        """Fail ``d`` with the error if it has not fired within the timeout."""
        self._queue.append((self._clock.seconds() + self.timeout, d))

    def sweep(self) -> None:
        """Fail every Deferred whose deadline has passed."""
        now = self._clock.seconds()
        queue = self._queue
        while queue and queue[0][0] <= now:
            _, d = queue.popleft()
            if not d.called:
                d.errback(self._error())

    def startService(self) -> None:
        super().startService()
        self._sweeper.start(SWEEP_INTERVAL, now=False)

    def stopService(self) -> None:
        super().stopService()
        if self._sweeper.running:
            self._sweeper.stop()
