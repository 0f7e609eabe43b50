"""The JSON gateway's streaming calls, ``POST /v3/watch`` and ``POST /v3/lease/keepalive``,
on our server checked against real etcd 3.5.1.

Each stream is read line by line as the chunks arrive (``{"result": ...}`` per
message); the test requires the same lines from both servers, once cluster and member
ids are normalised, and that lines arrive while the stream is still open.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Coroutine
from io import BytesIO
from typing import Any, TypeVar

import treq
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool
from twisted.web.http_headers import Headers

from tests.support.processes import poll_until, start_pair

T = TypeVar("T")


async def gather(*coros: Coroutine[Any, Any, T]) -> list[T]:
    """Run coroutines concurrently; their results in order."""
    return await gatherResults([ensureDeferred(c) for c in coros], consumeErrors=True)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def normalise(line: str) -> str:
    """A response line with the ids that differ between clusters zeroed."""
    line = re.sub(r'"(cluster_id|member_id)":"\d+"', r'"\1":"0"', line)
    return re.sub(r'"raft_term":"\d+"', '"raft_term":"T"', line)


class _Lines(Protocol):
    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        self.stream.lines.extend(line.decode() for line in lines if line.strip())

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self.buffer.strip():
            self.stream.lines.append(self.buffer.decode())
        self.stream.ended = True


class Stream:
    """One streaming POST: its response lines as they arrive."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.ended = False
        self.code = 0
        self._proto: _Lines | None = None

    @classmethod
    async def open(cls, case: TestCase, url: str, *bodies: dict[str, Any]) -> Stream:
        """POST ``bodies`` (JSON objects, one after another) to ``url``."""
        stream = cls()
        pool = HTTPConnectionPool(reactor, persistent=False)
        body = b"\n".join(json.dumps(b).encode() for b in bodies)
        response = await Agent(reactor, pool=pool).request(
            b"POST",
            url.encode(),
            Headers({b"content-type": [b"application/json"]}),
            FileBodyProducer(BytesIO(body)),
        )
        stream.code = response.code
        stream._proto = _Lines(stream)
        response.deliverBody(stream._proto)
        case.addCleanup(stream.close)
        return stream

    async def wait_lines(self, n: int, timeout: float = 10.0) -> list[str]:
        """Wait for at least ``n`` lines (the stream staying open)."""
        await poll_until(lambda: len(self.lines) >= n, timeout, f"{n} lines, got {self.lines}")
        return [json.loads(line) for line in self.lines]

    def close(self) -> None:
        if self._proto is not None and not self.ended:
            self._proto.transport.stopProducing()


