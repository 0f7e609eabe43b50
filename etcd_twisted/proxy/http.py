"""The grpc-proxy's HTTP side, on its listen address and on ``--metrics-addr``, as
etcd 3.5's proxy serves it:

- ``/metrics``: a member's own ``/metrics``, fetched from the member the proxy talks to;
- ``/health``: the cluster's health, by a serializable read through the proxy's
  connection to the members;
- ``/proxy/metrics``: the proxy's own metrics (cache, coalescing);
- ``/proxy/health``: the proxy's health: the same read, through the proxy itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import treq
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from twisted.internet.defer import ensureDeferred
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.grpc import GrpcError
from etcd_twisted.proxy.cache import RangeCache
from etcd_twisted.proxy.lease import KeepAliveCoalescer
from etcd_twisted.proxy.upstream import Upstream
from etcd_twisted.proxy.watch import WatchHub

__all__ = ["ProxyCollector", "proxy_site"]

_TEXT = b"text/plain; version=0.0.4; charset=utf-8"


class ProxyCollector(Collector):
    """etcd's grpc-proxy metrics, read from the cache, the hub and the coalescer."""

    def __init__(self, cache: RangeCache, hub: WatchHub, coalescer: KeepAliveCoalescer) -> None:
        self._cache, self._hub, self._coalescer = cache, hub, coalescer

    def collect(self) -> Iterator[Metric]:
        cache, hub = self._cache, self._hub
        yield CounterMetricFamily(
            "etcd_grpc_proxy_cache_hits", "Total number of cache hits", value=cache.hits
        )
        yield CounterMetricFamily(
            "etcd_grpc_proxy_cache_misses", "Total number of cache misses", value=cache.misses
        )
        yield GaugeMetricFamily(
            "etcd_grpc_proxy_cache_keys_total",
            "Total number of keys/ranges cached",
            value=len(cache),
        )
        yield GaugeMetricFamily(
            "etcd_grpc_proxy_watchers_coalescing_total",
            "Total number of current watchers coalescing",
            value=max(0, hub.watchers - hub.upstream_watches),
        )
        yield CounterMetricFamily(
            "etcd_grpc_proxy_events_coalescing",
            "Total number of events coalescing",
            value=hub.events_coalesced,
        )
        yield GaugeMetricFamily(
            "etcd_grpc_proxy_upstream_watches",
            "Upstream watches held on the members (one per coalesced key range)",
            value=hub.upstream_watches,
        )
        yield CounterMetricFamily(
            "etcd_grpc_proxy_lease_keepalives_coalescing",
            "Keep-alive requests answered by another client's upstream request",
            value=self._coalescer.coalesced,
        )


class _OwnMetrics(Resource):
    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self._registry = registry

    def render_GET(self, request: Any) -> bytes:  # noqa: N802 - twisted.web's name
        request.setHeader(b"content-type", _TEXT)
        return generate_latest(self._registry)


class _MemberMetrics(Resource):
    """A member's ``/metrics``, relayed."""

    isLeaf = True

    def __init__(self, member_url: Callable[[], str], http: Any) -> None:
        super().__init__()
        self._member_url = member_url
        self._http = http

    def render_GET(self, request: Any) -> Any:  # noqa: N802 - twisted.web's name
        async def relay() -> None:
            try:
                response = await self._http.get(self._member_url() + "/metrics", timeout=5)
                body = await response.content()
                request.setResponseCode(response.code)
                request.setHeader(b"content-type", _TEXT)
            except Exception as e:  # noqa: BLE001 - any failure is a 503 naming it
                request.setResponseCode(503)
                body = f"cannot read the member's metrics: {e}\n".encode()
            request.write(body)
            request.finish()

        ensureDeferred(relay())
        return NOT_DONE_YET


class _Health(Resource):
    """A serializable read through ``upstream`` (the members, or the proxy itself)."""

    isLeaf = True

    def __init__(self, upstream: Upstream) -> None:
        super().__init__()
        self._upstream = upstream

    def render_GET(self, request: Any) -> Any:  # noqa: N802 - twisted.web's name
        probe = rpc_pb2.RangeRequest(key=b"health", serializable=True).SerializeToString()

        async def check() -> None:
            try:
                await self._upstream.unary("/etcdserverpb.KV/Range", probe, timeout=2.0)
                body, code = {"health": "true", "reason": ""}, 200
            except GrpcError as e:
                body, code = {"health": "false", "reason": f"GET ERROR:{e.message}"}, 503
            request.setResponseCode(code)
            request.setHeader(b"content-type", b"application/json")
            request.write(json.dumps(body, separators=(",", ":")).encode())
            request.finish()

        ensureDeferred(check())
        return NOT_DONE_YET


def proxy_site(
    upstream: Upstream,
    self_upstream: Upstream,
    metrics: CollectorRegistry,
    member_url: Callable[[], str],
    http: Any = treq,
) -> Site:
    """The HTTP site: ``self_upstream`` reaches the proxy's own gRPC port."""
    root = Resource()
    root.putChild(b"metrics", _MemberMetrics(member_url, http))
    root.putChild(b"health", _Health(upstream))
    own = Resource()
    own.putChild(b"metrics", _OwnMetrics(metrics))
    own.putChild(b"health", _Health(self_upstream))
    root.putChild(b"proxy", own)
    site = Site(root)
    site.noisy = False
    return site
