"""``PhysicalCompaction``: reclaiming compacted revisions in steps, off the apply path.

Applying a compaction only marks the revision; the records below it are deleted
``COMPACTION_STEP`` at a time, one step per reactor turn, so a large compaction
never holds the reactor. A ``physical`` compaction request waits for the end.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from etcd_twisted import failpoints
from etcd_twisted.apply.state import MemberState

#: Physical compaction deletes this many records per reactor turn.
COMPACTION_STEP = 1000


class PhysicalCompaction:
    """Runs the store's compaction in steps and tells waiters when it is done."""

    def __init__(self, state: Callable[[], MemberState], clock: IReactorTime) -> None:
        self._state = state
        self._clock = clock
        self._running = False
        self._stopped = False
        self._waiters: list[Deferred[None]] = []

    def schedule(self) -> None:
        """A compaction was applied: start stepping (once, however often called)."""
        if not self._running:
            self._running = True
            self._clock.callLater(0, self._step)

    def done(self) -> Deferred[None]:
        """Fires once no compaction is left to reclaim."""
        d: Deferred[None] = Deferred()
        if not self._state().kv.compacting:
            d.callback(None)
        else:
            self._waiters.append(d)
        return d

    def stop(self) -> None:
        """Stop stepping (on shutdown); the store resumes the compaction when reopened."""
        self._stopped = True

    def _step(self) -> None:
        if self._stopped:
            return
        failpoints.hit("during_compaction")
        state = self._state()
        if state.kv.compaction_step(COMPACTION_STEP):
            self._running = False
            state.backend.force_commit()
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                d.callback(None)
        else:
            self._clock.callLater(0, self._step)
