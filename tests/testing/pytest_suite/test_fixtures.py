"""The pytest plugin's fixtures, run by ``tests/testing/test_pytest_plugin.py`` in a pytest
subprocess (trial does not collect this directory: it is not a package)."""

from __future__ import annotations

import os
import subprocess
import time

import grpc
import pytest

from etcd_twisted._pb import rpc_pb2, rpc_pb2_grpc
from etcd_twisted.testing import binary


def etcdctl(endpoints: list[str], *args: str) -> str:
    argv = [binary("etcdctl"), "--endpoints", ",".join(endpoints), *args]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=30, env={"ETCDCTL_API": "3"}
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_etcd_takes_grpcio(etcd):
    """The shared member answers grpcio on its endpoint."""
    with grpc.insecure_channel(etcd.members[0].endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        kv.Put(rpc_pb2.PutRequest(key=b"left-over", value=b"1"), timeout=5)
        assert kv.Range(rpc_pb2.RangeRequest(key=b"left-over"), timeout=5).count == 1


def test_etcd_is_reset_between_tests(etcd):
    """The previous test's key is gone; the reset of the shared member is quick."""
    assert etcdctl(etcd.endpoints, "get", "left-over") == ""
    timings = []
    for _ in range(5):
        t0 = time.perf_counter()
        etcd.reset()
        timings.append(time.perf_counter() - t0)
    print(f"RESET_MS {1000 * min(timings):.1f} {1000 * sorted(timings)[2]:.1f}")
    assert min(timings) < 0.5


def test_etcd_session_is_shared(etcd, etcd_session):
    """``etcd`` is the session member, emptied."""
    assert etcd is etcd_session


@pytest.mark.etcd(extra=["--max-txn-ops", "3"])
def test_marker_gives_own_member(etcd, etcd_session):
    """A marked test gets its own member started with the marker's flags."""
    assert etcd is not etcd_session
    ops = [f"put k{i} v" for i in range(4)]
    argv = [binary("etcdctl"), "--endpoints", etcd.endpoints[0], "txn"]
    done = subprocess.run(argv, input="\n\n" + "\n".join(ops) + "\n\n", capture_output=True,
                          text=True, timeout=30, env={"ETCDCTL_API": "3"})  # fmt: skip
    assert "too many operations in txn request" in done.stderr


def test_etcd_module_is_one_member(etcd_module):
    """``etcd_module`` is one member, kept for the module."""
    assert len(etcd_module.endpoints) == 1
    etcdctl(etcd_module.endpoints, "put", "module-key", "1")


def test_etcd_module_keeps_state(etcd_module):
    """It is not reset between the module's tests."""
    assert etcdctl(etcd_module.endpoints, "get", "module-key", "--print-value-only") == "1\n"


def test_factory_starts_more(etcd_factory):
    """``etcd_factory`` starts independent members, each with its own data."""
    a, b = etcd_factory(), etcd_factory()
    etcdctl(a.endpoints, "put", "k", "a")
    assert etcdctl(b.endpoints, "get", "k") == ""


def test_cluster_of_three(etcd_cluster):
    """``etcd_cluster`` has three members that agree on a leader and survive losing it."""
    assert len(etcd_cluster.endpoints) == 3
    leader = etcd_cluster.leader()
    etcd_cluster.kill(leader)
    assert etcd_cluster.leader() is not leader
    etcdctl(etcd_cluster.endpoints, "put", "k", "v")


@pytest.mark.etcd(size=5)
def test_cluster_of_five(etcd_cluster):
    """The marker's size makes a five-member cluster; two may go."""
    assert len(etcd_cluster.endpoints) == 5
    etcd_cluster.kill(0)
    etcd_cluster.kill(1)
    assert etcd_cluster.leader() in etcd_cluster.members[2:]  # the three elect one
    etcdctl(etcd_cluster.endpoints[2:], "put", "k", "v")
    etcd_cluster.restart(0)


def test_expire_leases_now(etcd):
    """``expire_leases_now`` ends a lease its holder keeps alive; its key goes."""
    with grpc.insecure_channel(etcd.members[0].endpoint) as channel:
        lease = rpc_pb2_grpc.LeaseStub(channel).LeaseGrant(
            rpc_pb2.LeaseGrantRequest(TTL=600), timeout=5
        )
        rpc_pb2_grpc.KVStub(channel).Put(
            rpc_pb2.PutRequest(key=b"s", value=b"1", lease=lease.ID), timeout=5
        )
    assert etcd.expire_leases_now() == 1
    assert etcdctl(etcd.endpoints, "get", "s") == ""


def test_kind_option(etcd, pytestconfig):
    """``--etcd-kind`` picks the server: ours answers with our version string."""
    status = etcd.gateway.status()
    kind = pytestconfig.getoption("--etcd-kind")
    assert status["version"].startswith("3.5"), status
    assert kind in ("ours", "etcd")
    print(f"KIND {kind} {os.path.basename(etcd.members[0].child.argv[0])}")


@pytest.mark.parametrize("client", ["etcd3", "etcd3gw", "aetcd"])
def test_clients(etcd, client):
    """python-etcd3, etcd3gw and aetcd (each from its own venv) pass their checks."""
    from tests.support.client_venvs import check_argv

    done = subprocess.run(check_argv(client, etcd.members[0].endpoint), capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "ok put-get" in done.stdout and "ok watch" in done.stdout
