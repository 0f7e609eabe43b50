"""etcd-twisted vs real etcd 3.5.1, side by side (issue 9).

    bin/bench                         # every row, 3 alternating rounds (< 15 min on 2 cores)
    bin/bench --rounds 5 --duration 10
    bin/bench --rows put,latency_put --servers ours
    bin/bench --profile put           # our server under py-spy (or cProfile) during "put"

Both servers get the same etcd flags, fresh data dirs and free 127.0.0.1 ports. Each
round starts a fresh etcd and a fresh ours, then runs every workload on one and then the
other, swapping who goes first each round (A B, B A, ...), so slow drifts in machine load
hit both alike. The table shows the median over rounds and the spread (max - min) /
median of each side, which is the noise to read the ratios against. Raw numbers go to
``bench/results/<time>/results.json`` with each server's log.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from bench import client, driver, h2, procs, profile
from bench.procs import KINDS, Server


class NotAvailable(Exception):
    """A row that cannot run against this server (shown as ``n/a (reason)``)."""


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    key: str
    label: str
    unit: str
    better: str  # "higher" or "lower"


ROWS = [
    Row("put", "put, 1 member, 100 streams / 10 conns (h2load, one hot key)", "req/s", "higher"),
    Row("put_3m", "put, 3 members, via the leader (h2load, one hot key)", "req/s", "higher"),
    Row("range_lin", "range linearizable, 100 streams / 10 conns (h2load)", "req/s", "higher"),
    Row("range_ser", "range serializable, 100 streams / 10 conns (h2load)", "req/s", "higher"),
    Row("put_p50", "put latency p50, 1 client sequential", "ms", "lower"),
    Row("put_p99", "put latency p99, 1 client sequential", "ms", "lower"),
    Row("get_p50", "get latency p50, 1 client sequential (linearizable)", "ms", "lower"),
    Row("get_p99", "get latency p99, 1 client sequential (linearizable)", "ms", "lower"),
    Row("txn", "txn (compare, put + range), grpcio procs x clients", "txn/s", "higher"),
    Row(
        "watch_1", "watch events delivered, 1 watcher, 32 concurrent writers", "events/s", "higher"
    ),
    Row("watch_1000", "watch events delivered, 1,000 watchers on one key", "events/s", "higher"),
    Row("lease_1", "lease keep-alives, 1 lease, one stream", "/s", "higher"),
    Row("lease_1000", "lease keep-alives, 1,000 leases round-robin, one stream", "/s", "higher"),
    Row("rss", "RSS after {rss_keys:,} keys x 256 B (VmRSS)", "MiB", "lower"),
    Row("startup", "spawn -> first acknowledged put (fresh data dir)", "s", "lower"),
    Row(
        "check_perf", "etcdctl check perf --load={perf_load} (writes/s, PASS/FAIL)", "w/s", "higher"
    ),
]
ROW = {r.key: r for r in ROWS}

# Workloads run on the servers of each round, in this order; each yields rows.
ROUND_WORKLOADS = [
    "put", "range_lin", "range_ser", "latency_put", "latency_get", "txn",
    "watch_1", "watch_1000", "lease_1", "lease_1000",
]  # fmt: skip
WORKLOAD_ROWS = {
    "latency_put": ["put_p50", "put_p99"],
    "latency_get": ["get_p50", "get_p99"],
}
SELECTABLE = [*ROUND_WORKLOADS, "startup", "put_3m", "rss", "check_perf"]


def rows_of(workload: str) -> list[str]:
    return WORKLOAD_ROWS.get(workload, [workload])


@dataclass
class Context:
    """Settings and shared state of one benchmark run."""

    args: argparse.Namespace
    run_dir: str
    data_dir: str
    bodies: dict[str, tuple[str, str, int]]
    duration: float
    warmup: float
    samples: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    status: dict[str, dict[str, str]] = field(default_factory=dict)
    log: Callable[[str], None] = print

    def record(self, row: str, kind: str, rnd: int, value: float, **extra: Any) -> None:
        self.samples.setdefault(row, {}).setdefault(kind, []).append(
            {"round": rnd, "value": value, **extra}
        )

    def note(self, row: str, kind: str, text: str) -> None:
        """Remember why a row has no number (the first reason wins)."""
        self.status.setdefault(row, {}).setdefault(kind, text)


# --- workloads: each takes (ctx, server) and returns {row: (value, extra)} ----------------

Measured = dict[str, tuple[float, dict[str, Any]]]


def _h2(ctx: Context, server: Server, name: str) -> Measured:
    if not procs.have("h2load"):
        raise NotAvailable("h2load not installed: apt-get install nghttp2-client")
    path, body, min_bytes = ctx.bodies[name]
    if name.startswith("range"):
        client.put(server.endpoint, b"bench/h2/range", h2.VALUE)
    rev0 = client.revision(server.endpoint) if name == "put" else 0
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    out = h2.run(
        server.endpoint,
        path,
        body,
        min_bytes,
        ctx.duration,
        ctx.warmup,
        ctx.args.h2_connections,
        ctx.args.h2_streams,
        os.path.join(ctx.run_dir, "h2load.log"),
    )
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.monotonic() - t0
    out["loadgen_cpu_share"] = (
        usage1.ru_utime + usage1.ru_stime - usage0.ru_utime - usage0.ru_stime
    ) / wall
    if name == "put":
        applied = client.revision(server.endpoint) - rev0
        if applied < out["succeeded"]:
            raise RuntimeError(f"revision grew by {applied}, fewer than {out['succeeded']} puts")
        out["revisions_added"] = applied
    return {name: (out["rps"], out)}


def _cpu_share(results: Sequence[dict[str, Any]]) -> float:
    """The busiest driver process's CPU time over its wall time."""
    return max((r["cpu"] / r["wall"]) for r in results if r.get("wall"))


