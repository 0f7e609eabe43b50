"""From a peer URL to a client endpoint: plain TCP for ``http``, TLS for ``https``."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from urllib.parse import urlsplit

from twisted.internet import endpoints
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IStreamClientEndpoint

#: Builds the TLS connection creator for a host name (e.g. ``optionsForClientTLS``).
ClientTLS = Callable[[str], IOpenSSLClientConnectionCreator]
#: Seconds allowed for a TCP connect (etcd's peer dial timeout is 1 s).
CONNECT_TIMEOUT = 1.0


class PeerURLError(ValueError):
    """A peer URL this transport cannot dial."""


def host_header(url: str) -> str:
    """The ``Host`` header value for a peer URL."""
    return urlsplit(url).netloc


def client_endpoint(reactor: object, url: str, tls: ClientTLS | None) -> IStreamClientEndpoint:
    """The endpoint that dials peer URL ``url``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PeerURLError(f"unsupported peer URL {url!r}")
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    endpoint: IStreamClientEndpoint
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        endpoint = endpoints.HostnameEndpoint(reactor, host, port, timeout=CONNECT_TIMEOUT)
    else:
        if address.version == 6:
            endpoint = endpoints.TCP6ClientEndpoint(reactor, host, port, CONNECT_TIMEOUT)
        else:
            endpoint = endpoints.TCP4ClientEndpoint(reactor, host, port, CONNECT_TIMEOUT)
    if parts.scheme == "https":
        if tls is None:
            raise PeerURLError(f"{url} needs TLS: give the peer client TLS options")
        endpoint = endpoints.wrapClientTLS(tls(host), endpoint)
    return endpoint
