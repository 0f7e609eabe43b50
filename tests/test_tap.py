"""Tests for etcd_twisted.tap: the proxy subcommands' dispatch."""

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.proxy.command import GatewayOptions, GrpcProxyOptions
from etcd_twisted.tap import Options


class SubcommandTests(SynchronousTestCase):
    def test_gateway_start(self) -> None:
        """`gateway start FLAGS` selects the gateway with its parsed flags."""
        options = Options()
        options.parseOptions(["gateway", "start", "--listen-addr=127.0.0.1:1", "--retry-delay=2s"])
        self.assertEqual(options.subCommand, "gateway")
        self.assertIsInstance(options.subOptions, GatewayOptions)
        self.assertEqual(options.subOptions.config.listen_addr, "127.0.0.1:1")
        self.assertEqual(options.subOptions.config.retry_delay, 2.0)

    def test_grpc_proxy_start(self) -> None:
        """`grpc-proxy start FLAGS` selects the grpc-proxy."""
        options = Options()
        options.parseOptions(["grpc-proxy", "start", "--namespace=t/"])
        self.assertIsInstance(options.subOptions, GrpcProxyOptions)
        self.assertEqual(options.subOptions.config.namespace, "t/")

    def test_group_alone_prints_help(self) -> None:
        """The group without `start` (or with another word) exits 0 after its help."""
        for argv in (["gateway"], ["grpc-proxy", "stop"]):
            with self.assertRaises(SystemExit) as e:
                Options().parseOptions(argv)
            self.assertEqual(e.exception.code, 0)

    def test_bad_flag_exits_1(self) -> None:
        """An unknown flag of a proxy command exits 1."""
        with self.assertRaises(SystemExit) as e:
            Options().parseOptions(["gateway", "start", "--bogus"])
        self.assertEqual(e.exception.code, 1)

    def test_member_flags_unchanged(self) -> None:
        """Without a command word the flags are the member's."""
        options = Options()
        options.parseOptions(["--name", "m1"])
        self.assertIsNone(options.subCommand)
        self.assertEqual(options.config.name, "m1")
