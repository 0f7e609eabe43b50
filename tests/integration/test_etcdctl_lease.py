"""Leases through etcdctl 3.5.1 and grpcio: our server checked against real etcd 3.5.1.

- the ``lease`` commands and ``put --lease`` print what etcd prints (lease ids and
  the remaining TTL normalised);
- a key with a lease outlives its TTL while keep-alives continue and is gone
  within TTL + 1 s once they stop (both servers);
- leases survive a graceful restart and a kill -9, and still expire afterwards;
- 3,000 leases expiring together do not stall reads (p99 of sequential gets).
"""

from __future__ import annotations

import re
import signal
import statistics
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import grpc
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from etcd_twisted._pb import rpc_pb2, rpc_pb2_grpc
from tests.support.processes import (
    Completed,
    etcdctl,
    our_server,
    spawn_etcdctl,
    start_member,
    start_pair,
    wait_healthy,
)

T = TypeVar("T")

#: etcdctl's lease id format, and the decimal ids of its JSON output.
_HEX_ID = re.compile(r"\b[0-9a-f]{16}\b")


async def gather(*coros: Coroutine[Any, Any, T]) -> list[T]:
    """Run coroutines concurrently; their results in order."""
    return await gatherResults([ensureDeferred(c) for c in coros], consumeErrors=True)


def sleep(seconds: float) -> Any:
    return deferLater(reactor, seconds, lambda: None)


class Ids:
    """Lease ids seen in one server's output, replaced by ``L1``, ``L2``… in order."""

    def __init__(self) -> None:
        self.names: dict[int, str] = {}

    def learn(self, text: str) -> None:
        for found in re.findall(r"lease ([0-9a-f]{16}) granted", text):
            self.names.setdefault(int(found, 16), f"L{len(self.names) + 1}")

    def normalise(self, text: str) -> str:
        for lease_id, name in self.names.items():
            text = text.replace(f"{lease_id:016x}", name).replace(f"{lease_id:x}", name)
            text = re.sub(rf"\b{lease_id}\b", name, text)
        text = re.sub(r'"(cluster_id|member_id)":\d+', r'"\1":0', text)
        text = re.sub(r'"raft_term":\d+', '"raft_term":T', text)
        # The remaining TTL depends on when the command ran.
        text = re.sub(r"remaining\(\d+s\)", "remaining(Ns)", text)
        text = re.sub(
            r'"ttl":(\d+)', lambda m: '"ttl":N' if int(m.group(1)) > 0 else m.group(0), text
        )
        text = re.sub(r'"ts":"[^"]*"', '"ts":"T"', text)
        # etcd lists a lease's keys in Go map order (random); ours are sorted.
        text = re.sub(
            r"attached keys\(\[([^\]]*)\]\)",
            lambda m: "attached keys([" + " ".join(sorted(m.group(1).split())) + "])",
            text,
        )
        text = re.sub(
            r'"keys":\[([^\]]*)\]',
            lambda m: '"keys":[' + ",".join(sorted(m.group(1).split(","))) + "]",
            text,
        )
        return re.sub(r"etcd-endpoints://0x[0-9a-f]+/[0-9.:]+", "etcd-endpoints://P", text)


