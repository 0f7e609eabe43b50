"""Tests for etcd_twisted.discovery.v2 against a fake v2 keys API (no network)."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.discovery.v2 import ClusterFullError, DiscoveryError, join_cluster
from etcd_twisted.membership.ids import member_id

URL = "http://d/v2/keys/_etcd/registry/t"


class FakeRegistry:
    """A v2 keys directory: ``_config/size`` and the registered members."""

    def __init__(self, size: int | None, others: list[tuple[str, str]] = ()) -> None:
        self.size = size
        self.nodes: list[dict[str, Any]] = []
        self.index = 10
        for key, value in others:
            self.add(key, value)
        self.waits = 0
        #: Members that register while this member waits.
        self.late: list[tuple[str, str]] = []

    def add(self, key: str, value: str) -> None:
        self.index += 1
        self.nodes.append({"key": f"/_etcd/registry/t/{key}", "value": value,
                           "createdIndex": self.index, "modifiedIndex": self.index})  # fmt: skip

    def fetch(self, method: str, url: str, form: dict[str, str] | None) -> tuple[int, Any]:
        path, _, query = url.partition("?")
        if path.endswith("/_config/size"):
            if self.size is None:
                return 404, {"errorCode": 100, "message": "Key not found"}
            return 200, {"node": {"value": str(self.size)}}
        if method == "PUT":
            key = path.rsplit("/", 1)[-1]
            if any(n["key"].endswith("/" + key) for n in self.nodes):
                return 412, {"errorCode": 105, "message": "Key already exists"}
            self.add(key, form["value"])  # type: ignore[index]
            return 201, {"node": self.nodes[-1]}
        if "wait=true" in query:
            self.waits += 1
            if self.late:
                self.add(*self.late.pop(0))
            return 200, {}
        config = {"key": "/_etcd/registry/t/_config", "dir": True}
        return 200, {"node": {"dir": True, "nodes": [config, *self.nodes]}}


PEERS = ["http://127.0.0.1:2380"]


class JoinTests(SynchronousTestCase):
    def test_waits_for_the_others(self) -> None:
        """A member registers, waits until size members are there, and gets them all."""
        registry = FakeRegistry(3, [("aa", "m1=http://h1:2380")])
        registry.late = [("bb", "m3=http://h3:2380")]
        cluster = join_cluster(URL, "m2", PEERS, registry.fetch)
        self.assertEqual(cluster, {"m1": ["http://h1:2380"], "m2": PEERS, "m3": ["http://h3:2380"]})
        self.assertEqual(registry.waits, 1)
        own = f"{member_id(PEERS, URL):x}"
        self.assertTrue(any(n["key"].endswith(own) for n in registry.nodes))

    def test_full(self) -> None:
        """A member registered after the first size ones finds the cluster full."""
        registry = FakeRegistry(1, [("aa", "m1=http://h1:2380")])
        with self.assertRaises(ClusterFullError) as e:
            join_cluster(URL, "m2", PEERS, registry.fetch)
        self.assertEqual(str(e.exception), "discovery: cluster is full")

    def test_errors(self) -> None:
        """No size key, or our id registered already, are etcd's errors."""
        with self.assertRaises(DiscoveryError) as e:
            join_cluster(URL, "m1", PEERS, FakeRegistry(None).fetch)
        self.assertEqual(str(e.exception), "discovery: size key not found")
        taken = FakeRegistry(3, [(f"{member_id(PEERS, URL):x}", "m1=x")])
        with self.assertRaises(DiscoveryError) as e:
            join_cluster(URL, "m1", PEERS, taken.fetch)
        self.assertEqual(str(e.exception), "discovery: found duplicate id")

    def test_gives_up_at_deadline(self) -> None:
        """Without enough members before the deadline, discovery fails."""
        times = iter(range(0, 10000, 100))
        registry = FakeRegistry(3)
        with self.assertRaises(DiscoveryError) as e:
            join_cluster(URL, "m1", PEERS, registry.fetch, deadline_seconds=250,
                         clock=lambda: next(times))  # fmt: skip
        self.assertIn("only 1 of 3 members registered", str(e.exception))
