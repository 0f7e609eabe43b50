"""``etcd_twisted.testing``: a real etcd inside a Python test suite, with faults on demand.

Three ways to get a member, all real (gRPC and the JSON gateway on one loopback port,
raft, WAL, watch):

* :func:`start_member` — in the test's process, on its Twisted reactor (``build_service``
  underneath): a temporary data dir, ``--unsafe-no-fsync`` and short election timers;
  the first put is acknowledged ~10 ms after the call.
* :class:`Cluster` — 1, 3 or 5 members as child processes (``twistd etcd``, or real etcd
  with ``kind="etcd"``), with handles: ``endpoints``, ``leader()``, ``kill``, ``restart``,
  ``pause``/``resume``, ``partition``/``isolate``/``heal`` (through a TCP proxy in front of
  each peer port), ``expire_leases_now``, ``compact``, ``fill_quota``, ``reset``.
* :class:`BlockingCluster` — the same cluster for code not on Twisted (pytest, asyncio,
  threads): Twisted runs in a daemon thread and every handle blocks.

The pytest plugin (:mod:`etcd_twisted.testing.pytest_plugin`, registered through the
``pytest11`` entry point) provides the ``etcd`` and ``etcd_cluster`` fixtures;
:class:`EtcdTestMixin` (:mod:`etcd_twisted.testing.trial`) does the same for trial.
pytest is needed only by the plugin module.
"""

from etcd_twisted.testing.blocking import BlockingCluster
from etcd_twisted.testing.children import Child, kill_all
from etcd_twisted.testing.cluster import ChildMember, Cluster, ClusterError, wait_healthy
from etcd_twisted.testing.commands import (
    FAST_FLAGS,
    Address,
    binary,
    have,
    initial_cluster,
    server_argv,
)
from etcd_twisted.testing.gateway import NOSPACE, Gateway, GatewayError
from etcd_twisted.testing.inprocess import InProcessMember, start_member
from etcd_twisted.testing.ports import free_ports
from etcd_twisted.testing.proxy import PeerProxy, Rule
from etcd_twisted.testing.trial import EtcdTestMixin

__all__ = [
    "FAST_FLAGS",
    "NOSPACE",
    "Address",
    "BlockingCluster",
    "Child",
    "ChildMember",
    "EtcdTestMixin",
    "Cluster",
    "ClusterError",
    "Gateway",
    "GatewayError",
    "InProcessMember",
    "PeerProxy",
    "Rule",
    "binary",
    "free_ports",
    "have",
    "initial_cluster",
    "kill_all",
    "server_argv",
    "start_member",
    "wait_healthy",
]
