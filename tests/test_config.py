"""Tests for etcd_twisted.config: flags, environment, YAML file, validation."""

import dataclasses
import os

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted import config
from etcd_twisted.config import ConfigError, HelpRequested, VersionRequested, parse


class DefaultsTests(SynchronousTestCase):
    def test_etcd_defaults(self) -> None:
        """With no flags every value is etcd 3.5's default."""
        c = parse([], {})
        self.assertEqual(c.name, "default")
        self.assertEqual(c.data_dir, "default.etcd")
        self.assertEqual(c.listen_client_urls, ["http://localhost:2379"])
        self.assertEqual(c.listen_peer_urls, ["http://localhost:2380"])
        self.assertEqual(c.initial_cluster, {"default": ["http://localhost:2380"]})
        self.assertEqual(c.initial_cluster_state, "new")
        self.assertEqual(c.initial_cluster_token, "etcd-cluster")
        self.assertEqual(c.snapshot_count, 100000)
        self.assertEqual((c.heartbeat_interval, c.election_timeout), (100, 1000))
        self.assertEqual(c.max_txn_ops, 128)
        self.assertEqual(c.max_request_bytes, 1572864)
        self.assertEqual(c.grpc_keepalive_min_time, 5.0)
        self.assertEqual(c.grpc_keepalive_interval, 7200.0)
        self.assertEqual(c.grpc_keepalive_timeout, 20.0)
        self.assertEqual((c.max_snapshots, c.max_wals), (5, 5))
        self.assertTrue(c.strict_reconfig_check)
        self.assertEqual(c.auto_compaction_mode, "periodic")
        self.assertEqual(c.auth_token, "simple")
        self.assertFalse(c.unsafe_no_fsync)

    def test_unsafe_no_fsync(self) -> None:
        """--unsafe-no-fsync, as a bare boolean or from ETCD_UNSAFE_NO_FSYNC, turns fsync off."""
        self.assertTrue(parse(["--unsafe-no-fsync"], {}).unsafe_no_fsync)
        self.assertTrue(parse([], {"ETCD_UNSAFE_NO_FSYNC": "true"}).unsafe_no_fsync)

    def test_max_concurrent_streams(self) -> None:
        """--max-concurrent-streams defaults to 10000 (etcd's is unlimited) and is settable."""
        self.assertEqual(parse([], {}).max_concurrent_streams, 10000)
        c = parse(["--max-concurrent-streams", "50"], {})
        self.assertEqual(c.max_concurrent_streams, 50)

    def test_derived_values(self) -> None:
        """Quota 0 means 2 GiB; receive limit is request limit + 512 KiB; ticks derive."""
        c = parse(["--data-dir", "/d"], {})
        self.assertEqual(c.quota_bytes, 2 * 1024**3)
        self.assertEqual(c.max_receive_bytes, 1572864 + 512 * 1024)
        self.assertEqual(c.election_ticks, 10)
        self.assertEqual(c.wal_path, os.path.join("/d", "member", "wal"))
        self.assertEqual(c.snap_path, os.path.join("/d", "member", "snap"))

    def test_data_dir_follows_name(self) -> None:
        """The default data dir is ${name}.etcd and the default cluster uses the name."""
        c = parse(["--name", "infra1", "--initial-advertise-peer-urls", "http://10.0.0.1:2380"], {})
        self.assertEqual(c.data_dir, "infra1.etcd")
        self.assertEqual(c.initial_cluster, {"infra1": ["http://10.0.0.1:2380"]})

    def test_enable_dashboard(self) -> None:
        """The dashboard is on by default; --enable-dashboard=false or its variable turns it off."""
        self.assertTrue(parse([], {}).enable_dashboard)
        self.assertFalse(parse(["--enable-dashboard=false"], {}).enable_dashboard)
        self.assertFalse(parse([], {"ETCD_ENABLE_DASHBOARD": "false"}).enable_dashboard)
        with self.assertRaises(ConfigError):
            parse(["--enable-dashboard=maybe"], {})


class DeclarationTests(SynchronousTestCase):
    def test_each_flag_is_one_config_field(self) -> None:
        """FLAGS is derived from Config's flag fields: same names, same order, nothing twice."""
        fields = [f.name for f in dataclasses.fields(config.Config) if "flag" in f.metadata]
        self.assertEqual([flag.attr for flag in config.FLAGS], fields)
        self.assertEqual(len(config.FLAGS_BY_NAME), len(config.FLAGS))
        self.assertEqual(config.FLAGS_BY_NAME["snapshot-count"].default, "100000")


