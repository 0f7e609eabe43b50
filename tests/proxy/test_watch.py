"""Tests for etcd_twisted.proxy.watch: watchers share upstream watches without missing
or repeating events (fake upstream, no network)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import kv_pb2, rpc_pb2
from etcd_twisted.proxy.watch import ClientWatcher, Fanout, WatchHub, watch_id_field


class FakeUpstream:
    """Records the upstream watches the hub opens and lets a test answer them."""

    def __init__(self) -> None:
        self.opened: list[FakeWatch] = []

    def open(
        self,
        request: rpc_pb2.WatchCreateRequest,
        on_response: Callable,
        on_closed: Callable,
        metadata: Any = (),
    ) -> FakeWatch:
        watch = FakeWatch(request, on_response, on_closed)
        self.opened.append(watch)
        return watch

    @property
    def live(self) -> list[FakeWatch]:
        return [w for w in self.opened if not w.cancelled and not w.failed]


class FakeWatch:
    def __init__(self, request: Any, on_response: Callable, on_closed: Callable) -> None:
        self.request = request
        self.on_response = on_response
        self.on_closed = on_closed
        self.cancelled = False
        self.failed = False

    def cancel(self) -> None:
        self.cancelled = True

    def created(self, revision: int) -> None:
        self.on_response(rpc_pb2.WatchResponse(header=_header(revision), created=True))

    def events(self, *revisions: int, key: bytes = b"k", delete: bool = False) -> None:
        events = [_event(key, rev, delete) for rev in revisions]
        self.on_response(rpc_pb2.WatchResponse(header=_header(revisions[-1]), events=events))

    def fail(self) -> None:
        self.failed = True
        self.on_closed("connection lost")


def _header(revision: int) -> rpc_pb2.ResponseHeader:
    return rpc_pb2.ResponseHeader(revision=revision, cluster_id=7)


def _event(key: bytes, revision: int, delete: bool = False) -> kv_pb2.Event:
    kv = kv_pb2.KeyValue(key=key, mod_revision=revision, value=b"%d" % revision)
    prev = kv_pb2.KeyValue(key=key, mod_revision=revision - 1)
    kind = kv_pb2.Event.DELETE if delete else kv_pb2.Event.PUT
    return kv_pb2.Event(type=kind, kv=kv, prev_kv=prev)


class Client:
    """One client watcher and what it received."""

    def __init__(self, watch_id: int, start: int = 0, **options: Any) -> None:
        self.responses: list[rpc_pb2.WatchResponse] = []
        request = rpc_pb2.WatchCreateRequest(key=b"k", start_revision=start, **options)
        self.watcher = ClientWatcher.from_request(watch_id, request, self.receive)

    def receive(self, message: Any) -> None:
        """Decode what the client would receive (encoded once per fan-out, or built)."""
        self.responses.append(rpc_pb2.WatchResponse.FromString(message.SerializeToString()))

    @property
    def revisions(self) -> list[int]:
        return [e.kv.mod_revision for r in self.responses for e in r.events]

    @property
    def created(self) -> list[rpc_pb2.WatchResponse]:
        return [r for r in self.responses if r.created]


class HubTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.upstream = FakeUpstream()
        self.later: list[tuple[float, Callable[[], Any]]] = []
        self.hub = WatchHub(self.upstream.open, lambda delay, f: self.later.append((delay, f)))

    def test_current_watchers_share_one_upstream(self) -> None:
        """Watchers from "now" on one key join the running upstream watch."""
        first = Client(0)
        self.hub.add(first.watcher)
        (up,) = self.upstream.opened
        self.assertTrue(up.request.prev_kv and up.request.progress_notify)
        up.created(10)
        others = [Client(i) for i in range(1, 100)]
        for client in others:
            self.hub.add(client.watcher)
        self.assertEqual(len(self.upstream.opened), 1)
        self.assertEqual(self.hub.upstream_watches, 1)
        up.events(11, 12)
        for client in [first, *others]:
            self.assertEqual(len(client.created), 1)
            self.assertEqual(client.revisions, [11, 12])
        self.assertEqual(others[0].created[0].header.revision, 10)

    def test_fanout_encoding_matches_protobuf(self) -> None:
        """The once-encoded fan-out decodes to what protobuf would have built."""
        response = rpc_pb2.WatchResponse(
            header=_header(300), events=[_event(b"k", 299), _event(b"k", 300, delete=True)]
        )
        fanout = Fanout(response)
        for watch_id, prev in ((0, False), (7, True), (-1, False), (2**40, True)):
            decoded = rpc_pb2.WatchResponse.FromString(
                fanout.encoded(watch_id_field(watch_id), prev).SerializeToString()
            )
            expected = rpc_pb2.WatchResponse()
            expected.CopyFrom(response)
            expected.watch_id = watch_id
            if not prev:
                for event in expected.events:
                    event.ClearField("prev_kv")
            self.assertEqual(decoded, expected)

    def test_each_gets_its_own_id(self) -> None:
        """Every response carries the client's own watch id."""
        a, b = Client(5), Client(9)
        self.hub.add(a.watcher)
        self.upstream.opened[0].created(3)
        self.hub.add(b.watcher)
        self.upstream.opened[0].events(4)
        self.assertEqual({r.watch_id for r in a.responses}, {5})
        self.assertEqual({r.watch_id for r in b.responses}, {9})

    def test_older_start_gets_own_upstream(self) -> None:
        """A watcher from a revision the broadcast has passed gets an upstream of its own,
        and sees its history; a later one from a reachable revision joins."""
        current = Client(0)
        self.hub.add(current.watcher)
        up = self.upstream.opened[0]
        up.created(10)
        up.events(11)
        historic = Client(1, start=5)
        self.hub.add(historic.watcher)
        self.assertEqual(len(self.upstream.opened), 2)
        self.assertEqual(self.upstream.opened[1].request.start_revision, 5)
        future = Client(2, start=20)
        self.hub.add(future.watcher)
        self.assertEqual(len(self.upstream.opened), 2)
        up.events(12)
        up.events(20, 21)
        self.assertEqual(current.revisions, [11, 12, 20, 21])
        self.assertEqual(future.revisions, [20, 21])

    def test_start_revision_filters_events(self) -> None:
        """A watcher joining a pending historic broadcast sees only events from its start."""
        a, b = Client(0, start=5), Client(1, start=8)
        self.hub.add(a.watcher)
        self.hub.add(b.watcher)
        (up,) = self.upstream.opened
        up.created(10)
        up.events(5, 6, 7, 8, 9)
        self.assertEqual(a.revisions, [5, 6, 7, 8, 9])
        self.assertEqual(b.revisions, [8, 9])

    def test_options_per_watcher(self) -> None:
        """prev_kv only for those who asked; NOPUT/NODELETE filters per watcher."""
        plain, prev, noput = Client(0), Client(1, prev_kv=True), Client(2, filters=[0])
        for client in (plain, prev, noput):
            self.hub.add(client.watcher)
        up = self.upstream.opened[0]
        up.created(1)
        up.events(2)
        up.events(3, delete=True)
        self.assertFalse(plain.responses[-1].events[0].HasField("prev_kv"))
        self.assertTrue(prev.responses[-1].events[0].HasField("prev_kv"))
        self.assertEqual(noput.revisions, [3])
        self.assertEqual(plain.revisions, [2, 3])

    def test_last_out_cancels_upstream(self) -> None:
        """The upstream watch is cancelled when its last watcher goes."""
        a, b = Client(0), Client(1)
        self.hub.add(a.watcher)
        self.upstream.opened[0].created(1)
        self.hub.add(b.watcher)
        self.hub.remove(a.watcher)
        self.assertFalse(self.upstream.opened[0].cancelled)
        self.hub.remove(b.watcher)
        self.assertTrue(self.upstream.opened[0].cancelled)
        self.assertEqual(self.hub.upstream_watches, 0)

    def test_resume_after_upstream_failure(self) -> None:
        """A broken upstream watch is reopened from the next revision: no gap, no repeat."""
        client = Client(0)
        self.hub.add(client.watcher)
        up = self.upstream.opened[0]
        up.created(10)
        up.events(11, 12)
        up.fail()
        (delay, reopen) = self.later[0]
        reopen()
        again = self.upstream.opened[1]
        self.assertEqual(again.request.start_revision, 13)
        again.created(14)
        again.events(13, 14)
        self.assertEqual(client.revisions, [11, 12, 13, 14])
        self.assertEqual(len(client.created), 1)

    def test_compacted_start_cancels(self) -> None:
        """An upstream cancel (compacted start) reaches every watcher with its revision."""
        client = Client(0, start=2)
        self.hub.add(client.watcher)
        self.upstream.opened[0].on_response(
            rpc_pb2.WatchResponse(
                header=_header(9), created=True, canceled=True, compact_revision=5,
                cancel_reason="mvcc: required revision has been compacted",
            )
        )  # fmt: skip
        (response,) = client.responses
        self.assertTrue(response.canceled and response.created)
        self.assertEqual(response.compact_revision, 5)
        self.assertEqual(self.hub.watchers, 0)

    def test_progress_only_to_those_who_asked(self) -> None:
        """A progress notification goes only to watchers with progress_notify."""
        quiet, asked = Client(0), Client(1, progress_notify=True)
        self.hub.add(quiet.watcher)
        self.hub.add(asked.watcher)
        up = self.upstream.opened[0]
        up.created(4)
        up.on_response(rpc_pb2.WatchResponse(header=_header(6)))
        self.assertEqual(len(quiet.responses), 1)
        self.assertEqual(asked.responses[-1].header.revision, 6)

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(
            st.one_of(
                st.tuples(st.just("write"), st.integers(1, 3)),
                st.tuples(st.just("join"), st.integers(0, 30)),
                st.tuples(st.just("fail"), st.just(0)),
            ),
            max_size=40,
        )
    )
    def test_every_watcher_sees_exactly_its_events(self, steps: list[tuple[str, int]]) -> None:
        """Whatever the order of writes, joins and upstream failures, each watcher gets
        exactly the revisions from its start onwards, once each, in order."""
        upstream = FakeUpstream()
        later: list[Callable[[], Any]] = []
        hub = WatchHub(upstream.open, lambda delay, f: later.append(f))
        store_revision = 1
        history: list[int] = []
        clients: list[tuple[Client, int]] = []

        def pump() -> None:
            while later:
                later.pop(0)()
            for watch in upstream.live:
                if not getattr(watch, "sent_created", False):
                    watch.sent_created = True
                    watch.created(store_revision)
                    start = watch.request.start_revision
                    backlog = [r for r in history if start and r >= start]
                    if backlog:
                        watch.events(*backlog)

        for kind, value in steps:
            if kind == "write":
                revisions = list(range(store_revision + 1, store_revision + 1 + value))
                store_revision += value
                history.extend(revisions)
                for watch in upstream.live:
                    if getattr(watch, "sent_created", False):
                        watch.events(*revisions)
            elif kind == "join":
                start = value if value <= store_revision + 1 else 0
                client = Client(len(clients), start=start)
                clients.append((client, start or store_revision + 1))
                hub.add(client.watcher)
            elif upstream.live:
                upstream.live[0].fail()
            pump()
        for client, first in clients:
            expected = [r for r in history if r >= first]
            self.assertEqual(client.revisions, expected)
