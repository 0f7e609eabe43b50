"""The HTTP app on the peer port: what joining members and operators ask a peer."""

from __future__ import annotations

from klein import Klein
from twisted.web.iweb import IRequest
from twisted.web.server import Site

from etcd_twisted import CLUSTER_VERSION, ETCD_VERSION
from etcd_twisted.api.http import write_json


class PeerApi:
    """Routes served on ``--listen-peer-urls``."""

    app = Klein()

    @app.route("/version", methods=["GET"])
    def version(self, request: IRequest) -> bytes:
        """The server and cluster versions (joining members compare them)."""
        return write_json(request, {"etcdserver": ETCD_VERSION, "etcdcluster": CLUSTER_VERSION})

    def site(self) -> Site:
        """A ``twisted.web`` site serving this app."""
        site = Site(self.app.resource())
        site.log = lambda request: None
        return site
