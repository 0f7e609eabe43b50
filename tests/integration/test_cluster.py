"""Clusters of several members on loopback, driven by the real etcdctl 3.5.1 (issue 8).

Each test starts its own cluster from ``--initial-cluster`` (our members, and real
etcd 3.5.1 members where the shapes of etcdctl's output are compared) and shares it
between the checks that fit together, to keep the file's wall time down. Writes go
through grpcio clients whose calls are bridged to Deferreds, so the reactor (which
also runs etcdctl and watches the processes) stays free.

Measurements (failover time, put and linearizable-read throughput, ours and etcd) are
printed and written as JSON to ``ETCD_TWISTED_CLUSTER_RESULTS`` (default
``cluster-measurements.json`` in trial's working directory); only failover is
asserted, loosely, against three election timeouts.

``ETCD_TWISTED_CLUSTER_SERVER=etcd`` runs the tests that otherwise start only our
members against real etcd 3.5.1 instead: a check of the tests themselves.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.support.processes import (
    KV,
    Cluster,
    Completed,
    endpoint_statuses,
    etcdctl,
    leader_of,
    new_member,
    prefix_end,
    start_cluster,
    wait_healthy,
    wait_until,
)

#: The default ``--election-timeout`` (seconds) both servers run with.
ELECTION_TIMEOUT = 1.0
RESULTS_PATH = os.environ.get("ETCD_TWISTED_CLUSTER_RESULTS", "cluster-measurements.json")
#: Keys written while a member is down: past etcd's 5000 catch-up entries plus a snapshot.
FALL_BEHIND_KEYS = int(os.environ.get("ETCD_TWISTED_FALL_BEHIND_KEYS", "6000"))
#: Their values' size (raise it to send a large database as the snapshot).
FALL_BEHIND_VALUE = int(os.environ.get("ETCD_TWISTED_FALL_BEHIND_VALUE", "64"))
#: Leader kills in the repeated-kill test.
KILL_ROUNDS = int(os.environ.get("ETCD_TWISTED_CLUSTER_KILL_ROUNDS", "3"))
#: Which server the single-kind tests start: "ours" or (to check the tests) "etcd".
OURS = os.environ.get("ETCD_TWISTED_CLUSTER_SERVER", "ours") != "etcd"
LABEL = "ours" if OURS else "etcd 3.5.1"


def record(name: str, value: Any) -> None:
    """Print a measurement and add it to the results file."""
    print(f"\n[cluster measurement] {name}: {value}")
    try:
        with open(RESULTS_PATH) as f:
            results = json.load(f)
    except (OSError, ValueError):
        results = {}
    results[name] = value
    with open(RESULTS_PATH, "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)


def shape(value: Any) -> Any:
    """The structure of decoded JSON: keys and value types, list items merged."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        merged: dict[str, Any] = {}
        for item in value:
            s = shape(item)
            if isinstance(s, dict):
                merged.update(s)
            else:
                return [s]
        return [merged] if value else []
    return type(value).__name__


def sleep(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)


def hex_id(member_id: int) -> str:
    return f"{member_id:x}"


@dataclass
class Writers:
    """Sequential writers (one per endpoint) recording what was acknowledged and when."""

    clients: dict[str, KV]
    prefix: bytes
    request_timeout: float = 0.5
    #: key -> (sent, acknowledged) reactor times.
    acked: dict[bytes, tuple[float, float]] = field(default_factory=dict)
    errors: int = 0
    running: bool = True

    def start(self) -> Deferred[list[None]]:
        return gatherResults(
            [Deferred.fromCoroutine(self._write(i, url)) for i, url in enumerate(self.clients)]
        )

    async def _write(self, n: int, url: str) -> None:
        client, count = self.clients[url], 0
        while self.running:
            key = self.prefix + b"%d/%06d" % (n, count)
            count += 1
            sent = reactor.seconds()
            try:
                await client.put(key, b"x", timeout=self.request_timeout)
            except Exception:  # noqa: BLE001 - the member died or the write timed out
                self.errors += 1
                await sleep(0.05)
                continue
            self.acked[key] = (sent, reactor.seconds())

    def first_ack_sent_after(self, moment: float) -> float | None:
        """When the first write sent after ``moment`` was acknowledged."""
        times = [done for sent, done in self.acked.values() if sent > moment]
        return min(times) if times else None


