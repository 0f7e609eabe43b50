"""``PeriodicService``: a named child service that calls a function at an interval.

The server's timers (watch sync, lease checks, ...) are these, so stopping the
server stops every timer it started, by construction. The clock is injected
(``task.Clock`` in tests); the first call comes one interval after the start.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall


class PeriodicService(Service):
    """Calls ``fn()`` every ``interval`` seconds while running."""

    def __init__(
        self, name: str, interval: float, fn: Callable[[], object], clock: IReactorTime
    ) -> None:
        self.name = name
        self.interval = interval
        self._loop = LoopingCall(fn)
        self._loop.clock = clock

    def startService(self) -> None:
        super().startService()
        self._loop.start(self.interval, now=False)

    def stopService(self) -> None:
        super().stopService()
        if self._loop.running:
            self._loop.stop()