class FlagSyntaxTests(SynchronousTestCase):
    def test_go_flag_forms(self) -> None:
        """-f v, --f v, --f=v and bare booleans are accepted, as Go's flag package does."""
        c = parse(
            ["-name", "a", "--snapshot-count=7", "--pre-vote=false", "--force-new-cluster"], {}
        )
        self.assertEqual((c.name, c.snapshot_count), ("a", 7))
        self.assertFalse(c.pre_vote)
        self.assertTrue(c.force_new_cluster)

    def test_corruption_check_flags(self) -> None:
        """The corruption checks are off by default; the interval is a Go duration."""
        c = parse([], {})
        self.assertFalse(c.experimental_initial_corrupt_check)
        self.assertEqual(c.experimental_corrupt_check_time, 0.0)
        c = parse(
            ["--experimental-initial-corrupt-check", "--experimental-corrupt-check-time=1m30s"],
            {"ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME": "5s"},
        )
        self.assertTrue(c.experimental_initial_corrupt_check)
        self.assertEqual(c.experimental_corrupt_check_time, 90.0)
        c = parse([], {"ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME": "5s"})
        self.assertEqual(c.experimental_corrupt_check_time, 5.0)

    def test_lists_and_cluster(self) -> None:
        """URL lists split on commas; initial-cluster maps names to their URLs."""
        c = parse(
            [
                "--name", "a",
                "--listen-client-urls", "http://127.0.0.1:1,https://[::1]:2",
                "--initial-cluster", "a=http://h:1,b=http://h:2,a=http://h:3",
            ],
            {},
        )  # fmt: skip
        self.assertEqual(c.listen_client_urls, ["http://127.0.0.1:1", "https://[::1]:2"])
        self.assertEqual(
            c.initial_cluster, {"a": ["http://h:1", "http://h:3"], "b": ["http://h:2"]}
        )

    def test_help_and_version(self) -> None:
        """--help raises HelpRequested with every flag; --version raises VersionRequested."""
        with self.assertRaises(HelpRequested) as e:
            parse(["--help"], {})
        for flag in config.FLAGS:
            self.assertIn(f"--{flag.name} ", str(e.exception))
        self.assertRaises(VersionRequested, parse, ["--version"], {})


class BadInputTests(SynchronousTestCase):
    def assertBad(self, argv: list[str], fragment: str, env: dict[str, str] | None = None) -> None:
        with self.assertRaises(ConfigError) as e:
            parse(argv, env or {})
        message = str(e.exception)
        self.assertIn(fragment, message)
        self.assertNotIn("\n", message)

    def test_bad_integer_names_flag(self) -> None:
        """A non-integer count names the flag and the value, as etcd does."""
        self.assertBad(["--snapshot-count", "abc"], 'invalid value "abc" for flag --snapshot-count')

    def test_unknown_flag(self) -> None:
        """An unknown flag is refused with Go's message."""
        self.assertBad(["--bogus"], "flag provided but not defined: -bogus")

    def test_missing_argument(self) -> None:
        """A value flag at the end of the line needs an argument."""
        self.assertBad(["--name"], "flag needs an argument: -name")

    def test_positional_argument(self) -> None:
        """A stray positional argument is not a flag."""
        self.assertBad(["stray"], "'stray' is not a valid flag")

    def test_bad_choice_bool_duration_url(self) -> None:
        """Choices, booleans, durations and URLs are all validated."""
        self.assertBad(["--initial-cluster-state", "weird"], "--initial-cluster-state")
        self.assertBad(["--strict-reconfig-check=maybe"], "--strict-reconfig-check")
        self.assertBad(["--grpc-keepalive-min-time", "5 parsecs"], "--grpc-keepalive-min-time")
        self.assertBad(["--listen-client-urls", "foo"], "URL scheme must be http, https, unix")
        self.assertBad(["--listen-client-urls", "http://h:1/path"], "must not contain a path")

    def test_election_timeout_rule(self) -> None:
        """The election timeout must be at least five heartbeats, with etcd's message."""
        self.assertBad(
            ["--election-timeout", "100"],
            "--election-timeout[100ms] should be at least as 5 times as --heartbeat-interval[100ms]",
        )

    def test_bad_environment_value(self) -> None:
        """A bad ETCD_* value names the variable."""
        self.assertBad(
            [], 'invalid value "xyz" for ETCD_SNAPSHOT_COUNT', {"ETCD_SNAPSHOT_COUNT": "xyz"}
        )

    def test_bad_revision_retention(self) -> None:
        """Revision auto-compaction needs an integer retention."""
        self.assertBad(
            ["--auto-compaction-mode", "revision", "--auto-compaction-retention", "1h"],
            "--auto-compaction-retention",
        )


