"""``twistd etcd gateway start``: the flags, the checks etcd makes before it listens,
and the service (a :class:`~etcd_twisted.proxy.tcp.TcpProxy` on ``--listen-addr``).

The start-up checks fail with :class:`GatewayError`, whose message is etcd's line
for the same mistake (``failed to validate listen address: ...``,
``error parsing endpoint "..."``, ``no endpoints found``, ...).
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from twisted.application.service import MultiService
from twisted.internet import endpoints
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorCore, IStreamServerEndpoint
from twisted.internet.protocol import Factory, Protocol

from etcd_twisted.config import flag
from etcd_twisted.listen import BACKLOG, TLSServerEndpoint
from etcd_twisted.proxy.discovery import DiscoveryError, discover_client_endpoints
from etcd_twisted.proxy.flags import go_bool, go_duration, go_string, go_strings
from etcd_twisted.proxy.tcp import Remote, TcpProxy, TcpProxyService

__all__ = [
    "DiscoveringGateway",
    "GatewayConfig",
    "GatewayError",
    "build_gateway",
    "listen_endpoint",
    "remotes_from_endpoints",
    "split_host_port",
]


class GatewayError(Exception):
    """The gateway cannot start; the message is etcd's one line."""


@dataclasses.dataclass(frozen=True)
class GatewayConfig:
    """``etcd gateway start``'s flags, with etcd 3.5.1's names, defaults and help."""

    listen_addr: str = flag(go_string, "127.0.0.1:23790", "listen address")
    discovery_srv: str = flag(go_string, "", "DNS domain used to bootstrap initial cluster")
    discovery_srv_name: str = flag(go_string, "", "service name to query when using DNS discovery")
    insecure_discovery: bool = flag(go_bool, "false", "accept insecure SRV records")
    trusted_ca_file: str = flag(
        go_string,
        "",
        "path to the client server TLS CA file for verifying the discovered endpoints "
        "when discovery-srv is provided.",
    )
    endpoints: list[str] = flag(
        go_strings, "[127.0.0.1:2379]", "comma separated etcd cluster endpoints"
    )
    retry_delay: float = flag(
        go_duration, "1m0s", "duration of delay before retrying failed endpoints"
    )


