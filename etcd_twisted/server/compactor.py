"""Auto-compaction (``--auto-compaction-mode`` / ``--auto-compaction-retention``), as etcd 3.5.

*periodic*: the current revision is sampled every tenth of the retention period
(at most every 6 minutes); once a whole period has passed, the store is compacted
to the revision sampled one period ago, and again every period (at most hourly).
*revision*: every 5 minutes the store is compacted to ``current - retention``.
Only the leader compacts; a compaction that fails (other than "already compacted")
is tried again at the next sample.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from etcd_twisted.config import Config, periodic_retention
from etcd_twisted.mvcc.errors import CompactedError

HOUR = 3600.0
#: How often the revision compactor runs (etcd's ``revInterval``).
REVISION_INTERVAL = 300.0

#: ``compact(rev)`` proposes a compaction and fires when it is applied.
Compact = Callable[[int], Deferred[object]]


class Compactor(Service):
    """Base: a timer that runs ``step`` on the leader (the server's ``compactor`` service)."""

    name = "compactor"

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        current_rev: Callable[[], int],
        compact: Compact,
        is_leader: Callable[[], bool],
        interval: float,
    ) -> None:
        self._clock = clock
        self._current_rev = current_rev
        self._compact = compact
        self._is_leader = is_leader
        self._loop = LoopingCall(self.step)
        self._loop.clock = clock
        self._interval = interval

    def startService(self) -> None:
        super().startService()
        self._loop.start(self._interval, now=False)

    def stopService(self) -> None:
        super().stopService()
        if self._loop.running:
            self._loop.stop()

    def step(self) -> None:
        """One timer tick."""
        raise NotImplementedError

    def _run(self, rev: int, on_success: Callable[[], None]) -> None:
        def done(result: object) -> None:
            if isinstance(result, Failure) and not result.check(CompactedError):
                self.log.warn("auto-compaction at {rev} failed: {e}", rev=rev, e=result.value)
                return
            self.log.info("auto-compacted at revision {rev}", rev=rev)
            on_success()

        self._compact(rev).addBoth(done)


class PeriodicCompactor(Compactor):
    """Keeps at least ``period`` seconds of history."""

    def __init__(
        self,
        clock: IReactorTime,
        current_rev: Callable[[], int],
        compact: Compact,
        is_leader: Callable[[], bool],
        period: float,
    ) -> None:
        compact_interval = min(period, HOUR)
        super().__init__(clock, current_rev, compact, is_leader, compact_interval / 10)
        self._period = period
        self._compact_interval = compact_interval
        self._revs: deque[int] = deque(maxlen=int(period / self._interval) + 1)
        self._last_success = clock.seconds()
        self._base = period

    def step(self) -> None:
        self._revs.append(self._current_rev())
        if self._clock.seconds() - self._last_success < self._base or not self._is_leader():
            return
        rev = self._revs[0]

        def succeeded() -> None:
            self._last_success = self._clock.seconds()
            self._base = self._compact_interval

        self._run(rev, succeeded)


class RevisionCompactor(Compactor):
    """Keeps the last ``retention`` revisions."""

    def __init__(
        self,
        clock: IReactorTime,
        current_rev: Callable[[], int],
        compact: Compact,
        is_leader: Callable[[], bool],
        retention: int,
    ) -> None:
        super().__init__(clock, current_rev, compact, is_leader, REVISION_INTERVAL)
        self._retention = retention
        self._prev = 0

    def step(self) -> None:
        if not self._is_leader():
            return
        rev = self._current_rev() - self._retention
        if rev <= 0 or rev == self._prev:
            return

        def succeeded() -> None:
            self._prev = rev

        self._run(rev, succeeded)


def from_config(
    config: Config,
    clock: IReactorTime,
    current_rev: Callable[[], int],
    compact: Compact,
    is_leader: Callable[[], bool],
) -> Compactor | None:
    """The compactor the flags ask for, or None when auto-compaction is off."""
    if config.auto_compaction_mode == "revision":
        retention = int(config.auto_compaction_retention)
        if retention <= 0:
            return None
        return RevisionCompactor(clock, current_rev, compact, is_leader, retention)
    period = periodic_retention(config.auto_compaction_retention)
    if period <= 0:
        return None
    return PeriodicCompactor(clock, current_rev, compact, is_leader, period)
