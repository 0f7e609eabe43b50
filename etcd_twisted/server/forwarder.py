"""``LeaderForwarder``: calls only the leader can answer, posted to its peer URL.

A follower forwards lease renewals, lease time-to-live and learner promotion to the
leader's peer API (etcd's ``/leases``, ``/leases/internal``, ``/members/promote``).
The HTTP client is injected (``treq.client.HTTPClient`` over an agent), so tests
hand in a stub.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from etcd_twisted.lease import LeaseNotFoundError
from etcd_twisted.server import reconfig
from etcd_twisted.server.errors import NoLeaderError, NotLeaderError

#: Errors the leader may answer a forwarded call with, by class name (its
#: ``X-Etcd-Twisted-Error`` header).
FORWARDED_ERRORS: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (
        NotLeaderError,
        NoLeaderError,
        LeaseNotFoundError,
        reconfig.MemberNotFoundError,
        reconfig.NotLearnerError,
        reconfig.LearnerNotReadyError,
        reconfig.MemberRemovedError,
    )
}


class HTTPPoster(Protocol):
    """The calls of treq's ``HTTPClient`` the server uses (the forwarder's ``post``; the
    corruption checker's ``GET`` with a body)."""

    def post(self, url: str, data: bytes, timeout: float) -> Deferred[Any]: ...
    def request(self, method: str, url: str, data: bytes, timeout: float) -> Deferred[Any]: ...


class LeaderForwarder:
    """Posts a request body to a path on the leader's peer URL; fires with the answer body."""

    def __init__(
        self, http: HTTPPoster, leader_url: Callable[[], str | None], timeout: float
    ) -> None:
        self._http = http
        self._leader_url = leader_url
        self._timeout = timeout

    def post(self, path: str, body: bytes) -> Deferred[bytes]:
        """Forward ``body`` to ``path``; ``NoLeaderError`` when no leader is known."""
        base = self._leader_url()
        if not base:
            raise NoLeaderError()
        d = self._http.post(base.rstrip("/") + path, data=body, timeout=self._timeout)

        def check(response: Any) -> Deferred[bytes]:
            if response.code != 200:
                name = (response.headers.getRawHeaders(b"x-etcd-twisted-error") or [b""])[0]
                raise FORWARDED_ERRORS.get(name.decode(), NoLeaderError)()
            return response.content()

        return d.addCallback(check)
