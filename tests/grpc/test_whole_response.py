"""The fast path for a whole unary response must leave h2 exactly as the long way would."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb.health_pb2 import HealthCheckRequest as Msg
from etcd_twisted.grpc.protocol import GrpcProtocol
from etcd_twisted.grpc.service import Registry
from tests.grpc.h2client import Harness

ECHO = "/test.Echo/Echo"


def harness(force_long_way: bool) -> Harness:
    registry = Registry()
    registry.add_unary(ECHO, Msg, lambda request, ctx: request)
    h = Harness(registry)
    if force_long_way:
        h.proto._write_whole_response = lambda call, data: False  # type: ignore[method-assign]
    return h


class WholeResponseTests(SynchronousTestCase):
    def test_same_bytes_state_and_windows_as_the_long_way(self) -> None:
        """Responses, stream states and both flow-control windows match h2's own path."""
        runs = []
        for force in (False, True):
            h = harness(force)
            answers = [h.call(ECHO, Msg(service="x" * n)) for n in (1, 100, 5000)]
            h2 = h.proto._h2
            runs.append(
                (
                    [(a.headers, a.messages, a.trailers, a.ended) for a in answers],
                    h2.outbound_flow_control_window,
                    sorted((sid, s.state_machine.state) for sid, s in h2.streams.items()),
                )
            )
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
