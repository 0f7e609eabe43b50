"""``twistd etcd grpc-proxy start``: flags, and the service that wires the proxy together.

The proxy serves gRPC (our ``grpc`` server) and, on the same port, the HTTP endpoints
of :mod:`etcd_twisted.proxy.http`; ``--metrics-addr`` serves those on a port of their
own. Calls go to the members through one :class:`~etcd_twisted.proxy.upstream.Upstream`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger

from etcd_twisted.config import flag
from etcd_twisted.grpc import GrpcFactory, Registry
from etcd_twisted.grpc.health import HealthService
from etcd_twisted.listen import ListeningService
from etcd_twisted.proxy.cache import RangeCache
from etcd_twisted.proxy.discovery import DiscoveryError, discover_client_endpoints
from etcd_twisted.proxy.flags import go_bool, go_duration, go_int, go_string, go_strings, go_uint
from etcd_twisted.proxy.forward import register as register_forwarders
from etcd_twisted.proxy.gateway import (
    GatewayError,
    listen_endpoint,
    remotes_from_endpoints,
    split_host_port,
)
from etcd_twisted.proxy.http import ProxyCollector, proxy_site
from etcd_twisted.proxy.lease import KeepAliveCoalescer
from etcd_twisted.proxy.namespace import Namespace
from etcd_twisted.proxy.registration import Registration
from etcd_twisted.proxy.services import (
    KVProxy,
    register_cluster,
    register_keep_alive,
    register_watch,
)
from etcd_twisted.proxy.streams import upstream_keep_alive_opener, upstream_watch_opener
from etcd_twisted.proxy.tcp import Remote
from etcd_twisted.proxy.tls import client_side_tls, member_tls
from etcd_twisted.proxy.upstream import Upstream, tcp_dialer
from etcd_twisted.proxy.watch import WatchHub
from etcd_twisted.sniff import SniffingFactory

__all__ = ["GrpcProxyConfig", "GrpcProxyService", "build_grpc_proxy", "refusals"]

log = Logger()

_MAX_INT32 = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class GrpcProxyConfig:
    """``etcd grpc-proxy start``'s flags, with etcd 3.5.1's names, defaults and help."""

    listen_addr: str = flag(go_string, "127.0.0.1:23790", "listen address")
    discovery_srv: str = flag(
        go_string, "", "domain name to query for SRV records describing cluster endpoints"
    )
    discovery_srv_name: str = flag(go_string, "", "service name to query when using DNS discovery")
    metrics_addr: str = flag(
        go_string, "", "listen for endpoint /metrics requests on an additional interface"
    )
    insecure_discovery: bool = flag(go_bool, "false", "accept insecure SRV records")
    endpoints: list[str] = flag(
        go_strings, "[127.0.0.1:2379]", "comma separated etcd cluster endpoints"
    )
    advertise_client_url: str = flag(
        go_string,
        "127.0.0.1:23790",
        "advertise address to register (must be reachable by client)",
    )
    resolver_prefix: str = flag(
        go_string,
        "",
        "prefix to use for registering proxy (must be shared with other grpc-proxy members)",
    )
    resolver_ttl: int = flag(
        go_int, "0", "specify TTL, in seconds, when registering proxy endpoints"
    )
    namespace: str = flag(go_string, "", "string to prefix to all keys for namespacing requests")
    enable_pprof: bool = flag(
        go_bool,
        "false",
        'Enable runtime profiling data via HTTP server. Address is at client URL + "/debug/pprof/"',
    )
    data_dir: str = flag(go_string, "default.proxy", "Data directory for persistent data")
    cert: str = flag(
        go_string,
        "",
        "identify secure connections with etcd servers using this TLS certificate file",
    )
    key: str = flag(
        go_string, "", "identify secure connections with etcd servers using this TLS key file"
    )
    cacert: str = flag(
        go_string,
        "",
        "verify certificates of TLS-enabled secure etcd servers using this CA bundle",
    )
    insecure_skip_tls_verify: bool = flag(
        go_bool,
        "false",
        "skip authentication of etcd server TLS certificates (CAUTION: this option should be "
        "enabled only for testing purposes)",
    )
    cert_file: str = flag(
        go_string, "", "identify secure connections to the proxy using this TLS certificate file"
    )
    key_file: str = flag(
        go_string, "", "identify secure connections to the proxy using this TLS key file"
    )
    trusted_ca_file: str = flag(
        go_string, "", "verify certificates of TLS-enabled secure proxy using this CA bundle"
    )
    client_crl_file: str = flag(go_string, "", "proxy client certificate revocation list file.")
    auto_tls: bool = flag(go_bool, "false", "proxy TLS using generated certificates")
    self_signed_cert_validity: int = flag(
        go_uint, "1", "The validity period of the proxy certificates, unit is year"
    )
    max_send_bytes: int = flag(
        go_int,
        "1572864",
        "message send limits in bytes (default value is 1.5 MiB)",
    )
    max_recv_bytes: int = flag(
        go_int,
        str(_MAX_INT32),
        "message receive limits in bytes (default value is math.MaxInt32)",
    )
    grpc_keepalive_min_time: float = flag(
        go_duration,
        "5s",
        "Minimum interval duration that a client should wait before pinging proxy.",
    )
    grpc_keepalive_interval: float = flag(
        go_duration,
        "2h0m0s",
        "Frequency duration of server-to-client ping to check if a connection is alive "
        "(0 to disable).",
    )
    grpc_keepalive_timeout: float = flag(
        go_duration,
        "20s",
        "Additional duration of wait before closing a non-responsive connection (0 to disable).",
    )
    experimental_serializable_ordering: bool = flag(
        go_bool,
        "false",
        "Ensure serializable reads have monotonically increasing store revisions across endpoints.",
    )
    experimental_leasing_prefix: str = flag(
        go_string, "", "leasing metadata prefix for disconnected linearized reads."
    )
    debug: bool = flag(go_bool, "false", "Enable debug-level logging for grpc-proxy.")


#: Flags this proxy does not provide, each refused in one line when set.
_NOT_PROVIDED: dict[str, str] = {
    "enable_pprof": "pprof is Go's profiler; there is nothing to serve in etcd-twisted",
    "auto_tls": "generated certificates are not provided; give --cert-file and --key-file",
    "experimental_serializable_ordering": "not provided",
    "experimental_leasing_prefix": "the leasing cache is not provided",
    "debug": "log levels of the proxy are not configurable yet",
    "grpc_keepalive_min_time": "gRPC keep-alive enforcement is not configurable yet",
    "grpc_keepalive_interval": "gRPC keep-alive pings are not configurable yet",
    "grpc_keepalive_timeout": "gRPC keep-alive pings are not configurable yet",
    "max_send_bytes": "a send limit is not provided yet",
}


def refusals(config: GrpcProxyConfig) -> list[str]:
    """One line for each flag set to something this proxy does not provide."""
    defaults = GrpcProxyConfig.__dataclass_fields__
    lines = []
    for attr, why in _NOT_PROVIDED.items():
        default = defaults[attr].metadata["flag"]
        parse, raw_default = default[0], default[1]
        if getattr(config, attr) != _parsed_default(parse, raw_default):
            lines.append(f"--{attr.replace('_', '-')}: {why}")
    return lines


def _parsed_default(parse: Any, raw: str) -> Any:
    if parse.is_bool:
        return raw == "true"
    return parse(raw) if raw else raw


class GrpcProxyService(MultiService):
    """The proxy: listeners, and the shared state behind them.

    With ``discover`` (``--discovery-srv``), the members are looked up first and the
    listeners start after; ``on_error`` gets the line if the lookup fails.
    """

    def __init__(
        self,
        upstream: Upstream,
        hub: WatchHub,
        coalescer: KeepAliveCoalescer,
        discover: Callable[[], Awaitable[list[Remote]]] | None = None,
        on_error: Callable[[str], Any] | None = None,
    ) -> None:
        super().__init__()
        self.upstream = upstream
        self.hub = hub
        self.coalescer = coalescer
        self._discover = discover
        self._on_error = on_error

    def startService(self) -> None:
        if self._discover is None:
            super().startService()
            return
        Service.startService(self)
        ensureDeferred(self._discover_then_start())

    async def _discover_then_start(self) -> None:
        assert self._discover is not None
        try:
            found = await self._discover()
        except DiscoveryError as e:
            if self._on_error is not None:
                self._on_error(str(e))
            return
        if found:
            self.upstream.members = [(r.target, r.port) for r in found]
        log.info("proxying to {members}", members=self.upstream.members)
        for child in self:
            child.startService()

    def stopService(self) -> Any:
        d = super().stopService()
        self.coalescer.close()
        self.upstream.close()
        return d

    def listening(self) -> Deferred[Any]:
        return self.getServiceNamed("client").listening()


def _self_tls(config: GrpcProxyConfig) -> Any:
    """TLS to the proxy's own port for ``/proxy/health``, unchecked: it is ourselves."""
    if not config.cert_file:
        return None
    return member_tls("", "", "", insecure_skip_verify=True)


