"""Tests for etcd_twisted.proxy.flags: pflag's syntax, defaults, errors and help layout."""

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.proxy.flags import CommandError, CommandHelp, parse_command, usage
from etcd_twisted.proxy.gateway import GatewayConfig


class ParseTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """With no flags every value is etcd 3.5.1's gateway default."""
        c = parse_command(GatewayConfig, [])
        self.assertEqual(c.listen_addr, "127.0.0.1:23790")
        self.assertEqual(c.endpoints, ["127.0.0.1:2379"])
        self.assertEqual(c.retry_delay, 60.0)
        self.assertFalse(c.insecure_discovery)

    def test_forms(self) -> None:
        """--f=v, --f v and a bare boolean; a slice flag given twice appends; words are ignored."""
        c = parse_command(
            GatewayConfig,
            ["--listen-addr=1.2.3.4:5", "--retry-delay", "2s", "--insecure-discovery",
             "--endpoints", "a:1,b:2", "--endpoints=c:3", "extra"],
        )  # fmt: skip
        self.assertEqual(c.listen_addr, "1.2.3.4:5")
        self.assertEqual(c.retry_delay, 2.0)
        self.assertTrue(c.insecure_discovery)
        self.assertEqual(c.endpoints, ["a:1", "b:2", "c:3"])

    def test_empty_slice(self) -> None:
        """--endpoints= means no endpoints."""
        self.assertEqual(parse_command(GatewayConfig, ["--endpoints="]).endpoints, [])

    def test_errors(self) -> None:
        """Unknown flags, missing arguments and bad values give pflag's messages."""
        cases = {
            ("--bogus",): "unknown flag: --bogus",
            ("-listen-addr", "x"): "unknown shorthand flag: 'l' in -listen-addr",
            ("--listen-addr",): "flag needs an argument: --listen-addr",
            ("--retry-delay", "x"): 'invalid argument "x" for "--retry-delay" flag: '
            'time: invalid duration "x"',
            ("--insecure-discovery=x",): 'invalid argument "x" for "--insecure-discovery" '
            'flag: strconv.ParseBool: parsing "x": invalid syntax',
        }
        for argv, message in cases.items():
            with self.assertRaises(CommandError) as e:
                parse_command(GatewayConfig, list(argv))
            self.assertEqual(str(e.exception), message)

    def test_help(self) -> None:
        """-h and --help ask for the help."""
        for argv in (["-h"], ["--help"], ["--listen-addr", "a:1", "--help"]):
            self.assertRaises(CommandHelp, parse_command, GatewayConfig, argv)


class UsageTests(SynchronousTestCase):
    def test_layout(self) -> None:
        """The help lists flags sorted, with types and non-zero defaults, as cobra does."""
        text = usage(GatewayConfig, "etcd gateway start", "start the gateway")
        lines = text.splitlines()
        self.assertEqual(lines[:6], ["start the gateway", "", "Usage:",
                                     "  etcd gateway start [flags]", "", "Flags:"])  # fmt: skip
        self.assertIn(
            "      --endpoints strings           comma separated etcd cluster endpoints "
            "(default [127.0.0.1:2379])",
            lines,
        )
        self.assertIn(
            '      --listen-addr string          listen address (default "127.0.0.1:23790")',
            lines,
        )
        self.assertIn("  -h, --help                        help for start", lines)
        names = [line.split("--")[1].split()[0] for line in lines[6:]]
        self.assertEqual(names, sorted(names))