class LeaseCommandTests(TestCase):
    """The same etcdctl lease commands against real etcd and ours."""

    timeout = 90
    maxDiff = None

    async def setUp(self) -> None:
        (etcd, _), (ours, _) = await start_pair(self, self.mktemp())
        self.urls = (etcd.client_url, ours.client_url)
        self.ids = (Ids(), Ids())

    async def same(self, *args: str) -> Completed:
        """Run a command on both; require the same normalised result; return ours."""
        results = await gather(*(etcdctl(url, *args) for url in self.urls))
        for ids, r in zip(self.ids, results, strict=True):
            ids.learn(r.out)
        (ie, io), (e, o) = self.ids, results
        self.assertEqual(
            (o.code, io.normalise(o.out), io.normalise(o.err)),
            (e.code, ie.normalise(e.out), ie.normalise(e.err)),
            f"etcdctl {' '.join(args)}",
        )
        return Completed(o.code, io.normalise(o.out), io.normalise(o.err))

    async def both_with(self, name: str, *args: str) -> Completed:
        """``same`` with each server's own id of lease ``name`` substituted for ``{id}``."""
        results = []
        for url, ids in zip(self.urls, self.ids, strict=True):
            lease = next(f"{i:x}" for i, n in ids.names.items() if n == name)
            results.append(etcdctl(url, *(a.replace("{id}", lease) for a in args)))
        e, o = await gather(*results)
        (ie, io) = self.ids
        self.assertEqual(
            (o.code, io.normalise(o.out), io.normalise(o.err)),
            (e.code, ie.normalise(e.out), ie.normalise(e.err)),
            f"etcdctl {' '.join(args)}",
        )
        return Completed(o.code, io.normalise(o.out), io.normalise(o.err))

    async def test_commands(self) -> None:
        """grant/put --lease/timetolive/list/keep-alive --once/revoke and their errors."""
        watchers = [
            spawn_etcdctl(self, url, "watch", "--rev=2", "--prefix", "k", "-w", "json")
            for url in self.urls
        ]
        self.assertEqual(
            (await self.same("lease", "grant", "1")).out, "lease L1 granted with TTL(2s)\n"
        )
        # L1 expires in 2 s: revoke it now so that the rest does not race its expiry.
        self.assertEqual(
            (await self.both_with("L1", "lease", "revoke", "{id}")).out, "lease L1 revoked\n"
        )
        self.assertEqual(
            (await self.same("lease", "grant", "60")).out, "lease L2 granted with TTL(60s)\n"
        )
        await self.same("lease", "grant", "600")
        await self.same("lease", "grant", "30")
        self.assertEqual((await self.both_with("L2", "put", "--lease={id}", "k1", "v")).out, "OK\n")
        await self.both_with("L2", "put", "--lease={id}", "k2", "v")
        out = await self.both_with("L2", "lease", "timetolive", "{id}", "--keys")
        self.assertEqual(
            out.out, "lease L2 granted with TTL(60s), remaining(Ns), attached keys([k1 k2])\n"
        )
        await self.both_with("L2", "lease", "timetolive", "{id}")
        out = await self.both_with("L2", "lease", "timetolive", "{id}", "-w", "json")
        self.assertIn('"granted-ttl":60', out.out)
        await self.both_with("L2", "lease", "timetolive", "{id}", "--keys", "-w", "json")
        self.assertEqual(
            (await self.same("lease", "timetolive", "1234")).out,
            "lease 0000000000001234 already expired\n",
        )
        out = await self.same("lease", "timetolive", "1234", "-w", "json")
        self.assertIn('"ttl":-1,"granted-ttl":0', out.out)
        # Soonest expiry first (etcd sorts by remaining time).
        self.assertEqual((await self.same("lease", "list")).out, "found 3 leases\nL4\nL2\nL3\n")
        await self.same("lease", "list", "-w", "json")
        out = await self.both_with("L2", "lease", "keep-alive", "--once", "{id}")
        self.assertEqual(out.out, "lease L2 keepalived with TTL(60)\n")
        out = await self.same("lease", "keep-alive", "--once", "1234")
        self.assertEqual((out.code, out.err), (2, "Error: etcdserver: requested lease not found\n"))
        # Without --once, an unknown lease ends the command quietly.
        out = await self.same("lease", "keep-alive", "1234")
        self.assertEqual((out.code, out.out), (0, "lease 0000000000001234 expired or revoked.\n"))
        out = await self.both_with("L2", "lease", "revoke", "{id}")
        self.assertEqual(out.out, "lease L2 revoked\n")
        self.assertEqual((await self.same("get", "--prefix", "k")).out, "")
        # The revoke deleted both keys at one revision: one watch response, key order.
        for w in watchers:
            await w.wait_output('"mod_revision":4}}]')
        e, o = await gather(*(w.stop(signal.SIGINT) for w in watchers))
        (ie, io) = self.ids
        self.assertEqual(io.normalise(o.out), ie.normalise(e.out))
        last = o.out.splitlines()[-1]
        self.assertIn(
            '"Events":[{"type":1,"kv":{"key":"azE=","mod_revision":4}},'
            '{"type":1,"kv":{"key":"azI=","mod_revision":4}}]',
            last,
        )
        out = await self.both_with("L2", "lease", "revoke", "{id}")
        self.assertEqual(out.code, 1)
        self.assertTrue(
            out.err.endswith(
                "Error: failed to revoke lease (etcdserver: requested lease not found)\n"
            ),
            out.err,
        )
        out = await self.same("put", "--lease=1234", "k", "v")
        self.assertTrue(out.err.endswith("Error: etcdserver: requested lease not found\n"), out.err)
        out = await self.same("lease", "grant", "9000000001")
        self.assertTrue(
            out.err.endswith("Error: failed to grant lease (etcdserver: too large lease TTL)\n"),
            out.err,
        )
        await self.same("lease", "list", "-w", "json")

    async def test_keep_alive_holds_then_expires(self) -> None:
        """With keep-alives a TTL-2 key lives 5 s; after they stop it is gone within 3 s."""
        grants = await gather(*(etcdctl(url, "lease", "grant", "2") for url in self.urls))
        leases = [g.out.split()[1] for g in grants]
        for url, lease in zip(self.urls, leases, strict=True):
            self.assertEqual(
                (await etcdctl(url, "put", f"--lease={lease}", "held", "v")).out, "OK\n"
            )
        keepers = [
            spawn_etcdctl(self, url, "lease", "keep-alive", lease)
            for url, lease in zip(self.urls, leases, strict=True)
        ]
        for keeper in keepers:
            await keeper.wait_output("keepalived with TTL(2)")
        deadline = reactor.seconds() + 5
        while reactor.seconds() < deadline:
            found = await gather(
                *(etcdctl(url, "get", "held", "--print-value-only") for url in self.urls)
            )
            self.assertEqual([f.out for f in found], ["v\n", "v\n"], "a kept-alive key expired")
            await sleep(0.2)
        stopped = await gather(*(k.stop(signal.SIGINT) for k in keepers))
        lines = [set(s.out.splitlines()) for s in stopped]
        self.assertEqual(
            [
                {line.replace(lease, "L") for line in ls}
                for ls, lease in zip(lines, leases, strict=True)
            ],
            [{"lease L keepalived with TTL(2)"}] * 2,
        )
        self.assertEqual(stopped[1].code, stopped[0].code)
        stop_time = reactor.seconds()
        gone_after = []
        for url in self.urls:
            while (await etcdctl(url, "get", "held", "--print-value-only")).out:
                self.assertLess(reactor.seconds() - stop_time, 6, f"key never expired on {url}")
                await sleep(0.05)
            gone_after.append(reactor.seconds() - stop_time)
        # The expiry is a delete like any other for a watcher.
        watchers = [spawn_etcdctl(self, url, "watch", "--rev=2", "held") for url in self.urls]
        for w in watchers:
            await w.wait_output("DELETE\nheld\n\n")
        outs = await gather(*(w.stop(signal.SIGINT) for w in watchers))
        self.assertEqual([o.out for o in outs], ["PUT\nheld\nv\nDELETE\nheld\n\n"] * 2)
        # TTL 2 s + 1 s; the last keep-alive may have come up to 1/3 TTL before the stop.
        self.assertLessEqual(gone_after[1], 3.0, f"etcd, ours: {gone_after}")


