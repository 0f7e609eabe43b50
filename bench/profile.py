"""``bin/bench --profile WORKLOAD``: our server under a profiler while one workload runs.

py-spy (``.venv/bin/pip install py-spy``; a dev tool, not a dependency) samples every
thread from outside without slowing the server much; its collapsed stacks are written
as ``profile-ours-WORKLOAD.pyspy.txt`` (feed to flamegraph.pl or speedscope). Without
py-spy, ``python -m cProfile`` wraps twistd (main thread only, and it slows the server
down) and writes ``profile-ours-WORKLOAD.prof``. Either way the top functions by own
time and by inclusive time go to ``profile-top.txt`` and the terminal.
"""

from __future__ import annotations

import io
import os
import pstats
import re
import shutil
import signal
import sys
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bench import client, procs
from bench.procs import Server

if TYPE_CHECKING:
    from bench.run import Context

TOP = 15


def top_from_collapsed(text: str, top: int = TOP) -> str:
    """Own-time and inclusive-time tables from py-spy's raw (collapsed) output.

    Inclusive time is shown for our package's functions only: the reactor's frames
    would otherwise fill the list.
    """
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = "all"
        if frames[0].startswith("thread ") or frames[0].startswith("process "):
            thread = re.sub(r"\s*\((?:0x)?[0-9a-f]+\)", "", frames[0])
            frames = frames[1:]
        if not frames:
            continue
        threads[thread] += count
        total += count
        names = [re.sub(r":\d+\)$", ")", f) for f in frames]  # drop line numbers
        own[names[-1]] += count
        for name in set(names):
            incl[name] += count
    if not total:
        return "no samples (was the server busy?)\n"
    out = io.StringIO()
    out.write(f"{total} samples (non-idle)\n\nper thread:\n")
    for name, n in threads.most_common():
        out.write(f"  {100 * n / total:5.1f}%  {name}\n")
    ours = Counter({k: v for k, v in incl.items() if "etcd_twisted/" in k})
    for title, counter in (("own time", own), ("inclusive time, etcd_twisted code", ours)):
        out.write(f"\ntop {top} by {title}:\n")
        for name, n in counter.most_common(top):
            out.write(f"  {100 * n / total:5.1f}%  {_short(name)}\n")
    return out.getvalue()


def _short(frame: str) -> str:
    """``func (/long/path/site-packages/pkg/mod.py)`` -> ``func (pkg/mod.py)``."""
    return re.sub(r"\((?:.*/(?:site-packages|lib/python[\d.]+|main)/)", "(", frame)


def top_from_pstats(path: str, top: int = TOP) -> str:
    """Own-time and cumulative-time tables from a cProfile file."""
    out = io.StringIO()
    stats = pstats.Stats(path, stream=out)
    stats.strip_dirs()
    for key in ("tottime", "cumulative"):
        out.write(f"\ntop {top} by {key}:\n")
        stats.sort_stats(key).print_stats(top)
    return out.getvalue()


def run(
    ctx: Context,
    workload: str,
    workloads: dict[str, Callable[[Context, Server], Any]],
    profiler: str,
) -> int:
    """Profile ours while ``workload`` runs for ``ctx.duration`` seconds; 0 on success."""
    if workload not in workloads:
        ctx.log(f"unknown workload {workload!r}: one of {', '.join(workloads)}")
        return 2
    if profiler == "auto":
        profiler = "py-spy" if procs.have("py-spy") else "cprofile"
    base = os.path.join(ctx.run_dir, f"profile-ours-{workload}")
    (server,) = procs.new_servers("ours", ctx.data_dir, "profile", 1, ctx.args.server_flag)
    if profiler == "cprofile":
        server.prefix = [sys.executable, "-m", "cProfile", "-o", base + ".prof"]
    procs.start([server])
    spy: procs.Child | None = None
    try:
        client.first_write([server])
        if profiler == "py-spy":
            argv = [
                procs.binary("py-spy"), "record", "--pid", str(server.pid), "--rate", "250",
                "--format", "raw", "--threads", "--nonblocking", "-o", base + ".pyspy.txt",
            ]  # fmt: skip
            spy = procs.spawn(argv, base + ".pyspy.log")
        seconds = ctx.warmup + ctx.duration
        ctx.log(
            f"profiling ours ({profiler}, pid {server.pid}) during {workload!r}, {seconds:.0f} s"
        )
        measured = workloads[workload](ctx, server)
        for row, (value, _) in measured.items():
            ctx.log(f"  {row}: {value:,.1f} (under the profiler)")
    finally:
        if spy is not None and spy.running:
            spy.signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
            spy.wait(timeout=30)
            procs.stop(spy)
        server.stop()
        if os.path.exists(server.log_path):
            shutil.copy(server.log_path, base + ".server.log")
    if profiler == "py-spy":
        with open(base + ".pyspy.txt", errors="replace") as f:
            top = top_from_collapsed(f.read())
    else:
        top = top_from_pstats(base + ".prof")
    with open(os.path.join(ctx.run_dir, "profile-top.txt"), "w") as f:
        f.write(top)
    ctx.log(top)
    ctx.log(f"profile written next to the results: {base}.*")
    return 0