def split_host_port(address: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort``: ``host:port`` or ``[v6]:port``; ValueError otherwise."""
    if address.startswith("["):
        end = address.find("]")
        if end < 0 or address[end + 1 : end + 2] != ":":
            raise ValueError(address)
        return address[1:end], address[end + 2 :]
    host, sep, port = address.rpartition(":")
    if not sep or ":" in host:
        raise ValueError(address)
    return host, port


def strip_scheme(endpoint: str) -> str:
    """``http://host:port`` becomes ``host:port``; anything else is kept as given."""
    parts = urlsplit(endpoint)
    return parts.netloc if parts.scheme and parts.netloc else endpoint


def remotes_from_endpoints(endpoint_list: Sequence[str]) -> list[Remote]:
    """The remotes for ``--endpoints`` (scheme stripped), as etcd parses them."""
    remotes = []
    for endpoint in map(strip_scheme, endpoint_list):
        try:
            host, port = split_host_port(endpoint)
            number = int(port) if port.isdigit() else 0
        except ValueError:
            raise GatewayError(f'error parsing endpoint "{endpoint}"') from None
        remotes.append(Remote(host, number))
    return remotes


Resolver = Callable[[str], list[str]]


def resolve_host(host: str) -> list[str]:
    """The addresses ``host`` resolves to (Go's ``net.LookupHost``); OSError if none."""
    infos = socket.getaddrinfo(host or None, None, proto=socket.IPPROTO_TCP)
    return sorted({info[4][0] for info in infos})


def check_listen_address(
    listen_addr: str, remotes: Sequence[Remote], resolve: Resolver = resolve_host
) -> None:
    """etcd's checks: the listen address parses and resolves, every endpoint resolves,
    and no endpoint is the gateway itself."""
    try:
        listen_host, listen_port = split_host_port(listen_addr)
    except ValueError:
        raise GatewayError(f"failed to validate listen address: {listen_addr}") from None
    try:
        own = set(resolve(listen_host))
    except OSError:
        raise GatewayError(f"failed to resolve listen host: {listen_host}") from None
    for remote in remotes:
        try:
            addresses = resolve(remote.target)
        except OSError:
            raise GatewayError(f"failed to resolve endpoint host: {remote.target}") from None
        if str(remote.port) != listen_port:
            continue
        for address in addresses:
            if address in own:
                raise GatewayError(
                    f"SRV or endpoint ({remote.target}:{remote.port}->{address}:{remote.port})"
                    f" should not resolve to the gateway listen addr ({listen_addr})"
                )


def listen_endpoint(reactor: object, listen_addr: str, tls: Any = None) -> IStreamServerEndpoint:
    """The server endpoint for a ``host:port`` listen address (TLS with ``tls`` options)."""
    host, port = split_host_port(listen_addr)
    if not port.isdigit():
        raise GatewayError(f"listen tcp: address {listen_addr}: invalid port")
    if tls is not None:
        return TLSServerEndpoint(listen_endpoint(reactor, listen_addr), tls)
    if ":" in host:
        return endpoints.TCP6ServerEndpoint(reactor, int(port), backlog=BACKLOG, interface=host)
    interface = socket.gethostbyname(host) if host else ""
    return endpoints.TCP4ServerEndpoint(reactor, int(port), backlog=BACKLOG, interface=interface)


def tcp_connector(reactor: IReactorCore) -> Callable[[Remote, Factory], Deferred[Protocol]]:
    """Connects to a remote by name or address (any address family)."""

    def connect(remote: Remote, factory: Factory) -> Deferred[Protocol]:
        endpoint = endpoints.HostnameEndpoint(reactor, remote.target, remote.port)
        return endpoint.connect(factory)

    return connect


def build_gateway(
    config: GatewayConfig,
    reactor: IReactorCore,
    remotes: Sequence[Remote] | None = None,
    resolve: Resolver = resolve_host,
) -> TcpProxyService:
    """The gateway service for ``config``; ``remotes`` replace ``--endpoints`` when
    discovery found some. Raises :class:`GatewayError` as etcd would refuse to start."""
    if remotes is None:
        remotes = remotes_from_endpoints(config.endpoints)
    check_listen_address(config.listen_addr, remotes, resolve)
    if not remotes:
        raise GatewayError("no endpoints found")
    proxy = TcpProxy(remotes, tcp_connector(reactor), reactor, config.retry_delay)  # type: ignore[arg-type]
    return TcpProxyService(proxy, listen_endpoint(reactor, config.listen_addr))


class DiscoveringGateway(MultiService):
    """The gateway with ``--discovery-srv``: endpoints are looked up once the reactor
    runs, then etcd's checks run and the TCP proxy starts (``on_error`` gets etcd's
    line if any of that fails). Discovery finding nothing falls back to ``--endpoints``."""

    def __init__(
        self,
        config: GatewayConfig,
        reactor: IReactorCore,
        resolver: Any,
        on_error: Callable[[str], Any],
        resolve: Resolver = resolve_host,
    ) -> None:
        super().__init__()
        self._config = config
        self._reactor = reactor
        self._resolver = resolver
        self._on_error = on_error
        self._resolve = resolve
        self.started: Deferred[TcpProxyService] = Deferred()

    def startService(self) -> None:
        super().startService()
        ensureDeferred(self._start())

    async def _start(self) -> None:
        config = self._config
        try:
            found = await discover_client_endpoints(
                self._reactor,
                self._resolver,
                config.discovery_srv,
                config.discovery_srv_name,
                config.insecure_discovery,
                config.trusted_ca_file,
            )
            service = build_gateway(config, self._reactor, found or None, self._resolve)
        except (DiscoveryError, GatewayError) as e:
            self._on_error(str(e))
            return
        service.setServiceParent(self)
        self.started.callback(service)
