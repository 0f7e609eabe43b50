"""DNS SRV discovery of client endpoints (``--discovery-srv``), through ``twisted.names``.

As etcd's ``srv.GetClient``: the records ``_etcd-client-ssl[-NAME]._tcp.DOMAIN`` (https)
and ``_etcd-client[-NAME]._tcp.DOMAIN`` (http) are looked up; both failing is an error.
Unless ``--insecure-discovery`` is given, only endpoints that complete a TLS handshake
(verified against ``--trusted-ca-file``, with DOMAIN as the server name) are kept, as
etcd's ``ValidateSecureEndpoints`` keeps them; http endpoints never pass. When nothing is
left the caller falls back to ``--endpoints``.

The resolver is the system's (``/etc/resolv.conf``) unless ``ETCD_TWISTED_DNS_SERVER``
(``host:port``) names another, which is how tests point it at a loopback server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twisted.internet import endpoints, ssl
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.names import client, dns
from twisted.names.error import DNSNameError, DomainError

from etcd_twisted.proxy.tcp import Remote

__all__ = ["DiscoveredEndpoint", "DiscoveryError", "discover_client_endpoints", "resolver_from_env"]

log = Logger()


class DiscoveryError(Exception):
    """Neither SRV lookup answered; the message names both failures."""


@dataclass(frozen=True)
class DiscoveredEndpoint:
    """One SRV record, with the scheme its service name implies."""

    scheme: str
    remote: Remote

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.remote.addr}"


def srv_service(service: str, name: str, scheme: str) -> str:
    """etcd's ``GetSRVService``: ``-ssl`` for https, then ``-NAME`` if given."""
    if scheme == "https":
        service += "-ssl"
    return f"{service}-{name}" if name else service


def resolver_from_env(reactor: Any, environ: Mapping[str, str] | None = None) -> client.Resolver:
    """The system resolver, or the server ``ETCD_TWISTED_DNS_SERVER`` names."""
    env = os.environ if environ is None else environ
    override = env.get("ETCD_TWISTED_DNS_SERVER", "")
    if override:
        host, _, port = override.rpartition(":")
        return client.Resolver(servers=[(host, int(port))], reactor=reactor)
    return client.Resolver(resolv="/etc/resolv.conf", reactor=reactor)


async def lookup_srv(resolver: Any, name: str) -> list[Remote]:
    """The SRV records of ``name`` as remotes (target without the final dot)."""
    answers, _, _ = await resolver.lookupService(name)
    remotes = []
    for answer in answers:
        if answer.type != dns.SRV:
            continue
        record = answer.payload
        remotes.append(
            Remote(
                record.target.name.decode().rstrip("."), record.port, record.priority, record.weight
            )
        )
    return remotes


async def lookup_client_srv(
    resolver: Any, domain: str, service_name: str = ""
) -> list[DiscoveredEndpoint]:
    """Every ``_etcd-client(-ssl)`` record of ``domain``, https first."""
    found: list[DiscoveredEndpoint] = []
    errors = []
    for scheme in ("https", "http"):
        name = f"_{srv_service('etcd-client', service_name, scheme)}._tcp.{domain}"
        try:
            found += [DiscoveredEndpoint(scheme, r) for r in await lookup_srv(resolver, name)]
        except (DNSNameError, DomainError, OSError, TimeoutError) as e:
            errors.append(f"lookup {name}: {type(e).__name__}")
        except Exception as e:  # noqa: BLE001 - twisted.names fails with several kinds
            errors.append(f"lookup {name}: {e or type(e).__name__}")
    if len(errors) == 2:
        raise DiscoveryError(f"dns lookup errors: {errors[0]} and {errors[1]}")
    return found


async def tls_handshake_ok(
    reactor: Any, endpoint: DiscoveredEndpoint, server_name: str, ca_file: str
) -> bool:
    """Whether ``endpoint`` completes a TLS handshake verified for ``server_name``."""
    if endpoint.scheme != "https":
        return False
    try:
        trust = None
        if ca_file:
            with open(ca_file, "rb") as f:
                trust = ssl.Certificate.loadPEM(f.read())
        options = ssl.optionsForClientTLS(server_name, trustRoot=trust)
        tcp = endpoints.HostnameEndpoint(
            reactor, endpoint.remote.target, endpoint.remote.port, timeout=5
        )
        handshake: Deferred[None] = Deferred()

        class Probe(Protocol):
            def handshakeCompleted(self) -> None:  # noqa: N802 - Twisted's name
                handshake.callback(None)
                self.transport.loseConnection()

            def connectionLost(self, reason: Any = None) -> None:
                if not handshake.called:
                    handshake.errback(reason)

        await endpoints.wrapClientTLS(options, tcp).connect(Factory.forProtocol(Probe))
        await handshake
        return True
    except Exception as e:  # noqa: BLE001 - any failure means not validated
        log.warn(
            "discovered endpoint {url} failed TLS validation: {error}", url=endpoint.url, error=e
        )
        return False


async def discover_client_endpoints(
    reactor: Any,
    resolver: Any,
    domain: str,
    service_name: str = "",
    insecure: bool = False,
    ca_file: str = "",
) -> list[Remote]:
    """The remotes discovered for ``domain`` (possibly none: then use ``--endpoints``)."""
    found = await lookup_client_srv(resolver, domain, service_name)
    log.info(
        "discovered cluster from SRV {domain}: {urls}", domain=domain, urls=[e.url for e in found]
    )
    if insecure:
        return [e.remote for e in found]
    kept = [e for e in found if await tls_handshake_ok(reactor, e, domain, ca_file)]
    if len(kept) < len(found):
        log.warn(
            "some discovered SRV endpoints failed validation; kept {urls}",
            urls=[e.url for e in kept],
        )
    return [e.remote for e in kept]