class ClusterTests(TestCase):
    """Process tests of multi-member clusters with the real etcdctl."""

    timeout = 180

    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        self._clients: dict[str, KV] = {}

    # --- helpers

    def kv(self, url: str) -> KV:
        """A grpcio client of ``url``, closed at cleanup (one per URL)."""
        if url not in self._clients:
            self._clients[url] = KV(url)
            self.addCleanup(self._clients[url].close)
        return self._clients[url]

    async def ctl(self, endpoint: str, *args: str, timeout: float = 10.0) -> Completed:
        """etcdctl that must succeed."""
        result = await etcdctl(endpoint, *args, timeout=timeout)
        self.assertEqual(
            result.code, 0, f"etcdctl {' '.join(args)} failed:\n{result.out}\n{result.err}"
        )
        return result

    async def ctl_json(self, endpoint: str, *args: str) -> Any:
        return json.loads((await self.ctl(endpoint, *args, "-w", "json")).out)

    async def check_list_status_health(self, cluster: Cluster) -> dict[str, Any]:
        """member list, endpoint status/health --cluster agree with the cluster; their shapes."""
        n = len(cluster.members)
        first = cluster.members[0].client_url
        listed: dict[str, Any] = {}
        polls = 0

        async def all_started() -> bool:
            nonlocal listed, polls
            polls += 1
            listed = await self.ctl_json(first, "member", "list")
            return all(m.get("name") and m.get("clientURLs") for m in listed["members"])

        # etcd serves clients only once its name and client URLs are published (applied);
        # a member that is healthy before that shows as "unstarted" for a moment.
        took = await wait_until(all_started, 10, "every member published", interval=0.05)
        if polls > 1:
            record(f"members healthy but still unstarted in member list (s), {cluster.label}",
                   round(took, 3))  # fmt: skip
        self.assertEqual(
            sorted((m["name"], m["peerURLs"], m["clientURLs"]) for m in listed["members"]),
            sorted((m.name, [m.peer_url], [m.client_url]) for m in cluster.members),
        )
        table = (await self.ctl(first, "member", "list")).out.strip().splitlines()
        self.assertEqual(len(table), n)
        for line in table:
            fields = line.split(", ")
            self.assertEqual((len(fields), fields[1], fields[5]), (6, "started", "false"), line)
        ids = {m["ID"] for m in listed["members"]}
        status = await self.ctl_json(first, "endpoint", "status", "--cluster")
        self.assertEqual(
            sorted(row["Endpoint"] for row in status), sorted(m.client_url for m in cluster.members)
        )
        leaders = {row["Status"]["leader"] for row in status}
        self.assertEqual(len(leaders), 1, status)
        self.assertIn(leaders.pop(), ids)
        self.assertEqual({row["Status"]["header"]["member_id"] for row in status}, ids)
        self.assertEqual(len({row["Status"]["raftTerm"] for row in status}), 1, status)
        self.assertEqual({row["Status"]["version"] for row in status}, {"3.5.1"})
        health = await self.ctl_json(first, "endpoint", "health", "--cluster")
        self.assertEqual(
            sorted((row["endpoint"], row["health"]) for row in health),
            sorted((m.client_url, True) for m in cluster.members),
        )
        status_table = (await self.ctl(first, "endpoint", "status", "--cluster")).out
        self.assertEqual(status_table.count(", true, false, "), 1, status_table)
        return {"member list": shape(listed), "status": shape(status), "health": shape(health)}

    async def member_ids(self, cluster: Cluster) -> dict[str, int]:
        """Client URL -> member id, from ``endpoint status``."""
        urls = [cluster.members[i].client_url for i in cluster.running()]
        statuses = await endpoint_statuses(urls)
        return {url: s["header"]["member_id"] for url, s in statuses.items()}

    async def keys_on(self, url: str, prefix: bytes, serializable: bool = False) -> set[bytes]:
        resp = await self.kv(url).range(
            prefix, prefix_end(prefix), keys_only=True, serializable=serializable, timeout=10
        )
        return {kv.key for kv in resp.kvs}

    async def kill_leader_under_writes(self, cluster: Cluster, label: str) -> dict[str, Any]:
        """kill -9 the leader while every member takes writes; measure the failover.

        Returns the killed member's index, the writers, and the seconds from the kill
        to a new leader (as ``endpoint status`` sees it) and to the first write sent
        after the kill that was acknowledged.
        """
        urls = [m.client_url for m in cluster.members]
        leader_url = await leader_of(urls)
        killed = cluster.index(leader_url)
        writers = Writers({url: self.kv(url) for url in urls}, b"failover/")
        done = writers.start()
        await sleep(1.0)
        acked_before = len(writers.acked)
        self.assertGreater(acked_before, 0, "no write was acknowledged before the kill")
        killed_at = reactor.seconds()
        await cluster.processes[killed].kill()
        survivors = [u for u in urls if u != leader_url]

        async def new_leader() -> bool:
            statuses = await endpoint_statuses(survivors, timeout=2)
            leaders = {s.get("leader", 0) for s in statuses.values()}
            ids = {s["header"]["member_id"] for s in statuses.values()}
            return len(statuses) == len(survivors) and len(leaders) == 1 and leaders <= ids

        try:
            await wait_until(new_leader, 15, "a new leader", interval=0.05)
            elected = reactor.seconds() - killed_at
            await wait_until(
                lambda: _succeed(writers.first_ack_sent_after(killed_at) is not None),
                15,
                "a write acknowledged after the kill",
                interval=0.05,
            )
            await sleep(0.5)
        finally:
            writers.running = False
            await done
        first_ack = writers.first_ack_sent_after(killed_at) - killed_at
        result = {
            "killed": killed,
            "writers": writers,
            "elected_s": round(elected, 3),
            "first_write_s": round(first_ack, 3),
        }
        record(
            f"failover {label}",
            {
                "new leader seen (s)": result["elected_s"],
                "first acked write sent after kill (s)": result["first_write_s"],
                "acked writes": len(writers.acked),
                "failed or timed-out writes": writers.errors,
            },
        )
        return result

    async def restart_and_catch_up(self, cluster: Cluster, i: int | None) -> float:
        """Restart member ``i`` (if given); seconds until every member's raft and applied
        index match."""
        urls = [m.client_url for m in cluster.members]
        started = reactor.seconds()
        if i is not None:
            cluster.restart(i)
            await wait_healthy(urls[i], cluster.processes[i], timeout=30)

        async def caught_up() -> bool:
            statuses = await endpoint_statuses(urls)
            indexes = {(s["raftIndex"], s["raftAppliedIndex"]) for s in statuses.values()}
            return len(statuses) == len(urls) and len(indexes) == 1

        await wait_until(caught_up, 60, "the restarted member's raft index to match")
        return reactor.seconds() - started

    async def check_acked_on(self, urls: list[str], writers: Writers) -> None:
        """Every acknowledged write is on each of ``urls`` (linearizable reads)."""
        for url in urls:
            present = await self.keys_on(url, writers.prefix)
            missing = set(writers.acked) - present
            self.assertEqual(
                missing, set(), f"{len(missing)} acknowledged writes missing on {url}: "
                f"{sorted(missing)[:5]}",
            )  # fmt: skip

    async def put_many(
        self, url: str, prefix: bytes, count: int, concurrency: int = 64, size: int = 64
    ) -> float:
        """Put ``count`` keys of ``size``-byte values through ``url`` with ``concurrency``
        in flight; returns puts/s."""
        client = self.kv(url)
        next_key = iter(range(count))
        start = reactor.seconds()

        async def worker() -> None:
            for i in next_key:
                await client.put(prefix + b"%08d" % i, b"v" * size, timeout=15)

        await gatherResults(
            [Deferred.fromCoroutine(worker()) for _ in range(concurrency)], consumeErrors=True
        )
        return count / (reactor.seconds() - start)

    async def rate(
        self, op: Callable[[int], Awaitable[Any]], concurrency: int, seconds: float
    ) -> float:
        """Operations per second of ``op`` with ``concurrency`` callers for ``seconds``."""
        count = 0
        end = reactor.seconds() + seconds

        async def worker() -> None:
            nonlocal count
            while reactor.seconds() < end:
                await op(count)
                count += 1

        start = reactor.seconds()
        await gatherResults(
            [Deferred.fromCoroutine(worker()) for _ in range(concurrency)], consumeErrors=True
        )
        return round(count / (reactor.seconds() - start), 1)

    async def measure_throughput(self, cluster: Cluster, label: str) -> None:
        """Put throughput through the leader, linearizable reads on a follower (recorded)."""
        urls = [m.client_url for m in cluster.members]
        leader = await leader_of(urls)
        follower = next(u for u in urls if u != leader)
        # Several channels for the concurrent runs, as several clients would have.
        puts = [KV(leader) for _ in range(4)]
        reads = [KV(follower) for _ in range(4)]
        for c in puts + reads:
            self.addCleanup(c.close)

        def put(i: int) -> Deferred[Any]:
            return puts[i % 4].put(b"bench/%08d" % i, b"v" * 64, timeout=10)

        def read(i: int) -> Deferred[Any]:
            return reads[i % 4].range(b"bench/00000001", timeout=10)

        await put(1)
        record(
            f"throughput {label}",
            {
                "put 1 client (ops/s)": await self.rate(put, 1, 1.5),
                "put 64 in flight, 4 channels (ops/s)": await self.rate(put, 64, 2.0),
                "linearizable get on follower, 1 client (ops/s)": await self.rate(read, 1, 1.5),
                "linearizable get on follower, 64 in flight (ops/s)": await self.rate(
                    read, 64, 2.0
                ),
            },
        )

    # --- tests

    async def test_three_members_like_etcd(self) -> None:
        """3 members: member list, endpoint status/health --cluster match etcd's shapes."""
        ours_d = Deferred.fromCoroutine(start_cluster(self, 3, os.path.join(self.base, "ours")))
        etcd_d = Deferred.fromCoroutine(
            start_cluster(self, 3, os.path.join(self.base, "etcd"), ours=False)
        )
        ours, etcd = await gatherResults([ours_d, etcd_d], consumeErrors=True)
        ours_shapes = await self.check_list_status_health(ours)
        etcd_shapes = await self.check_list_status_health(etcd)
        self.assertEqual(ours_shapes, etcd_shapes)

    async def test_five_members(self) -> None:
        """5 members: list, status, health; a write through each member is seen on all."""
        cluster = await start_cluster(self, 5, self.base, ours=OURS)
        await self.check_list_status_health(cluster)
        urls = [m.client_url for m in cluster.members]
        for i, url in enumerate(urls):
            await self.ctl(url, "put", f"five/{i}", f"via-{i}")
        for url in urls:
            got = await self.ctl(url, "get", "five/", "--prefix", "--print-value-only")
            self.assertEqual(got.out.split(), [f"via-{i}" for i in range(5)])

    async def test_follower_writes_reads_and_wrong_token(self) -> None:
        """Followers serve writes and see the leader's writes; a wrong token is refused."""
        cluster = await start_cluster(self, 3, self.base, ours=OURS, token="right-token")
        urls = [m.client_url for m in cluster.members]
        leader = await leader_of(urls)
        followers = [u for u in urls if u != leader]
        for i, url in enumerate(followers):
            await self.ctl(url, "put", f"via-follower/{i}", "yes")
        got = await self.ctl(leader, "get", "via-follower/", "--prefix", "--print-value-only")
        self.assertEqual(got.out.split(), ["yes", "yes"])
        # A write acknowledged by the leader is seen by a linearizable read on a follower.
        writer = self.kv(leader)
        for i in range(60):
            await writer.put(b"lin", b"%d" % i)
            resp = await self.kv(followers[i % 2]).range(b"lin")
            self.assertEqual([kv.value for kv in resp.kvs], [b"%d" % i], f"read {i}")
        # Leases granted and kept alive through a follower (forwarded to the leader).
        granted = await self.ctl(followers[0], "lease", "grant", "30")
        lease_id = re.search(r"lease ([0-9a-f]+) granted with TTL\(30s\)", granted.out)
        self.assertIsNotNone(lease_id, granted.out)
        kept = await self.ctl(followers[1], "lease", "keep-alive", "--once", lease_id.group(1))
        self.assertIn(f"lease {lease_id.group(1)} keepalived with TTL(30)", kept.out)
        ttl = await self.ctl(followers[1], "lease", "timetolive", lease_id.group(1))
        self.assertIn("granted with TTL(30s)", ttl.out)
        # A member with the wrong token computes another cluster id: it is refused.
        stranger = new_member(self.base, "m4")
        initial = cluster.initial_cluster + f",m4={stranger.peer_url}"
        process = cluster.factory(
            stranger, self.base, ["--initial-cluster-token", "wrong-token"], initial_cluster=initial
        )
        process.start()
        self.addCleanup(process.stop)

        def mismatch_logged() -> Deferred[bool]:
            return _succeed("cluster ID mismatch" in process.output())

        await wait_until(mismatch_logged, 15, "'cluster ID mismatch' in the stranger's log")
        await sleep(2 * ELECTION_TIMEOUT)
        with self.assertRaises(AssertionError):
            await wait_healthy(stranger.client_url, process, timeout=1)
        listed = await self.ctl_json(leader, "member", "list")
        self.assertEqual(len(listed["members"]), 3)
        refusals = [
            i for i, p in enumerate(cluster.processes) if "cluster ID mismatch" in p.output()
        ]
        self.assertTrue(refusals, "no member logged the cluster ID mismatch it answered")
        await self.ctl(leader, "put", "after-stranger", "ok")
        await process.stop()

    async def test_move_leader(self) -> None:
        """move-leader hands leadership to the named follower; writes go on."""
        cluster = await start_cluster(self, 3, self.base, ours=OURS)
        urls = [m.client_url for m in cluster.members]
        leader = await leader_of(urls)
        ids = await self.member_ids(cluster)
        target = next(u for u in urls if u != leader)
        moved = await self.ctl(leader, "move-leader", hex_id(ids[target]))
        self.assertIn(f"to {hex_id(ids[target])}", moved.out)
        self.assertEqual(await leader_of(urls), target)
        await self.ctl(urls[0], "put", "after-move", "ok")
        # Asked of a follower, etcdctl finds the leader itself.
        back = await self.ctl(",".join(urls), "move-leader", hex_id(ids[leader]))
        self.assertIn(f"to {hex_id(ids[leader])}", back.out)
        self.assertEqual(await leader_of(urls), leader)
        # A leader stopped gracefully hands leadership over: no election timeout to wait.
        stopping = cluster.processes[cluster.index(leader)]
        stopped_at = reactor.seconds()
        stopped = Deferred.fromCoroutine(stopping.stop())
        survivors = [u for u in urls if u != leader]
        new_leader = await leader_of(survivors)
        took = reactor.seconds() - stopped_at
        await stopped  # etcd, like ours, exits by re-raising SIGTERM after shutting down
        record(f"new leader after a graceful leader stop, {LABEL} (s)", round(took, 3))
        self.assertLess(
            took, ELECTION_TIMEOUT, "a leader stopped by SIGTERM did not hand leadership over "
            "(etcd 3.5.1's successor leads within ~0.05 s); the others had to elect one",
        )  # fmt: skip
        await self.ctl(new_leader, "put", "after-graceful-stop", "ok")

    async def test_leader_kill9_failover_and_snapshot_catch_up(self) -> None:
        """kill -9 of the leader: fast failover, no acked write lost; restart catches up."""
        cluster = await start_cluster(
            self, 3, self.base, ours=OURS, extra=["--snapshot-count", "100"]
        )
        result = await self.kill_leader_under_writes(
            cluster, f"{LABEL} (3 members, snapshot-count 100)"
        )
        writers: Writers = result["writers"]
        killed: int = result["killed"]
        urls = [m.client_url for m in cluster.members]
        survivors = [u for i, u in enumerate(urls) if i != killed]
        self.assertLessEqual(result["first_write_s"], 3 * ELECTION_TIMEOUT)
        await self.check_acked_on(survivors, writers)
        # Fall far behind: the leader's log moves past what it keeps for followers.
        leader = await leader_of(survivors)
        rate = await self.put_many(leader, b"behind/", FALL_BEHIND_KEYS, size=FALL_BEHIND_VALUE)
        record(f"put while a member is down, {LABEL} (64 in flight, ops/s)", round(rate, 1))
        took = await self.restart_and_catch_up(cluster, killed)
        record(f"snapshot catch-up after restart, {LABEL} (s)", round(took, 2))
        if OURS:
            self.assertIn("applied a snapshot", cluster.processes[killed].output())
        else:
            self.assertIn("applied snapshot", cluster.processes[killed].output())
        behind = await self.keys_on(urls[killed], b"behind/", serializable=True)
        self.assertEqual(len(behind), FALL_BEHIND_KEYS)
        await self.check_acked_on([urls[killed]], writers)
        hashes = await self.ctl_json(urls[0], "endpoint", "hashkv", "--cluster")
        self.assertEqual(len({row["HashKV"]["hash"] for row in hashes}), 1, hashes)
        await self.ctl(urls[killed], "put", "after-catch-up", "ok")

    async def test_repeated_leader_kills_lose_nothing(self) -> None:
        """Leaders killed and restarted in turn under writes: no acked write lost, hashes agree."""
        # Snapshots every 200 entries: restarts load a snapshot and replay the WAL after it.
        extra = ["--snapshot-count", "200"]
        cluster = await start_cluster(self, 3, self.base, ours=OURS, extra=extra)
        urls = [m.client_url for m in cluster.members]
        rng = random.Random(int(os.environ.get("ETCD_TWISTED_CLUSTER_SEED", "8")))
        writers = Writers({url: self.kv(url) for url in urls}, b"rounds/", request_timeout=1.0)
        done = writers.start()
        try:
            for _ in range(KILL_ROUNDS):
                await sleep(rng.uniform(0.2, 1.0))
                leader = await leader_of(urls)
                killed = cluster.index(leader)
                await cluster.processes[killed].kill()
                await leader_of([u for u in urls if u != leader])
                await sleep(rng.uniform(0.0, 0.5))
                cluster.restart(killed)
                await wait_healthy(leader, cluster.processes[killed], timeout=30)
        finally:
            writers.running = False
            await done
        await self.restart_and_catch_up(cluster, None)
        await self.check_acked_on(urls, writers)
        hashes = await self.ctl_json(urls[0], "endpoint", "hashkv", "--cluster")
        self.assertEqual(len({row["HashKV"]["hash"] for row in hashes}), 1, hashes)
        record(
            f"repeated leader kills, {LABEL}",
            {"rounds": KILL_ROUNDS, "acked": len(writers.acked), "failed": writers.errors},
        )

    async def test_paused_leader_serves_no_stale_read(self) -> None:
        """A leader paused (SIGSTOP), resumed after a new election, serves no stale read."""
        cluster = await start_cluster(self, 3, self.base, ours=OURS)
        urls = [m.client_url for m in cluster.members]
        outcomes: list[str] = []
        for attempt in range(2):
            old = await leader_of(urls)
            old_process = cluster.processes[cluster.index(old)]
            await self.kv(old).put(b"stale", b"old-%d" % attempt)
            old_process.signal(signal.SIGSTOP)
            try:
                others = [u for u in urls if u != old]
                new = await leader_of(others)
                await self.kv(new).put(b"stale", b"new-%d" % attempt, timeout=10)
                # Sent while the old leader sleeps: it reads the request once resumed.
                read = self.kv(old).range(b"stale", timeout=10)
                await sleep(0.2)
            finally:
                old_process.signal(signal.SIGCONT)
            try:
                resp = await read
            except Exception as e:  # noqa: BLE001 - an error is fine; a stale value is not
                outcomes.append(f"error: {e.details() if hasattr(e, 'details') else e}")
                continue
            outcomes.append(resp.kvs[0].value.decode() if resp.kvs else "none")
            self.assertEqual([kv.value for kv in resp.kvs], [b"new-%d" % attempt])
            await leader_of(urls)
        record(f"linearizable reads on a resumed old leader, {LABEL}", outcomes)

    async def test_lease_survives_failover_then_expires(self) -> None:
        """A lease kept alive through followers outlives a leader's kill -9, then expires."""
        cluster = await start_cluster(self, 3, self.base, ours=OURS)
        urls = [m.client_url for m in cluster.members]
        leader = await leader_of(urls)
        survivors = [u for u in urls if u != leader]
        granted = await self.ctl(survivors[0], "lease", "grant", "4")
        lease_id = re.search(r"lease ([0-9a-f]+) granted", granted.out).group(1)
        await self.ctl(survivors[0], "put", "leased", "v", f"--lease={lease_id}")
        keeping = True
        kept: list[bool] = []

        async def keep_alive() -> None:
            while keeping:
                result = await etcdctl(
                    ",".join(survivors), "lease", "keep-alive", "--once", lease_id, timeout=2
                )
                kept.append(result.code == 0)
                await sleep(0.5)

        keeper = Deferred.fromCoroutine(keep_alive())
        try:
            await sleep(1.0)
            await cluster.processes[cluster.index(leader)].kill()
            await sleep(6.0)  # well past the 4 s TTL
            got = await self.ctl(survivors[1], "get", "leased", "--print-value-only")
            self.assertEqual(got.out.strip(), "v", f"keep-alives: {kept}")
        finally:
            keeping = False
            await keeper
        self.assertTrue(kept[-1], f"keep-alives: {kept}")

        async def gone() -> bool:
            got = await etcdctl(survivors[0], "get", "leased", "--print-value-only")
            return got.code == 0 and got.out.strip() == ""

        took = await wait_until(gone, 15, "the lease to expire", interval=0.25)
        record(f"lease (TTL 4 s) gone after the last keep-alive, {LABEL} (s)", round(took, 2))

    async def test_member_add_learner_promote_remove(self) -> None:
        """member add (+ --learner, promote) joins running members; remove stops one."""
        cluster = await start_cluster(self, 3, self.base, ours=OURS)
        first = cluster.members[0].client_url
        # Checks whose failure should not hide the ones after them.
        problems: list[str] = []
        # member add, then start the new member with what etcdctl printed.
        m4 = await self.join(cluster, "m4")
        await self.ctl(m4.client_url, "put", "via-m4", "ok")
        got = await self.ctl(first, "get", "via-m4", "--print-value-only")
        self.assertEqual(got.out.strip(), "ok")
        # A learner: joins, refuses writes, is promoted once in sync.
        m5 = await self.join(cluster, "m5", learner=True)
        found: list[dict] = []

        async def m5_listed() -> bool:
            # Its name appears once the attributes it publishes through raft are applied.
            listed = await self.ctl_json(first, "member", "list")
            found[:] = [m for m in listed["members"] if m.get("name") == "m5"]
            return bool(found)

        await wait_until(m5_listed, 15, "m5 to be listed with its name")
        learner = found[0]
        self.assertTrue(learner.get("isLearner"), learner)
        status = await self.ctl_json(m5.client_url, "endpoint", "status")
        self.assertTrue(status[0]["Status"].get("isLearner"), status)
        refused = await etcdctl(m5.client_url, "put", "via-learner", "no")
        if refused.code == 0 or "rpc not supported for learner" not in refused.err:
            problems.append(f"a put through the learner: {refused}")
        urls = [m.client_url for m in cluster.members if m is not m5]
        leader = await leader_of(urls)
        follower = next(u for u in urls if u != leader)
        # Asked of a follower, etcd forwards the promotion to the leader.
        for via in (follower, leader):
            last: list[Completed] = []

            async def promoted(via: str = via, last: list[Completed] = last) -> bool:
                last[:] = [await etcdctl(via, "member", "promote", hex_id(learner["ID"]))]
                return last[0].code == 0

            try:
                await wait_until(promoted, 10, "the learner's promotion", interval=0.5)
                break
            except AssertionError as e:
                role = "follower" if via == follower else "leader"
                problems.append(f"member promote via the {role}: {e}; etcdctl said: {last[0]}")
        listed = await self.ctl_json(first, "member", "list")
        self.assertFalse(next(m for m in listed["members"] if m["name"] == "m5").get("isLearner"))
        # member remove: the removed member stops by itself.
        m4_id = next(m["ID"] for m in listed["members"] if m["name"] == "m4")
        await self.ctl(follower, "member", "remove", hex_id(m4_id))
        m4_process = cluster.processes[cluster.members.index(m4)]
        try:
            await wait_until(lambda: _succeed(not m4_process.running), 10, "m4 to exit")
        except AssertionError as e:
            problems.append(f"the removed member did not stop: {e}")
            await m4_process.stop()
        listed = await self.ctl_json(first, "member", "list")
        self.assertEqual(sorted(m["name"] for m in listed["members"]), ["m1", "m2", "m3", "m5"])
        # Removing the leader: it stops, the others elect a new leader among themselves.
        urls = [m.client_url for m in cluster.members if m is not m4]
        leader = await leader_of(urls)
        leader_id = next(m["ID"] for m in listed["members"] if leader in m["clientURLs"])
        removed = await etcdctl(leader, "member", "remove", hex_id(leader_id))
        if removed.code != 0:
            problems.append(f"member remove of the leader, asked of itself, failed: {removed}")
        gone = cluster.members[cluster.index(leader)]
        gone_process = cluster.processes[cluster.index(leader)]
        try:
            await wait_until(lambda: _succeed(not gone_process.running), 10, "the leader to exit")
        except AssertionError as e:
            problems.append(f"the removed leader did not stop: {e}")
            await gone_process.stop()
        remaining = [m.client_url for m in cluster.members if m not in (m4, gone)]
        await leader_of(remaining)
        listed = await self.ctl_json(remaining[0], "member", "list")
        self.assertEqual(len(listed["members"]), 3)
        # Writes through every member, seen by every member.
        for i, url in enumerate(remaining):
            await self.ctl(url, "put", f"every/{i}", str(i))
        for url in remaining:
            got = await self.ctl(url, "get", "every/", "--prefix", "--print-value-only")
            self.assertEqual(got.out.split(), [str(i) for i in range(len(remaining))])
        if problems:
            self.fail("\n".join(problems))

    async def join(self, cluster: Cluster, name: str, learner: bool = False) -> Any:
        """``member add`` then start the member with the initial cluster etcdctl printed."""
        member = new_member(self.base, name)
        args = ["member", "add", name, f"--peer-urls={member.peer_url}"]
        args += ["--learner"] * learner
        tries: list[Completed] = []

        async def added_ok() -> bool:
            # etcd refuses a voter until every voter was connected for 5 s: "unhealthy cluster".
            tries[:] = [await etcdctl(cluster.members[0].client_url, *args)]
            return tries[0].code == 0 or "unhealthy cluster" not in tries[0].err

        await wait_until(added_ok, 15, f"member add {name}", interval=0.5)
        added = tries[0]
        self.assertEqual(added.code, 0, f"member add {name}: {added}")
        printed = dict(re.findall(r'^(ETCD_[A-Z_]+)="(.*)"$', added.out, re.MULTILINE))
        self.assertEqual(printed.get("ETCD_INITIAL_CLUSTER_STATE"), "existing", added.out)
        self.assertEqual(printed.get("ETCD_NAME"), name)
        process = cluster.factory(
            member,
            self.base,
            [*cluster.extra, "--initial-cluster-state", "existing"],
            initial_cluster=printed["ETCD_INITIAL_CLUSTER"],
        )
        cluster.members.append(member)
        cluster.processes.append(process)
        self.addCleanup(process.stop)
        process.start()
        await wait_healthy(member.client_url, process, timeout=30)
        return member

    async def test_failover_and_throughput_ours_and_etcd(self) -> None:
        """Measured, ours then etcd: put/read throughput, and failover after kill -9."""
        failover = {}
        for label, ours in (("ours", True), ("etcd 3.5.1", False)):
            cluster = await start_cluster(self, 3, os.path.join(self.base, label), ours=ours)
            await self.measure_throughput(cluster, f"{label} (3 members)")
            result = await self.kill_leader_under_writes(cluster, f"{label} (3 members)")
            survivors = [m.client_url for m in cluster.members]
            del survivors[result["killed"]]
            await self.check_acked_on(survivors, result["writers"])
            failover[label] = result["first_write_s"]
            took = await self.restart_and_catch_up(cluster, result["killed"])
            record(f"log catch-up after restart, {label} (s)", round(took, 2))
            await self.check_acked_on(
                [cluster.members[result["killed"]].client_url], result["writers"]
            )
            await gatherResults([Deferred.fromCoroutine(p.stop()) for p in cluster.processes])
        self.assertLessEqual(failover["ours"], 3 * ELECTION_TIMEOUT)


def _succeed(value: bool) -> Deferred[bool]:
    d: Deferred[bool] = Deferred()
    d.callback(value)
    return d