class EnvironmentTests(SynchronousTestCase):
    def test_environment_sets_flags(self) -> None:
        """ETCD_<NAME> sets a flag that the command line does not give."""
        c = parse([], {"ETCD_NAME": "envname", "ETCD_SNAPSHOT_COUNT": "42"})
        self.assertEqual((c.name, c.snapshot_count), ("envname", 42))

    def test_flag_shadows_environment(self) -> None:
        """A flag wins over its environment variable, with a warning."""
        c = parse(
            ["--name", "flag"],
            {"ETCD_NAME": "env", "ETCD_WHATEVER": "1", "ETCD_TWISTED_FAILPOINTS": "x"},
        )
        self.assertEqual(c.name, "flag")
        self.assertTrue(any("shadowed" in w for w in c.warnings))
        self.assertTrue(any("ETCD_WHATEVER" in w for w in c.warnings))
        self.assertFalse(any("ETCD_TWISTED_" in w for w in c.warnings))


class ConfigFileTests(SynchronousTestCase):
    def write(self, text: str) -> str:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_yaml_replaces_flags_and_environment(self) -> None:
        """A config file is used alone: flag names as keys, TLS sections flattened."""
        path = self.write(
            "name: fromfile\n"
            "snapshot-count: 12\n"
            "listen-client-urls: http://127.0.0.1:4001\n"
            "strict-reconfig-check: false\n"
            "client-transport-security:\n  cert-file: /c.pem\n  key-file: /k.pem\n"
            "peer-transport-security:\n  client-cert-auth: true\n"
        )
        c = parse(["--config-file", path, "--name", "ignored"], {"ETCD_SNAPSHOT_COUNT": "1"})
        self.assertEqual((c.name, c.snapshot_count), ("fromfile", 12))
        self.assertEqual(c.listen_client_urls, ["http://127.0.0.1:4001"])
        self.assertFalse(c.strict_reconfig_check)
        self.assertEqual((c.cert_file, c.key_file), ("/c.pem", "/k.pem"))
        self.assertTrue(c.peer_client_cert_auth)

    def test_yaml_bad_value_names_key_and_file(self) -> None:
        """A bad value in the file names the key and the file."""
        path = self.write("heartbeat-interval: fast\n")
        with self.assertRaises(ConfigError) as e:
            parse(["--config-file", path], {})
        self.assertIn(f"heartbeat-interval in {path}", str(e.exception))

    def test_yaml_unreadable_or_invalid(self) -> None:
        """A missing file or broken YAML is a one-line error."""
        self.assertRaises(ConfigError, parse, ["--config-file", "/nonexistent/x.yml"], {})
        path = self.write("name: [unclosed\n")
        self.assertRaises(ConfigError, parse, ["--config-file", path], {})


class DurationTests(SynchronousTestCase):
    def test_go_durations(self) -> None:
        """Go durations parse into seconds."""
        self.assertEqual(config.parse_duration("1h30m"), 5400.0)
        self.assertAlmostEqual(config.parse_duration("100ms"), 0.1)
        self.assertEqual(config.parse_duration("0"), 0.0)
        for bad in ("", "5", "1x", "h"):
            self.assertRaises(ValueError, config.parse_duration, bad)

    def test_periodic_retention(self) -> None:
        """A bare number of periodic retention means hours."""
        self.assertEqual(config.periodic_retention("2"), 7200.0)
        self.assertEqual(config.periodic_retention("5m"), 300.0)


class V2Tests(SynchronousTestCase):
    def test_v2_flags_accepted_off(self) -> None:
        """--enable-v2=false and --proxy off parse, with etcd's defaults."""
        c = parse(["--enable-v2=false", "--proxy", "off"], {})
        self.assertFalse(c.enable_v2)
        self.assertEqual((c.proxy, c.proxy_failure_wait, c.proxy_dial_timeout), ("off", 5000, 1000))

    def test_v2_refused(self) -> None:
        """Turning on the v2 API or the v2 proxy is refused in one line naming the flag."""
        for argv, start in (
            (["--enable-v2"], "--enable-v2: the v2 API is not provided"),
            (["--proxy", "readonly"], "--proxy=readonly: the v2 proxy is not provided"),
            (["--proxy=on"], "--proxy=on: the v2 proxy is not provided"),
        ):
            with self.assertRaises(ConfigError) as e:
                parse(argv, {})
            self.assertTrue(str(e.exception).startswith(start), str(e.exception))

    def test_proxy_timeouts_warned(self) -> None:
        """A --proxy-* timeout is accepted with a warning that it has no effect."""
        c = parse(["--proxy-dial-timeout", "200"], {})
        self.assertEqual(c.proxy_dial_timeout, 200)
        self.assertIn("--proxy-dial-timeout has no effect", " ".join(c.warnings))


