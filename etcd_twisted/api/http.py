"""The HTTP/1 side of the client port: ``/version``, ``/health``, ``/livez``, ``/readyz``,
``/metrics``, and the JSON gateway routes that later modules add under ``/v3``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from klein import Klein
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from twisted.web.server import Request, Site
from werkzeug.exceptions import MethodNotAllowed, NotFound

from etcd_twisted import CLUSTER_VERSION, ETCD_VERSION
from etcd_twisted.api.access import ALLOW_ALL, AccessController, AccessPolicy
from etcd_twisted.api.gateway import Gateway
from etcd_twisted.api.http1 import channel_factory
from etcd_twisted.grpc import Registry
from etcd_twisted.metrics import Metrics
from etcd_twisted.ui.dashboard import Dashboard

#: ``health(serializable) -> (healthy, reason)``, possibly as a Deferred.
HealthCheck = Callable[[bool], "tuple[bool, str] | Deferred[tuple[bool, str]]"]


def always_healthy(serializable: bool) -> tuple[bool, str]:
    """The health check of a member with nothing that can be unhealthy yet."""
    return True, ""


#: Go's net/http buffers this much of a handler's output before it falls back to chunks.
GO_RESPONSE_BUFFER = 2048


class GoFramedRequest(Request):
    """A request whose response is framed as Go's net/http frames etcd's.

    A body of at most 2048 bytes written before the handler finishes goes out with a
    Content-Length; a longer one, or anything written after ``flush()`` (which streams
    call after each message, as grpc-gateway flushes), goes out in chunks. There is no
    ``Server`` header.
    """

    _pending: list[bytes] | None = None
    _pending_size = 0

    def write(self, data: bytes) -> None:
        if self.startedWriting:
            super().write(data)
            return
        if self._pending is None:
            self._pending = []
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size > GO_RESPONSE_BUFFER:
            self.flush()

    def flush(self) -> None:
        """Send the headers and whatever is buffered now; later writes go out as chunks."""
        if self.startedWriting:
            return
        body = b"".join(self._pending or ())
        self._pending = None
        self.responseHeaders.removeHeader(b"server")
        super().write(body)

    def finish(self) -> None:
        if not self.startedWriting and not self.finished and not self._disconnected:
            body = b"".join(self._pending or ())
            self._pending = None
            self.responseHeaders.removeHeader(b"server")
            if not self.responseHeaders.hasHeader(b"content-length") and self.code not in (
                204,
                304,
            ):
                self.setHeader(b"content-length", str(len(body)).encode())
            super().write(body)
        super().finish()


def go_http_error(request: IRequest, code: int, text: str) -> bytes:
    """A plain-text error as Go's ``http.Error`` writes it."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"x-content-type-options", b"nosniff")
    return text.encode() + b"\n"


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
        dashboard: Dashboard | None = None,
        access: AccessPolicy = ALLOW_ALL,
    ) -> None:
        self.metrics = metrics
        self.access = access
        self.health_check = health
        self.gateway = gateway
        self.cluster_version = cluster_version
        self.dashboard = dashboard

    @app.route("/v3/<path:rest>", methods=["POST"])
    def v3(self, request: IRequest, rest: str) -> Deferred[bytes] | bytes:
        """The JSON gateway (see :mod:`etcd_twisted.api.gateway`)."""
        if request.method != b"POST":  # werkzeug matched "post" too; Go's methods are exact
            return self.v3_wrong_method(request, rest)
        if self.gateway is None:
            request.setResponseCode(404)
            return b"Not Found\n"
        return self.gateway.handle(request, "/v3/" + rest)

    @app.route("/v3/<path:rest>", methods=["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
    def v3_wrong_method(self, request: IRequest, rest: str) -> bytes:
        """Gateway routes take POST only, as grpc-gateway answers."""
        return go_http_error(request, 405, "Method Not Allowed")

    @app.handle_errors(NotFound)
    def not_found(self, request: IRequest, failure: Failure) -> bytes:
        """Go's ``http.NotFound``."""
        return go_http_error(request, 404, "404 page not found")

    @app.handle_errors(MethodNotAllowed)
    def method_not_allowed(self, request: IRequest, failure: Failure | None) -> bytes:
        """etcd's handlers answer a method they do not take with 405 and ``Allow: GET``."""
        request.setHeader(b"allow", b"GET")
        return go_http_error(request, 405, "Method Not Allowed")

    @app.route("/version", methods=["GET"])
    def version(self, request: IRequest) -> bytes:
        """The server and cluster versions, as etcd reports them."""
        if request.method != b"GET":  # werkzeug lets HEAD through to a GET route
            return self.method_not_allowed(request, None)
        cluster = self.cluster_version() or "not_decided"
        return write_json(request, {"etcdserver": ETCD_VERSION, "etcdcluster": cluster})

    @app.route("/health", methods=["GET"])
    def health(self, request: IRequest) -> Deferred[bytes] | bytes:
        """``{"health": "true", "reason": ""}``, or 503 with ``"false"`` and a reason."""
        if request.method != b"GET":
            return self.method_not_allowed(request, None)
        serializable = request.args.get(b"serializable", [b"false"])[0] == b"true"

        def render(result: tuple[bool, str]) -> bytes:
            healthy, reason = result
            body = {"health": "true" if healthy else "false", "reason": reason}
            written = write_json(request, body, 200 if healthy else 503)
            # etcd sets no content type here; Go sniffs the JSON as plain text.
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return written

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

    @app.route("/metrics", methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"])
    def render_metrics(self, request: IRequest) -> bytes:
        """Prometheus text exposition of the member's metrics."""
        body, content_type = self.metrics.render()
        request.setHeader(b"content-type", content_type.encode())
        return body

    def resource(self) -> IResource:
        """The app behind etcd's access controller (host whitelist, CORS); ``/ui/`` is the
        dashboard's only if there is one."""
        app = self.app.resource()
        if self.dashboard is not None:
            app = self.dashboard.mounted_over(app)
        return AccessController(app, self.access)

    def site(self, reactor: IReactorTime | None = None) -> Site:
        """A ``twisted.web`` site serving this app (no request log: it is the hot path),
        requests read and responses framed as Go's server does it."""
        site = Site(self.resource(), requestFactory=GoFramedRequest, reactor=reactor)
        gateway = self.gateway or Gateway(Registry())
        site.protocol = channel_factory(gateway.max_body_bytes, gateway.max_receive_bytes)
        site.log = lambda request: None
        site.displayTracebacks = False
        return site