class LeaseRestartTests(TestCase):
    """Our server keeps its leases over a restart (graceful and kill -9)."""

    timeout = 90

    async def test_restart_keeps_leases(self) -> None:
        """timetolive shows the lease and its keys after restarts; a short one still expires."""
        member, process = await start_member(self, our_server, self.mktemp())
        url = member.client_url
        long_id = (await etcdctl(url, "lease", "grant", "300")).out.split()[1]
        await etcdctl(url, "put", f"--lease={long_id}", "long", "v")
        for how in ("stop", "kill"):
            short_id = (await etcdctl(url, "lease", "grant", "2")).out.split()[1]
            await etcdctl(url, "put", f"--lease={short_id}", "short", "v")
            if how == "stop":
                # twistd shuts down cleanly, then exits by the signal it got.
                self.assertIn(await process.stop(), (0, -signal.SIGTERM))
                self.assertIn("Server Shut Down.", process.output())
            else:
                await process.kill()
            restarted = reactor.seconds()
            process.start()
            await wait_healthy(url, process)
            out = (await etcdctl(url, "lease", "timetolive", long_id, "--keys")).out
            self.assertRegex(
                out,
                rf"^lease {long_id} granted with TTL\(300s\), remaining\(\d+s\), attached keys\(\[long\]\)\n$",
            )
            out = (await etcdctl(url, "lease", "timetolive", short_id, "--keys")).out
            self.assertIn(f"lease {short_id} granted with TTL(2s)", out)
            # A restarted leader extends leases by about an election timeout (etcd too).
            while (await etcdctl(url, "get", "short", "--print-value-only")).out:
                self.assertLess(
                    reactor.seconds() - restarted, 8, f"{how}: short lease never expired"
                )
                await sleep(0.1)
            out = (await etcdctl(url, "lease", "timetolive", short_id)).out
            self.assertEqual(out, f"lease {short_id} already expired\n")
        self.assertEqual((await etcdctl(url, "get", "long", "--print-value-only")).out, "v\n")