class DiscoveryFlagTests(SynchronousTestCase):
    def test_one_bootstrap_flag(self) -> None:
        """--initial-cluster, --discovery and --discovery-srv exclude each other."""
        with self.assertRaises(ConfigError) as e:
            parse(["--discovery-srv", "x.test", "--initial-cluster", "a=http://h:1"], {})
        self.assertIn("multiple discovery or bootstrap flags are set", str(e.exception))
        c = parse(["--discovery", "http://d/v2/keys/t"], {})
        self.assertEqual(c.discovery, "http://d/v2/keys/t")

    def test_fallback_without_discovery_warned(self) -> None:
        """--discovery-fallback alone is accepted with a warning that it does nothing."""
        c = parse(["--discovery-fallback", "exit"], {})
        self.assertIn("--discovery-fallback has no effect without --discovery", c.warnings)


class TransportSecurityFlagTests(SynchronousTestCase):
    """The TLS, CORS and host-whitelist flags of issue 15, with etcd 3.5.1's defaults."""

    def test_defaults(self) -> None:
        """Defaults as etcd prints them: --cors and --host-whitelist *, TLS 1.2 minimum."""
        c = parse([], {})
        self.assertEqual((c.cors, c.host_whitelist), (frozenset({"*"}), frozenset({"*"})))
        self.assertEqual((c.tls_min_version, c.tls_max_version), ("TLS1.2", ""))
        self.assertEqual((c.cipher_suites, c.self_signed_cert_validity), ((), 1))
        self.assertFalse(c.experimental_peer_skip_client_san_verification)
        self.assertIn("  --cors '*'\n", config.help_text())
        self.assertIn("  --host-whitelist '*'\n", config.help_text())

    def test_values(self) -> None:
        """Each flag parses into its field."""
        c = parse(
            [
                "--cors", "http://a.example:80,https://b.example:443",
                "--host-whitelist", "a.example,127.0.0.1",
                "--cipher-suites", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "--peer-cert-allowed-cn", "etcd-peer",
                "--client-crl-file", "/c.crl",
                "--peer-crl-file", "/p.crl",
                "--client-cert-allowed-hostname", "client.example",
                "--self-signed-cert-validity", "3",
                "--tls-max-version", "TLS1.3",
                "--experimental-peer-skip-client-san-verification",
            ],
            {},
        )  # fmt: skip
        self.assertEqual(c.cors, frozenset({"http://a.example:80", "https://b.example:443"}))
        self.assertEqual(c.host_whitelist, frozenset({"a.example", "127.0.0.1"}))
        self.assertEqual(c.cipher_suites, ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",))
        self.assertEqual((c.peer_cert_allowed_cn, c.client_crl_file), ("etcd-peer", "/c.crl"))
        self.assertEqual((c.self_signed_cert_validity, c.tls_max_version), (3, "TLS1.3"))
        self.assertTrue(c.experimental_peer_skip_client_san_verification)

    def test_errors(self) -> None:
        """Bad values fail with etcd's messages."""
        cases = {
            ("--cipher-suites", "FOO"): 'unexpected TLS cipher suite "FOO"',
            ("--tls-min-version", "TLS1.1"): 'unexpected TLS version "TLS1.1"',
            ("--cors", "a.example"): "URL scheme must be http, https, unix, or unixs",
        }
        for argv, message in cases.items():
            with self.assertRaises(ConfigError) as caught:
                parse(list(argv), {})
            self.assertIn(message, str(caught.exception), argv)

    def test_combinations(self) -> None:
        """Contradictory settings are refused as etcd refuses them."""
        cases = {
            ("--tls-min-version", "TLS1.3", "--tls-max-version", "TLS1.2"): (
                "min version (TLS1.3) is greater than max version (TLS1.2)"
            ),
            (
                "--tls-min-version", "TLS1.3",
                "--cipher-suites", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            ): "cipher suites cannot be configured when only TLS1.3 is enabled",
            ("--peer-cert-allowed-cn", "a", "--peer-cert-allowed-hostname", "b"): (
                'AllowedCN and AllowedHostname are mutually exclusive (cn="a", hostname="b")'
            ),
        }  # fmt: skip
        for argv, message in cases.items():
            with self.assertRaises(ConfigError) as caught:
                parse(list(argv), {})
            self.assertEqual(str(caught.exception), message)

    def test_yaml_transport_security(self) -> None:
        """The YAML config's transport-security sections and top-level TLS keys, as etcd's."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(
                "peer-transport-security:\n"
                "  cert-file: p.pem\n  key-file: pk.pem\n"
                "  client-cert-file: pc.pem\n  client-key-file: pck.pem\n"
                "  client-cert-auth: true\n"
                "cipher-suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n"
                "host-whitelist: a.example\n"
            )
        c = parse(["--config-file", path], {})
        self.assertEqual((c.peer_client_cert_file, c.peer_client_key_file), ("pc.pem", "pck.pem"))
        self.assertTrue(c.peer_client_cert_auth)
        self.assertEqual(c.cipher_suites, ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",))
        self.assertEqual(c.host_whitelist, frozenset({"a.example"}))
