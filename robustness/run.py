"""One robustness run: a cluster, traffic and faults for N seconds, then the checks and a report.

The order: start the cluster; start traffic; inject faults until the end; heal and
restart everything; let traffic run a moment on the healed cluster; stop it; wait
until every member is at the same revision (a member that never gets there is
*stuck*); compare HashKV on every member; stop the cluster; check linearizability
and the watch guarantees (``robustness.report.run_checks``).  Everything lands in
``<out>/``: ``history.jsonl``, ``faults.jsonl``, ``report.json``, ``report.txt``
and the members' logs.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from etcd_twisted._pb import rpc_pb2, rpc_pb2_grpc
from robustness.cluster import Cluster
from robustness.faults import Faults, catch_up_distance
from robustness.history import Recorder
from robustness.report import Report, run_checks
from robustness.traffic import Traffic, TrafficSettings
from robustness.watch_check import Anomaly


@dataclass
class Settings:
    """What one run does."""

    members: int = 3
    duration: float = 60.0
    seed: int = 0
    out_dir: str = "robustness-out"
    traffic: TrafficSettings = field(default_factory=TrafficSettings)
    fault_interval: tuple[float, float] = (1.0, 3.0)
    kinds: tuple[str, ...] | None = None
    #: Crash points the ``crash_point`` fault picks from (all when None).
    points: tuple[str, ...] | None = None
    snapshot_count: int = 500
    #: Entries kept behind a snapshot; small, so a stopped follower soon needs a snapshot.
    snapshot_catchup_entries: int = 200
    check_timeout: float = 120.0
    extra_flags: tuple[str, ...] = ()
    #: Each member's data dir on a LazyFS mount, with the ``power_loss_*`` faults.
    power_loss: bool = False


@dataclass
class Outcome:
    """The report plus what the run saw beyond it."""

    report: Report
    out_dir: str
    seconds: float
    client_errors: dict[str, int]
    proxy_stats: dict[str, int]


async def sleep(reactor: Any, seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)


async def run(reactor: Any, settings: Settings, log: Any = print) -> Outcome:
    """Run once and return the outcome (the report is also printed and saved)."""
    started = time.monotonic()
    out = os.path.join(settings.out_dir, f"seed{settings.seed}-m{settings.members}")
    os.makedirs(out, exist_ok=True)
    rng = random.Random(settings.seed)
    flags = (
        "--snapshot-count",
        str(settings.snapshot_count),
        "--experimental-snapshot-catchup-entries",
        str(settings.snapshot_catchup_entries),
        *settings.extra_flags,
    )
    cluster = Cluster(
        reactor,
        out,
        settings.members,
        rng,
        flags,
        token=f"robustness-{settings.seed}",
        power_loss=settings.power_loss,
    )
    recorder = Recorder()
    faults = Faults(
        reactor,
        cluster,
        random.Random(rng.random()),
        settings.kinds,
        log,
        catch_up_distance(settings.snapshot_count, settings.snapshot_catchup_entries),
        settings.points,
    )
    extra: list[Anomaly] = []
    traffic: Traffic | None = None
    try:
        await cluster.start()
        log(f"cluster of {settings.members} up in {time.monotonic() - started:.1f}s: {out}")
        end = time.monotonic() + settings.duration
        traffic = Traffic(
            lambda: [m.client_url for m in cluster.members],
            recorder,
            settings.traffic,
            settings.seed,
            deadline=end + 60,
        )
        traffic.start()
        if faults.kinds:
            await faults.run(end, settings.fault_interval)
        while time.monotonic() < end:
            await sleep(reactor, min(1.0, end - time.monotonic()))
        cluster.heal()
        await faults.recover(faults.records[-1] if faults.records else _Final())
        await sleep(reactor, 2.0)
        traffic.stop()
        alive = await deferToThread(traffic.join, 30.0)
        if alive:
            extra.append(Anomaly("stuck", f"traffic threads still running: {alive}"))
        extra += faults_stuck(faults)
        extra += await converge(reactor, cluster)
        extra += server_errors(out)
    finally:
        if traffic is not None:
            traffic.stop()
        await cluster.stop()
    history = recorder.history
    history.save(os.path.join(out, "history.jsonl"))
    faults.save(os.path.join(out, "faults.jsonl"))
    log(f"checking {len(history.operations)} operations, {len(history.watches)} watch sessions")
    report = await deferToThread(
        run_checks,
        history,
        seed=settings.seed,
        cluster_size=settings.members,
        faults=faults.counts(),
        timeout=settings.check_timeout,
    )
    report.anomalies.extend(extra)
    errors = dict(traffic.errors) if traffic is not None else {}
    stats: dict[str, int] = {}
    for m in cluster.members + cluster.removed:
        for k, v in m.proxy.stats.items():
            stats[k] = stats.get(k, 0) + v
    outcome = Outcome(report, out, time.monotonic() - started, errors, stats)
    report.save(os.path.join(out, "report.json"))
    text = describe(outcome)
    with open(os.path.join(out, "report.txt"), "w") as f:
        f.write(text + "\n")
    log(text)
    return outcome


class _Final:
    kind = "end of run"
    detail: dict[str, Any] = {}


def server_errors(out_dir: str) -> list[Anomaly]:
    """Errors a member logged (a traceback or an unhandled Deferred error): each is a
    server bug even when the checkers saw nothing wrong."""
    found = []
    for name in sorted(os.listdir(out_dir)):
        if not name.endswith(".log"):
            continue
        with open(os.path.join(out_dir, name), errors="replace") as f:
            lines = f.read().splitlines()
        for i, line in enumerate(lines):
            if "Traceback (most recent call last)" in line:
                last = next((x.strip() for x in lines[i + 1 :] if _exception_line(x)), "")
                found.append(Anomaly("server error", f"{name[:-4]}: {last[:300]}"))
    return found


def _exception_line(line: str) -> bool:
    """The closing line of a traceback as twistd logs it (tab-indented, not a frame)."""
    text = line.removeprefix("\t")
    return bool(text.strip()) and not text.startswith(" ") and "Traceback" not in text


def faults_stuck(faults: Faults) -> list[Anomaly]:
    """A member that did not come back after a fault."""
    return [Anomaly("stuck", s) for s in faults.stuck]


def describe(outcome: Outcome) -> str:
    """The printed report."""
    r = outcome.report
    lines = [
        str(r),
        f"result: {'PASS' if r.ok else 'FAIL'} ({len(r.anomalies)} anomalies) "
        f"in {outcome.seconds:.0f}s; output in {outcome.out_dir}",
        "client errors (unknown outcomes, and calls not sent): "
        + (", ".join(f"{k}×{v}" for k, v in sorted(outcome.client_errors.items())) or "none"),
        "proxy: " + (", ".join(f"{k}={v}" for k, v in sorted(outcome.proxy_stats.items()))),
    ]
    return "\n".join(lines)


async def converge(reactor: Any, cluster: Cluster, timeout: float = 30.0) -> list[Anomaly]:
    """Wait for every member to reach one revision, then compare their HashKV there."""
    deadline = time.monotonic() + timeout
    revisions: dict[str, int] = {}
    while time.monotonic() < deadline:
        revisions = {}
        for m in cluster.members:
            try:
                resp = await cluster.call(
                    m,
                    rpc_pb2_grpc.KVStub,
                    "Range",
                    rpc_pb2.RangeRequest(key=b"k", serializable=True, count_only=True),
                )
                revisions[m.name] = resp.header.revision
            except grpc.RpcError:
                pass
        if len(revisions) == len(cluster.members) and len(set(revisions.values())) == 1:
            break
        await sleep(reactor, 0.3)
    else:
        return [Anomaly("stuck", f"members never reached one revision: {revisions}")]
    revision = next(iter(revisions.values()))
    hashes: dict[str, tuple[int, int, int]] = {}
    for m in cluster.members:
        try:
            resp = await cluster.call(
                m,
                rpc_pb2_grpc.MaintenanceStub,
                "HashKV",
                rpc_pb2.HashKVRequest(revision=revision),
                timeout=10,
            )
            hashes[m.name] = (resp.hash, resp.compact_revision, resp.header.revision)
        except grpc.RpcError as e:
            code = e.code().name if hasattr(e, "code") else "?"  # type: ignore[attr-defined]
            return [Anomaly("hashkv", f"HashKV at {revision} failed on {m.name}: {code}")]
    if len({h for h, _, _ in hashes.values()}) != 1:
        return [Anomaly("hashkv", f"HashKV differs at revision {revision}: {hashes}")]
    return []


def run_deferred(reactor: Any, settings: Settings, log: Any = print) -> Deferred[Outcome]:
    """``run`` as a Deferred."""
    return Deferred.fromCoroutine(run(reactor, settings, log))


def summary(outcomes: list[Outcome]) -> str:
    """Totals over several runs."""
    faults: dict[str, int] = {}
    for o in outcomes:
        for k, v in o.report.faults.items():
            faults[k] = faults.get(k, 0) + v
    ops = sum(o.report.operations for o in outcomes)
    anomalies = sum(len(o.report.anomalies) for o in outcomes)
    return json.dumps(
        {
            "runs": len(outcomes),
            "operations": ops,
            "watch_sessions": sum(o.report.watch_sessions for o in outcomes),
            "faults": dict(sorted(faults.items())),
            "anomalies": anomalies,
            "failed_runs": [o.out_dir for o in outcomes if not o.report.ok],
        },
        indent=2,
    )
