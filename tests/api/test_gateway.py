"""Tests for etcd_twisted.api.gateway: what grpc-gateway (as in etcd 3.5.1) answers
around the calls, over hand-written handlers."""

from __future__ import annotations

import json
from typing import Any

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import rpc_pb2, v3election_pb2
from etcd_twisted.api.gateway import Gateway, GatewayStream
from etcd_twisted.api.http import HttpApi
from etcd_twisted.grpc import GrpcError, Registry, StatusCode
from etcd_twisted.metrics import Metrics


def range_handler(request: rpc_pb2.RangeRequest, ctx: Any) -> rpc_pb2.RangeResponse:
    if request.key == b"bad":
        raise GrpcError(
            StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision"
        )
    kv = {"key": request.key, "mod_revision": request.limit}
    return rpc_pb2.RangeResponse(kvs=[kv], count=1)


def keepalive_handler(ctx: Any, stream: Any) -> None:
    """Echo each request's ID as a response; end when the requests end."""
    stream.set_receiver(
        lambda request: stream.send(rpc_pb2.LeaseKeepAliveResponse(ID=request.ID, TTL=5)),
        stream.finish,
    )


def observe_handler(request: Any, ctx: Any, stream: Any) -> None:
    stream.send(v3election_pb2.LeaderResponse(kv={"key": request.name}))


def snapshot_handler(request: Any, ctx: Any, stream: Any) -> None:
    """Two data messages and the digest; the token "nobody" fails at once, "fail" after the data."""
    if ctx.metadata.get("token") == "nobody":
        raise GrpcError(StatusCode.UNKNOWN, "auth: user name is empty")
    stream.send(rpc_pb2.SnapshotResponse(remaining_bytes=3, blob=b"ab"))
    stream.send(rpc_pb2.SnapshotResponse(remaining_bytes=0, blob=b"cde"))
    if ctx.metadata.get("token") == "fail":
        raise GrpcError(StatusCode.UNAVAILABLE, "etcdserver: server stopped")
    stream.send(rpc_pb2.SnapshotResponse(blob=b"sha"))


