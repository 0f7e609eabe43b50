"""Members of one cluster in a single test: task.Clock, an in-memory peer network, a
synchronous WAL writer and stub HTTP forwarding. No reactor, no threads, no sockets."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from etcd_twisted._pb import raft_pb2
from etcd_twisted.config import Config, parse
from etcd_twisted.mvcc.errors import MvccError
from etcd_twisted.server.bootstrap import bootstrap
from etcd_twisted.server.corruption import HASHKV_PATH, request_revision, response_body
from etcd_twisted.server.etcd_server import EtcdServer
from etcd_twisted.server.peers import PeerInbox


class SyncWALWriter(Service):
    """The WAL writer's calls, run at once on the caller's thread."""

    name = "wal-writer"

    def __init__(self, wal: Any) -> None:
        self._wal = wal
        self.writes = 0

    def save(
        self, hard_state: raft_pb2.HardState, entries: Sequence[raft_pb2.Entry]
    ) -> Deferred[None]:
        self.writes += 1
        self._wal.save(hard_state, list(entries))
        return succeed(None)

    def call(self, fn: Any, *args: Any) -> Deferred[Any]:
        try:
            return succeed(fn(*args))
        except Exception:
            return fail(Failure())


class MemoryNetwork:
    """Delivers raft messages between the members of a :class:`Cluster` on the next turn."""

    def __init__(self, cluster: Cluster, inbox: PeerInbox) -> None:
        self._cluster = cluster
        self._id = inbox.member_id
        self.peers: dict[int, object] = {}

    def send(self, messages: list[raft_pb2.Message]) -> None:
        for message in messages:
            if self._cluster.connected(self._id, message.to):
                target = self._cluster.servers[message.to]
                self._cluster.clock.callLater(0, target.step, message)

    def is_active(self, member_id: int) -> bool:
        return self._cluster.connected(self._id, member_id)

    def add_peer(self, member_id: int, urls: list[str]) -> None:
        self.peers[member_id] = urls

    def update_peer(self, member_id: int, urls: list[str]) -> None:
        self.peers[member_id] = urls

    def remove_peer(self, member_id: int) -> None:
        self.peers.pop(member_id, None)


class StubResponse:
    """The parts of a treq response the forwarder reads."""

    def __init__(self, body: bytes, code: int = 200) -> None:
        self.code = code
        self._body = body

    def content(self) -> Deferred[bytes]:
        return succeed(self._body)


class StubHTTP:
    """Posts to a member's peer URL call its ``handle_forwarded`` directly."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self.posts: list[str] = []
        self.requests: list[tuple[str, str]] = []

    def post(self, url: str, data: bytes, timeout: float) -> Deferred[Any]:
        self.posts.append(url)
        parts = urlsplit(url)
        kind = {"/leases": "renew", "/leases/internal": "ttl", "/members/promote": "promote"}[
            parts.path
        ]
        for server in self._cluster.servers.values():
            if f"{parts.scheme}://{parts.netloc}" in server.config.initial_advertise_peer_urls:
                d: Deferred[Any] = Deferred()
                answer = server.maintenance.handle_forwarded(kind, data)
                d.callback(StubResponse(answer))
                return d
        raise AssertionError(f"no member at {url}")

    def request(self, method: str, url: str, data: bytes, timeout: float) -> Deferred[Any]:
        """``GET /members/hashkv`` answered from the member at ``url`` (unreachable when
        it is cut off), as the peer API's handler answers it."""
        self.requests.append((method, url))
        parts = urlsplit(url)
        assert (method, parts.path) == ("GET", HASHKV_PATH)
        for server in self._cluster.servers.values():
            if f"{parts.scheme}://{parts.netloc}" in server.config.initial_advertise_peer_urls:
                if server.member_id in self._cluster.cut:
                    return fail(ConnectionRefusedError(url))

                def failed(failure: Failure) -> StubResponse:
                    failure.trap(MvccError)
                    return StubResponse(failure.getErrorMessage().encode() + b"\n", 400)

                d = server.corruption.local_hash(request_revision(data))
                return d.addCallbacks(lambda answer: StubResponse(response_body(*answer)), failed)
        raise AssertionError(f"no member at {url}")


class Cluster:
    """``size`` members named m0, m1, ... sharing one clock."""

    def __init__(self, base_dir: str, size: int = 1, *flags: str) -> None:
        self.clock = Clock()
        self.http = StubHTTP(self)
        names = [f"m{i}" for i in range(size)]
        initial = ",".join(f"{n}=http://127.0.0.1:{1000 + i}" for i, n in enumerate(names))
        self.servers: dict[int, EtcdServer] = {}
        self.cut: set[int] = set()
        for i, name in enumerate(names):
            config = self.config(base_dir, name, 1000 + i, initial, flags)
            boot = bootstrap(config, random.Random(i))
            server = EtcdServer(
                config,
                boot,
                self.clock,
                http=self.http,
                network=lambda inbox: MemoryNetwork(self, inbox),
                wal_writer=SyncWALWriter(boot.wal),
            )
            self.servers[server.member_id] = server

    @staticmethod
    def config(base_dir: str, name: str, port: int, initial: str, flags: Sequence[str]) -> Config:
        return parse(
            [
                "--name", name,
                "--data-dir", f"{base_dir}/{name}.etcd",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{port}",
                "--initial-cluster", initial,
                *flags,
            ],
            {},
        )  # fmt: skip

    def connected(self, a: int, b: int) -> bool:
        return b in self.servers and a not in self.cut and b not in self.cut

    def start(self) -> None:
        for server in self.servers.values():
            server.startService()
        self.run_until(lambda: self.leader() is not None)

    def settle(self, turns: int = 100) -> None:
        """Run every callLater(0) and the work it schedules."""
        for _ in range(turns):
            self.clock.advance(0)

    def run_until(self, condition: Any, seconds: float = 30.0, step: float = 0.01) -> None:
        """Advance the clock in small steps until ``condition()`` holds."""
        for _ in range(int(seconds / step)):
            self.settle(5)
            if condition():
                return
            self.clock.advance(step)
        raise AssertionError("condition not reached")

    def leader(self) -> EtcdServer | None:
        for server in self.servers.values():
            if server.is_leader and server.member_id not in self.cut:
                return server
        return None

    def followers(self) -> list[EtcdServer]:
        return [s for s in self.servers.values() if not s.is_leader]

    def stop(self) -> list[Deferred[None]]:
        return [server.stopService() for server in self.servers.values() if server.running]
