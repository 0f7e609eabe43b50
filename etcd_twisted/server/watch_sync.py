"""``WatchSync``: the ``watch-sync`` service that catches lagging watchers up.

Every ``WATCH_SYNC_INTERVAL`` (and on the next reactor turn whenever the watchable
store says it has work) unsynced watchers catch up from history, progress requests
are answered, and pending watch responses are flushed to their streams.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from etcd_twisted.mvcc.watchable_store import WatchableStore
from etcd_twisted.server.timers import PeriodicService

#: How often lagging watchers catch up from history when nothing hurries them.
WATCH_SYNC_INTERVAL = 0.1


class WatchSync(PeriodicService):
    """Syncs a watchable store periodically and on demand."""

    def __init__(self, watchable: WatchableStore, clock: IReactorTime) -> None:
        super().__init__("watch-sync", WATCH_SYNC_INTERVAL, self.sync, clock)
        self._watchable = watchable
        self._clock = clock
        self._scheduled = False

    def kick(self) -> None:
        """Sync on the next reactor turn (once, however often called)."""
        if not self._scheduled:
            self._scheduled = True
            self._clock.callLater(0, self.sync)

    def sync(self) -> None:
        """Catch up unsynced watchers, answer progress requests, flush responses."""
        self._scheduled = False
        if not self.running:
            return
        watchable = self._watchable
        progressed = watchable.sync_watchers()
        watchable.answer_progress_requests()
        watchable.flush()
        if progressed:
            self.kick()
