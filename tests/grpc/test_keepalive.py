"""gRPC keepalive: the ping policy enforced on clients and the server's own pings."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
from h2.errors import ErrorCodes
from h2.events import PingReceived
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from etcd_twisted._pb.health_pb2 import HealthCheckRequest as Msg
from etcd_twisted.grpc.call import ServerContext, ServerStream
from etcd_twisted.grpc.keepalive import Keepalive, KeepalivePolicy
from etcd_twisted.grpc.protocol import GrpcFactory
from etcd_twisted.grpc.service import Registry
from tests.grpc.h2client import Harness
from tests.grpc.test_protocol import ECHO, echo_registry

HOLD = "/test.Echo/Hold"


class Recorder:
    """The protocol side of a `Keepalive`: what it asked for."""

    def __init__(self) -> None:
        self.pings: list[bytes] = []
        self.goaways = 0
        self.dead = 0


def keepalive(policy: KeepalivePolicy) -> tuple[Keepalive, Clock, Recorder]:
    clock, rec = Clock(), Recorder()

    def goaway() -> None:
        rec.goaways += 1

    def dead() -> None:
        rec.dead += 1

    k = Keepalive(policy, clock, rec.pings.append, goaway, dead)
    k.start()
    return k, clock, rec


class EnforcementTests(SynchronousTestCase):
    def test_fourth_early_ping_on_idle_connection(self) -> None:
        """With no calls, pings closer than 2 h apart strike; the 4th ping gets the GOAWAY."""
        k, clock, rec = keepalive(KeepalivePolicy(min_time=5.0))
        for n in range(1, 5):
            k.ping_received(active_calls=0)
            self.assertEqual(rec.goaways, 0 if n < 4 else 1, n)
            clock.advance(0.2)

    def test_min_time_with_calls(self) -> None:
        """With calls in flight, pings ``min_time`` apart are fine; closer ones strike."""
        k, clock, rec = keepalive(KeepalivePolicy(min_time=5.0))
        for _ in range(10):
            k.ping_received(active_calls=1)
            clock.advance(5.0)
        self.assertEqual((k.strikes, rec.goaways), (0, 0))
        for _ in range(4):
            k.ping_received(active_calls=1)
            clock.advance(4.9)
        self.assertEqual(rec.goaways, 1)

    def test_response_resets_strikes(self) -> None:
        """A ping after the server wrote a response resets the strikes."""
        k, clock, rec = keepalive(KeepalivePolicy(min_time=5.0))
        for _ in range(20):
            k.ping_received(active_calls=1)
            k.ping_received(active_calls=1)
            k.wrote_response()
            clock.advance(0.1)
        self.assertEqual(rec.goaways, 0)

    def test_disabled(self) -> None:
        """min_time 0 turns enforcement off."""
        k, clock, rec = keepalive(KeepalivePolicy(min_time=0))
        for _ in range(10):
            k.ping_received(active_calls=0)
        self.assertEqual(rec.goaways, 0)


class ServerPingTests(SynchronousTestCase):
    def test_ping_after_interval_then_close(self) -> None:
        """Nothing read for ``interval``: a PING; nothing read ``timeout`` later: close."""
        k, clock, rec = keepalive(KeepalivePolicy(interval=10.0, timeout=3.0))
        clock.advance(9.9)
        self.assertEqual(rec.pings, [])
        clock.advance(0.1)
        self.assertEqual(len(rec.pings), 1)
        clock.advance(2.9)
        self.assertEqual(rec.dead, 0)
        clock.advance(0.1)
        self.assertEqual((rec.dead, len(rec.pings)), (1, 1))

    def test_answered_ping(self) -> None:
        """A read (the ACK) after the PING keeps the connection; the next PING comes
        ``interval`` after that read."""
        k, clock, rec = keepalive(KeepalivePolicy(interval=10.0, timeout=3.0))
        clock.advance(10.0)
        clock.advance(1.0)
        k.read()
        clock.advance(2.0)
        self.assertEqual((rec.dead, len(rec.pings)), (0, 1))
        clock.advance(7.9)
        self.assertEqual(len(rec.pings), 1)
        clock.advance(0.1)
        self.assertEqual(len(rec.pings), 2)

    def test_timeout_longer_than_interval(self) -> None:
        """The close comes ``timeout`` after the PING even when that spans intervals."""
        k, clock, rec = keepalive(KeepalivePolicy(interval=1.0, timeout=5.0))
        clock.advance(1.0)
        for _ in range(4):
            clock.advance(1.0)
        self.assertEqual((rec.dead, len(rec.pings)), (0, 1))
        clock.advance(1.0)
        self.assertEqual(rec.dead, 1)

    def test_reads_postpone(self) -> None:
        """A connection that keeps reading is never pinged."""
        k, clock, rec = keepalive(KeepalivePolicy(interval=10.0, timeout=3.0))
        for _ in range(30):
            clock.advance(5.0)
            k.read()
        self.assertEqual(rec.pings, [])


class ProtocolTests(SynchronousTestCase):
    """The policy on a real `GrpcProtocol` connection (StringTransport, h2 client)."""

    def test_too_many_pings_goaway(self) -> None:
        """Four pings 0.2 s apart: GOAWAY ENHANCE_YOUR_CALM "too_many_pings", then close."""
        h = Harness(echo_registry(), keepalive=KeepalivePolicy(min_time=5.0))
        for _ in range(4):
            self.assertIsNone(h.goaway)
            h.client.ping(b"12345678")
            h.exchange()
            h.clock.advance(0.2)
        self.assertIsNotNone(h.goaway)
        self.assertEqual(h.goaway.error_code, ErrorCodes.ENHANCE_YOUR_CALM)
        self.assertEqual(h.goaway.additional_data, b"too_many_pings")
        self.assertTrue(h.transport.disconnecting)
        self.assertEqual(h.factory.too_many_pings, 1)

    def test_pings_between_calls(self) -> None:
        """A ping after each answered call never strikes (the response resets the count)."""
        h = Harness(echo_registry(), keepalive=KeepalivePolicy(min_time=5.0))
        for _ in range(10):
            h.call(ECHO, Msg(service="x"))
            h.client.ping(b"12345678")
            h.exchange()
        self.assertIsNone(h.goaway)

    def test_server_pings_and_closes(self) -> None:
        """An idle client is pinged after the interval and dropped when it stays silent."""
        h = Harness(echo_registry(), keepalive=KeepalivePolicy(interval=60.0, timeout=20.0))
        events: list[Any] = []
        h.clock.advance(60.0)
        events += h.client.receive_data(h.transport.value())
        h.transport.clear()
        self.assertTrue(any(isinstance(e, PingReceived) for e in events))
        h.clock.advance(20.0)
        self.assertTrue(h.transport.disconnecting)

    def test_answering_client_stays(self) -> None:
        """A client whose ACK comes back keeps its connection (no idle limit here: pings do
        not count as use, as with grpc-go's MaxConnectionIdle)."""
        h = Harness(
            echo_registry(),
            keepalive=KeepalivePolicy(interval=60.0, timeout=20.0),
            idle_timeout=None,
        )
        for _ in range(5):
            h.clock.advance(60.0)
            h.exchange()  # the client's h2 answers the PING
        self.assertFalse(h.transport.disconnecting)


def _hold(ctx: ServerContext, stream: ServerStream) -> None:
    stream.set_receiver(lambda m: None, stream.finish)


class GrpcioKeepaliveTests(TestCase):
    timeout = 30

    def test_fast_pinging_grpcio_client(self) -> None:
        """A grpcio client pinging every 100 ms during a call is sent away (UNAVAILABLE)."""
        registry = Registry()
        registry.add_bidi_stream(HOLD, Msg, _hold)
        factory = GrpcFactory(registry, reactor, keepalive=KeepalivePolicy(min_time=5.0))
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.addCleanup(factory.shutdown, 0)
        target = f"127.0.0.1:{port.getHost().port}"
        options = [
            ("grpc.keepalive_time_ms", 100),
            ("grpc.keepalive_timeout_ms", 1000),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.keepalive_permit_without_calls", 1),
        ]

        def run() -> grpc.StatusCode:
            with grpc.insecure_channel(target, options=options) as channel:
                call = channel.stream_stream(
                    HOLD,
                    request_serializer=Msg.SerializeToString,
                    response_deserializer=Msg.FromString,
                )
                try:
                    for _ in call(_slow(), timeout=10):
                        pass
                except grpc.RpcError as e:
                    return e.code()
                return grpc.StatusCode.OK

        def check(code: grpc.StatusCode) -> None:
            self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)
            self.assertEqual(factory.too_many_pings, 1)

        d: Deferred[grpc.StatusCode] = deferToThread(run)
        return d.addCallback(check)


def _slow() -> Iterator[Msg]:
    """A request stream that stays open (the call lasts until the server sends us away)."""
    for _ in range(50):
        time.sleep(0.2)
        yield Msg(service="x")
