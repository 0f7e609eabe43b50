"""The fast path for a whole unary response must leave h2 exactly as the long way would."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb.health_pb2 import HealthCheckRequest as Msg
from etcd_twisted.grpc.call import ServerStream
from etcd_twisted.grpc.protocol import GrpcProtocol
from etcd_twisted.grpc.service import Registry
from tests.grpc.h2client import Harness, Response

ECHO = "/test.Echo/Echo"
BIDI = "/test.Echo/Bidi"


def harness(force_long_way: bool) -> Harness:
    registry = Registry()
    registry.add_unary(ECHO, Msg, lambda request, ctx: request)

    def answer_first(ctx: object, stream: ServerStream) -> None:
        def on_message(message: Msg) -> None:
            stream.send(message)
            stream.finish()

        stream.set_receiver(on_message)

    registry.add_bidi_stream(BIDI, Msg, answer_first)
    h = Harness(registry)
    if force_long_way:
        h.proto._write_whole_response = lambda call, data: False  # type: ignore[method-assign]
    return h


def state(h: Harness, answers: list[Response]) -> tuple[object, ...]:
    """What the client saw, and h2's connection and stream state machines and windows."""
    h2 = h.proto._h2
    return (
        [(a.headers, a.messages, a.trailers, a.ended, a.reset) for a in answers],
        h2.state_machine.state,
        h2.outbound_flow_control_window,
        sorted(
            (sid, vars(s.state_machine), s.outbound_flow_control_window)
            for sid, s in h2.streams.items()
        ),
        list(h2._closed_streams.items()),
    )


class WholeResponseTests(SynchronousTestCase):
    def test_same_bytes_state_and_windows_as_the_long_way(self) -> None:
        """Responses, stream states and both flow-control windows match h2's own path."""
        runs = []
        for force in (False, True):
            h = harness(force)
            seen = []
            for n in (1, 100, 5000):
                seen.append(state(h, [h.call(ECHO, Msg(service="x" * n))]))
            # A bidi call answered (one message, OK) before the client half-closes.
            sid = h.start(BIDI)
            h.send(sid, Msg(service="early"))
            seen.append(state(h, [h.responses[sid]]))
            runs.append(seen)
        self.assertEqual(runs[0], runs[1])

    def test_used_for_plain_answers_only(self) -> None:
        """The fast path takes OK answers; errors and big messages go the long way."""
        h = harness(False)
        taken = []
        original = GrpcProtocol._write_whole_response

        def spy(self: GrpcProtocol, call: object, data: bytes) -> bool:
            result = original(self, call, data)
            taken.append(result)
            return result

        h.proto._write_whole_response = spy.__get__(h.proto)  # type: ignore[method-assign]
        h.call(ECHO, Msg(service="small"))
        h.call(ECHO, Msg(service="y" * 70_000))  # more than one frame may carry
        self.assertEqual(taken, [True, False])
