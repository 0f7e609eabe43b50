"""HTTP/1 on the client port against hostile requests: oversize heads, LF-only lines,
bodies too large to read (etcd_twisted.api.http1), answered as etcd 3.5.1 answers."""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.api.http1 import GO_HEADER_SLOP, GO_MAX_HEADER_BYTES, REFUSED_LINGER

from .support import HttpConnection, status_and_body

HEAD_LIMIT = GO_MAX_HEADER_BYTES + GO_HEADER_SLOP
GO_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8"
    b"\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large"
)


def head_of_size(total: int) -> bytes:
    """A GET /version whose head (request line to blank line) is ``total`` bytes."""
    start = b"GET /version HTTP/1.1\r\nHost: x\r\nX-Pad: "
    return start + b"a" * (total - len(start) - 4) + b"\r\n\r\n"


class HeadTests(SynchronousTestCase):
    def test_head_at_go_limit_served(self) -> None:
        """A head of exactly MaxHeaderBytes + 4 KiB (1052672 bytes) is served, as by Go."""
        conn = HttpConnection()
        status, _ = status_and_body(conn.send(head_of_size(HEAD_LIMIT)))
        self.assertEqual(status, 200)

    def test_head_over_go_limit_431(self) -> None:
        """One byte more gets Go's 431 answer, word for word, and the connection ends."""
        conn = HttpConnection()
        self.assertEqual(conn.send(head_of_size(HEAD_LIMIT + 1)), GO_431)
        self.assertTrue(conn.closed)

    def test_unterminated_line_431(self) -> None:
        """A header line that never ends is refused once it passes the limit, not buffered."""
        conn = HttpConnection()
        conn.send(b"GET /version HTTP/1.1\r\nX-A: ")
        for _ in range(HEAD_LIMIT // 65536 + 1):
            out = conn.send(b"a" * 65536)
        self.assertEqual(out, GO_431)
        self.assertEqual(len(conn.protocol._buffer), 0)

    def test_many_headers_served(self) -> None:
        """2000 small headers are fine (Go bounds the size, not the count)."""
        conn = HttpConnection()
        headers = b"".join(b"X-%d: a\r\n" % i for i in range(2000))
        status, _ = status_and_body(conn.send(b"GET /version HTTP/1.1\r\n" + headers + b"\r\n"))
        self.assertEqual(status, 200)

    def test_lf_only_request_answered(self) -> None:
        """A request with bare LF line ends is answered, as Go's server answers it."""
        conn = HttpConnection()
        status, body = status_and_body(conn.send(b"GET /version HTTP/1.1\nHost: x\n\n"))
        self.assertEqual(status, 200)
        self.assertIn(b"etcdserver", body)

    def test_lf_only_post_with_body(self) -> None:
        """An LF-only POST reads its body by Content-Length and reaches the gateway."""
        conn = HttpConnection()
        body = b'{"key":"YQ=="}'
        request = b"POST /v3/kv/range HTTP/1.1\nContent-Length: %d\n\n" % len(body) + body
        status, out = status_and_body(conn.send(request))
        self.assertEqual((status, json.loads(out)["kvs"][0]["key"]), (200, "YQ=="))

    def test_malformed_request_line_go_400(self) -> None:
        """A request Go cannot parse gets Go's plain 400 and the connection ends."""
        conn = HttpConnection()
        out = conn.send(b"GET\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400 Bad Request\r\n"))
        self.assertTrue(out.endswith(b"\r\n\r\n400 Bad Request"))
        self.assertTrue(conn.closed)


