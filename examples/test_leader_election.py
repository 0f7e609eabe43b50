"""Tests of ``leader_election`` against a real etcd, with the etcd-twisted pytest plugin.

Run: ``pytest examples/`` (the plugin comes with ``pip install etcd-twisted``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from leader_election import Client, Elector, Refused, current_leader


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def electors() -> list[Elector]:
    started: list[Elector] = []
    yield started
    for elector in started:
        elector.stop()


def test_one_leader(etcd, electors):
    """Of two electors exactly one leads, and the key names it."""
    electors += [Elector(etcd.endpoints, "a").start(), Elector(etcd.endpoints, "b").start()]
    wait_for(lambda: any(e.is_leader for e in electors))
    time.sleep(0.5)
    leaders = [e.name for e in electors if e.is_leader]
    assert len(leaders) == 1
    assert current_leader(Client(etcd.endpoints)) == leaders[0]


def test_resign_hands_over(etcd, electors):
    """When the leader resigns the other elector takes over."""
    electors += [Elector(etcd.endpoints, "a").start()]
    wait_for(lambda: electors[0].is_leader)
    electors.append(Elector(etcd.endpoints, "b").start())
    electors[0].stop()
    wait_for(lambda: electors[1].is_leader)


def test_expired_lease_is_noticed(etcd, electors):
    """When its lease expires the leader notices, and campaigns again with a new one."""
    elector = Elector(etcd.endpoints, "a").start()
    electors.append(elector)
    wait_for(lambda: elector.is_leader)
    first = elector.lease
    assert etcd.expire_leases_now() == 1
    wait_for(lambda: elector.is_leader and elector.lease != first)


def test_state_does_not_leak_between_tests(etcd):
    """The shared member starts every test empty."""
    assert current_leader(Client(etcd.endpoints)) is None


def test_survives_losing_the_etcd_leader(etcd_cluster, electors):
    """Kill the etcd leader mid-test: the app keeps exactly one leader and can still read it."""
    electors += [Elector(etcd_cluster.endpoints, n).start() for n in ("a", "b")]
    wait_for(lambda: any(e.is_leader for e in electors))
    etcd_cluster.kill(etcd_cluster.leader())
    new_leader = etcd_cluster.leader()  # the two survivors elect one
    assert new_leader.running
    client = Client(etcd_cluster.endpoints)
    wait_for(lambda: current_leader(client) in ("a", "b"))
    time.sleep(1.0)  # a few renewals through the new etcd leader
    leaders = [e.name for e in electors if e.is_leader]
    assert leaders == [current_leader(client)]


def test_partitioned_leader_loses_the_election_key(etcd_cluster, electors):
    """An elector whose only etcd member is cut off from the others loses its lease;
    an elector on the majority side takes over."""
    a, b, c = etcd_cluster.members
    lonely = Elector([a.client_url], "lonely").start()
    electors.append(lonely)
    wait_for(lambda: lonely.is_leader)
    etcd_cluster.partition([a])
    other = Elector([b.client_url, c.client_url], "other").start()
    electors.append(other)
    wait_for(lambda: other.is_leader, timeout=15)
    etcd_cluster.heal()
    wait_for(lambda: not lonely.is_leader, timeout=15)


@pytest.mark.etcd(extra=["--quota-backend-bytes", str(2 * 1024 * 1024)])
def test_full_disk_stops_new_leases(etcd):
    """With the NOSPACE alarm raised a new elector cannot get a lease (etcd refuses it)."""
    etcd.fill_quota()
    elector = Elector(etcd.endpoints, "late")
    with pytest.raises(Refused, match="database space exceeded"):
        elector._step()
