"""Tests for etcd_twisted.proxy.discovery and the gateway's --discovery-srv, against a
DNS server made with twisted.names on loopback."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, endpoints, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.names import client, common, dns, error, server
from twisted.trial.unittest import TestCase

from etcd_twisted.proxy.discovery import (
    DiscoveryError,
    discover_client_endpoints,
    lookup_client_srv,
)
from etcd_twisted.proxy.flags import parse_command
from etcd_twisted.proxy.gateway import DiscoveringGateway, GatewayConfig
from etcd_twisted.proxy.grpc_proxy import GrpcProxyConfig, build_grpc_proxy


class SrvRecords(common.ResolverBase):
    """An authority answering SRV queries from a table."""

    def __init__(self, records: dict[bytes, list[dns.Record_SRV]]) -> None:
        super().__init__()
        self.records = records

    def _lookup(self, name: bytes, cls: int, type: int, timeout: Any) -> defer.Deferred:
        if type == dns.SRV and name in self.records:
            answers = [
                dns.RRHeader(name, dns.SRV, dns.IN, 60, record, auth=True)
                for record in self.records[name]
            ]
            return defer.succeed((answers, [], []))
        return defer.fail(error.DomainError(name))


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class Collect(Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.got: defer.Deferred[bytes] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if not self.got.called:
            self.got.callback(self.received)


class DiscoveryTests(TestCase):
    timeout = 20

    def serve_dns(self, records: dict[bytes, list[dns.Record_SRV]]) -> client.Resolver:
        factory = server.DNSServerFactory(authorities=[SrvRecords(records)])
        port = reactor.listenUDP(0, dns.DNSDatagramProtocol(factory), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        resolver = client.Resolver(servers=[("127.0.0.1", port.getHost().port)], reactor=reactor)
        return resolver

    async def test_client_records(self) -> None:
        """_etcd-client and _etcd-client-ssl records become http and https endpoints."""
        resolver = self.serve_dns(
            {
                b"_etcd-client._tcp.example.test": [
                    dns.Record_SRV(1, 5, 2379, b"m1.example.test"),
                    dns.Record_SRV(0, 0, 2479, b"m2.example.test"),
                ],
                b"_etcd-client-ssl-blue._tcp.example.test": [
                    dns.Record_SRV(0, 0, 2579, b"m3.example.test")
                ],
            }
        )
        found = await lookup_client_srv(resolver, "example.test")
        self.assertEqual(
            [(e.url, e.remote.priority, e.remote.weight) for e in found],
            [("http://m1.example.test:2379", 1, 5), ("http://m2.example.test:2479", 0, 0)],
        )
        named = await lookup_client_srv(resolver, "example.test", "blue")
        self.assertEqual([e.url for e in named], ["https://m3.example.test:2579"])

    async def test_no_records_is_an_error(self) -> None:
        """Both lookups failing is etcd's 'dns lookup errors'."""
        resolver = self.serve_dns({})
        with self.assertRaises(DiscoveryError) as e:
            await lookup_client_srv(resolver, "nothing.test")
        self.assertTrue(str(e.exception).startswith("dns lookup errors: lookup _etcd-client-ssl"))

    async def test_insecure_http_only_when_allowed(self) -> None:
        """http endpoints are kept with --insecure-discovery and dropped without it."""
        resolver = self.serve_dns(
            {b"_etcd-client._tcp.example.test": [dns.Record_SRV(0, 0, 2379, b"127.0.0.1")]}
        )
        insecure = await discover_client_endpoints(reactor, resolver, "example.test", insecure=True)
        self.assertEqual([r.addr for r in insecure], ["127.0.0.1:2379"])
        secure = await discover_client_endpoints(reactor, resolver, "example.test")
        self.assertEqual(secure, [])

    async def test_gateway_proxies_to_discovered_endpoint(self) -> None:
        """gateway --discovery-srv relays connections to the endpoint the SRV record names."""
        echo = await endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            Factory.forProtocol(Echo)
        )
        self.addCleanup(echo.stopListening)
        resolver = self.serve_dns(
            {
                b"_etcd-client._tcp.example.test": [
                    dns.Record_SRV(0, 0, echo.getHost().port, b"127.0.0.1")
                ]
            }
        )
        config = parse_command(
            GatewayConfig,
            ["--discovery-srv=example.test", "--insecure-discovery", "--listen-addr=127.0.0.1:0",
             "--endpoints=127.0.0.1:1"],
        )  # fmt: skip
        errors: list[str] = []
        gateway = DiscoveringGateway(config, reactor, resolver, errors.append)
        gateway.startService()
        self.addCleanup(gateway.stopService)
        service = await gateway.started
        port = await service.listening
        client_side = Collect()
        await endpoints.connectProtocol(
            endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), client_side
        )
        client_side.transport.write(b"ping")
        self.assertEqual(await client_side.got, b"ping")
        client_side.transport.loseConnection()
        self.assertEqual(errors, [])
        self.assertEqual(
            [r.addr for r in service.proxy.remotes], [f"127.0.0.1:{echo.getHost().port}"]
        )


class GrpcProxyDiscoveryTests(TestCase):
    """grpc-proxy --discovery-srv, against the same loopback DNS server."""

    timeout = 20
    serve_dns = DiscoveryTests.serve_dns

    async def test_grpc_proxy_uses_discovered_members(self) -> None:
        """The proxy's members are the discovered ones; its port opens once they are known."""
        resolver = self.serve_dns(
            {
                b"_etcd-client._tcp.example.test": [
                    dns.Record_SRV(0, 0, 12379, b"127.0.0.1"),
                    dns.Record_SRV(0, 0, 22379, b"127.0.0.1"),
                ]
            }
        )
        config = parse_command(
            GrpcProxyConfig,
            ["--discovery-srv=example.test", "--insecure-discovery", "--listen-addr=127.0.0.1:0",
             "--endpoints=127.0.0.1:1"],
        )  # fmt: skip
        errors: list[str] = []
        proxy = build_grpc_proxy(config, reactor, resolver, errors.append)
        proxy.startService()
        self.addCleanup(proxy.stopService)
        (port,) = await proxy.listening()
        self.assertGreater(port.getHost().port, 0)
        self.assertEqual(proxy.upstream.members, [("127.0.0.1", 12379), ("127.0.0.1", 22379)])
        self.assertEqual(errors, [])

    async def test_grpc_proxy_discovery_failure(self) -> None:
        """A failed lookup is reported in one line and nothing listens."""
        resolver = self.serve_dns({})
        config = parse_command(
            GrpcProxyConfig, ["--discovery-srv=none.test", "--listen-addr=127.0.0.1:0"]
        )
        errors: list[str] = []
        proxy = build_grpc_proxy(config, reactor, resolver, errors.append)
        proxy.startService()
        self.addCleanup(proxy.stopService)
        while not errors:
            await deferLater(reactor, 0.05, lambda: None)
        self.assertTrue(errors[0].startswith("dns lookup errors"))
        self.assertFalse(proxy.getServiceNamed("client").running)
