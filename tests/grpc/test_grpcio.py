"""Integration: a real grpcio client against the server over loopback TCP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from etcd_twisted._pb import health_pb2, health_pb2_grpc
from etcd_twisted._pb.health_pb2 import HealthCheckRequest as Msg
from etcd_twisted.grpc.call import ServerContext, ServerStream
from etcd_twisted.grpc.health import HealthService
from etcd_twisted.grpc.protocol import FAST_PATH, GrpcFactory
from etcd_twisted.grpc.service import Registry

LIMIT = 64 * 1024


def _bidi(ctx: ServerContext, stream: ServerStream) -> None:
    stream.set_receiver(lambda m: stream.send(Msg(service="echo:" + m.service)), stream.finish)


def _meta(request: Msg, ctx: ServerContext) -> Msg:
    ctx.set_trailing_metadata([("x-seen-bin", ctx.metadata.get("x-in-bin") or b"")])
    return Msg(service=str(ctx.metadata.get("token")))


class GrpcioTests(TestCase):
    timeout = 30
    fast_path = FAST_PATH

    def setUp(self) -> None:
        registry = Registry()
        HealthService().register(registry)
        registry.add_unary("/test.Echo/Echo", Msg, lambda request, ctx: request)
        registry.add_unary("/test.Echo/Meta", Msg, _meta)
        registry.add_unary("/test.Echo/Never", Msg, lambda request, ctx: Deferred())
        registry.add_bidi_stream("/test.Echo/Bidi", Msg, _bidi)
        self.factory = GrpcFactory(
            registry, reactor, max_receive_bytes=LIMIT, fast_path=self.fast_path
        )
        self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.addCleanup(self.factory.shutdown, 0)
        self.target = f"127.0.0.1:{self.port.getHost().port}"

    def in_thread(self, fn: Callable[[grpc.Channel], Any]) -> Deferred[Any]:
        """Run ``fn(channel)`` on a fresh grpcio channel in a worker thread."""

        def run() -> Any:
            with grpc.insecure_channel(self.target) as channel:
                return fn(channel)

        return deferToThread(run)

    def unary(self, channel: grpc.Channel, path: str) -> Callable[..., Any]:
        return channel.unary_unary(
            path, request_serializer=Msg.SerializeToString, response_deserializer=Msg.FromString
        )

    @inlineCallbacks
    def test_health_check(self) -> Iterator[Deferred[Any]]:
        """Health/Check for "" answers SERVING."""
        resp = yield self.in_thread(
            lambda ch: health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=5
            )
        )
        self.assertEqual(resp.status, health_pb2.HealthCheckResponse.SERVING)

    @inlineCallbacks
    def test_unknown_method(self) -> Iterator[Deferred[Any]]:
        """An unknown method is UNIMPLEMENTED with grpc-go's message."""

        def call(ch: grpc.Channel) -> tuple[grpc.StatusCode, str]:
            try:
                self.unary(ch, "/test.Echo/Missing")(Msg(), timeout=5)
            except grpc.RpcError as e:
                return e.code(), e.details()
            raise AssertionError("no error")

        code, details = yield self.in_thread(call)
        self.assertEqual(code, grpc.StatusCode.UNIMPLEMENTED)
        self.assertEqual(details, "unknown method Missing for service test.Echo")

    @inlineCallbacks
    def test_unary_echo_and_metadata(self) -> Iterator[Deferred[Any]]:
        """Unary echo works, request metadata reaches the handler, trailing metadata comes back."""

        def call(ch: grpc.Channel) -> tuple[Msg, Msg, Any]:
            echo = self.unary(ch, "/test.Echo/Echo")(Msg(service="hi" * 1000), timeout=5)
            meta, rpc = self.unary(ch, "/test.Echo/Meta").with_call(
                Msg(), metadata=[("token", "secret"), ("x-in-bin", b"\x00\xff")], timeout=5
            )
            return echo, meta, rpc.trailing_metadata()

        echo, meta, trailing = yield self.in_thread(call)
        self.assertEqual(echo.service, "hi" * 1000)
        self.assertEqual(meta.service, "secret")
        self.assertIn(("x-seen-bin", b"\x00\xff"), list(trailing))

    @inlineCallbacks
    def test_bidi_echo(self) -> Iterator[Deferred[Any]]:
        """A bidi stream echoes each message and ends OK after the client half-closes."""

        def call(ch: grpc.Channel) -> list[str]:
            bidi = ch.stream_stream(
                "/test.Echo/Bidi",
                request_serializer=Msg.SerializeToString,
                response_deserializer=Msg.FromString,
            )
            requests = (Msg(service=str(i)) for i in range(100))
            return [r.service for r in bidi(requests, timeout=10)]

        got = yield self.in_thread(call)
        self.assertEqual(got, [f"echo:{i}" for i in range(100)])

    @inlineCallbacks
    def test_too_large(self) -> Iterator[Deferred[Any]]:
        """A request over the receive limit is RESOURCE_EXHAUSTED."""

        def call(ch: grpc.Channel) -> tuple[grpc.StatusCode, str]:
            try:
                self.unary(ch, "/test.Echo/Echo")(Msg(service="x" * (LIMIT * 2)), timeout=5)
            except grpc.RpcError as e:
                return e.code(), e.details()
            raise AssertionError("no error")

        code, details = yield self.in_thread(call)
        self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("grpc: received message larger than max", details)

    @inlineCallbacks
    def test_deadline(self) -> Iterator[Deferred[Any]]:
        """A call that outlives its deadline ends DEADLINE_EXCEEDED."""

        def call(ch: grpc.Channel) -> grpc.StatusCode:
            try:
                self.unary(ch, "/test.Echo/Never")(Msg(), timeout=0.3)
            except grpc.RpcError as e:
                return e.code()
            raise AssertionError("no error")

        code = yield self.in_thread(call)
        self.assertEqual(code, grpc.StatusCode.DEADLINE_EXCEEDED)


class GrpcioFallbackTests(GrpcioTests):
    """The same calls on h2's public API."""

    fast_path = False
