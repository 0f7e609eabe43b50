"""Tests for etcd_twisted.grpc.client against our gRPC server, in memory (iosim)."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb.health_pb2 import HealthCheckRequest as Msg
from etcd_twisted.grpc import GrpcError, Registry, ServerContext, ServerStream, StatusCode
from etcd_twisted.grpc.client import GrpcClientProtocol
from etcd_twisted.grpc.protocol import GrpcFactory


def _fail(request: Msg, ctx: ServerContext) -> Msg:
    raise GrpcError(StatusCode.NOT_FOUND, "no such thing: 100%")


def _meta(request: Msg, ctx: ServerContext) -> Msg:
    return Msg(service=str(ctx.metadata.get("token")))


def _echo_stream(ctx: ServerContext, stream: ServerStream) -> None:
    stream.set_receiver(lambda m: stream.send(Msg(service="echo:" + m.service)), stream.finish)


class ClientTests(SynchronousTestCase):
    def setUp(self) -> None:
        registry = Registry()
        registry.add_unary("/t.S/Echo", Msg, lambda request, ctx: request)
        registry.add_unary("/t.S/Fail", Msg, _fail)
        registry.add_unary("/t.S/Meta", Msg, _meta)
        registry.add_bidi_stream("/t.S/Stream", Msg, _echo_stream)
        self.clock = Clock()
        factory = GrpcFactory(registry, self.clock)
        self.client, self.server, self.pump = iosim.connectedServerAndClient(
            lambda: factory.buildProtocol(None), lambda: GrpcClientProtocol("test")
        )

    def flush(self) -> None:
        for _ in range(5):
            self.pump.flush()
            self.clock.advance(0)

    def unary(self, path: str, message: Msg, **kw: Any) -> list[Any]:
        box: list[Any] = []
        self.client.unary(path, message.SerializeToString(), **kw).addBoth(box.append)
        self.flush()
        return box

    def test_unary(self) -> None:
        """A unary call answers with the server's message bytes."""
        (answer,) = self.unary("/t.S/Echo", Msg(service="hi"))
        self.assertEqual(Msg.FromString(answer).service, "hi")

    def test_status_and_message(self) -> None:
        """A failing call fails with the status code and the decoded message."""
        (failure,) = self.unary("/t.S/Fail", Msg())
        error = failure.value
        self.assertEqual((error.code, error.message), (StatusCode.NOT_FOUND, "no such thing: 100%"))

    def test_unknown_method(self) -> None:
        """A trailers-only answer (UNIMPLEMENTED) ends the call."""
        (failure,) = self.unary("/t.S/Nope", Msg())
        self.assertEqual(failure.value.code, StatusCode.UNIMPLEMENTED)

    def test_metadata(self) -> None:
        """Call metadata reaches the server."""
        (answer,) = self.unary("/t.S/Meta", Msg(), metadata=[("token", "abc")])
        self.assertEqual(Msg.FromString(answer).service, "abc")

    def test_large_message_respects_flow_control(self) -> None:
        """A message larger than the initial windows arrives whole."""
        big = "x" * (3 * 1024 * 1024)
        (answer,) = self.unary("/t.S/Echo", Msg(service=big))
        self.assertEqual(len(Msg.FromString(answer).service), len(big))

    def test_bidi_stream(self) -> None:
        """A stream carries messages both ways and ends OK after the half-close."""
        got: list[str] = []
        closed: list[Any] = []
        call = self.client.start_call(
            "/t.S/Stream", (), lambda raw: got.append(Msg.FromString(raw).service), closed.append
        )
        for word in ("a", "b"):
            call.send(Msg(service=word).SerializeToString())
        self.flush()
        self.assertEqual(got, ["echo:a", "echo:b"])
        call.end()
        self.flush()
        self.assertEqual(closed, [None])

    def test_connection_loss_ends_calls(self) -> None:
        """Calls open when the connection goes end UNAVAILABLE; new ones fail at once."""
        closed: list[Any] = []
        self.client.start_call("/t.S/Stream", (), lambda raw: None, closed.append)
        self.flush()
        self.client.transport.loseConnection()
        self.flush()
        self.assertEqual(closed[0].code, StatusCode.UNAVAILABLE)
        (failure,) = self.unary("/t.S/Echo", Msg())
        self.assertEqual(failure.value.code, StatusCode.UNAVAILABLE)
