"""Tests for etcd_twisted.proxy.services: a client's Watch stream through the hub (fakes)."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.proxy.services import _WatchSession
from etcd_twisted.proxy.watch import WatchHub
from tests.proxy.test_watch import FakeUpstream, _header


class FakeStream:
    """What the session sends, decoded."""

    def __init__(self) -> None:
        self.sent: list[rpc_pb2.WatchResponse] = []

    def send(self, message: Any) -> None:
        self.sent.append(rpc_pb2.WatchResponse.FromString(message.SerializeToString()))


class FakeMembers:
    """Answers unary calls (the progress probe) with a fixed revision."""

    def __init__(self, revision: int) -> None:
        self.revision = revision
        self.calls: list[str] = []

    async def unary(self, path: str, request: bytes, *args: Any, **kw: Any) -> bytes:
        self.calls.append(path)
        return rpc_pb2.RangeResponse(header=_header(self.revision)).SerializeToString()


def _create(key: bytes = b"k", end: bytes = b"", **kw: Any) -> rpc_pb2.WatchRequest:
    return rpc_pb2.WatchRequest(
        create_request=rpc_pb2.WatchCreateRequest(key=key, range_end=end, **kw)
    )


class SessionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.upstream = FakeUpstream()
        self.hub = WatchHub(self.upstream.open, lambda delay, f: None)
        self.stream = FakeStream()
        self.members = FakeMembers(42)
        self.session = _WatchSession(self.hub, self.stream, None, self.members, [])  # type: ignore[arg-type]

    def test_ids_and_cancel(self) -> None:
        """Watches get ids 0, 1, ...; a cancel answers canceled, with a header."""
        self.session.on_request(_create())
        self.session.on_request(_create(b"other"))
        self.upstream.opened[0].created(5)
        self.upstream.opened[1].created(5)
        self.assertEqual([r.watch_id for r in self.stream.sent], [0, 1])
        self.session.on_request(
            rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=1))
        )
        self.assertTrue(self.stream.sent[-1].canceled)
        self.assertTrue(self.stream.sent[-1].HasField("header"))
        self.assertTrue(self.upstream.opened[1].cancelled)

    def test_invalid_range(self) -> None:
        """A range end before its key is refused at once: created and canceled, id -1."""
        self.session.on_request(_create(b"b", b"a"))
        (response,) = self.stream.sent
        self.assertEqual((response.watch_id, response.created, response.canceled), (-1, True, True))
        self.assertEqual(self.upstream.opened, [])

    def test_progress_is_a_bookmark(self) -> None:
        """A progress request answers the lowest revision every watcher has seen up to."""
        self.session.on_request(_create())
        self.session.on_request(_create(b"k", start_revision=2))
        self.upstream.opened[0].created(9)
        self.upstream.opened[1].created(9)
        self.upstream.opened[1].events(2, 3)
        self.session.on_request(
            rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest())
        )
        progress = self.stream.sent[-1]
        self.assertEqual((progress.watch_id, progress.header.revision), (-1, 3))

    def test_progress_without_watchers_asks_the_members(self) -> None:
        """With no watcher yet, the members' current revision is the answer."""
        self.session.on_request(
            rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest())
        )
        (progress,) = self.stream.sent
        self.assertEqual((progress.watch_id, progress.header.revision), (-1, 42))
        self.assertEqual(self.members.calls, ["/etcdserverpb.KV/Range"])

    def test_close_releases_upstream(self) -> None:
        """When the client's stream goes, its watchers leave and upstream watches close."""
        self.session.on_request(_create())
        self.session.close()
        self.assertTrue(self.upstream.opened[0].cancelled)
        self.assertEqual(self.hub.watchers, 0)