class GatewayTests(SynchronousTestCase):
    def setUp(self) -> None:
        registry = Registry()
        registry.add_unary("/etcdserverpb.KV/Range", rpc_pb2.RangeRequest, range_handler)
        registry.add_bidi_stream(
            "/etcdserverpb.Lease/LeaseKeepAlive", rpc_pb2.LeaseKeepAliveRequest, keepalive_handler
        )
        registry.add_server_stream(
            "/v3electionpb.Election/Observe", v3election_pb2.LeaderRequest, observe_handler
        )
        registry.add_server_stream(
            "/etcdserverpb.Maintenance/Snapshot", rpc_pb2.SnapshotRequest, snapshot_handler
        )
        self.treq = StubTreq(HttpApi(Metrics(), gateway=Gateway(registry)).resource())

    def post(
        self, path: str, body: bytes, headers: dict[bytes, list[bytes]] | None = None
    ) -> tuple[int, Any, bytes]:
        response = self.successResultOf(
            self.treq.post("http://127.0.0.1" + path, body, headers=headers)
        )
        return response.code, response.headers, self.successResultOf(response.content())

    def test_grpc_metadata_only_on_success(self) -> None:
        """Grpc-Metadata-Content-Type comes with a call's answer, not with an error."""
        code, headers, _ = self.post("/v3/kv/range", b'{"key":"YQ=="}')
        self.assertEqual(code, 200)
        self.assertEqual(
            headers.getRawHeaders(b"grpc-metadata-content-type"), [b"application/grpc"]
        )
        for body in (b'{"key":"YmFk"}', b'{"key":1}'):
            code, headers, _ = self.post("/v3/kv/range", body)
            self.assertEqual(code, 400)
            self.assertIsNone(headers.getRawHeaders(b"grpc-metadata-content-type"))
            self.assertEqual(headers.getRawHeaders(b"content-type"), [b"application/json"])

    def test_go_parse_errors(self) -> None:
        """A body Go's jsonpb refuses is INVALID_ARGUMENT (400, code 3) with Go's text."""
        code, _, body = self.post("/v3/kv/range", b'{"key":"YQ==","limit":1.5}')
        text = "json: cannot unmarshal number 1.5 into Go value of type int64"
        self.assertEqual(
            (code, json.loads(body)), (400, {"error": text, "code": 3, "message": text})
        )

    def test_response_written_as_go_writes_json(self) -> None:
        """Strings are escaped as Go's json.Marshal escapes them; int64 as strings."""
        code, _, body = self.post("/v3/kv/range", b'{"key":"YQ==","limit":"7"}')
        self.assertEqual(code, 200)
        self.assertIn(b'"mod_revision":"7"', body)
        self.assertIn(b'"count":"1"', body)
        _, _, body = self.post("/v3/kv/range", b'{"key":"YQ==","limit":"<"}')
        self.assertIn(b"invalid character '\\u003c' looking for beginning of value", body)

    def test_unknown_route(self) -> None:
        """An unknown /v3 path is grpc-gateway's plain-text 404, without gRPC metadata."""
        code, headers, body = self.post("/v3/kv/nope", b"{}")
        self.assertEqual((code, body), (404, b"Not Found\n"))
        self.assertEqual(headers.getRawHeaders(b"x-content-type-options"), [b"nosniff"])
        self.assertIsNone(headers.getRawHeaders(b"grpc-metadata-content-type"))

    def test_bidi_stream_requests(self) -> None:
        """A bidi stream's requests are read one after another; a bad first one fails the
        call as UNKNOWN (500, code 2); a bad later one ends the requests."""
        code, headers, body = self.post("/v3/lease/keepalive", b'{"ID":1}{"ID":"2"}\n{"ID":1.5}')
        lines = [json.loads(line) for line in body.splitlines()]
        self.assertEqual(code, 200)
        self.assertEqual([line["result"]["ID"] for line in lines], ["1", "2"])
        self.assertEqual(
            headers.getRawHeaders(b"grpc-metadata-content-type"), [b"application/grpc"]
        )
        code, headers, body = self.post("/v3/lease/keepalive", b'{"ID":1.5}')
        text = "json: cannot unmarshal number 1.5 into Go value of type int64"
        self.assertEqual(
            (code, json.loads(body)), (500, {"error": text, "code": 2, "message": text})
        )

    def test_empty_stream(self) -> None:
        """An empty body ends the stream at once: 200, no lines, no gRPC metadata."""
        code, headers, body = self.post("/v3/lease/keepalive", b"")
        self.assertEqual((code, body), (200, b""))
        self.assertIsNone(headers.getRawHeaders(b"grpc-metadata-content-type"))

    def test_server_stream_request(self) -> None:
        """A server stream's one request is read like a unary one: INVALID_ARGUMENT on error."""
        code, _, body = self.post("/v3/election/observe", b'{"name":"YQ=="}')
        self.assertEqual((code, json.loads(body)["result"]["kv"]["key"]), (200, "YQ=="))
        code, _, body = self.post("/v3/election/observe", b'{"name":1}')
        text = "json: cannot unmarshal number into Go value of type []uint8"
        self.assertEqual(
            (code, json.loads(body)), (400, {"error": text, "code": 3, "message": text})
        )

    def test_snapshot_route(self) -> None:
        """/v3/maintenance/snapshot streams the Snapshot messages, one JSON line each."""
        code, _, body = self.post("/v3/maintenance/snapshot", b"{}")
        lines = [json.loads(line) for line in body.splitlines()]
        self.assertEqual(code, 200)
        self.assertEqual(
            lines,
            [
                {"result": {"remaining_bytes": "3", "blob": "YWI="}},
                {"result": {"blob": "Y2Rl"}},
                {"result": {"blob": "c2hh"}},
            ],
        )

    def test_stream_errors(self) -> None:
        """A stream failing before its first message answers with the error's HTTP status;
        after one, the status stays 200 and the error is the last line (grpc-gateway's)."""
        code, _, body = self.post(
            "/v3/maintenance/snapshot", b"{}", {b"authorization": [b"nobody"]}
        )
        self.assertEqual(
            (code, json.loads(body)),
            (500, {"error": {"grpc_code": 2, "http_code": 500, "message":
                             "auth: user name is empty", "http_status": "Internal Server Error"}}),
        )  # fmt: skip
        code, _, body = self.post("/v3/maintenance/snapshot", b"{}", {b"authorization": [b"fail"]})
        self.assertEqual(code, 200)
        self.assertEqual(
            json.loads(body.splitlines()[-1]),
            {"error": {"grpc_code": 14, "http_code": 503, "message": "etcdserver: server stopped",
                       "http_status": "Service Unavailable"}},
        )  # fmt: skip


class FakeRequest:
    """The parts of an HTTP request a GatewayStream writes to."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.producer: Any = None
        self.code = 200

    def setHeader(self, name: bytes, value: bytes) -> None:  # noqa: N802 (twisted's name)
        pass

    def setResponseCode(self, code: int) -> None:  # noqa: N802
        self.code = code

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def registerProducer(self, producer: Any, streaming: bool) -> None:  # noqa: N802
        self.producer = producer

    def unregisterProducer(self) -> None:  # noqa: N802
        self.producer = None


class GatewayStreamTests(SynchronousTestCase):
    def test_sends_wait_while_the_connection_is_full(self) -> None:
        """While the transport has paused its producer, a send's Deferred waits; it fires on
        resume; after the client left, sends fail with CANCELLED."""
        request = FakeRequest()
        stream = GatewayStream(request, [])  # type: ignore[arg-type]
        self.assertIs(request.producer, stream)
        self.successResultOf(stream.send(rpc_pb2.SnapshotResponse(blob=b"a")))
        request.producer.pauseProducing()
        waiting = stream.send(rpc_pb2.SnapshotResponse(blob=b"b"))
        self.assertNoResult(waiting)
        self.assertEqual(len(request.written), 2)
        request.producer.resumeProducing()
        self.successResultOf(waiting)
        request.producer.stopProducing()
        failure = self.failureResultOf(stream.send(rpc_pb2.SnapshotResponse()), GrpcError)
        self.assertEqual(failure.value.code, StatusCode.CANCELLED)
        self.assertEqual(len(request.written), 2)

    def test_finish_unregisters(self) -> None:
        """Finishing the call releases the producer slot and any waiting send."""
        request = FakeRequest()
        stream = GatewayStream(request, [])  # type: ignore[arg-type]
        request.producer.pauseProducing()
        waiting = stream.send(rpc_pb2.SnapshotResponse(blob=b"b"))
        stream.finish()
        self.assertIsNone(request.producer)
        self.successResultOf(waiting)
        self.successResultOf(stream.done)
