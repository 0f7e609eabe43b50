"""The HTTP app on the peer port: what joining members and operators ask a peer."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from klein import Klein
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.server import Site

from etcd_twisted import CLUSTER_VERSION, ETCD_VERSION
from etcd_twisted.api.http import write_json
from etcd_twisted.membership.cluster import Member
from etcd_twisted.membership.ids import format_id
from etcd_twisted.mvcc.errors import MvccError
from etcd_twisted.server.corruption import HASHKV_PATH, request_revision, response_body


def _http_error(request: IRequest, code: int, message: str) -> bytes:
    """An error as Go's ``http.Error`` writes it: plain text and a newline."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"x-content-type-options", b"nosniff")
    return message.encode() + b"\n"


def member_json(member: Member) -> dict[str, Any]:
    """A member as etcd 3.5's ``/members`` shows it (Go's ``omitempty`` fields left out)."""
    body: dict[str, Any] = {"id": member.id, "peerURLs": list(member.peer_urls)}
    if member.is_learner:
        body["isLearner"] = True
    if member.name:
        body["name"] = member.name
    if member.client_urls:
        body["clientURLs"] = list(member.client_urls)
    return body


#: ``handler(kind, body) -> response body`` for calls a follower forwards to the leader
#: ("renew", "time_to_live", "promote"; protobuf in and out); a ``LookupError`` means
#: the lease is unknown.
ForwardedHandler = Callable[[str, bytes], "Deferred[bytes] | bytes"]


class PeerApi:
    """Routes served on ``--listen-peer-urls`` (raft links share the port, see ``port``)."""

    app = Klein()

    def __init__(
        self,
        members: Callable[[], Iterable[Member]] = tuple,
        cluster_id: Callable[[], int] | None = None,
        forwarded: ForwardedHandler | None = None,
        hash_kv: Callable[[int], Deferred[tuple[int, int, int]] | tuple[int, int, int]]
        | None = None,
    ) -> None:
        self._members = members
        self._cluster_id = cluster_id
        self._handle_forwarded = forwarded
        self._hash_kv = hash_kv

    @app.route("/leases", methods=["POST"])
    def lease_renew(self, request: IRequest) -> Deferred[bytes] | bytes:
        """A follower forwards a lease keep-alive to the leader (etcd's ``leasehttp``)."""
        return self._forwarded(request, "renew")

    @app.route("/leases/internal", methods=["POST"])
    def lease_time_to_live(self, request: IRequest) -> Deferred[bytes] | bytes:
        """A follower forwards a lease time-to-live request to the leader."""
        return self._forwarded(request, "time_to_live")

    @app.route("/members/promote", methods=["POST"])
    def member_promote(self, request: IRequest) -> Deferred[bytes] | bytes:
        """A follower forwards a learner promotion to the leader (only it can check it)."""
        return self._forwarded(request, "promote")

    def _forwarded(self, request: IRequest, kind: str) -> Deferred[bytes] | bytes:
        request.setHeader(b"content-type", b"application/protobuf")
        if self._handle_forwarded is None:
            request.setResponseCode(404)
            return b""
        body = request.content.read()

        def failed(failure: Failure) -> bytes:
            request.setResponseCode(404 if failure.check(LookupError) else 503)
            request.setHeader(b"x-etcd-twisted-error", failure.type.__name__.encode())
            return failure.getErrorMessage().encode()

        return maybeDeferred(self._handle_forwarded, kind, body).addErrback(failed)

    @app.route(HASHKV_PATH, methods=["GET"])
    def hash_kv(self, request: IRequest) -> Deferred[bytes] | bytes:
        """This member's key hash at a revision, for the peers' corruption checks."""
        if self._hash_kv is None:
            request.setResponseCode(404)
            return b""
        try:
            revision = request_revision(request.content.read())
        except ValueError:
            return _http_error(request, 400, "error unmarshalling request")

        def answer(result: tuple[int, int, int]) -> bytes:
            if self._cluster_id is not None:
                request.setHeader(b"x-etcd-cluster-id", format_id(self._cluster_id()).encode())
            request.setHeader(b"content-type", b"application/json")
            return response_body(*result)

        def failed(failure: Failure) -> bytes:
            failure.trap(MvccError)
            return _http_error(request, 400, failure.getErrorMessage())

        return maybeDeferred(self._hash_kv, revision).addCallbacks(answer, failed)

    @app.route("/version", methods=["GET"])
    def version(self, request: IRequest) -> bytes:
        """The server and cluster versions (joining members compare them)."""
        return write_json(request, {"etcdserver": ETCD_VERSION, "etcdcluster": CLUSTER_VERSION})

    @app.route("/members", methods=["GET"])
    def members(self, request: IRequest) -> bytes:
        """The cluster's members, ordered by id (a joining member learns the cluster here)."""
        if self._cluster_id is not None:
            request.setHeader(b"x-etcd-cluster-id", format_id(self._cluster_id()).encode())
        members = sorted(self._members(), key=lambda m: m.id)
        return write_json(request, [member_json(m) for m in members])

    def site(self) -> Site:
        """A ``twisted.web`` site serving this app."""
        site = Site(self.app.resource())
        site.log = lambda request: None
        return site