class BodyTests(SynchronousTestCase):
    def test_huge_content_length_refused_before_reading(self) -> None:
        """A 100 MB POST is answered 429 with etcd's JSON as soon as its head arrives."""
        conn = HttpConnection()
        out = conn.send(b"POST /v3/kv/put HTTP/1.1\r\nContent-Length: 104857600\r\n\r\n")
        status, body = status_and_body(out)
        text = "grpc: received message larger than max (104857600 vs. 2097152)"
        self.assertEqual(status, 429)
        self.assertEqual(json.loads(body), {"error": text, "code": 8, "message": text})
        self.assertIn(b"\r\nContent-Type: application/json\r\n", out)
        self.assertTrue(conn.transport.write_closed)

    def test_refused_body_discarded_then_dropped(self) -> None:
        """What the client still sends is dropped unread; the connection ends after the linger."""
        conn = HttpConnection()
        conn.send(b"POST /v3/kv/put HTTP/1.1\r\nContent-Length: 104857600\r\n\r\n")
        answered = conn.transport.value()
        for _ in range(100):
            conn.send(b"x" * 65536)
        self.assertEqual(conn.transport.value(), answered)
        self.assertEqual(len(conn.protocol._buffer), 0)
        self.assertFalse(conn.transport.disconnecting)
        conn.clock.advance(REFUSED_LINGER)
        self.assertTrue(conn.transport.disconnecting)

    def test_no_100_continue_for_refused_body(self) -> None:
        """A client expecting 100-continue gets the refusal instead, and sends nothing."""
        conn = HttpConnection()
        out = conn.send(
            b"POST /v3/kv/put HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 9999999\r\n\r\n"
        )
        self.assertTrue(out.startswith(b"HTTP/1.1 429 "))

    def test_chunked_body_refused_when_it_passes_the_limit(self) -> None:
        """A chunked body is counted as it arrives and refused once over the limit."""
        conn = HttpConnection(max_receive_bytes=1000)
        conn.send(b"POST /v3/kv/put HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        out = conn.send(b"400\r\n" + b"a" * 0x400 + b"\r\n")
        self.assertEqual(out, b"")
        out = conn.send(b"400\r\n" + b"a" * 0x400 + b"\r\n")
        self.assertEqual(status_and_body(out)[0], 429)
        self.assertTrue(conn.closed)

    def test_body_under_limit_served(self) -> None:
        """A body within the limit is read and served as before."""
        conn = HttpConnection(max_receive_bytes=1000)
        body = b'{"key":"YQ==","limit":7}' + b" " * 1900
        out = conn.send(
            b"POST /v3/kv/range HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        status, answer = status_and_body(out)
        self.assertEqual((status, json.loads(answer)["kvs"][0]["mod_revision"]), (200, "7"))

    def test_message_over_limit_refused_as_etcd(self) -> None:
        """A body within the bound whose message is over the gRPC limit gets etcd's 429."""
        conn = HttpConnection(max_receive_bytes=1000)
        body = b'{"key":"YQ==","value":"' + b"QUFB" * 400 + b'"}'
        out = conn.send(
            b"POST /v3/kv/put HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        status, answer = status_and_body(out)
        text = "grpc: received message larger than max (1206 vs. 1000)"
        self.assertEqual(
            (status, json.loads(answer)), (429, {"error": text, "code": 8, "message": text})
        )


class NonGatewayBodyTests(SynchronousTestCase):
    def test_answered_without_waiting_for_the_body(self) -> None:
        """GET /version with a body still to come is answered at once, then closed."""
        conn = HttpConnection()
        out = conn.send(b"GET /version HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n")
        self.assertEqual(status_and_body(out)[0], 200)
        self.assertTrue(conn.transport.disconnecting)

    def test_chunked_body_not_awaited(self) -> None:
        """A chunked body on a handler that does not read it is not awaited either."""
        conn = HttpConnection()
        out = conn.send(
            b"GET /version HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
        )
        self.assertFalse(out.startswith(b"HTTP/1.1 100"))
        self.assertEqual(status_and_body(out)[0], 200)

    def test_wrong_method_on_gateway_path_answered(self) -> None:
        """A non-POST on a gateway path with a huge body gets 405, as from etcd."""
        conn = HttpConnection()
        out = conn.send(b"BREW /v3/kv/range HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n")
        self.assertEqual(status_and_body(out)[0], 405)


class RequestLineTests(SynchronousTestCase):
    def test_bad_escape_in_path_go_400(self) -> None:
        """A path Go cannot unescape gets Go's plain 400 and a close."""
        conn = HttpConnection()
        out = conn.send(b"GET /%zz HTTP/1.1\r\n\r\n")
        self.assertTrue(out.endswith(b"\r\n\r\n400 Bad Request"))
        self.assertTrue(conn.closed)

    def test_star_is_400_except_options(self) -> None:
        """``GET *`` is 400 and a close (Go's mux); ``OPTIONS *`` is 200."""
        conn = HttpConnection()
        out = conn.send(b"GET * HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(status_and_body(out), (400, b""))
        self.assertTrue(conn.closed)
        conn = HttpConnection()
        out = conn.send(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(status_and_body(out), (200, b""))

    def test_lower_case_post_is_405(self) -> None:
        """Methods are case-sensitive, as in Go: ``post`` on a gateway path is 405."""
        conn = HttpConnection()
        out = conn.send(b"post /v3/kv/range HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
        self.assertEqual(status_and_body(out)[0], 405)
