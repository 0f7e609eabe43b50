"""Watches over the KV store (etcd's ``server/mvcc/watchable_store.go``).

Every watcher is in one of three places:

- **synced**: it has seen everything up to the current revision; each write
  is handed to it as it happens (:meth:`WatchableStore._on_write`);
- **unsynced**: it starts in the past, or fell behind; :meth:`sync_watchers`
  reads the history from the backend's ``key`` bucket in bounded chunks of
  whole revisions and moves it to synced once it reaches the present. A
  watcher that falls behind the compacted revision is canceled with
  ``compact_revision`` set, as in etcd;
- **victim**: its stream refused a batch (the owner is blocked or has too much
  waiting). The batch is kept and offered again by :meth:`sync_watchers`;
  meanwhile new writes pass it by and it catches up from history afterwards,
  so nothing is lost or sent twice and memory stays bounded by one batch per
  victim plus each stream's cap.

Nothing here runs on its own: the server calls :meth:`sync_watchers` from a
timer (every 100 ms, say) and sooner when :attr:`on_work` fires.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from etcd_twisted._pb.kv_pb2 import Event, KeyValue

from .errors import MvccError
from .kvstore import KEY_BUCKET, BatchTx, Change, KVStore
from .revision import Revision, bytes_to_rev, is_tombstone, rev_to_bytes
from .watch_stream import DEFAULT_MAX_PENDING_EVENTS, WatchStream
from .watcher import STREAM_WATCH_ID, ResponseSink, Watcher, WatcherState, WatchResponse
from .watcher_group import WatcherGroup

#: Backend records :meth:`WatchableStore.sync_watchers` reads per call, rounded
#: up to a whole revision.
SYNC_BATCH_EVENTS = 1000


class WatchableStore:
    """The watch side of a :class:`KVStore`; installs itself as ``kvstore.on_write``."""

    def __init__(self, kvstore: KVStore, on_work: Callable[[], None] | None = None) -> None:
        self._kv = kvstore
        kvstore.on_write = self._on_write
        self.synced = WatcherGroup()
        self.unsynced = WatcherGroup()
        #: Parked watchers and the batch their stream refused.
        self.victims: dict[Watcher, WatchResponse] = {}
        #: Called when :meth:`sync_watchers` has work that should not wait for
        #: the next timer tick (a watch from the past, a stream that drained).
        self.on_work = on_work
        self._ready: dict[WatchStream, None] = {}
        self._progress_wanted: dict[WatchStream, None] = {}
        #: Open watch streams (etcd's ``etcd_debugging_mvcc_watch_stream_total``).
        self.streams: set[WatchStream] = set()

    @property
    def current_rev(self) -> int:
        """The store's revision."""
        return self._kv.current_rev

    def restore(self, kvstore: KVStore) -> None:
        """Follow a new KV store (a snapshot from the leader replaced the old one):
        synced watchers become unsynced and catch up from the new store's history."""
        self._kv = kvstore
        kvstore.on_write = self._on_write
        for w in list(self.synced):
            self.synced.remove(w)
            self._place(w, WatcherState.UNSYNCED)
        self.wake()

    def new_watch_stream(self, max_pending_events: int = DEFAULT_MAX_PENDING_EVENTS) -> WatchStream:
        """A stream of watchers sharing one response queue."""
        stream = WatchStream(self, max_pending_events)
        self.streams.add(stream)
        return stream

    # --- driving

    def sync_watchers(self, max_events: int = SYNC_BATCH_EVENTS) -> int:
        """Offer parked batches again, cancel watchers behind the compacted
        revision, and advance lagging watchers by about ``max_events`` records of
        history. Returns how many watchers could still progress at once (call
        again soon when nonzero)."""
        self._move_victims()
        kv = self._kv
        cur, compact_rev = kv.current_rev, kv.compact_main_rev
        chosen = []
        for w in list(self.unsynced):
            if w.min_rev < compact_rev:
                self.unsynced.remove(w)
                self._end_compacted(w, compact_rev)
            elif w.stream.has_room():
                chosen.append(w)
        if chosen:
            self._catch_up(chosen, cur, max_events)
        self.answer_progress_requests()
        self.flush()
        return self._backlog()

    def _catch_up(self, chosen: list[Watcher], cur: int, max_events: int) -> None:
        first = min(w.min_rev for w in chosen)
        group = WatcherGroup(chosen)
        rows, last = read_history(self._batch_tx(), first, cur, max_events)
        events = [ev for ev in map(_row_event, rows) if group.watches(ev.kv.key)]
        batches = _batch(group, events)
        for w in chosen:
            w.min_rev = max(w.min_rev, last + 1)
            found = batches.get(w)
            response = self._response(w, found, last) if found else None
            if response is not None and not w.stream.offer(response):
                self.unsynced.remove(w)
                self._park(w, response)
            elif w.min_rev > cur:
                self.unsynced.remove(w)
                self._place(w, WatcherState.SYNCED)

    def _move_victims(self) -> None:
        cur = self._kv.current_rev
        for w, response in list(self.victims.items()):
            if w.stream.offer(response):
                del self.victims[w]
                self._place(w, WatcherState.UNSYNCED if w.min_rev <= cur else WatcherState.SYNCED)

    def _backlog(self) -> int:
        behind = sum(1 for w in self.unsynced if w.stream.has_room())
        return behind + sum(1 for w, r in self.victims.items() if w.stream.has_room(len(r.events)))

    # --- writes

    def _on_write(self, rev: int, changes: list[Change]) -> None:
        if self.synced:
            events = [
                Event(type=Event.DELETE if c.deleted else Event.PUT, kv=c.kv)
                for c in changes
                if self.synced.watches(c.kv.key)
            ]
            for w, found in _batch(self.synced, events).items():
                response = self._response(w, found, rev)
                if response is not None and not w.stream.offer(response):
                    self.synced.remove(w)
                    w.min_rev = rev + 1
                    self._park(w, response)
        self.answer_progress_requests()
        self.flush()

    def _response(self, w: Watcher, events: list[Event], rev: int) -> WatchResponse | None:
        """``w``'s response for ``events`` observed through ``rev``, or None when its
        filters leave nothing."""
        wanted = w.wanted(events)
        if not wanted:
            return None
        if w.prev_kv:
            wanted = [self._with_prev_kv(ev) for ev in wanted]
        w.idle = False
        return WatchResponse(w.id, rev, wanted)

    def _with_prev_kv(self, ev: Event) -> Event:
        kv = ev.kv
        if ev.type == Event.PUT and kv.create_revision == kv.mod_revision:
            return ev
        try:
            found = self._kv.range(kv.key, rev=kv.mod_revision - 1).kvs
        except MvccError:
            return ev
        if not found:
            return ev
        return Event(type=ev.type, kv=kv, prev_kv=found[0])

    # --- what the streams call

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
    ) -> Watcher:
        """Start a watcher: synced if it starts after the current revision, else unsynced.

        A negative start behaves as in etcd 3.5: below the compacted revision it is
        canceled as compacted; otherwise it starts from the next revision (etcd reads
        its history over an empty backend range).
        """
        kv = self._kv
        cur = kv.current_rev
        if start_rev < 0:
            synced = start_rev >= kv.compact_main_rev
        else:
            synced = start_rev == 0 or start_rev > cur
        min_rev = max(start_rev, cur + 1) if synced else start_rev
        w = Watcher(
            watch_id, key, end, start_rev, min_rev, stream, filters, prev_kv, progress_notify
        )
        self._place(w, WatcherState.SYNCED if synced else WatcherState.UNSYNCED)
        if not synced:
            self.wake()
        return w

    def remove_watcher(self, w: Watcher) -> None:
        """Forget ``w`` wherever it is."""
        if w.state is WatcherState.SYNCED:
            self.synced.remove(w)
        elif w.state is WatcherState.UNSYNCED:
            self.unsynced.remove(w)
        elif w.state is WatcherState.VICTIM:
            del self.victims[w]
        w.state = WatcherState.DONE

    def caught_up(self, w: Watcher) -> bool:
        """Whether everything of ``w`` through the current revision is queued (and
        the store has reached its start), so a progress reply would not mislead."""
        return w.state is WatcherState.SYNCED and self._kv.current_rev >= w.start_rev

    def want_progress(self, stream: WatchStream) -> None:
        """``stream`` asked for a progress reply."""
        self._progress_wanted[stream] = None

    def answer_progress_requests(self) -> None:
        """Reply to the progress requests of streams whose watchers are all caught up."""
        for stream in list(self._progress_wanted):
            if all(self.caught_up(w) for w in stream.watchers.values()):
                del self._progress_wanted[stream]
                stream.post(WatchResponse(STREAM_WATCH_ID, self._kv.current_rev))

    def mark_ready(self, stream: WatchStream) -> None:
        """``stream`` queued a response; its owner hears at the next :meth:`flush`."""
        self._ready[stream] = None

    def flush(self) -> None:
        """Call ``on_ready`` of every stream that queued something."""
        while self._ready:
            stream = next(iter(self._ready))
            del self._ready[stream]
            if stream.on_ready is not None:
                stream.on_ready()

    def wake(self) -> None:
        """Tell the server :meth:`sync_watchers` has work now."""
        if self.on_work is not None and self._backlog():
            self.on_work()

    def forget(self, stream: WatchStream) -> None:
        """``stream`` closed."""
        self.streams.discard(stream)
        self._ready.pop(stream, None)
        self._progress_wanted.pop(stream, None)

    # --- internals

    def _place(self, w: Watcher, state: WatcherState) -> None:
        w.state = state
        (self.synced if state is WatcherState.SYNCED else self.unsynced).add(w)

    def _park(self, w: Watcher, response: WatchResponse) -> None:
        w.state = WatcherState.VICTIM
        self.victims[w] = response

    def _end_compacted(self, w: Watcher, compact_rev: int) -> None:
        w.state = WatcherState.DONE
        w.stream.forget_watcher(w)
        w.stream.post(
            WatchResponse(w.id, self._kv.current_rev, compact_revision=compact_rev, canceled=True)
        )

    def _batch_tx(self) -> BatchTx:
        return self._kv.backend.batch_tx