# --- thousands of leases expiring at once


def _mass_expiry(target: str, count: int, ttl: int, prefix: bytes) -> dict[str, Any]:
    """In a thread, with blocking grpcio: grant ``count`` leases with a key each (renewing
    those granted so far every ttl/3 s while the rest are made), renew them all at once
    so they expire together, then time sequential linearizable gets until every key is
    gone. Returns the latencies (seconds) and timings."""
    channel = grpc.insecure_channel(target)
    try:
        kv = rpc_pb2_grpc.KVStub(channel)
        lease = rpc_pb2_grpc.LeaseStub(channel)
        ids = list(range(1000, 1000 + count))
        started = renewed_at = time.monotonic()

        def renew(upto: int) -> list[Any]:
            requests = [rpc_pb2.LeaseKeepAliveRequest(ID=i) for i in ids[:upto]]
            return list(lease.LeaseKeepAlive(iter(requests), timeout=30))

        in_flight = 200
        for start in range(0, count, in_flight):
            if time.monotonic() - renewed_at > ttl / 3:
                renew(start)
                renewed_at = time.monotonic()
            batch = ids[start : start + in_flight]
            grants = [
                lease.LeaseGrant.future(rpc_pb2.LeaseGrantRequest(ID=i, TTL=ttl), timeout=30)
                for i in batch
            ]
            for f in grants:
                f.result()
            puts = [
                kv.Put.future(
                    rpc_pb2.PutRequest(key=prefix + b"%d" % i, value=b"v", lease=i), timeout=30
                )
                for i in batch
            ]
            for f in puts:
                f.result()
        renewed = renew(count)
        renewed_at = time.monotonic()
        setup = renewed_at - started
        ttls = sorted({r.TTL for r in renewed})
        assert len(renewed) == count and ttls == [ttl], (
            f"{len(renewed)} renewed, TTLs {ttls}, setup {setup:.2f}s"
        )
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        latencies: list[tuple[float, float]] = []  # (seconds since renewal, latency)
        gone_at = None
        probe = rpc_pb2.RangeRequest(key=b"probe")
        n = 0
        while time.monotonic() - renewed_at < ttl + 15:
            t0 = time.monotonic()
            kv.Range(probe, timeout=10)
            latencies.append((t0 - renewed_at, time.monotonic() - t0))
            n += 1
            if n % 20 == 0 and t0 - renewed_at > ttl - 0.5:
                left = kv.Range(
                    rpc_pb2.RangeRequest(key=prefix, range_end=end, count_only=True)
                ).count
                if left == 0:
                    gone_at = time.monotonic() - renewed_at
                    break
        return {"latencies": latencies, "gone_at": gone_at, "setup": setup}
    finally:
        channel.close()


def _report(result: dict[str, Any], ttl: int) -> dict[str, float]:
    window = [lat for since, lat in result["latencies"] if since >= ttl - 0.2]
    window.sort()
    return {
        "samples": len(window),
        "p50_ms": 1000 * statistics.median(window),
        "p99_ms": 1000 * window[min(len(window) - 1, int(0.99 * len(window)))],
        "max_ms": 1000 * window[-1],
        "all_gone_s": result["gone_at"] or -1.0,
        "setup_s": result["setup"],
    }


class MassExpiryTests(TestCase):
    """3,000 leases with a key each, all expiring at once, while a client reads."""

    timeout = 90
    COUNT = 3000
    TTL = 2

    async def measure(self, factory: Any) -> dict[str, float]:
        member, _ = await start_member(self, factory, self.mktemp())
        result = await deferToThread(
            _mass_expiry, f"127.0.0.1:{member.client_port}", self.COUNT, self.TTL, b"lease/"
        )
        return _report(result, self.TTL)

    async def test_reads_stay_fast(self) -> None:
        """Sequential gets keep p99 < 100 ms while 3,000 leases are revoked."""
        numbers = await self.measure(our_server)
        print(f"\nours, {self.COUNT} leases expiring: {numbers}")
        self.assertGreater(numbers["all_gone_s"], 0, f"not every lease expired: {numbers}")
        self.assertLess(numbers["p99_ms"], 100, numbers)
