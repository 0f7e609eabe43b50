"""Property test: watches against a replay of the write history.

Random writes, compactions, watch starts (past, now, future; keys, ranges,
prefixes, from-key; filters; prev_kv), cancels, resumes from the last bookmark,
progress requests and ticks, and consumers that are eager, lazy (not taking)
or blocked. Every response is checked as it is taken and once more after a
final drain, for etcd's guarantees: ordered, unique, atomic, reliable,
resumable, bookmarkable; plus prev_kv and filters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb.kv_pb2 import Event, KeyValue
from etcd_twisted.mvcc.kvstore import KVStore
from etcd_twisted.mvcc.watch_stream import WatchStream
from etcd_twisted.mvcc.watchable_store import WatchableStore
from etcd_twisted.mvcc.watcher import WatcherState, WatchResponse
from tests.support.memory_backend import MemoryBackend

KEYS = [b"a", b"ab", b"b", b"ba", b"c", b"d"]
STREAMS = 3
CAP = 4
EAGER, LAZY, BLOCKED = "eager", "lazy", "blocked"

ranges = st.one_of(
    st.tuples(st.just("key"), st.sampled_from(KEYS)),
    st.tuples(st.just("range"), st.sampled_from(KEYS), st.sampled_from(KEYS)),
    st.tuples(st.just("prefix"), st.sampled_from(KEYS)),
    st.tuples(st.just("from"), st.sampled_from(KEYS)),
    st.just(("all",)),
)
write_ops = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(KEYS), st.binary(max_size=2)),
    st.tuples(st.just("delete"), ranges),
)
stream_idx = st.integers(0, STREAMS - 1)


watch_step = st.tuples(
    st.just("watch"),
    stream_idx,
    ranges,
    st.sampled_from(["now", "future", "past", "first"]),
    st.integers(0, 6),
    st.sets(st.sampled_from([Event.PUT, Event.DELETE]), max_size=1),
    st.booleans(),
    st.booleans(),
)
STEP_KINDS = {
    "write": st.tuples(st.just("write"), st.lists(write_ops, min_size=1, max_size=3)),
    "watch": watch_step,
    "compact": st.tuples(st.just("compact"), st.integers(0, 100), st.integers(0, 3)),
    "cancel": st.tuples(st.just("cancel"), stream_idx, st.integers(0, 20)),
    "resume": st.tuples(st.just("resume"), stream_idx, st.integers(0, 20)),
    "mode": st.tuples(st.just("mode"), stream_idx, st.sampled_from([EAGER, LAZY, BLOCKED])),
    "take": st.tuples(st.just("take"), stream_idx),
    "sync": st.tuples(st.just("sync"), st.integers(1, 5)),
    "progress": st.tuples(st.just("progress"), stream_idx),
    "tick": st.tuples(st.just("tick"), stream_idx),
}
#: How often each kind of step comes up, relative to the others.
WEIGHTS = {"write": 8, "watch": 3, "compact": 1, "mode": 2, "sync": 2, "resume": 2}
steps = st.lists(
    st.sampled_from([k for k in STEP_KINDS for _ in range(WEIGHTS.get(k, 1))]).flatmap(
        STEP_KINDS.__getitem__
    ),
    min_size=20,
    max_size=80,
)


def span(spec: tuple) -> tuple[bytes, bytes | None]:
    """(key, end) in the index's convention for a range spec."""
    kind = spec[0]
    if kind == "key":
        return spec[1], None
    if kind == "range":
        lo, hi = sorted(spec[1:])
        return (lo, hi) if lo < hi else (lo, None)
    if kind == "prefix":
        key = spec[1]
        return key, key[:-1] + bytes([key[-1] + 1])
    if kind == "from":
        return spec[1], b"\0"
    return b"\0", b"\0"


def in_span(k: bytes, key: bytes, end: bytes | None) -> bool:
    if not end:
        return k == key
    return k >= key and (end == b"\0" or k < end)


def kv_tuple(kv: KeyValue) -> tuple:
    return (kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version)


def ev_tuple(ev: Event) -> tuple:
    return (ev.type, *kv_tuple(ev.kv))


@dataclass
class Expected:
    """One event of the history, with the key's previous version."""

    rev: int
    type: int
    key: bytes
    shape: tuple
    prev: tuple | None