def read_history(
    tx: BatchTx, first_rev: int, last_rev: int, limit: int
) -> tuple[list[tuple[bytes, bytes]], int]:
    """Backend records of revisions ``first_rev..last_rev``: about ``limit`` of them,
    always whole revisions. Returns them and the last revision they cover."""
    end = rev_to_bytes(Revision(last_rev + 1, 0))
    rows = tx.range(KEY_BUCKET, rev_to_bytes(Revision(first_rev, 0)), end, limit)
    if len(rows) < limit:
        return rows, last_rev
    last = bytes_to_rev(rows[-1][0]).main
    end = rev_to_bytes(Revision(last + 1, 0))
    while True:
        more = tx.range(KEY_BUCKET, rows[-1][0] + b"\0", end, limit)
        rows.extend(more)
        if len(more) < limit:
            return rows, last


def _row_event(row: tuple[bytes, bytes]) -> Event:
    key, value = row
    kv = KeyValue.FromString(value)
    if is_tombstone(key):
        kv.mod_revision = bytes_to_rev(key).main
        return Event(type=Event.DELETE, kv=kv)
    return Event(type=Event.PUT, kv=kv)


def _batch(group: WatcherGroup, events: Iterable[Event]) -> dict[Watcher, list[Event]]:
    """Each watcher of ``group`` with the events it has not seen yet."""
    batches: dict[Watcher, list[Event]] = {}
    for ev in events:
        rev = ev.kv.mod_revision
        for w in group.watchers_for(ev.kv.key):
            if rev >= w.min_rev:
                batches.setdefault(w, []).append(ev)
    return batches
