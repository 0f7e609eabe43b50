"""Non-gRPC requests on a gRPC connection, served by a twisted.web site (grpc/web.py)."""

from __future__ import annotations

from typing import Any

from h2.errors import ErrorCodes
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from etcd_twisted._pb.health_pb2 import HealthCheckRequest as Msg
from tests.grpc.h2client import Harness
from tests.grpc.test_protocol import ECHO, echo_registry, texts


class Web(Resource):
    """Answers every path: GET with the path, POST with the body upper-cased; ``/big`` with
    ``size`` bytes; ``/stream`` stays open and its requests are kept for the test to drive."""

    isLeaf = True

    def __init__(self, size: int = 0) -> None:
        super().__init__()
        self.size = size
        self.open: list[Request] = []
        self.lost: list[Any] = []
        self.secure: list[bool] = []
        self.hosts: list[bytes | None] = []

    def render(self, request: Request) -> Any:
        self.secure.append(request.isSecure())
        self.hosts.append(request.getHeader(b"host"))
        request.setHeader(b"content-type", b"text/plain")
        request.setHeader(b"connection", b"close")
        if request.path == b"/stream":
            request.write(b"first\n")
            request.notifyFinish().addErrback(self.lost.append)
            self.open.append(request)
            return NOT_DONE_YET
        if request.path == b"/big":
            return b"x" * self.size
        if request.method == b"POST":
            return request.content.read().upper()
        return b"path " + request.path


def harness(web: Web, **kw: Any) -> Harness:
    return Harness(echo_registry(), web=Site(web), **kw)


class WebStreamTests(SynchronousTestCase):
    def get(self, h: Harness, path: str, method: bytes = b"GET", body: bytes = b"") -> Any:
        sid = h.start(path, method=method, content_type=b"text/plain", end=not body, flush=False)
        if body:
            h.client.send_data(sid, body, end_stream=True)
        h.exchange()
        return h.responses[sid]

    def test_get_goes_to_the_site(self) -> None:
        """A GET without a gRPC content type is answered by the site, over HTTP/2."""
        web = Web()
        h = harness(web)
        resp = self.get(h, "/version")
        self.assertEqual(resp.headers[b":status"], b"200")
        self.assertEqual(resp.headers[b"content-type"], b"text/plain")
        self.assertEqual((resp.data, resp.ended), (b"path /version", True))
        self.assertEqual((web.hosts, web.secure), ([b"localhost"], [False]))

    def test_connection_headers_dropped(self) -> None:
        """HTTP/1-only response headers (Connection) are not sent on HTTP/2."""
        resp = self.get(harness(Web()), "/x")
        self.assertNotIn(b"connection", resp.headers)

    def test_post_body(self) -> None:
        """A POST body in several DATA frames reaches the site whole."""
        h = harness(Web())
        sid = h.start("/v3/kv/range", content_type=b"application/json", flush=False)
        h.client.send_data(sid, b'{"key":')
        h.client.send_data(sid, b'"a"}', end_stream=True)
        h.exchange()
        self.assertEqual(h.responses[sid].data, b'{"KEY":"A"}')

    def test_grpc_alongside(self) -> None:
        """gRPC calls and web requests share one connection."""
        h = harness(Web())
        self.assertEqual(self.get(h, "/health").data, b"path /health")
        self.assertEqual(texts(h.call(ECHO, Msg(service="hi")).messages), ["hi"])
        self.assertEqual(self.get(h, "/again").data, b"path /again")

    def test_without_site_still_refused(self) -> None:
        """Without a site, a non-gRPC request is refused as before (405)."""
        h = Harness(echo_registry())
        sid = h.start("/version", method=b"GET", content_type=b"text/plain", end=True)
        self.assertEqual(h.responses[sid].headers[b":status"], b"405")

    def test_streaming_response(self) -> None:
        """A response written over time reaches the client as written; finish ends it."""
        web = Web()
        h = harness(web)
        sid = h.start("/stream", method=b"GET", content_type=b"text/plain", end=True)
        self.assertEqual((h.responses[sid].data, h.responses[sid].ended), (b"first\n", False))
        web.open[0].write(b"second\n")
        h.exchange()
        self.assertEqual(h.responses[sid].data, b"first\nsecond\n")
        web.open[0].finish()
        h.exchange()
        self.assertTrue(h.responses[sid].ended)

    def test_client_reset_loses_request(self) -> None:
        """A stream the client resets ends the request (notifyFinish fails)."""
        web = Web()
        h = harness(web)
        sid = h.start("/stream", method=b"GET", content_type=b"text/plain", end=True)
        h.client.reset_stream(sid, ErrorCodes.CANCEL)
        h.exchange()
        self.assertEqual(len(web.lost), 1)
        web.open[0].write(b"ignored")  # writing to a lost request is harmless

    def test_flow_control(self) -> None:
        """A response larger than the client's window waits for WINDOW_UPDATE."""
        size = 200_000
        h = harness(Web(size), auto_ack=False)
        resp = self.get(h, "/big")
        self.assertEqual(len(resp.data), 65535)
        self.assertFalse(resp.ended)
        for _ in range(10):
            if resp.ended:
                break
            h.client.increment_flow_control_window(65535)
            h.client.increment_flow_control_window(65535, stream_id=1)
            h.exchange()
        self.assertEqual(resp.data, b"x" * size)