@dataclass
class Model:
    """The live keys and every event so far; compaction forgets nothing here."""

    rev: int = 1
    live: dict[bytes, KeyValue] = field(default_factory=dict)
    events: list[Expected] = field(default_factory=list)

    def write(self, ops: list[tuple]) -> list[tuple]:
        """Apply ops (one write per key) and return the ops kept."""
        touched: set[bytes] = set()
        kept = []
        new: list[Expected] = []
        rev = self.rev + 1
        for op in ops:
            if op[0] == "put":
                key = op[1]
                if key in touched:
                    continue
                touched.add(key)
                old = self.live.get(key)
                kv = KeyValue(
                    key=key,
                    value=op[2],
                    create_revision=old.create_revision if old else rev,
                    mod_revision=rev,
                    version=old.version + 1 if old else 1,
                )
                new.append(Expected(rev, Event.PUT, key, (Event.PUT, *kv_tuple(kv)), _prev(old)))
                self.live[key] = kv
                kept.append(op)
            else:
                key, end = span(op[1])
                doomed = sorted(k for k in self.live if in_span(k, key, end))
                if any(k in touched for k in doomed):
                    continue
                touched.update(doomed)
                for k in doomed:
                    old = self.live.pop(k)
                    shape = (Event.DELETE, *kv_tuple(KeyValue(key=k, mod_revision=rev)))
                    new.append(Expected(rev, Event.DELETE, k, shape, _prev(old)))
                kept.append(op)
        if new:
            self.rev = rev
            self.events.extend(new)
        return kept


def _prev(old: KeyValue | None) -> tuple | None:
    return kv_tuple(old) if old is not None else None


@dataclass
class Chain:
    """One logical watch: a first session and the sessions resuming it."""

    stream: int
    key: bytes
    end: bytes | None
    first_rev: int
    filters: frozenset[int]
    prev_kv: bool
    progress_notify: bool
    #: Delivered events: (event, response serial).
    got: list[tuple[Event, int]] = field(default_factory=list)
    #: Every event through this revision has been delivered.
    bookmark: int = 0
    current_id: int | None = None
    compacted_at: int = 0
    canceled: bool = False

    def expected(self, model: Model, through: int | None = None) -> list[Expected]:
        return [
            e
            for e in model.events
            if e.rev >= self.first_rev
            and (through is None or e.rev <= through)
            and in_span(e.key, self.key, self.end)
            and e.type not in self.filters
        ]


class Consumer:
    """A stream's owner: takes responses as they come unless lazy or blocked."""

    def __init__(self, stream: WatchStream) -> None:
        self.stream = stream
        self.mode = EAGER
        self.log: list[WatchResponse] = []
        self.blocked_pending = 0
        stream.on_ready = self._ready

    def _ready(self) -> None:
        if self.mode == EAGER:
            self.log.extend(self.stream.take())

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self.stream.set_blocked(mode == BLOCKED)
        self.blocked_pending = self.stream.pending_events
        if mode == EAGER:
            self.log.extend(self.stream.take())


