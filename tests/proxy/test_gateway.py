"""Tests for etcd_twisted.proxy.gateway: endpoint parsing and etcd's start-up checks."""

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.proxy.flags import parse_command
from etcd_twisted.proxy.gateway import (
    GatewayConfig,
    GatewayError,
    build_gateway,
    check_listen_address,
    remotes_from_endpoints,
    split_host_port,
)
from etcd_twisted.proxy.tcp import Remote


def _resolve(host: str) -> list[str]:
    table = {"127.0.0.1": ["127.0.0.1"], "localhost": ["127.0.0.1", "::1"], "h": ["10.0.0.1"]}
    if host not in table:
        raise OSError(host)
    return table[host]


class EndpointTests(SynchronousTestCase):
    def test_split(self) -> None:
        """host:port and [v6]:port split as Go's net.SplitHostPort; others fail."""
        self.assertEqual(split_host_port("h:1"), ("h", "1"))
        self.assertEqual(split_host_port("[::1]:2"), ("::1", "2"))
        for bad in ("h", "::1:2", "[::1]"):
            self.assertRaises(ValueError, split_host_port, bad)

    def test_scheme_stripped(self) -> None:
        """URLs lose their scheme; bare host:port stays."""
        remotes = remotes_from_endpoints(["http://127.0.0.1:1", "https://h:2", "h:3"])
        self.assertEqual([r.addr for r in remotes], ["127.0.0.1:1", "h:2", "h:3"])

    def test_bad_endpoint(self) -> None:
        """An endpoint without a port is etcd's 'error parsing endpoint'."""
        with self.assertRaises(GatewayError) as e:
            remotes_from_endpoints(["a:1", "b"])
        self.assertEqual(str(e.exception), 'error parsing endpoint "b"')


class CheckTests(SynchronousTestCase):
    def check(self, listen: str, remotes: list[Remote]) -> str:
        with self.assertRaises(GatewayError) as e:
            check_listen_address(listen, remotes, _resolve)
        return str(e.exception)

    def test_messages(self) -> None:
        """Each refusal is etcd's line."""
        self.assertEqual(self.check("foo", []), "failed to validate listen address: foo")
        self.assertEqual(self.check("nowhere:1", []), "failed to resolve listen host: nowhere")
        self.assertEqual(
            self.check("127.0.0.1:1", [Remote("nowhere", 2)]),
            "failed to resolve endpoint host: nowhere",
        )
        self.assertEqual(
            self.check("127.0.0.1:2379", [Remote("localhost", 2379)]),
            "SRV or endpoint (localhost:2379->127.0.0.1:2379) should not resolve to the "
            "gateway listen addr (127.0.0.1:2379)",
        )

    def test_other_port_is_fine(self) -> None:
        """The same host on another port is accepted."""
        check_listen_address("127.0.0.1:23790", [Remote("localhost", 2379)], _resolve)

    def test_no_endpoints(self) -> None:
        """--endpoints= is 'no endpoints found'."""
        config = parse_command(GatewayConfig, ["--endpoints=", "--listen-addr", "127.0.0.1:1"])
        with self.assertRaises(GatewayError) as e:
            build_gateway(config, None, resolve=_resolve)  # type: ignore[arg-type]
        self.assertEqual(str(e.exception), "no endpoints found")