def _metrics_endpoint(reactor: Any, addr: str) -> Any:
    parts = urlsplit(addr)
    return listen_endpoint(reactor, parts.netloc if parts.scheme else addr)


def build_grpc_proxy(
    config: GrpcProxyConfig,
    reactor: Any,
    resolver: Any = None,
    on_error: Callable[[str], Any] | None = None,
) -> GrpcProxyService:
    """The proxy for ``config``. Raises :class:`GatewayError` with etcd's line for a bad
    endpoint or listen address. ``resolver`` (twisted.names) serves ``--discovery-srv``."""
    remotes = remotes_from_endpoints(config.endpoints)
    if not remotes:
        raise GatewayError("etcdclient: no available endpoints")
    try:
        split_host_port(config.listen_addr)
    except ValueError:
        raise GatewayError(
            f"listen tcp: address {config.listen_addr}: missing port in address"
        ) from None
    if bool(config.cert_file) != bool(config.key_file):
        raise GatewayError("--cert-file and --key-file must be given together")
    to_members = member_tls(config.cert, config.key, config.cacert, config.insecure_skip_tls_verify)
    upstream = Upstream(
        [(r.target, r.port) for r in remotes], tcp_dialer(reactor, tls=to_members), reactor
    )
    hub = WatchHub(upstream_watch_opener(upstream), reactor.callLater)
    coalescer = KeepAliveCoalescer(upstream_keep_alive_opener(upstream))
    cache = RangeCache()
    namespace = Namespace(config.namespace.encode()) if config.namespace else None

    registry = Registry()
    KVProxy(upstream, cache, namespace).register(registry)
    register_watch(registry, hub, namespace, upstream)
    register_keep_alive(registry, coalescer)
    register_cluster(registry, upstream, config.advertise_client_url, config.resolver_prefix)
    register_forwarders(
        registry,
        upstream,
        skip=frozenset({"/etcdserverpb.Cluster/MemberList", "/etcdserverpb.Cluster/MemberPromote"}),
    )
    HealthService().register(registry)

    metrics = CollectorRegistry()
    metrics.register(ProxyCollector(cache, hub, coalescer))

    discover = None
    if config.discovery_srv:

        def discover() -> Awaitable[list[Remote]]:
            return discover_client_endpoints(
                reactor,
                resolver,
                config.discovery_srv,
                config.discovery_srv_name,
                config.insecure_discovery,
                "",
            )

    service = GrpcProxyService(upstream, hub, coalescer, discover, on_error)
    grpc_factory = GrpcFactory(registry, reactor, max_receive_bytes=config.max_recv_bytes)
    scheme = "https" if to_members is not None else "http"
    listen_host, listen_port = split_host_port(config.listen_addr)
    self_upstream = Upstream(
        [(listen_host or "127.0.0.1", int(listen_port))],
        tcp_dialer(reactor, tls=_self_tls(config)),
        reactor,
        give_up_after=2.0,
    )
    site = proxy_site(
        upstream,
        self_upstream,
        metrics,
        lambda: "{}://{}:{}".format(scheme, *upstream.current_member),
    )
    tls_to_clients = client_side_tls(
        config.cert_file, config.key_file, config.trusted_ca_file, config.client_crl_file
    )
    client = ListeningService(
        "client",
        SniffingFactory(grpc_factory, site, reactor),
        [listen_endpoint(reactor, config.listen_addr, tls_to_clients)],
        before_stop=lambda: grpc_factory.shutdown(1.0),
    )
    client.setServiceParent(service)
    if config.metrics_addr:
        ListeningService(
            "metrics", site, [_metrics_endpoint(reactor, config.metrics_addr)]
        ).setServiceParent(service)
    if config.resolver_prefix:
        Registration(
            upstream,
            config.resolver_prefix,
            config.advertise_client_url,
            config.resolver_ttl,
            reactor,
        ).setServiceParent(service)
    return service
