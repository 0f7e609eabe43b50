"""Tests for etcd_twisted.discovery.srv: a member's initial cluster from DNS SRV."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.names import dns, server
from twisted.trial.unittest import SynchronousTestCase, TestCase

from etcd_twisted.discovery.srv import (
    SrvBootstrapError,
    initial_cluster_from_srv,
    query_srv,
)
from tests.proxy.test_discovery import SrvRecords

HTTP = "_etcd-server._tcp.example.test"


def _lookup(table: dict[str, list[dns.Record_SRV]]):  # noqa: ANN202 - a small fake
    def lookup(name: str) -> list[dns.Record_SRV]:
        if name not in table:
            raise LookupError(f"lookup {name}: no such host")
        return table[name]

    return lookup


class ClusterTests(SynchronousTestCase):
    def test_own_name_and_numbered_peers(self) -> None:
        """The record matching our peer URL gets our name; the others 0, 1, ..."""
        records = [dns.Record_SRV(0, 0, port, b"127.0.0.1.") for port in (2380, 2381, 2382)]
        cluster = initial_cluster_from_srv(
            "m2", "example.test", "", ["http://127.0.0.1:2381"], _lookup({HTTP: records})
        )
        self.assertEqual(
            cluster,
            {
                "0": ["http://127.0.0.1:2380"],
                "m2": ["http://127.0.0.1:2381"],
                "1": ["http://127.0.0.1:2382"],
            },
        )

    def test_service_name_and_ssl(self) -> None:
        """-ssl records are https peers; --discovery-srv-name suffixes the service."""
        table = {
            "_etcd-server-ssl-blue._tcp.example.test": [dns.Record_SRV(0, 0, 2380, b"127.0.0.1")]
        }
        cluster = initial_cluster_from_srv(
            "a", "example.test", "blue", ["https://127.0.0.1:2380"], _lookup(table)
        )
        self.assertEqual(cluster, {"a": ["https://127.0.0.1:2380"]})

    def test_errors(self) -> None:
        """No records, not finding ourselves, or a scheme mismatch are etcd's lines."""
        with self.assertRaises(SrvBootstrapError) as e:
            initial_cluster_from_srv("a", "example.test", "", ["http://127.0.0.1:1"], _lookup({}))
        self.assertTrue(
            str(e.exception).startswith("error querying DNS SRV records for _etcd-server")
        )
        others = {HTTP: [dns.Record_SRV(0, 0, 9, b"127.0.0.1")]}
        with self.assertRaises(SrvBootstrapError) as e:
            initial_cluster_from_srv(
                "a", "example.test", "", ["http://127.0.0.1:1"], _lookup(others)
            )
        self.assertEqual(str(e.exception), 'cannot find local etcd member "a" in SRV records')
        with self.assertRaises(SrvBootstrapError) as e:
            initial_cluster_from_srv(
                "a", "example.test", "", ["https://127.0.0.1:9"], _lookup(others)
            )
        self.assertIn(
            "has scheme mismatch with expected peer https://127.0.0.1:9", str(e.exception)
        )


class QueryTests(TestCase):
    timeout = 20

    async def test_query_loopback_server(self) -> None:
        """The blocking query reads SRV records from a twisted.names server; a missing
        name is a LookupError."""
        factory = server.DNSServerFactory(
            authorities=[SrvRecords({HTTP.encode(): [dns.Record_SRV(1, 2, 2380, b"m1.test")]})]
        )
        port = reactor.listenUDP(0, dns.DNSDatagramProtocol(factory), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        address = ("127.0.0.1", port.getHost().port)
        (record,) = await deferToThread(query_srv, HTTP, address)
        self.assertEqual((record.priority, record.weight, record.port), (1, 2, 2380))
        self.assertEqual(record.target.name, b"m1.test")
        with self.assertRaises(LookupError):
            await deferToThread(query_srv, "_etcd-server._tcp.none.test", address)