class Checker:
    """Runs the steps against the store and checks every response against the model."""

    def __init__(self, test: SynchronousTestCase) -> None:
        self.t = test
        self.kv = KVStore(MemoryBackend())
        self.store = WatchableStore(self.kv)
        self.model = Model()
        self.consumers = [
            Consumer(self.store.new_watch_stream(max_pending_events=CAP)) for _ in range(STREAMS)
        ]
        self.chains: list[Chain] = []
        #: Per stream: chains whose ``created`` has not been read yet, in order.
        self.creating: list[list[tuple[int, Chain | None]]] = [[] for _ in range(STREAMS)]
        #: Per stream: watch id to the chain its responses belong to (None: abandoned).
        self.active: list[dict[int, Chain | None]] = [{} for _ in range(STREAMS)]
        self.read = [0] * STREAMS
        self.serial = 0
        self.compactions: list[int] = []
        self.lost_deletes: set[int] = set()

    # --- steps

    def run(self, step: tuple) -> None:
        getattr(self, "do_" + step[0])(*step[1:])
        for i in range(STREAMS):
            self.process(i)
            self.check_bounded(i)

    def do_write(self, ops: list[tuple]) -> None:
        kept = self.model.write(ops)
        txn = self.kv.write()
        for op in kept:
            if op[0] == "put":
                txn.put(op[1], op[2])
            else:
                txn.delete_range(*span(op[1]))
        rev = txn.end()
        self.t.assertEqual(rev, self.model.rev)

    def do_compact(self, frac: int, steps: int) -> None:
        low = max(self.kv.compact_main_rev + 1, 1)
        if low > self.kv.current_rev:
            return
        rev = low + (self.kv.current_rev - low) * frac // 100
        self.kv.compact(rev)
        self.compactions.append(rev)
        for _ in range(steps):
            self.kv.compaction_step(limit=2)
        # A tombstone at exactly the compacted revision is dropped from history
        # (as in etcd); a watcher starting there cannot see it.
        self.lost_deletes.add(rev)

    def do_watch(
        self,
        i: int,
        spec: tuple,
        when: str,
        offset: int,
        filters: set[int],
        prev_kv: bool,
        progress_notify: bool,
    ) -> None:
        key, end = span(spec)
        cur = self.kv.current_rev
        start = {"now": 0, "past": max(1, cur - offset), "future": cur + offset, "first": 1}[when]
        first = start if start > 0 else cur + 1
        chain = Chain(i, key, end, first, frozenset(filters), prev_kv, progress_notify)
        chain.bookmark = first - 1
        self.chains.append(chain)
        self.start_session(chain, start)

    def start_session(self, chain: Chain, start: int) -> None:
        stream = self.consumers[chain.stream].stream
        chain.current_id = stream.watch(
            chain.key,
            chain.end,
            start_rev=start,
            filters=chain.filters,
            prev_kv=chain.prev_kv,
            progress_notify=chain.progress_notify,
        )
        self.creating[chain.stream].append((chain.current_id, chain))

    def pick(self, i: int, n: int) -> Chain | None:
        live = [c for c in self.chains if c.stream == i and c.current_id is not None]
        return live[n % len(live)] if live else None

    def do_cancel(self, i: int, n: int) -> None:
        chain = self.pick(i, n)
        if chain is not None and chain.current_id in self.consumers[i].stream.watchers:
            self.consumers[i].stream.cancel(chain.current_id)
            chain.current_id = None
            chain.canceled = True

    def do_resume(self, i: int, n: int) -> None:
        """Like a client whose stream broke: restart after the last bookmark,
        ignoring whatever else the old watch sends."""
        chain = self.pick(i, n)
        if chain is None or chain.current_id not in self.consumers[i].stream.watchers:
            return
        old = chain.current_id
        if self.active[i].get(old) is chain:
            self.active[i][old] = None
        else:
            self.creating[i] = [(w, None if c is chain else c) for w, c in self.creating[i]]
        self.consumers[i].stream.cancel(old)
        self.start_session(chain, chain.bookmark + 1)

    def do_mode(self, i: int, mode: str) -> None:
        self.consumers[i].set_mode(mode)

    def do_take(self, i: int) -> None:
        consumer = self.consumers[i]
        if consumer.mode != BLOCKED:
            consumer.log.extend(consumer.stream.take())

    def do_sync(self, max_events: int) -> None:
        self.store.sync_watchers(max_events)

    def do_progress(self, i: int) -> None:
        self.consumers[i].stream.request_progress()

    def do_tick(self, i: int) -> None:
        self.consumers[i].stream.progress_tick()

    # --- checks as responses are read

    def check_bounded(self, i: int) -> None:
        consumer = self.consumers[i]
        stream = consumer.stream
        if consumer.mode == BLOCKED:
            self.t.assertEqual(stream.pending_events, consumer.blocked_pending)
        batches = [r for r in stream._queue if r.events]
        self.t.assertTrue(stream.pending_events <= CAP or len(batches) == 1)

    def process(self, i: int) -> None:
        log = self.consumers[i].log
        while self.read[i] < len(log):
            response = log[self.read[i]]
            self.read[i] += 1
            self.serial += 1
            self.on_response(i, response)

    def on_response(self, i: int, r: WatchResponse) -> None:
        t = self.t
        active = self.active[i]
        if r.watch_id == -1:
            t.assertFalse(r.events or r.created or r.canceled)
            for chain in active.values():
                if chain is not None:
                    self.bookmark(chain, r.revision)
            return
        if r.created:
            t.assertFalse(r.canceled)
            watch_id, chain = self.creating[i].pop(0)
            t.assertEqual(r.watch_id, watch_id)
            t.assertNotIn(watch_id, active)
            active[watch_id] = chain
            return
        t.assertIn(r.watch_id, active, "a response before its watch was created")
        chain = active[r.watch_id]
        if r.canceled:
            del active[r.watch_id]
            if r.compact_revision and chain is not None:
                t.assertIn(r.compact_revision, self.compactions)
                t.assertGreater(r.compact_revision, chain.bookmark)
                chain.compacted_at = r.compact_revision
                chain.current_id = None
            return
        if chain is None:
            return
        if not r.events:
            t.assertTrue(chain.progress_notify)
            self.bookmark(chain, r.revision)
            return
        revs = [ev.kv.mod_revision for ev in r.events]
        t.assertEqual(revs, sorted(revs))
        t.assertGreater(revs[0], chain.bookmark, "an event delivered twice")
        t.assertGreaterEqual(r.revision, revs[-1])
        for ev in r.events:
            chain.got.append((ev, self.serial))
        self.bookmark(chain, revs[-1])
        self.check_prefix(chain)

    def bookmark(self, chain: Chain, rev: int) -> None:
        """Everything the chain wants through ``rev`` must have arrived already."""
        chain.bookmark = max(chain.bookmark, rev)
        self.check_prefix(chain, complete_through=rev)

    def check_prefix(self, chain: Chain, complete_through: int | None = None) -> None:
        """Delivered events are the expected ones, in order, once each, whole revisions
        at a time; with ``complete_through``, none through that revision is missing."""
        t = self.t
        got = [(ev, n) for ev, n in chain.got if not self.tolerated(ev.type, ev.kv.mod_revision)]
        want = [e for e in chain.expected(self.model) if not self.tolerated(e.type, e.rev)]
        t.assertEqual([ev_tuple(ev) for ev, _ in got], [e.shape for e in want[: len(got)]])
        if complete_through is not None:
            t.assertEqual(len(got), len([e for e in want if e.rev <= complete_through]))
        serial_of: dict[int, int] = {}
        for ev, n in got:
            t.assertEqual(serial_of.setdefault(ev.kv.mod_revision, n), n, "a revision split")
        for (ev, _), e in zip(got, want, strict=False):
            self.check_prev_kv(chain, ev, e)

    def tolerated(self, ev_type: int, rev: int) -> bool:
        return ev_type == Event.DELETE and rev in self.lost_deletes

    def check_prev_kv(self, chain: Chain, ev: Event, e: Expected) -> None:
        if not chain.prev_kv:
            self.t.assertFalse(ev.HasField("prev_kv"))
        elif ev.HasField("prev_kv"):
            self.t.assertEqual(kv_tuple(ev.prev_kv), e.prev)
        else:
            # Missing only when there is none, or its revision was compacted.
            self.t.assertTrue(e.prev is None or e.rev - 1 < max(self.compactions, default=0))

    # --- the end

    def finish(self) -> None:
        """Drain everything; every watch still open must then have all its events."""
        for consumer in self.consumers:
            consumer.set_mode(EAGER)
        for _ in range(1000):
            if not self.store.sync_watchers(3):
                break
        self.store.sync_watchers(3)
        for i in range(STREAMS):
            self.process(i)
        self.t.assertFalse(self.store.unsynced)
        self.t.assertFalse(self.store.victims)
        for chain in self.chains:
            self.check_prefix(chain)
            if chain.canceled or chain.compacted_at:
                continue
            self.check_prefix(chain, complete_through=self.kv.current_rev)
            stream = self.consumers[chain.stream].stream
            w = stream.watchers[chain.current_id]  # type: ignore[index]
            self.t.assertIs(w.state, WatcherState.SYNCED)


class WatchGuaranteeTests(SynchronousTestCase):
    @settings(max_examples=800, deadline=None)
    @given(steps)
    def test_guarantees(self, plan: list[tuple]) -> None:
        """Ordered, unique, atomic, reliable, resumable, bookmarkable, with exact prev_kv and filters."""
        checker = Checker(self)
        for step in plan:
            checker.run(step)
        checker.finish()
