"""Unary gRPC throughput with h2load and pre-encoded request bodies.

h2load sends the same body on every stream: a Put rewrites one key over and over (so
put throughput here is "one hot key", a new revision each time), and a Range reads one
fixed key. h2load counts HTTP 200 as success, but a failed gRPC call is also HTTP 200
(the error is in the trailers and there is no message), so each run is checked by the
bytes of DATA received per request: a real response carries at least ``min_bytes``.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass

from bench.procs import binary, spawn, stop
from etcd_twisted._pb import rpc_pb2
from etcd_twisted.grpc.framing import encode_message

VALUE = b"v" * 256


def bodies(directory: str) -> dict[str, tuple[str, str, int]]:
    """Write the request bodies; ``{name: (gRPC path, body file, min response DATA bytes)}``."""
    specs = {
        "put": ("/etcdserverpb.KV/Put", rpc_pb2.PutRequest(key=b"bench/h2/put", value=VALUE), 10),
        "range_lin": ("/etcdserverpb.KV/Range", rpc_pb2.RangeRequest(key=b"bench/h2/range"), 256),
        "range_ser": (
            "/etcdserverpb.KV/Range",
            rpc_pb2.RangeRequest(key=b"bench/h2/range", serializable=True),
            256,
        ),
    }
    out = {}
    for name, (path, msg, min_bytes) in specs.items():
        file = os.path.join(directory, f"{name}.grpc")
        with open(file, "wb") as f:
            f.write(encode_message(msg.SerializeToString()))
        out[name] = (path, file, min_bytes)
    return out


@dataclass
class H2Result:
    """What one h2load run measured."""

    seconds: float
    succeeded: int
    failed: int
    errored: int
    data_bytes: int
    rps: float
    mean_ms: float | None


_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


def _bytes(text: str) -> int:
    m = re.match(r"([\d.]+)(B|KB|MB|GB)", text)
    if not m:
        return 0
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def parse(out: str) -> H2Result:
    """Pick the numbers out of h2load's summary."""
    fin = re.search(r"finished in ([\d.]+)(ms|s),", out)
    req = re.search(
        r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored",
        out,
    )
    traffic = re.search(r"traffic: .*?, (\S+) \(\d+\) data", out)
    data_exact = re.search(r"traffic: .*, \S+ \((\d+)\) data", out)
    lat = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    if not (fin and req):
        raise RuntimeError(f"cannot parse h2load output:\n{out[-2000:]}")
    seconds = float(fin.group(1)) / (1000.0 if fin.group(2) == "ms" else 1.0)
    succeeded = int(req.group(1))
    data = int(data_exact.group(1)) if data_exact else (_bytes(traffic.group(1)) if traffic else 0)
    mean_ms = None
    if lat:
        mean_ms = float(lat.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[lat.group(2)]
    return H2Result(
        seconds,
        succeeded,
        int(req.group(2)),
        int(req.group(3)),
        data,
        succeeded / seconds if seconds else 0.0,
        mean_ms,
    )


def run(
    endpoint: str,
    path: str,
    body: str,
    min_bytes: int,
    duration: float,
    warmup: float,
    connections: int,
    streams: int,
    log_path: str,
) -> dict[str, object]:
    """h2load for ``duration`` s after ``warmup`` s; raises if calls failed."""
    argv = [
        binary("h2load"),
        "-D", str(max(1, round(duration))),
        *(["--warm-up-time", str(max(1, round(warmup)))] if warmup > 0 else []),
        "-c", str(connections), "-m", str(streams), "-t", "1",
        "-d", body,
        "-H", "content-type: application/grpc",
        "-H", "te: trailers",
        f"http://{endpoint}{path}",
    ]  # fmt: skip
    out_path = log_path + ".out"
    with open(out_path, "wb"):
        pass
    proc = spawn(argv, out_path)
    try:
        if proc.wait(timeout=duration + warmup + 60) is None:
            raise RuntimeError("h2load did not finish")
    finally:
        stop(proc)
    with open(out_path, errors="replace") as f:
        out = f.read()
    os.unlink(out_path)
    with open(log_path, "a") as log:
        log.write(f"$ {' '.join(argv)}\n{out}\n")
    result = parse(out)
    if not result.succeeded:
        raise RuntimeError(f"h2load: no call succeeded: {out.strip().splitlines()[-1:]}")
    if result.failed or result.errored:
        raise RuntimeError(f"h2load: {result.failed} failed, {result.errored} errored")
    if result.succeeded and result.data_bytes < result.succeeded * min_bytes:
        per = result.data_bytes / result.succeeded
        raise RuntimeError(f"gRPC errors: {per:.1f} DATA bytes per response, want >= {min_bytes}")
    record = asdict(result)
    record["when"] = time.time()
    return record
