"""``AttributePublisher``: a member makes its name and client URLs known through raft.

On start the member proposes ``ClusterMemberAttrSetRequest`` and retries every half
second until it is applied (etcd's ``publishV3``). :meth:`AttributePublisher.wait`
fires once it is: from then on the member serves (systemd then hears ``READY=1``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from etcd_twisted._pb.raft_internal_pb2 import (
    ClusterMemberAttrSetRequest,
    InternalRaftRequest,
    MemberAttributes,
)

RETRY_INTERVAL = 0.5


class AttributePublisher:
    """Proposes this member's attributes until applied; ``wait()`` fires then."""

    def __init__(
        self,
        member_id: int,
        name: str,
        client_urls: list[str],
        propose: Callable[[InternalRaftRequest], Deferred[Any]],
        clock: IReactorTime,
        stopping: Callable[[], bool],
    ) -> None:
        self._request = InternalRaftRequest(
            cluster_member_attr_set=ClusterMemberAttrSetRequest(
                member_ID=member_id,
                member_attributes=MemberAttributes(name=name, client_urls=client_urls),
            )
        )
        self._propose = propose
        self._clock = clock
        self._stopping = stopping
        self.published = False
        self._waiters: list[Deferred[None]] = []

    def wait(self) -> Deferred[None]:
        """Fires once the attributes are applied (at once if they already are)."""
        d: Deferred[None] = Deferred()
        if self.published:
            d.callback(None)
        else:
            self._waiters.append(d)
        return d

    def publish(self) -> None:
        """Propose the attributes (again after a failure, unless the member stops)."""

        def retry(failure: Failure) -> None:
            if not self._stopping():
                self._clock.callLater(RETRY_INTERVAL, self.publish)

        def done(_: object) -> None:
            self.published = True
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                d.callback(None)

        self._propose(self._request).addCallbacks(done, retry)
