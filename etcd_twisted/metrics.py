"""Prometheus metrics with etcd's names, in a registry of the member's own.

Each member has its own :class:`~prometheus_client.CollectorRegistry`, so several
members embedded in one process (as tests do) never share or clash on a metric.
Gauges that mirror server state are read when scraped, through the callables the
server registers with :meth:`Metrics.watch_state`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from etcd_twisted import ETCD_VERSION

#: Bucket bounds etcd uses for its disk latency histograms (seconds).
DISK_BUCKETS = tuple(0.001 * 2**i for i in range(14))


class _StateCollector(Collector):
    """Reads gauges from the server when scraped."""

    def __init__(self) -> None:
        self.sources: dict[str, tuple[str, Callable[[], float]]] = {}

    def collect(self) -> Iterator[Metric]:
        for name, (documentation, read) in self.sources.items():
            yield GaugeMetricFamily(name, documentation, value=float(read()))


class Metrics:
    """The member's metrics; components update them, ``/metrics`` renders them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self._state = _StateCollector()
        self.registry.register(self._state)
        version = Gauge(
            "etcd_server_version",
            "Which version is running. 1 for 'server_version' label with current version.",
            ["server_version"],
            registry=self.registry,
        )
        version.labels(server_version=ETCD_VERSION).set(1)
        self.grpc_started = Counter(
            "grpc_server_started",
            "Total number of RPCs started on the server.",
            ["grpc_type", "grpc_service", "grpc_method"],
            registry=self.registry,
        )
        self.grpc_handled = Counter(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            ["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
            registry=self.registry,
        )
        self.leader_changes = Counter(
            "etcd_server_leader_changes_seen",
            "The number of leader changes seen.",
            registry=self.registry,
        )
        self.proposals_committed = Gauge(
            "etcd_server_proposals_committed_total",
            "The total number of consensus proposals committed.",
            registry=self.registry,
        )
        self.proposals_applied = Gauge(
            "etcd_server_proposals_applied_total",
            "The total number of consensus proposals applied.",
            registry=self.registry,
        )
        self.proposals_pending = Gauge(
            "etcd_server_proposals_pending",
            "The current number of pending proposals to commit.",
            registry=self.registry,
        )
        self.proposals_failed = Counter(
            "etcd_server_proposals_failed",
            "The total number of failed proposals seen.",
            registry=self.registry,
        )
        self.wal_fsync_duration = Histogram(
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL.",
            buckets=DISK_BUCKETS,
            registry=self.registry,
        )
        self.backend_commit_duration = Histogram(
            "etcd_disk_backend_commit_duration_seconds",
            "The latency distributions of commit called by backend.",
            buckets=DISK_BUCKETS,
            registry=self.registry,
        )
        self.peer_round_trip = Histogram(
            "etcd_network_peer_round_trip_time_seconds",
            "Round-Trip-Time histogram between peers.",
            ["To"],
            buckets=tuple(0.0001 * 2**i for i in range(16)),
            registry=self.registry,
        )

    def watch_state(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """Publish gauge ``name`` whose value is ``read()`` at scrape time."""
        self._state.sources[name] = (documentation, read)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type (format 0.0.4, as etcd's)."""
        return generate_latest(self.registry), CONTENT_TYPE_PLAIN_0_0_4
