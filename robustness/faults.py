"""Fault injection: one fault at a time, each recorded with its time, target and outcome.

Kinds (those that need peers are skipped for a single member):

* ``kill_random``, ``kill_leader``, ``kill_quorum``: SIGKILL, wait, restart;
* ``pause``: SIGSTOP a random member for a while, then SIGCONT;
* ``partition_leader``, ``partition_follower``: blackhole one member's peer traffic
  both ways in every proxy, then heal;
* ``delay``: 75 ms ± 50 on every byte to and from one member for a while;
* ``drop``: a share of chunks to and from one member lost (each resets its link);
* ``crash_point``: restart a member with one named crash point armed
  (``ETCD_TWISTED_FAILPOINTS``), wait for it to exit there, restart it clean;
* ``defragment``: Maintenance.Defragment on a random member (reaches the
  defragment crash points when armed);
* ``replace_member``: remove a follower with MemberRemove and add a fresh member;
* ``power_loss_random``, ``power_loss_leader``, ``power_loss_all`` (only on a
  cluster with LazyFS mounts): SIGKILL and drop every write the member(s) had not
  synced, half of the time as a torn loss (a random half of the unsynced pages
  reach the disk, in no order), then restart.

After each fault the cluster is healed and every member restarted and ready
before the next one; a member that does not become ready in time is noted
(``stuck``), which the run reports as an anomaly.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import grpc
from twisted.internet.task import deferLater

from etcd_twisted import failpoints
from etcd_twisted._pb import rpc_pb2, rpc_pb2_grpc
from etcd_twisted.testing.proxy import Rule
from robustness.cluster import Cluster, ClusterError, Member

KINDS_ANY = ("kill_random", "kill_leader", "pause", "crash_point", "defragment")
KINDS_PEERS = (
    "kill_quorum",
    "partition_leader",
    "partition_follower",
    "delay",
    "drop",
    "replace_member",
)
#: Kinds that need each member's data dir on a LazyFS mount (``Cluster(power_loss=True)``).
KINDS_POWER = ("power_loss_random", "power_loss_leader", "power_loss_all")
#: Crash points hit on nearly every write, armed at a random hit so they fire soon.
FREQUENT = (
    "before_wal_save",
    "after_wal_save",
    "before_backend_commit",
    "after_backend_commit",
    "before_leader_send",
    "before_follower_send",
)
#: Reached only by a follower so far behind that the leader sends a snapshot.
SNAPSHOT = ("before_apply_snapshot", "after_apply_snapshot")
#: Seconds a stopped follower is given to fall far enough behind to need a snapshot.
FALL_BEHIND_LIMIT = 30.0
#: Reached only when members exchange messages.
PEERS_ONLY = ("before_leader_send", "before_follower_send", *SNAPSHOT)


#: Entries past a follower that make sure the leader has compacted its log beyond it: a
#: snapshot every ``snapshot_count`` entries keeps ``catchup_entries`` behind it, plus margin.
def catch_up_distance(snapshot_count: int, catchup_entries: int) -> int:
    """Entries the leader must move past a stopped follower before it needs a snapshot."""
    return snapshot_count + catchup_entries + 100


@dataclass
class FaultRecord:
    """One injected fault."""

    kind: str
    target: str
    start: float
    end: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


class Faults:
    """Injects faults into a cluster and keeps the record."""

    def __init__(
        self,
        reactor: Any,
        cluster: Cluster,
        rng: random.Random,
        kinds: tuple[str, ...] | None = None,
        log: Any = print,
        catch_up: int = catch_up_distance(10_000, 5000),
        points: tuple[str, ...] | None = None,
    ) -> None:
        self.reactor = reactor
        self.catch_up = catch_up
        self.points = points
        self.cluster = cluster
        self.rng = rng
        size = len(cluster.members)
        available = (
            KINDS_ANY + (KINDS_PEERS if size > 1 else ()) + (KINDS_POWER if cluster.mounts else ())
        )
        self.kinds = tuple(k for k in (kinds or available) if k in available)
        self.records: list[FaultRecord] = []
        self.stuck: list[str] = []
        self.log = log
        self.until: float | None = None

    def sleep(self, seconds: float) -> Any:
        return deferLater(self.reactor, seconds, lambda: None)

    async def run(self, until: float, interval: tuple[float, float]) -> None:
        """Inject faults, one after another, until monotonic time ``until``."""
        self.until = until
        await self.sleep(self.rng.uniform(*interval))
        while time.monotonic() < until - 3:
            kind = self.rng.choice(self.kinds)
            await self.inject(kind, until)
            await self.sleep(self.rng.uniform(*interval))

    async def inject(self, kind: str, until: float | None = None) -> FaultRecord:
        """Inject one fault of ``kind`` and recover from it."""
        record = FaultRecord(kind, "", time.monotonic())
        self.records.append(record)
        hold = self.rng.uniform(1.0, 3.0)
        if until is not None:
            hold = max(0.5, min(hold, until - time.monotonic() - 2))
        try:
            await getattr(self, f"_{kind}")(record, hold)
        except Exception as e:  # noqa: BLE001 - a fault that could not be injected is noted
            record.detail["error"] = f"{type(e).__name__}: {str(e)[:300]}".splitlines()[0]
        finally:
            self.cluster.heal()
            await self.recover(record)
            record.end = time.monotonic()
        self.log(f"fault {record.kind} on {record.target or '-'}: {record.detail}")
        return record

    async def recover(self, record: FaultRecord, timeout: float = 30.0) -> None:
        """Resume and restart whatever is down, and wait until every member is ready."""
        for m in self.cluster.members:
            if m.paused:
                self.cluster.resume(m)
            if not m.running:
                self.cluster.spawn(m)
        for m in self.cluster.members:
            try:
                await self.cluster.wait_ready(m, timeout)
            except ClusterError as e:
                self.stuck.append(f"{m.name} after {record.kind}: {str(e).splitlines()[0]}")
                record.detail["stuck"] = m.name
                await self.cluster.kill(m)
                self.cluster.spawn(m)

    async def _target(self, leader: bool | None) -> Member:
        members = [m for m in self.cluster.members if m.running]
        if leader is None or len(self.cluster.members) == 1:
            return self.rng.choice(members)
        found = await self.cluster.leader(5)
        if leader:
            return found or self.rng.choice(members)
        return self.rng.choice([m for m in members if m is not found] or members)

    # --- kinds

    async def _kill(self, record: FaultRecord, victims: list[Member], hold: float) -> None:
        record.target = ",".join(m.name for m in victims)
        for m in victims:
            await self.cluster.kill(m)
        await self.sleep(hold)
        for m in victims:
            self.cluster.spawn(m)

    async def _kill_random(self, record: FaultRecord, hold: float) -> None:
        await self._kill(record, [await self._target(None)], hold)

    async def _kill_leader(self, record: FaultRecord, hold: float) -> None:
        await self._kill(record, [await self._target(True)], hold)

    async def _kill_quorum(self, record: FaultRecord, hold: float) -> None:
        members = self.cluster.members
        victims = self.rng.sample(members, len(members) // 2 + 1)
        await self._kill(record, victims, hold)

    async def _power_loss(self, record: FaultRecord, victims: list[Member], hold: float) -> None:
        record.target = ",".join(m.name for m in victims)
        torn = self.rng.random() < 0.5
        record.detail["torn"] = torn
        for m in victims:
            await self.cluster.power_loss(m, self.rng.randrange(1 << 30) if torn else None)
        await self.sleep(hold)
        for m in victims:
            self.cluster.spawn(m)

    async def _power_loss_random(self, record: FaultRecord, hold: float) -> None:
        await self._power_loss(record, [await self._target(None)], hold)

    async def _power_loss_leader(self, record: FaultRecord, hold: float) -> None:
        await self._power_loss(record, [await self._target(True)], hold)

    async def _power_loss_all(self, record: FaultRecord, hold: float) -> None:
        await self._power_loss(record, list(self.cluster.members), hold)

    async def _pause(self, record: FaultRecord, hold: float) -> None:
        m = await self._target(None)
        record.target = m.name
        self.cluster.pause(m)
        await self.sleep(hold)
        self.cluster.resume(m)

    async def _partition(self, record: FaultRecord, leader: bool, hold: float) -> None:
        m = await self._target(leader)
        record.target = m.name
        self.cluster.isolate(m)
        await self.sleep(hold + 1.5)
        new = await self.cluster.leader(1)
        record.detail["leader_during"] = new.name if new else None

    async def _partition_leader(self, record: FaultRecord, hold: float) -> None:
        await self._partition(record, True, hold)

    async def _partition_follower(self, record: FaultRecord, hold: float) -> None:
        await self._partition(record, False, hold)

    async def _delay(self, record: FaultRecord, hold: float) -> None:
        m = await self._target(None)
        record.target = m.name
        record.detail["delay"] = "75ms±50"
        self.cluster.degrade(m, Rule(delay=0.075, jitter=0.05))
        await self.sleep(hold * 2)

    async def _drop(self, record: FaultRecord, hold: float) -> None:
        m = await self._target(None)
        share = self.rng.choice((0.02, 0.05, 0.1))
        record.target = m.name
        record.detail["share"] = share
        self.cluster.degrade(m, Rule(drop=share))
        await self.sleep(hold * 2)

    def _points(self, until: float | None) -> list[str]:
        names = set(self.points or failpoints.NAMES)
        if len(self.cluster.members) == 1:
            names -= set(PEERS_ONLY)
        elif until is not None and until - time.monotonic() < FALL_BEHIND_LIMIT + 20:
            names -= set(SNAPSHOT)
        return sorted(names)

    async def _crash_point(self, record: FaultRecord, hold: float) -> None:
        points = self._points(self.until)
        if not points:
            record.detail["skipped"] = "no crash point left that fits before the end"
            return
        name = self.rng.choice(points)
        if name == "before_leader_send":
            m = await self._target(True)
        elif name in ("before_follower_send", *SNAPSHOT):
            m = await self._target(False)
        else:
            m = await self._target(None)
        arm = f"{name}@{self.rng.randint(1, 40)}" if name in FREQUENT else name
        record.target = m.name
        record.detail["point"] = arm
        await self.cluster.kill(m)
        if name in SNAPSHOT:
            record.detail["entries_behind"] = await self._fall_behind(m, FALL_BEHIND_LIMIT)
        self.cluster.spawn(m, env={failpoints.ENV: arm})
        if name in ("before_defragment_swap", "after_defragment_swap"):
            await self.cluster.wait_ready(m)
            try:
                await self._defrag(m)
            except ClusterError:
                pass  # the crash point exits the member during the call
        deadline = time.monotonic() + hold + (15 if name in SNAPSHOT else 4)
        while m.running and time.monotonic() < deadline:
            await self.sleep(0.1)
        fired = not m.running and f"failpoint {name}: exiting" in m.log_tail(20000)
        record.detail["fired"] = fired
        if not fired:
            await self.cluster.kill(m)
        self.cluster.spawn(m)

    async def _fall_behind(self, down: Member, limit: float) -> int:
        """Wait (at most ``limit`` s) until the leader is ``catch_up`` entries past ``down``."""
        others = [m for m in self.cluster.members if m is not down]
        start = 0
        deadline = time.monotonic() + limit
        index = 0
        while time.monotonic() < deadline:
            for m in others:
                status = await self.cluster.status(m)
                if status is not None:
                    index = max(index, status.raftIndex)
            start = start or index
            if start and index - start >= self.catch_up:
                break
            await self.sleep(1.0)
        return index - start

    async def _defrag(self, m: Member) -> None:
        try:
            await self.cluster.call(
                m,
                rpc_pb2_grpc.MaintenanceStub,
                "Defragment",
                rpc_pb2.DefragmentRequest(),
                timeout=10,
            )
        except grpc.RpcError as e:
            code = e.code().name if hasattr(e, "code") else "?"  # type: ignore[attr-defined]
            raise ClusterError(f"defragment of {m.name} failed: {code}", m) from None

    async def _defragment(self, record: FaultRecord, hold: float) -> None:
        m = await self._target(None)
        record.target = m.name
        await self._defrag(m)

    async def _replace_member(self, record: FaultRecord, hold: float) -> None:
        old = await self._target(False)
        record.target = old.name
        new = await self.cluster.replace(old)
        record.detail["new"] = new.name

    # --- the record

    def counts(self) -> list[str]:
        """One label per fault, for the report (crash points by name, unreached noted)."""
        labels = []
        for r in self.records:
            if "skipped" in r.detail:
                continue
            label = r.kind
            if r.kind == "crash_point":
                point = str(r.detail.get("point", "")).split("@")[0]
                label = f"crash_point:{point}" + ("" if r.detail.get("fired") else " (not reached)")
            if "error" in r.detail:
                label += " (failed)"
            labels.append(label)
        return labels

    def save(self, path: str) -> None:
        """One JSON object per fault."""
        with open(path, "w") as f:
            for r in self.records:
                f.write(json.dumps(asdict(r)) + "\n")