class GatewayStreamTests(TestCase):
    """The same streaming requests against real etcd and ours."""

    timeout = 60
    maxDiff = None

    async def setUp(self) -> None:
        (etcd, _), (ours, _) = await start_pair(self, self.mktemp())
        self.urls = (etcd.client_url, ours.client_url)

    async def post(self, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """A unary gateway call on both; both must answer alike (ids normalised)."""

        async def one(url: str) -> tuple[int, str]:
            response = await treq.post(url + path, json=body, timeout=10, persistent=False)
            return response.code, normalise((await response.content()).decode())

        etcd, ours = await gather(*(one(url) for url in self.urls))
        self.assertEqual(ours, etcd, f"{path} {body}")
        return json.loads(ours[1])

    async def streams(self, path: str, *bodies: dict[str, Any]) -> tuple[Stream, Stream]:
        etcd, ours = await gather(*(Stream.open(self, url + path, *bodies) for url in self.urls))
        return etcd, ours

    async def same_lines(
        self, pair: tuple[Stream, Stream], n: int, still_open: bool = True
    ) -> list[dict[str, Any]]:
        """Wait for ``n`` lines on both, a moment more, then compare lines and whether open."""
        await gather(*(s.wait_lines(n) for s in pair))
        await deferLater(reactor, 0.2, lambda: None)
        etcd, ours = pair
        # A watch stream stays open after the request body ends; keep-alive ends (both).
        self.assertEqual((etcd.ended, ours.ended), (not still_open, not still_open))
        self.assertEqual(
            (ours.code, [normalise(x) for x in ours.lines]),
            (etcd.code, [normalise(x) for x in etcd.lines]),
        )
        return [json.loads(line)["result"] for line in ours.lines]

    async def test_watch(self) -> None:
        """Created first, events as they happen, prev_kv, filters, several requests in one
        body, progress, refusals, and compacted and negative starts."""
        key = await self.streams(
            "/v3/watch", {"create_request": {"key": b64("foo"), "prev_kv": True}}
        )
        k_ours = key[1]
        prefix = await self.streams(
            "/v3/watch",
            {
                "create_request": {
                    "key": b64("foo"),
                    "range_end": b64("fop"),
                    "start_revision": "2",
                    "filters": ["NOPUT"],
                    "watch_id": "5",
                }
            },
        )
        several = await self.streams(
            "/v3/watch",
            {"create_request": {"key": b64("a")}},
            {"create_request": {"key": b64("b"), "watchId": "7"}},
            {"progress_request": {}},
        )
        refused = await self.streams(
            "/v3/watch", {"create_request": {"key": b64("b"), "range_end": b64("a")}}
        )
        # Created (and answered) before anything is written.
        (created,) = [r["result"] for r in await k_ours.wait_lines(1)]
        self.assertEqual((created["created"], created["header"]["revision"]), (True, "1"))
        self.assertEqual(len(await several[1].wait_lines(3)), 3)
        await self.post("/v3/kv/put", {"key": b64("foo"), "value": b64("1")})  # 2
        got = await self.same_lines(key, 2)
        self.assertEqual(got[1]["events"][0]["kv"]["value"], b64("1"))
        await self.post("/v3/kv/put", {"key": b64("foo"), "value": b64("2")})  # 3
        await self.post("/v3/kv/put", {"key": b64("a"), "value": b64("x")})  # 4
        await self.post("/v3/kv/put", {"key": b64("b"), "value": b64("y")})  # 5
        await self.post("/v3/kv/deleterange", {"key": b64("foo"), "range_end": b64("fop")})  # 6
        got = await self.same_lines(key, 4)
        self.assertEqual(got[2]["events"][0]["prev_kv"]["value"], b64("1"))
        self.assertEqual(got[3]["events"][0]["type"], "DELETE")
        got = await self.same_lines(prefix, 2)
        self.assertEqual([r.get("watch_id") for r in got], ["5", "5"])
        self.assertEqual(got[1]["events"][0]["type"], "DELETE")
        got = await self.same_lines(several, 5)
        self.assertEqual([r.get("watch_id", "0") for r in got], ["0", "7", "-1", "0", "7"])
        got = await self.same_lines(refused, 1)
        self.assertEqual(got[0]["cancel_reason"], "mvcc: watcher range is empty")

        await self.post("/v3/kv/compaction", {"revision": "4"})
        compacted = await self.streams(
            "/v3/watch", {"create_request": {"key": b64("foo"), "start_revision": "2"}}
        )
        got = await self.same_lines(compacted, 2)
        self.assertEqual((got[1]["canceled"], got[1]["compact_revision"]), (True, "4"))
        self.assertNotIn("revision", got[1]["header"])
        negative = await self.streams(
            "/v3/watch", {"create_request": {"key": b64("foo"), "start_revision": "-1"}}
        )
        got = await self.same_lines(negative, 2)
        self.assertEqual((got[0]["created"], got[1]["compact_revision"]), (True, "4"))

    async def test_negative_start_without_compaction(self) -> None:
        """A negative start on a store never compacted watches from the next revision."""
        await self.post("/v3/kv/put", {"key": b64("foo"), "value": b64("old")})
        pair = await self.streams(
            "/v3/watch", {"create_request": {"key": b64("foo"), "start_revision": "-1"}}
        )
        await gather(*(s.wait_lines(1) for s in pair))
        await deferLater(reactor, 0.3, lambda: None)
        await self.post("/v3/kv/put", {"key": b64("foo"), "value": b64("new")})
        got = await self.same_lines(pair, 2)
        self.assertEqual([e["kv"]["value"] for e in got[1]["events"]], [b64("new")])

    async def test_keepalive(self) -> None:
        """Keep-alive answers each request of the body in order (TTL absent for an unknown
        lease), then ends; a lease renewed once expires a TTL later."""
        await self.post("/v3/lease/grant", {"ID": "4242", "TTL": "2"})
        await self.post("/v3/lease/grant", {"ID": "4343", "TTL": "60"})
        await self.post("/v3/kv/put", {"key": b64("held"), "value": b64("v"), "lease": "4242"})
        pair = await self.streams("/v3/lease/keepalive", {"ID": "4242"}, {"ID": 4343}, {"ID": "77"})
        got = await self.same_lines(pair, 3, still_open=False)
        self.assertEqual(
            [(r["ID"], r.get("TTL")) for r in got], [("4242", "2"), ("4343", "60"), ("77", None)]
        )
        renewed = reactor.seconds()
        out = await self.post("/v3/lease/timetolive", {"ID": "4242", "keys": True})
        self.assertEqual((out["grantedTTL"], out["keys"]), ("2", [b64("held")]))
        for url in self.urls:
            while True:
                response = await treq.post(
                    url + "/v3/kv/range", json={"key": b64("held")}, persistent=False
                )
                if "kvs" not in await response.json():
                    break
                self.assertLess(reactor.seconds() - renewed, 4, f"lease never expired on {url}")
                await deferLater(reactor, 0.05, lambda: None)
        # The lease is gone: a keep-alive answers TTL 0 (left out of the JSON).
        again = await self.streams("/v3/lease/keepalive", {"ID": "4242"})
        got = await self.same_lines(again, 1, still_open=False)
        self.assertEqual((got[0]["ID"], got[0].get("TTL")), ("4242", None))
        out = await self.post("/v3/lease/leases", {})
        self.assertEqual(out["leases"], [{"ID": "4343"}])
