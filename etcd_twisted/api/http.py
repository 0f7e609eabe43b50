"""The HTTP/1 side of the client port: ``/version``, ``/health``, ``/livez``, ``/readyz``,
``/metrics``, and the JSON gateway routes that later modules add under ``/v3``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from klein import Klein
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.web.iweb import IRequest
from twisted.web.server import Site

from etcd_twisted import CLUSTER_VERSION, ETCD_VERSION
from etcd_twisted.api.gateway import Gateway
from etcd_twisted.metrics import Metrics

#: ``health(serializable) -> (healthy, reason)``, possibly as a Deferred.
HealthCheck = Callable[[bool], "tuple[bool, str] | Deferred[tuple[bool, str]]"]


def always_healthy(serializable: bool) -> tuple[bool, str]:
    """The health check of a member with nothing that can be unhealthy yet."""
    return True, ""


def write_json(request: IRequest, body: Any, code: int = 200) -> bytes:
    """Set the status and JSON content type on ``request`` and return the encoded body."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(body, separators=(",", ":")).encode()


class HttpApi:
    """The Klein app served on HTTP/1 connections of the client and metrics ports."""

    app = Klein()

    def __init__(
        self,
        metrics: Metrics,
        health: HealthCheck = always_healthy,
        gateway: Gateway | None = None,
        cluster_version: Callable[[], str] = lambda: CLUSTER_VERSION,
    ) -> None:
        self.metrics = metrics
        self.health_check = health
        self.gateway = gateway
        self.cluster_version = cluster_version

    @app.route("/v3/<path:rest>", methods=["POST"])
    def v3(self, request: IRequest, rest: str) -> Deferred[bytes] | bytes:
        """The JSON gateway (see :mod:`etcd_twisted.api.gateway`)."""
        if self.gateway is None:
            request.setResponseCode(404)
            return b"Not Found\n"
        return self.gateway.handle(request, "/v3/" + rest)

    @app.route("/v3/<path:rest>", methods=["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
    def v3_wrong_method(self, request: IRequest, rest: str) -> bytes:
        """Gateway routes take POST only, as grpc-gateway answers."""
        request.setResponseCode(405)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"Method Not Allowed\n"

    @app.route("/version", methods=["GET"])
    def version(self, request: IRequest) -> bytes:
        """The server and cluster versions, as etcd reports them."""
        cluster = self.cluster_version() or "not_decided"
        return write_json(request, {"etcdserver": ETCD_VERSION, "etcdcluster": cluster})

    @app.route("/health", methods=["GET"])
    def health(self, request: IRequest) -> Deferred[bytes]:
        """``{"health": "true", "reason": ""}``, or 503 with ``"false"`` and a reason."""
        serializable = request.args.get(b"serializable", [b"false"])[0] == b"true"

        def render(result: tuple[bool, str]) -> bytes:
            healthy, reason = result
            body = {"health": "true" if healthy else "false", "reason": reason}
            return write_json(request, body, 200 if healthy else 503)

        return maybeDeferred(self.health_check, serializable).addCallback(render)

    @app.route("/livez", methods=["GET"])
    def livez(self, request: IRequest) -> bytes:
        """The process is alive."""
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"ok"

    @app.route("/readyz", methods=["GET"])
    def readyz(self, request: IRequest) -> Deferred[bytes]:
        """The member can serve: ``ok``, or 503 with the reason."""

        def render(result: tuple[bool, str]) -> bytes:
            healthy, reason = result
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            if healthy:
                return b"ok"
            request.setResponseCode(503)
            return f"not ready: {reason}".encode()

        return maybeDeferred(self.health_check, True).addCallback(render)

    @app.route("/metrics", methods=["GET"])
    def render_metrics(self, request: IRequest) -> bytes:
        """Prometheus text exposition of the member's metrics."""
        body, content_type = self.metrics.render()
        request.setHeader(b"content-type", content_type.encode())
        return body

    def site(self) -> Site:
        """A ``twisted.web`` site serving this app (no request log: it is the hot path)."""
        site = Site(self.app.resource())
        site.log = lambda request: None
        site.displayTracebacks = False
        return site
