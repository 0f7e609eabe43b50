"""One watcher, the responses a watch stream carries, and the watch errors
(etcd's ``server/mvcc/watcher.go``).

A watcher's range follows the index's convention: an empty ``end`` is the key
alone, ``b"\\0"`` is every key from ``key`` on, anything else is ``[key, end)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from etcd_twisted._pb.kv_pb2 import Event

from .errors import MvccError

#: Pass as ``watch_id`` to have the stream pick the next free id.
AUTO_WATCH_ID = 0
#: The id of a response that speaks for every watcher of a stream (a progress reply).
STREAM_WATCH_ID = -1

_FROM_KEY = b"\0"


class WatchError(MvccError):
    """A watch request the stream cannot honour."""


class DuplicateWatchIdError(WatchError):
    """The client picked an id that a watcher of the stream already has."""

    message = "mvcc: duplicate watch ID provided on the WatchStream"


class EmptyWatcherRangeError(WatchError):
    """``end`` is not above ``key``: the range holds no key."""

    message = "mvcc: watcher range is empty"


class WatcherNotExistError(WatchError):
    """No watcher of the stream has this id."""

    message = "mvcc: watcher does not exist"


@dataclass(slots=True)
class WatchResponse:
    """What a watch stream hands its owner; ``revision`` is how far the store
    has been observed for this response."""

    watch_id: int
    revision: int
    events: list[Event] = field(default_factory=list)
    compact_revision: int = 0
    created: bool = False
    canceled: bool = False
    cancel_reason: str = ""


class WatcherState(Enum):
    """Where a watcher is: caught up, reading history, parked with a batch, or gone."""

    SYNCED = "synced"
    UNSYNCED = "unsynced"
    VICTIM = "victim"
    DONE = "done"


class ResponseSink(Protocol):
    """Where a watcher's responses go (a ``WatchStream``): it says whether it has room,
    takes responses, and forgets a watcher the store ends."""

    watchers: dict[int, Watcher]

    def has_room(self, events: int = 1) -> bool: ...
    def offer(self, response: WatchResponse) -> bool: ...
    def post(self, response: WatchResponse) -> None: ...
    def forget_watcher(self, w: Watcher) -> None: ...


@dataclass(eq=False, slots=True)
class Watcher:
    """A watch on a key or range; ``min_rev`` is the first revision not yet sent."""

    id: int
    key: bytes
    #: ``None``: the key alone; ``b""``: no upper bound; else the exclusive end.
    end: bytes | None
    start_rev: int
    min_rev: int
    stream: ResponseSink
    #: Event types (``Event.PUT``, ``Event.DELETE``) this watcher does not want.
    filters: frozenset[int] = frozenset()
    prev_kv: bool = False
    progress_notify: bool = False
    #: No events went out since the last progress tick.
    idle: bool = True
    state: WatcherState = WatcherState.UNSYNCED

    def wanted(self, events: Iterable[Event]) -> list[Event]:
        """The events the filters let through."""
        if not self.filters:
            return list(events)
        return [ev for ev in events if ev.type not in self.filters]


def watch_range(key: bytes, end: bytes | None) -> bytes | None:
    """A watcher's ``end`` for a request's ``end``; raises on an empty range."""
    if not end:
        return None
    if end == _FROM_KEY:
        return b""
    if key >= end:
        raise EmptyWatcherRangeError()
    return end