def w_unary(ctx: Context, server: Server, op: str, row: str) -> Measured:
    a = ctx.args
    jobs = [
        (
            "unary_load",
            dict(
                endpoint=server.endpoint,
                op=op,
                concurrency=a.clients,
                duration=ctx.duration,
                warmup=ctx.warmup,
                index=i,
            ),
        )
        for i in range(a.procs)
    ]
    res = driver.run(jobs, timeout=ctx.duration + ctx.warmup + 60)
    ops = sum(r["ops"] for r in res)
    errors = sum(r["errors"] for r in res)
    if errors and not ops:
        raise RuntimeError(f"every call failed: {res[0]['first_error']}")
    extra = {
        "ops": ops,
        "errors": errors,
        "procs": a.procs,
        "clients_per_proc": a.clients,
        "loadgen_cpu_share": _cpu_share(res),
        "first_error": res[0]["first_error"],
    }
    return {row: (ops / ctx.duration, extra)}


def w_latency(ctx: Context, server: Server, op: str) -> Measured:
    job = (
        "sequential_latency",
        dict(
            endpoint=server.endpoint, op=op, duration=ctx.duration, max_ops=ctx.args.latency_max_ops
        ),
    )
    (r,) = driver.run([job], timeout=ctx.duration + 60)
    extra = {k: r[k] for k in ("ops", "max_ms", "mean_ms")} | {"loadgen_cpu_share": _cpu_share([r])}
    return {f"{op}_p50": (r["p50_ms"], extra), f"{op}_p99": (r["p99_ms"], extra)}


