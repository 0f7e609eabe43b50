"""A watch stream: the watchers of one client stream and the ordered queue of
their responses (etcd's ``watchStream`` in ``server/mvcc/watcher.go``).

Every response of a stream goes through one FIFO queue, control replies
(created, canceled, progress) and events alike, so a client sees a watch's
``created`` before its events and a progress reply after every event it
vouches for. The owner reads the queue with :meth:`WatchStream.take` when
:attr:`WatchStream.on_ready` calls, and says when it cannot send
(:meth:`WatchStream.set_blocked`): a blocked or full stream refuses event
batches and the store parks their watchers until it drains.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection
from typing import Protocol

from .watcher import (
    AUTO_WATCH_ID,
    DuplicateWatchIdError,
    ResponseSink,
    Watcher,
    WatcherNotExistError,
    WatchResponse,
    watch_range,
)

#: Events a stream holds for its owner before it refuses more.
DEFAULT_MAX_PENDING_EVENTS = 1024


class WatcherHub(Protocol):
    """What a stream needs of the store that made it (a ``WatchableStore``)."""

    @property
    def current_rev(self) -> int: ...
    def add_watcher(
        self,
        stream: ResponseSink,
        watch_id: int,
        key: bytes,
        end: bytes | None,
        start_rev: int,
        filters: frozenset[int],
        prev_kv: bool,
        progress_notify: bool,
    ) -> Watcher: ...
    def remove_watcher(self, w: Watcher) -> None: ...
    def caught_up(self, w: Watcher) -> bool: ...
    def want_progress(self, stream: WatchStream) -> None: ...
    def mark_ready(self, stream: WatchStream) -> None: ...
    def forget(self, stream: WatchStream) -> None: ...
    def flush(self) -> None: ...
    def wake(self) -> None: ...


class WatchStream:
    """Watchers sharing one response queue; made by ``WatchableStore.new_watch_stream``."""

    def __init__(self, store: WatcherHub, max_pending_events: int) -> None:
        self._store = store
        self._max_pending_events = max_pending_events
        self._queue: deque[WatchResponse] = deque()
        self._pending_events = 0
        self._next_id = 0
        self._blocked = False
        self._refused = False
        self._closed = False
        #: The stream's watchers by id.
        self.watchers: dict[int, Watcher] = {}
        #: Called (with no arguments) once responses are waiting after a change.
        self.on_ready: Callable[[], None] | None = None

    # --- the owner's side

    def watch(
        self,
        key: bytes,
        end: bytes | None = None,
        start_rev: int = 0,
        filters: Collection[int] = (),
        prev_kv: bool = False,
        progress_notify: bool = False,
        watch_id: int = AUTO_WATCH_ID,
    ) -> int:
        """Watch ``key`` (or ``[key, end)``; ``end=b"\\0"``: every key from ``key``)
        from ``start_rev`` (0: the next revision; negative: see ``add_watcher``);
        returns the watch id.

        ``filters`` are the event types to leave out (``Event.PUT``,
        ``Event.DELETE``). A ``created`` response is queued first; a start at or
        before the compacted revision ends in a canceled response carrying
        ``compact_revision``. Raises `DuplicateWatchIdError` or
        `EmptyWatcherRangeError` instead of queueing anything.
        """
        if self._closed:
            raise RuntimeError("watch stream is closed")
        watch_end = watch_range(key, end)
        if watch_id == AUTO_WATCH_ID:
            while self._next_id in self.watchers:
                self._next_id += 1
            watch_id = self._next_id
            self._next_id += 1
        elif watch_id in self.watchers:
            raise DuplicateWatchIdError()
        store = self._store
        self.post(WatchResponse(watch_id, store.current_rev, created=True))
        self.watchers[watch_id] = store.add_watcher(
            self, watch_id, key, watch_end, start_rev, frozenset(filters), prev_kv, progress_notify
        )
        store.flush()
        return watch_id

    def cancel(self, watch_id: int) -> None:
        """Stop a watch and queue its ``canceled`` response; raises `WatcherNotExistError`."""
        w = self.watchers.pop(watch_id, None)
        if w is None:
            raise WatcherNotExistError()
        store = self._store
        store.remove_watcher(w)
        self.post(WatchResponse(watch_id, store.current_rev, canceled=True))
        store.answer_progress_requests()
        store.flush()

    def refuse(self, reason: str, watch_id: int = -1) -> None:
        """Queue the answer to a watch request that was turned down: ``created`` and
        ``canceled`` with ``reason``, for ``watch_id`` (-1: none), in order with the rest."""
        self.post(
            WatchResponse(
                watch_id, self._store.current_rev, created=True, canceled=True, cancel_reason=reason
            )
        )
        self._store.flush()

    def request_progress(self) -> None:
        """Ask for a progress reply (watch id -1, the current revision), sent as
        soon as every watcher of the stream is synced."""
        store = self._store
        store.want_progress(self)
        store.answer_progress_requests()
        store.flush()

    def progress_tick(self) -> None:
        """One progress interval passed: each ``progress_notify`` watcher that is
        synced and got no events since the last tick gets an empty response."""
        store = self._store
        if self.has_room():
            for w in self.watchers.values():
                if w.progress_notify and w.idle and store.caught_up(w):
                    self.post(WatchResponse(w.id, store.current_rev))
        for w in self.watchers.values():
            w.idle = True
        store.flush()

    def take(self) -> list[WatchResponse]:
        """Every waiting response, oldest first."""
        taken = list(self._queue)
        self._queue.clear()
        self._pending_events = 0
        self._kick()
        return taken

    @property
    def blocked(self) -> bool:
        """True while the owner cannot send."""
        return self._blocked

    def set_blocked(self, blocked: bool) -> None:
        """Say whether the owner can send; events wait in history while it cannot."""
        self._blocked = blocked
        if not blocked:
            self._kick()

    def close(self) -> None:
        """Drop every watcher and waiting response; the stream is done."""
        self._closed = True
        for w in self.watchers.values():
            self._store.remove_watcher(w)
        self.watchers.clear()
        self._store.forget(self)
        self._queue.clear()
        self._pending_events = 0
        self.on_ready = None

    # --- the store's side

    @property
    def pending_events(self) -> int:
        """Events queued and not yet taken."""
        return self._pending_events

    def has_room(self, events: int = 1) -> bool:
        """Whether a batch of ``events`` offered now would be queued (an empty
        queue takes any batch, so one large revision still goes out)."""
        if self._blocked:
            return False
        return not self._queue or self._pending_events + events <= self._max_pending_events

    def offer(self, response: WatchResponse) -> bool:
        """Queue an event batch if the owner is sending and there is room."""
        if not self.has_room(len(response.events)):
            self._refused = True
            return False
        self.post(response)
        self._pending_events += len(response.events)
        return True

    def post(self, response: WatchResponse) -> None:
        """Queue a control response, room or not."""
        self._queue.append(response)
        self._store.mark_ready(self)

    def forget_watcher(self, w: Watcher) -> None:
        """The store ended ``w`` (compaction): its id is free again."""
        if self.watchers.get(w.id) is w:
            del self.watchers[w.id]

    def _kick(self) -> None:
        """After a refusal, tell the store there is room again."""
        if self._refused and self.has_room():
            self._refused = False
            self._store.wake()
