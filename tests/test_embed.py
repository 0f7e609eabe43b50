"""A whole member in-process: build_service, both protocols on one port, restart, shutdown."""

from __future__ import annotations

import base64
import json
import os

import grpc
import treq
import treq.client
from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from etcd_twisted._pb import health_pb2, health_pb2_grpc, rpc_pb2, rpc_pb2_grpc
from etcd_twisted.config import parse
from etcd_twisted.embed import EtcdService, build_service


def member_config(data_dir: str, *extra: str) -> object:
    return parse(
        [
            "--data-dir", data_dir,
            "--listen-client-urls", "http://127.0.0.1:0",
            "--listen-peer-urls", "http://127.0.0.1:0",
            *extra,
        ],
        {},
    )  # fmt: skip


class _Holder(Protocol):
    def connectionMade(self) -> None:
        self.factory.connected.append(self)

    def connectionLost(self, reason: object = None) -> None:
        self.factory.lost += 1


class _HolderFactory(ClientFactory):
    protocol = _Holder

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.connected: list[_Holder] = []
        self.lost = 0


class MemberTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.http = treq.client.HTTPClient(
            Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
        )

    async def start(self, data_dir: str | None = None, *extra: str) -> tuple[EtcdService, int]:
        self.data_dir = data_dir or self.mktemp()
        service = build_service(member_config(self.data_dir, *extra), reactor)
        service.startService()
        self.addCleanup(lambda: service.stopService() if service.running else None)
        ports = await service.client_ports()
        port = ports[0].getHost().port
        deadline = reactor.seconds() + 10
        while not service.server.leader_id and reactor.seconds() < deadline:
            await deferLater(reactor, 0.01, lambda: None)
        return service, port

    async def post(self, port: int, path: str, body: dict) -> tuple[int, dict]:
        response = await self.http.post(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode())
        return response.code, json.loads(await response.content())

    async def test_grpc_and_http_share_the_port(self) -> None:
        """grpcio health says SERVING, unknown methods are UNIMPLEMENTED, HTTP answers too."""
        _, port = await self.start()

        def grpc_calls() -> tuple[int, grpc.StatusCode]:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                health = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=5
                )
                unknown = channel.unary_unary("/etcdserverpb.KV/NoSuchMethod")
                try:
                    unknown(b"", timeout=5)
                except grpc.RpcError as e:
                    return health.status, e.code()
                raise AssertionError("unknown method succeeded")

        status, code = await deferToThread(grpc_calls)
        self.assertEqual(status, health_pb2.HealthCheckResponse.SERVING)
        self.assertEqual(code, grpc.StatusCode.UNIMPLEMENTED)
        version = await (await self.http.get(f"http://127.0.0.1:{port}/version")).json()
        self.assertEqual(version["etcdcluster"], "3.5.0")
        metrics = await (await self.http.get(f"http://127.0.0.1:{port}/metrics")).text()
        self.assertIn("etcd_server_has_leader 1.0", metrics)
        self.assertIn("etcd_server_is_leader 1.0", metrics)

    async def test_serving_once_published(self) -> None:
        """serving() fires once the client port listens and the member's name is applied."""
        service, _ = await self.start()
        await service.serving()
        self.assertTrue(service.server.publisher.published)
        members = service.server.maintenance.member_list().members
        self.assertEqual([m.clientURLs for m in members], [service.config.advertise_client_urls])

    async def test_watch_stream_gauge(self) -> None:
        """etcd_debugging_mvcc_watch_stream_total counts open Watch calls, back to 0 when closed."""
        _, port = await self.start()

        async def gauge() -> float:
            text = await (await self.http.get(f"http://127.0.0.1:{port}/metrics")).text()
            for line in text.splitlines():
                if line.startswith("etcd_debugging_mvcc_watch_stream_total "):
                    return float(line.split()[1])
            raise AssertionError("etcd_debugging_mvcc_watch_stream_total not exported")

        self.assertEqual(await gauge(), 0)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.addCleanup(channel.close)
        stub = rpc_pb2_grpc.WatchStub(channel)
        calls = []
        for key in (b"a", b"b"):
            create = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=key))
            call = stub.Watch(iter([create]), timeout=10)
            self.assertTrue((await deferToThread(next, call)).created)
            calls.append(call)
        self.assertEqual(await gauge(), 2)
        calls[0].cancel()
        value = await gauge()
        deadline = reactor.seconds() + 5
        while value != 1 and reactor.seconds() < deadline:
            await deferLater(reactor, 0.02, lambda: None)
            value = await gauge()
        self.assertEqual(value, 1)
        calls[1].cancel()
        while value != 0 and reactor.seconds() < deadline:
            await deferLater(reactor, 0.02, lambda: None)
            value = await gauge()
        self.assertEqual(value, 0)

    async def test_put_over_grpc_read_over_gateway(self) -> None:
        """A put through grpcio is read back through the JSON gateway at the same revision."""
        _, port = await self.start()

        def put() -> rpc_pb2.PutResponse:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                return rpc_pb2_grpc.KVStub(channel).Put(
                    rpc_pb2.PutRequest(key=b"greeting", value=b"hello"), timeout=5
                )

        put_response = await deferToThread(put)
        self.assertEqual(put_response.header.revision, 2)
        code, body = await self.post(port, "/v3/kv/range", {"key": "Z3JlZXRpbmc="})
        self.assertEqual(code, 200)
        self.assertEqual(body["kvs"][0]["value"], "aGVsbG8=")
        self.assertEqual(body["header"]["revision"], "2")

    async def test_dashboard_flag(self) -> None:
        """/ui/ is served by default and is a 404 with --enable-dashboard=false."""
        _, on = await self.start()
        _, off = await self.start(None, "--enable-dashboard=false")
        page = await self.http.get(f"http://127.0.0.1:{on}/ui/")
        self.assertEqual(page.code, 200)
        self.assertIn(b"etcd-twisted", await page.content())
        missing = await self.http.get(f"http://127.0.0.1:{off}/ui/")
        self.assertEqual((missing.code, await missing.content()), (404, b"404 page not found\n"))

    async def test_restart_keeps_data(self) -> None:
        """After a graceful stop, a member built on the same data dir has every write."""
        service, port = await self.start()
        for i in range(20):
            value = base64.b64encode(f"{i}".encode()).decode()
            code, _ = await self.post(port, "/v3/kv/put", {"key": "a2V5", "value": value})
            self.assertEqual(code, 200)
        await service.stopService()
        _, port = await self.start(self.data_dir)
        code, body = await self.post(port, "/v3/kv/range", {"key": "a2V5"})
        self.assertEqual(body["kvs"][0]["version"], "20")
        self.assertEqual(body["header"]["revision"], "21")

    async def test_snapshots_and_purge(self) -> None:
        """Every --snapshot-count entries a snapshot is saved, old files are purged, and a
        restart from snapshot + WAL tail has every write."""
        flags = ("--snapshot-count", "50", "--max-snapshots", "2")
        service, port = await self.start(None, *flags)
        for i in range(260):
            key = base64.b64encode(f"k{i % 7}".encode()).decode()
            code, _ = await self.post(port, "/v3/kv/put", {"key": key, "value": "MQ=="})
            self.assertEqual(code, 200)
        self.assertGreaterEqual(service.server.snapshots.taken, 4)
        snap_dir = os.path.join(self.data_dir, "member", "snap")
        snaps = [n for n in os.listdir(snap_dir) if n.endswith(".snap")]
        self.assertEqual(len(snaps), 2)
        await service.stopService()
        service, port = await self.start(self.data_dir, *flags)
        self.assertGreater(service.server.snapshots.snapshot_index, 200)
        code, body = await self.post(port, "/v3/kv/range", {"key": "AA==", "range_end": "AA=="})
        self.assertEqual(body["count"], "7")
        self.assertEqual(body["header"]["revision"], "261")

    async def test_garbage_and_half_open_connections(self) -> None:
        """1,000 garbage connections and 1,000 half-open ones leave the member serving."""
        service, port = await self.start()
        garbage = _HolderFactory(b"\x16\x03\x01garbage")
        half_open = _HolderFactory(b"PRI * HTTP/2.0\r\n")
        connectors = []
        for factory in (garbage, half_open):
            for _ in range(1000):
                connectors.append(reactor.connectTCP("127.0.0.1", port, factory))
        deadline = reactor.seconds() + 20
        while len(garbage.connected) + len(half_open.connected) < 2000:
            self.assertLess(reactor.seconds(), deadline, "connections not established")
            await deferLater(reactor, 0.01, lambda: None)
        for holder in garbage.connected:
            holder.transport.write(garbage.payload)
        for holder in half_open.connected:
            holder.transport.write(half_open.payload)
        while garbage.lost < 1000:
            self.assertLess(reactor.seconds(), deadline, "garbage connections not closed")
            await deferLater(reactor, 0.01, lambda: None)
        code, body = await self.post(port, "/v3/kv/put", {"key": "b2s=", "value": "MQ=="})
        self.assertEqual(code, 200)
        self.assertEqual(half_open.lost, 0)
        for connector in connectors:
            connector.disconnect()
        await gatherResults([deferLater(reactor, 0.1, lambda: None)])

    def test_bad_data_dir_is_refused(self) -> None:
        """A data dir of an unknown layout is refused before anything listens."""
        data_dir = self.mktemp()
        os.makedirs(data_dir)
        with open(os.path.join(data_dir, "something-else"), "w") as f:
            f.write("x")
        with self.assertRaises(Exception) as e:
            build_service(member_config(data_dir), reactor)
        self.assertIn("refusing an unknown layout", str(e.exception))