def w_watch(ctx: Context, server: Server, watchers: int) -> Measured:
    why = client.probe_watch(server.endpoint)
    if why == "not implemented":
        raise NotAvailable("not implemented")
    if why is not None:
        raise RuntimeError(f"watch probe: {why}")
    key = f"bench/watch/{watchers}/{time.monotonic_ns()}"
    if watchers == 1:
        layout = [(1, 1)]
        writer = dict(concurrency=32, duration=ctx.duration, max_puts=10**7)
    else:
        per_proc = watchers // ctx.args.watch_procs
        streams = max(1, per_proc // 100)
        layout = [(streams, per_proc // streams)] * ctx.args.watch_procs
        writer = dict(concurrency=1, duration=ctx.duration, max_puts=ctx.args.watch_fanout_puts)
    jobs: list[tuple[str, dict[str, Any]]] = [
        (
            "watch_receive",
            dict(
                endpoint=server.endpoint,
                key=key,
                streams=s,
                per_stream=p,
                idle=2.0,
                deadline=ctx.duration + 60,
            ),
        )
        for s, p in layout
    ]
    jobs.append(("watch_write", dict(endpoint=server.endpoint, key=key, **writer)))
    res = driver.run(jobs, timeout=ctx.duration + 120)
    w, receivers = res[-1], res[:-1]
    events = sum(r["events"] for r in receivers)
    total_watchers = sum(r["watchers"] for r in receivers)
    expected = w["puts"] * total_watchers
    elapsed = max(r["last_event"] for r in receivers) - w["began"]
    if events < expected or elapsed <= 0:
        raise RuntimeError(f"{events} of {expected} events delivered ({w['puts']} puts)")
    extra = {
        "events": events,
        "expected": expected,
        "puts": w["puts"],
        "watchers": total_watchers,
        "seconds": elapsed,
        "loadgen_cpu_share": _cpu_share(res),
    }
    return {f"watch_{watchers}": (events / elapsed, extra)}


def w_lease(ctx: Context, server: Server, leases: int) -> Measured:
    job = (
        "keepalive",
        dict(
            endpoint=server.endpoint,
            leases=leases,
            window=ctx.args.lease_window,
            duration=ctx.duration,
            warmup=ctx.warmup,
        ),
    )
    (r,) = driver.run([job], timeout=ctx.duration + ctx.warmup + 120)
    if r["expired"]:
        raise RuntimeError(f"{r['expired']} keep-alives answered TTL <= 0")
    extra = {"ops": r["ops"], "loadgen_cpu_share": _cpu_share([r])}
    return {f"lease_{leases}": (r["ops"] / ctx.duration, extra)}


WORKLOADS: dict[str, Callable[[Context, Server], Measured]] = {
    "put": lambda c, s: _h2(c, s, "put"),
    "range_lin": lambda c, s: _h2(c, s, "range_lin"),
    "range_ser": lambda c, s: _h2(c, s, "range_ser"),
    "latency_put": lambda c, s: w_latency(c, s, "put"),
    "latency_get": lambda c, s: w_latency(c, s, "get"),
    "txn": lambda c, s: w_unary(c, s, "txn", "txn"),
    "watch_1": lambda c, s: w_watch(c, s, 1),
    "watch_1000": lambda c, s: w_watch(c, s, 1000),
    "lease_1": lambda c, s: w_lease(c, s, 1),
    "lease_1000": lambda c, s: w_lease(c, s, 1000),
}


# --- phases -----------------------------------------------------------------------------


def order(kinds: Sequence[str], rnd: int) -> list[str]:
    """A B in even rounds, B A in odd ones."""
    return list(kinds) if rnd % 2 == 0 else list(reversed(kinds))


def start_fresh(
    ctx: Context, kind: str, tag: str, members: int = 1, timeout: float = 60.0
) -> tuple[list[Server], float]:
    """Start a fresh cluster of ``kind``; returns it and seconds to the first acknowledged put."""
    servers = procs.new_servers(kind, ctx.data_dir, tag, members, ctx.args.server_flag)
    procs.start(servers)
    try:
        return servers, client.first_write(servers, timeout)
    except BaseException:
        stop_cluster(servers, ctx, tag)
        raise


def stop_cluster(servers: Sequence[Server], ctx: Context, tag: str) -> None:
    """Stop the members, keep their logs in the run dir, delete their data."""
    for s in servers:
        s.stop()
        if os.path.exists(s.log_path):
            shutil.copy(s.log_path, os.path.join(ctx.run_dir, f"{tag}-{s.kind}-{s.name}.log"))
        shutil.rmtree(s.data_dir, ignore_errors=True)


def short_error(e: BaseException) -> str:
    """One short line for the table; the whole error goes to errors.log."""
    if isinstance(e, grpc.RpcError) and hasattr(e, "code"):
        return f"{e.code().name}"
    text = str(e).strip()
    m = re.search(r"StatusCode\.(\w+)", text)
    if m:
        return m.group(1)
    return (text.splitlines()[0] if text else type(e).__name__)[:60]


def run_one(ctx: Context, workload: str, kind: str, rnd: int, fn: Callable[[], Measured]) -> None:
    """Run one measurement and file its rows (or why it has none)."""
    rows = rows_of(workload)
    t0 = time.monotonic()
    try:
        measured = fn()
    except NotAvailable as e:
        for row in rows:
            ctx.note(row, kind, f"n/a ({e})")
        cause = f": {str(e.__cause__).strip().splitlines()[0][:200]}" if e.__cause__ else ""
        ctx.log(f"  {workload:<12} {kind:<5} n/a ({e}){cause}")
        if cause:
            with open(os.path.join(ctx.run_dir, "errors.log"), "a") as f:
                f.write(f"round {rnd} {workload} {kind}: n/a because {e.__cause__}\n")
        return
    except (Exception, TimeoutError) as e:  # noqa: BLE001 - one bad workload must not stop the run
        first = short_error(e)
        for row in rows:
            ctx.note(row, kind, f"error: {first}")
        ctx.log(f"  {workload:<12} {kind:<5} ERROR {first}")
        with open(os.path.join(ctx.run_dir, "errors.log"), "a") as f:
            f.write(f"round {rnd} {workload} {kind}: {e}\n")
        return
    load = os.getloadavg()[0]  # the 1-minute load average, to read noise against
    for row, (value, extra) in measured.items():
        ctx.record(row, kind, rnd, value, loadavg=load, **extra)
    shown = ", ".join(f"{r}={fmt(v)}" for r, (v, _) in measured.items())
    ctx.log(f"  {workload:<12} {kind:<5} {shown}  ({time.monotonic() - t0:.1f}s)")


def phase_rounds(
    ctx: Context, kinds: Sequence[str], workloads: Sequence[str], startup: bool
) -> None:
    """Fresh servers each round; every workload on each server, alternating who goes first."""
    for rnd in range(ctx.args.rounds):
        seq = order(kinds, rnd)
        ctx.log(f"round {rnd + 1}/{ctx.args.rounds}: {' then '.join(seq)}")
        live: dict[str, Server] = {}
        clusters: dict[str, list[Server]] = {}
        try:
            for kind in seq:
                try:
                    servers, seconds = start_fresh(ctx, kind, f"r{rnd}")
                except Exception as e:  # noqa: BLE001
                    for w in workloads:
                        for row in rows_of(w):
                            ctx.note(row, kind, "error: did not start")
                    ctx.log(f"  {kind} did not start: {e}")
                    continue
                clusters[kind] = servers
                live[kind] = servers[0]
                if startup:
                    ctx.record("startup", kind, rnd, seconds)
                    ctx.log(f"  {'startup':<12} {kind:<5} startup={seconds:.2f}")
            for w in workloads:
                for kind in seq:
                    if kind in live and not live[kind].running():
                        # Something outside killed it (the machine is shared): say so, go on.
                        gone = live[kind]
                        why = f"{kind} exited with code {gone.proc.exit} before {w}"
                        ctx.log(f"  {why}; starting a fresh one")
                        with open(os.path.join(ctx.run_dir, "errors.log"), "a") as f:
                            f.write(f"round {rnd}: {why}; log tail:\n{gone.log_tail(600)}\n")
                        try:
                            servers, _ = start_fresh(ctx, kind, f"r{rnd}b")
                        except Exception as e:  # noqa: BLE001
                            ctx.log(f"  {kind} did not restart: {e}")
                            del live[kind]
                            continue
                        clusters[f"{kind}-restarted"] = servers
                        live[kind] = servers[0]
                    if kind in live:
                        run_one(
                            ctx, w, kind, rnd, lambda k=kind, w=w, lv=live: WORKLOADS[w](ctx, lv[k])
                        )
        finally:
            for servers in clusters.values():
                stop_cluster(servers, ctx, f"r{rnd}")


def phase_cluster3(ctx: Context, kinds: Sequence[str]) -> None:
    """Put throughput through the leader of a fresh 3-member cluster, if the server has them."""
    broken: dict[str, str] = {}
    for rnd in range(ctx.args.rounds):
        for kind in order(kinds, rnd):
            if kind in broken:
                ctx.note("put_3m", kind, broken[kind])
                continue

            def measure(kind: str = kind, rnd: int = rnd) -> Measured:
                try:
                    servers, _ = start_fresh(ctx, kind, f"c{rnd}", 3, ctx.args.cluster_timeout)
                except Exception as e:  # noqa: BLE001 - a server without clusters fails somehow
                    if kind == "etcd":
                        raise
                    broken[kind] = "n/a (not implemented)"
                    raise NotAvailable("not implemented") from e
                try:
                    lead = client.leader(servers)
                    return _h2(ctx, lead, "put")
                finally:
                    stop_cluster(servers, ctx, f"c{rnd}")

            run_one(ctx, "put_3m", kind, rnd, lambda m=measure: {"put_3m": m()["put"]})


def phase_rss(ctx: Context, kinds: Sequence[str]) -> None:
    """VmRSS of a fresh server after writing the same 100,000 keys to each."""
    a = ctx.args
    for rnd in range(a.rss_rounds):
        for kind in order(kinds, rnd):

            def measure(kind: str = kind, rnd: int = rnd) -> Measured:
                servers, _ = start_fresh(ctx, kind, f"rss{rnd}")
                try:
                    s = servers[0]
                    before = procs.rss_kib(s.pid)
                    per = a.rss_keys // a.procs
                    jobs = [
                        (
                            "load_keys",
                            dict(
                                endpoint=s.endpoint,
                                first=i * per,
                                count=per,
                                batch=a.rss_batch,
                                concurrency=4,
                            ),
                        )
                        for i in range(a.procs)
                    ]
                    res = driver.run(jobs, timeout=900)
                    time.sleep(1.0)
                    after = procs.rss_kib(s.pid)
                    extra = {
                        "rss_start_mib": before / 1024,
                        "keys": per * a.procs,
                        "load_seconds": max(r["wall"] for r in res),
                        "batch": a.rss_batch,
                    }
                    return {"rss": (after / 1024, extra)}
                finally:
                    stop_cluster(servers, ctx, f"rss{rnd}")

            run_one(ctx, "rss", kind, rnd, measure)


def check_perf(endpoint: str, load: str, log_path: str) -> tuple[bool, float, str]:
    """Run ``etcdctl check perf``; returns (passed, writes/s, its verdict lines)."""
    argv = [procs.binary("etcdctl"), f"--endpoints={endpoint}", "check", "perf", f"--load={load}"]
    proc = procs.spawn(argv, log_path, env={"ETCDCTL_API": "3"})
    try:
        if proc.wait(timeout=200) is None:
            raise RuntimeError("etcdctl check perf did not finish in 200 s")
    finally:
        procs.stop(proc)
    with open(log_path, errors="replace") as f:
        out = f.read()
    verdicts = [ln.strip() for ln in re.split(r"[\r\n]", out) if re.match(r"\s*(PASS|FAIL)", ln)]
    m = re.search(r"([\d.]+) writes/s", out)
    if not verdicts or not m:
        raise RuntimeError(f"cannot parse check perf output: {out[-300:]!r}")
    return verdicts[-1] == "PASS", float(m.group(1)), "; ".join(verdicts)


def phase_check_perf(ctx: Context, kinds: Sequence[str]) -> None:
    """``etcdctl check perf`` once per server (60 s each), on a fresh server."""
    for kind in kinds:

        def measure(kind: str = kind) -> Measured:
            servers, _ = start_fresh(ctx, kind, "perf")
            try:
                log = os.path.join(ctx.run_dir, f"check-perf-{kind}.log")
                passed, wps, verdicts = check_perf(servers[0].endpoint, ctx.args.perf_load, log)
                return {
                    "check_perf": (
                        wps,
                        {"pass": passed, "verdicts": verdicts, "load": ctx.args.perf_load},
                    )
                }
            finally:
                stop_cluster(servers, ctx, "perf")

        run_one(ctx, "check_perf", kind, 0, measure)


# --- report -----------------------------------------------------------------------------


def fmt(v: float) -> str:
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


BUSY_CLIENT = 0.85


def summarize(ctx: Context, kinds: Sequence[str]) -> list[dict[str, Any]]:
    """Per row and server: median, spread and flags; the ratio ours/etcd."""
    out = []
    for row in ROWS:
        entry: dict[str, Any] = {
            "row": row.key,
            "label": row.label.format(**vars(ctx.args)),
            "unit": row.unit,
            "better": row.better,
        }
        if row.key not in ctx.samples and row.key not in ctx.status:
            continue
        for kind in kinds:
            samples = ctx.samples.get(row.key, {}).get(kind, [])
            values = [s["value"] for s in samples]
            if not values:
                entry[kind] = {"text": ctx.status.get(row.key, {}).get(kind, "-")}
                continue
            med = statistics.median(values)
            spread = (max(values) - min(values)) / med if med and len(values) > 1 else None
            busy = max((s.get("loadgen_cpu_share") or 0.0) for s in samples) >= BUSY_CLIENT
            text = fmt(med) + ("*" if busy else "")
            if row.key == "check_perf":
                text = ("PASS " if all(s["pass"] for s in samples) else "FAIL ") + text
            if row.key in ctx.status and kind in ctx.status[row.key]:
                text += "!"  # some rounds failed
            entry[kind] = {
                "median": med,
                "values": values,
                "spread": spread,
                "text": text,
                "loadgen_busy": busy,
            }
        e, o = entry.get("etcd", {}), entry.get("ours", {})
        if "median" in e and "median" in o and e["median"]:
            entry["ratio"] = o["median"] / e["median"]
        out.append(entry)
    return out


def table(summary: list[dict[str, Any]], kinds: Sequence[str]) -> str:
    """The text table: workload | etcd | ours | ours/etcd | better | spread."""
    head = ["workload", "unit", *kinds, "ours/etcd", "better", "spread " + "/".join(kinds)]
    lines = []
    for e in summary:
        spreads = "/".join(
            f"{e[k]['spread'] * 100:.0f}%" if e.get(k, {}).get("spread") is not None else "-"
            for k in kinds
        )
        ratio = f"{e['ratio']:.2f}" if "ratio" in e else "-"
        better = "higher" if e["better"] == "higher" else "LOWER"
        lines.append(
            [e["label"], e["unit"], *(e[k]["text"] for k in kinds), ratio, better, spreads]
        )
    widths = [max(len(str(r[i])) for r in [head, *lines]) for i in range(len(head))]

    def fmt_row(r: Sequence[object]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt_row(head), rule, *(fmt_row(r) for r in lines)])


NOTES = """\
ours/etcd: the ratio of medians. For "better = higher" rows (throughput) above 1 means ours is
ahead; for "better = LOWER" rows (latency, memory, start-up) below 1 means ours is ahead.
spread: (max - min) / median over the rounds, per server: differences smaller than it are noise.
*  a load-generator process was >= 85 % busy in some round: the client may be the limit.
!  some rounds failed (see errors.log); the median is over the rounds that worked.
put rows send one body with h2load, so every put rewrites the same key (a new revision each).
watch rows count events received by the watchers / (last event - first put); the writers' rate
bounds the 1-watcher row."""


def write_results(ctx: Context, kinds: Sequence[str], started: float, interrupted: bool) -> str:
    """Write results.json and table.txt; returns the table with its notes."""
    summary = summarize(ctx, kinds)
    text = table(summary, kinds) + "\n\n" + NOTES
    doc = {
        "started": started,
        "finished": time.time(),
        "interrupted": interrupted,
        "args": {k: v for k, v in vars(ctx.args).items()},
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg": os.getloadavg(),
            "python": sys.version,
            "platform": platform.platform(),
        },
        "summary": summary,
        "samples": ctx.samples,
        "status": ctx.status,
    }
    with open(os.path.join(ctx.run_dir, "results.json"), "w") as f:
        json.dump(doc, f, indent=1, default=str)
    with open(os.path.join(ctx.run_dir, "table.txt"), "w") as f:
        f.write(text + "\n")
    return text


# --- entry point ------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bin/bench",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per workload")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each")
    p.add_argument("--servers", default="etcd,ours", help="which servers: etcd,ours")
    p.add_argument(
        "--rows", default=",".join(SELECTABLE), help=f"workloads to run: {','.join(SELECTABLE)}"
    )
    p.add_argument("--skip", default="", help="workloads to leave out (e.g. check_perf)")
    p.add_argument("--results-dir", default=os.path.join(procs.ROOT, "bench", "results"))
    p.add_argument("--data-base", default=None, help="where the data dirs go (default: $TMPDIR)")
    p.add_argument("--server-flag", action="append", default=[], help="extra flag for both servers")
    p.add_argument("--h2-connections", type=int, default=10)
    p.add_argument("--h2-streams", type=int, default=10, help="concurrent streams per connection")
    p.add_argument("--procs", type=int, default=2, help="grpcio driver processes (txn, loading)")
    p.add_argument("--clients", type=int, default=16, help="concurrent calls per driver process")
    p.add_argument("--latency-max-ops", type=int, default=20000)
    p.add_argument(
        "--watch-procs", type=int, default=2, help="receiver processes for 1,000 watchers"
    )
    p.add_argument("--watch-fanout-puts", type=int, default=100, help="puts seen by 1,000 watchers")
    p.add_argument("--lease-window", type=int, default=64, help="keep-alives in flight")
    p.add_argument("--rss-keys", type=int, default=100_000)
    p.add_argument("--rss-batch", type=int, default=100, help="puts per txn when loading keys")
    p.add_argument("--rss-rounds", type=int, default=1)
    p.add_argument(
        "--cluster-timeout", type=float, default=20.0, help="wait for a 3-member cluster"
    )
    p.add_argument("--perf-load", default="m", choices=["s", "m", "l", "xl"])
    p.add_argument("--profile", metavar="WORKLOAD", help="profile ours during one workload")
    p.add_argument("--profile-seconds", type=float, default=15.0)
    p.add_argument("--profiler", default="auto", choices=["auto", "py-spy", "cprofile"])
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    procs.install_cleanup()
    kinds = [k for k in KINDS if k in args.servers.split(",")]
    skip = set(args.skip.split(",")) - {""}
    selected = [w for w in SELECTABLE if w in args.rows.split(",") and w not in skip]
    unknown = set(args.rows.split(",")) - set(SELECTABLE) - {""}
    if unknown or not kinds:
        print(f"unknown workloads {sorted(unknown)} or no servers", file=sys.stderr)
        return 2
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = os.path.join(args.results_dir, stamp + ("-profile" if args.profile else ""))
    os.makedirs(run_dir, exist_ok=True)
    data_dir = tempfile.mkdtemp(prefix="etcd-bench-", dir=args.data_base)
    log_file = open(os.path.join(run_dir, "progress.log"), "a")  # noqa: SIM115

    def log(line: str) -> None:
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    ctx = Context(args, run_dir, data_dir, h2.bodies(data_dir), args.duration, args.warmup, log=log)
    started = time.time()
    interrupted = False
    log(f"results in {run_dir}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")
    try:
        if args.profile:
            ctx.duration = args.profile_seconds
            return profile.run(ctx, args.profile, WORKLOADS, args.profiler)
        round_workloads = [w for w in ROUND_WORKLOADS if w in selected]
        if round_workloads or "startup" in selected:
            phase_rounds(ctx, kinds, round_workloads, "startup" in selected)
        if "rss" in selected:
            phase_rss(ctx, kinds)
        if "put_3m" in selected:
            phase_cluster3(ctx, kinds)
        if "check_perf" in selected:
            phase_check_perf(ctx, kinds)
    except (KeyboardInterrupt, SystemExit):
        interrupted = True
        log("interrupted: stopping servers, writing what was measured")
    finally:
        procs.stop_all()
        shutil.rmtree(data_dir, ignore_errors=True)
        log_file.close()
    if args.profile:
        return 1
    text = write_results(ctx, kinds, started, interrupted)
    print(
        f"\n{text}\n\nload average now {os.getloadavg()[0]:.2f}; raw numbers: "
        f"{os.path.join(run_dir, 'results.json')}"
    )
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
