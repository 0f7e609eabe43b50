"""Fuzzing the gateway's JSON decoder and the client port's HTTP/1 path: any input ends
in a Go-style error, an answer or a clean close, never a traceback or a 500."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import rpc_pb2, v3election_pb2
from etcd_twisted.api.gojson import GoJsonError, parse

from .support import HttpConnection

MESSAGES = [rpc_pb2.RangeRequest, rpc_pb2.PutRequest, rpc_pb2.TxnRequest,
            rpc_pb2.LeaseGrantRequest, v3election_pb2.CampaignRequest]  # fmt: skip
FIELD_NAMES = ["key", "range_end", "value", "limit", "revision", "sort_order", "lease",
               "compare", "success", "failure", "request_put", "request_txn", "request_range",
               "target", "result", "TTL", "ID", "keysOnly", "prev_kv", "x"]  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=12) | st.sampled_from(["YQ==", "=", "1e3", "-0", "9" * 30]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(FIELD_NAMES), children, max_size=4),
    max_leaves=20,
)  # fmt: skip


@st.composite
def json_bodies(draw: st.DrawFn) -> bytes:
    """Valid JSON of etcd-ish shapes, sometimes cut, spliced or nested deep."""
    text = json.dumps(draw(json_values)).encode()
    how = draw(st.sampled_from(["whole", "cut", "splice", "deep", "bytes"]))
    if how == "cut":
        return text[: draw(st.integers(0, len(text)))]
    if how == "splice":
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(st.binary(max_size=8)) + text[at:]
    if how == "deep":
        levels = draw(st.sampled_from([9_999, 10_000, 10_001]))
        return b'{"key":' + b"[" * levels + text + b"]" * levels + b"}"
    if how == "bytes":
        return draw(st.binary(max_size=64))
    return text


@st.composite
def http_requests(draw: st.DrawFn) -> bytes:
    """HTTP/1-ish requests: real and bogus methods, paths, headers, framings and bodies."""
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"OPTIONS", b"HEAD", b"BREW"]))
    path = draw(st.sampled_from([b"/v3/kv/range", b"/v3/kv/put", b"/v3/kv/txn", b"/version",
                                 b"/health", b"/metrics", b"/v3/nope", b"/%zz", b"*", b""]))  # fmt: skip
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/9", b""]))
    body = draw(json_bodies())
    framing = draw(st.sampled_from(["length", "chunked", "wrong-length", "bad-length", "none"]))
    headers = [b"Host: x"]
    if framing == "length":
        headers.append(b"Content-Length: %d" % len(body))
    elif framing == "wrong-length":
        headers.append(b"Content-Length: %d" % draw(st.integers(0, 2**40)))
    elif framing == "bad-length":
        headers.append(b"Content-Length: " + draw(st.sampled_from([b"-1", b"x", b"1 1", b""])))
    elif framing == "chunked":
        headers.append(b"Transfer-Encoding: chunked")
        body = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n" if body else b"0\r\n\r\n"
    extra = st.sampled_from(
        [
            b"Expect: 100-continue",
            b"Connection: close",
            b"Authorization: t",
            b"Grpc-Metadata-Hasleader: true",
            b"X-A:  b ",
        ]
    ) | st.binary(max_size=20)
    headers += draw(st.lists(extra, max_size=2))
    return eol.join([method + b" " + path + b" " + version, *headers, b""]) + eol + body


class GoJsonFuzzTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(body=json_bodies(), message=st.sampled_from(MESSAGES))
    def test_decoder_answers_or_refuses(self, body: bytes, message: type) -> None:
        """Decoding any body gives a message or a GoJsonError, nothing else."""
        try:
            self.assertIsInstance(parse(body, message), message)
        except GoJsonError as e:
            self.assertTrue(e.message)


class Http1FuzzTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(request=http_requests(), split=st.integers(1, 64))
    def test_every_request_answered_or_closed(self, request: bytes, split: int) -> None:
        """Fed in pieces, any request gets 1xx/2xx/4xx answers or a clean close, no 5xx."""
        conn = HttpConnection()
        for i in range(0, len(request), split):
            conn.send(request[i : i + split])
        out = conn.transport.value()
        for line in out.split(b"\r\n"):
            if line.startswith(b"HTTP/1.1 "):
                self.assertIn(line[9:10], b"124", out[:300])
        if not out:  # waiting for more of the request: ending it now is clean too
            conn.protocol.connectionLost(None)
