"""GrpcProtocol driven by an in-memory h2 client: calls, errors, metadata,
deadlines, flow control, cancellation and shutdown."""

from __future__ import annotations

import gzip

from h2.errors import ErrorCodes
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from etcd_twisted._pb.health_pb2 import HealthCheckRequest as Msg
from etcd_twisted.grpc.call import SEND_BUFFER_BYTES, ServerContext, ServerStream
from etcd_twisted.grpc.service import Registry
from etcd_twisted.grpc.status import GrpcError, StatusCode
from tests.grpc.h2client import PEER, HarnessCase, fallback_twin

ECHO = "/test.Echo/Echo"


def texts(raw: list[bytes]) -> list[str]:
    return [Msg.FromString(m).service for m in raw]


def echo(request: Msg, ctx: ServerContext) -> Msg:
    return Msg(service=request.service)


def echo_registry() -> Registry:
    r = Registry()
    r.add_unary(ECHO, Msg, echo)
    return r


class UnaryTests(HarnessCase):
    def test_echo(self) -> None:
        """A unary call gets :status 200, application/grpc, one message and grpc-status 0."""
        h = self.harness(echo_registry())
        resp = h.call(ECHO, Msg(service="hello"))
        self.assertEqual(resp.headers[b":status"], b"200")
        self.assertEqual(resp.headers[b"content-type"], b"application/grpc")
        self.assertEqual(texts(resp.messages), ["hello"])
        self.assertEqual(resp.trailers, {b"grpc-status": b"0"})
        self.assertTrue(resp.ended)

    def test_one_write_per_batch(self) -> None:
        """Ten calls arriving in one read are answered with a single transport write."""
        h = self.harness(echo_registry())
        writes: list[bytes] = []
        h.transport.write = writes.append  # type: ignore[method-assign]
        sids = []
        for i in range(10):
            sid = h.start(ECHO, flush=False)
            h.send(sid, Msg(service=str(i)), end=True, flush=False)
            sids.append(sid)
        h.proto.dataReceived(h.client.data_to_send())
        self.assertEqual(len(writes), 1)
        h.transport.io.write(writes[0])
        h.exchange()
        self.assertEqual(
            [texts(h.responses[s].messages) for s in sids], [[str(i)] for i in range(10)]
        )

    def test_byte_at_a_time(self) -> None:
        """A whole connection fed one byte per dataReceived still completes a call."""
        h = self.harness(echo_registry())
        sid = h.start(ECHO, flush=False)
        h.send(sid, Msg(service="slow"), end=True, flush=False)
        for b in h.client.data_to_send():
            h.proto.dataReceived(bytes([b]))
        h.exchange()
        self.assertEqual(texts(h.responses[sid].messages), ["slow"])
        self.assertEqual(h.responses[sid].status, 0)

    def test_deferred_response(self) -> None:
        """A handler's Deferred response is written when it fires, in a later reactor turn."""
        r = Registry()
        pending: list[Deferred[Msg]] = []

        def later(request: Msg, ctx: ServerContext) -> Deferred[Msg]:
            pending.append(Deferred())
            return pending[-1]

        r.add_unary(ECHO, Msg, later)
        h = self.harness(r)
        resp = h.call(ECHO, Msg(service="x"))
        self.assertIsNone(resp.headers)
        pending[0].callback(Msg(service="done"))
        h.exchange()
        self.assertEqual(texts(resp.messages), ["done"])
        self.assertEqual(resp.status, 0)

    def test_fired_deferred_response(self) -> None:
        """A handler's already-fired Deferred answers at once; a failed one ends the call."""
        r = Registry()
        r.add_unary(ECHO, Msg, lambda request, ctx: succeed(Msg(service=request.service)))
        r.add_unary(
            "/test.Echo/Fail",
            Msg,
            lambda request, ctx: fail(GrpcError(StatusCode.NOT_FOUND, "gone")),
        )
        h = self.harness(r)
        self.assertEqual(texts(h.call(ECHO, Msg(service="now")).messages), ["now"])
        failed = h.call("/test.Echo/Fail", Msg())
        self.assertEqual((failed.status, failed.message), (StatusCode.NOT_FOUND, b"gone"))

    def test_coroutine_handler(self) -> None:
        """An ``async def`` handler's result is the response."""
        r = Registry()

        async def handler(request: Msg, ctx: ServerContext) -> Msg:
            await succeed(None)
            return Msg(service=request.service.upper())

        r.add_unary(ECHO, Msg, handler)
        resp = self.harness(r).call(ECHO, Msg(service="abc"))
        self.assertEqual(texts(resp.messages), ["ABC"])

    def test_sync_error_is_trailers_only(self) -> None:
        """A GrpcError raised before any message gives a trailers-only response."""
        r = Registry()

        def fails(request: Msg, ctx: ServerContext) -> Msg:
            raise GrpcError(StatusCode.NOT_FOUND, "no such thing")

        r.add_unary(ECHO, Msg, fails)
        resp = self.harness(r).call(ECHO, Msg())
        self.assertIsNone(resp.trailers)
        self.assertEqual(resp.headers[b":status"], b"200")
        self.assertEqual(resp.status, StatusCode.NOT_FOUND)
        self.assertEqual(resp.message, b"no such thing")
        self.assertTrue(resp.ended)

    def test_async_error_with_metadata(self) -> None:
        """A Deferred failing with GrpcError sends its code, percent-encoded message and metadata."""
        r = Registry()
        d: Deferred[Msg] = Deferred()
        r.add_unary(ECHO, Msg, lambda request, ctx: d)
        h = self.harness(r)
        resp = h.call(ECHO, Msg())
        d.errback(
            GrpcError(StatusCode.OUT_OF_RANGE, "100% ünïcode", [("x-detail-bin", b"\x00\x01")])
        )
        h.exchange()
        self.assertEqual(resp.status, StatusCode.OUT_OF_RANGE)
        self.assertEqual(resp.message, b"100%25 %C3%BCn%C3%AFcode")
        self.assertEqual(resp.headers[b"x-detail-bin"], b"AAE")

    def test_unexpected_exception_is_unknown(self) -> None:
        """Any other exception becomes UNKNOWN with its text and is logged."""
        r = Registry()

        def broken(request: Msg, ctx: ServerContext) -> Msg:
            raise ZeroDivisionError("oops")

        r.add_unary(ECHO, Msg, broken)
        resp = self.harness(r).call(ECHO, Msg())
        self.assertEqual(resp.status, StatusCode.UNKNOWN)
        self.assertEqual(resp.message, b"oops")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_unknown_service_and_method(self) -> None:
        """Unknown methods get UNIMPLEMENTED trailers-only with grpc-go's messages."""
        h = self.harness(echo_registry())
        svc = h.call("/other.Svc/Do", Msg())
        meth = h.call("/test.Echo/Nope", Msg())
        self.assertEqual((svc.status, svc.message), (12, b"unknown service other.Svc"))
        self.assertEqual(
            (meth.status, meth.message), (12, b"unknown method Nope for service test.Echo")
        )
        self.assertIsNone(svc.trailers)
        self.assertEqual(svc.headers[b":status"], b"200")

    def test_unknown_method_before_body_resets(self) -> None:
        """A rejected call whose client has not half-closed is answered, then reset with NO_ERROR."""
        h = self.harness(echo_registry())
        sid = h.start("/x.Y/Z")
        self.assertEqual(h.responses[sid].status, 12)
        self.assertEqual(h.responses[sid].reset, ErrorCodes.NO_ERROR)

    def test_bad_content_type_and_method(self) -> None:
        """A non-gRPC content-type is 415/INVALID_ARGUMENT; a GET is 405/INTERNAL."""
        h = self.harness(echo_registry())
        ct = h.start(ECHO, content_type=b"application/json", end=True)
        get = h.start(ECHO, method=b"GET", end=True)
        self.assertEqual(h.responses[ct].headers[b":status"], b"415")
        self.assertEqual(h.responses[ct].status, StatusCode.INVALID_ARGUMENT)
        self.assertEqual(
            h.responses[ct].message, b'invalid gRPC request content-type "application/json"'
        )
        self.assertEqual(h.responses[get].headers[b":status"], b"405")
        self.assertEqual(h.responses[get].status, StatusCode.INTERNAL)

    def test_content_type_with_subtype(self) -> None:
        """application/grpc+proto is accepted."""
        h = self.harness(echo_registry())
        sid = h.start(ECHO, content_type=b"application/grpc+proto")
        h.send(sid, Msg(service="p"), end=True)
        self.assertEqual(h.responses[sid].status, 0)

    def test_no_request_message(self) -> None:
        """A unary call half-closed without a message fails INTERNAL."""
        h = self.harness(echo_registry())
        sid = h.start(ECHO, end=True)
        self.assertEqual(h.responses[sid].status, StatusCode.INTERNAL)

    def test_unparseable_request(self) -> None:
        """A request that does not parse fails INTERNAL 'error unmarshalling request'."""
        h = self.harness(echo_registry())
        sid = h.start(ECHO)
        h.send(sid, b"\x00\x00\x00\x00\x02\xff\xff", end=True)
        self.assertEqual(h.responses[sid].status, StatusCode.INTERNAL)
        self.assertIn(b"error unmarshalling request", h.responses[sid].message)

    def test_too_large(self) -> None:
        """A message over max_receive_bytes fails RESOURCE_EXHAUSTED before its body arrives."""
        h = self.harness(echo_registry(), max_receive_bytes=100)
        sid = h.start(ECHO)
        h.send(sid, b"\x00\x00\x00\x01\x00")
        resp = h.responses[sid]
        self.assertEqual(resp.status, StatusCode.RESOURCE_EXHAUSTED)
        self.assertEqual(resp.message, b"grpc: received message larger than max (256 vs. 100)")

    def test_compressed_without_encoding(self) -> None:
        """The compressed flag without grpc-encoding fails INTERNAL."""
        h = self.harness(echo_registry())
        sid = h.start(ECHO)
        h.send(sid, b"\x01\x00\x00\x00\x00", end=True)
        self.assertEqual(h.responses[sid].status, StatusCode.INTERNAL)
        self.assertEqual(
            h.responses[sid].message, b"grpc: compressed flag set with identity or empty encoding"
        )

    def test_compressed_with_unknown_encoding(self) -> None:
        """The compressed flag with an encoding we lack fails UNIMPLEMENTED, as grpc-go's server."""
        h = self.harness(echo_registry())
        sid = h.start(ECHO, [(b"grpc-encoding", b"br")])
        h.send(sid, b"\x01\x00\x00\x00\x00", end=True)
        self.assertEqual(h.responses[sid].status, StatusCode.UNIMPLEMENTED)

    def test_gzip_request(self) -> None:
        """A gzip-compressed request is decompressed and answered compressed, as etcd's grpc-go does."""
        h = self.harness(echo_registry())
        sid = h.start(ECHO, [(b"grpc-encoding", b"gzip")])
        payload = gzip.compress(Msg(service="zipped").SerializeToString())
        h.send(sid, b"\x01" + len(payload).to_bytes(4, "big") + payload, end=True)
        self.assertEqual(h.responses[sid].status, 0)
        self.assertEqual(texts(h.responses[sid].messages), ["zipped"])
        # answered in the request's encoding, as grpc-go (etcd 3.5.1) answers
        self.assertEqual(h.responses[sid].headers[b"grpc-encoding"], b"gzip")
        self.assertEqual(h.responses[sid].data[0], 1)

    def test_incomplete_message(self) -> None:
        """A request that ends inside a message is UNKNOWN "unexpected EOF" (etcd 3.5.1)."""
        h = self.harness(echo_registry())
        sid = h.start(ECHO)
        h.send(sid, b"\x00\x00\x00\x00\x05abc", end=True)
        self.assertEqual(h.responses[sid].status, StatusCode.UNKNOWN)
        self.assertEqual(h.responses[sid].message, b"unexpected EOF")


class MetadataTests(HarnessCase):
    def test_request_metadata(self) -> None:
        """Handlers see lowercase multi-valued metadata, -bin decoded, reserved headers dropped, and the peer."""
        seen: list[ServerContext] = []

        def handler(request: Msg, ctx: ServerContext) -> Msg:
            seen.append(ctx)
            return request

        r = Registry()
        r.add_unary(ECHO, Msg, handler)
        md = [(b"token", b"abc"), (b"x-multi", b"1"), (b"x-multi", b"2"), (b"trace-bin", b"AAEC")]
        self.harness(r).call(ECHO, Msg(), md)
        ctx = seen[0]
        self.assertEqual(ctx.metadata.get("token"), "abc")
        self.assertEqual(ctx.metadata.get_all("x-multi"), ["1", "2"])
        self.assertEqual(ctx.metadata.get("trace-bin"), b"\x00\x01\x02")
        self.assertNotIn("content-type", ctx.metadata)
        self.assertNotIn("te", ctx.metadata)
        self.assertEqual(ctx.peer, PEER)
        self.assertEqual(ctx.method, ECHO)
        self.assertIsNone(ctx.deadline)

    def test_peer_certificate(self) -> None:
        """A handler sees the TLS transport's peer certificate; None on plaintext."""
        seen: list[ServerContext] = []

        def handler(request: Msg, ctx: ServerContext) -> Msg:
            seen.append(ctx)
            return request

        r = Registry()
        r.add_unary(ECHO, Msg, handler)
        self.harness(r).call(ECHO, Msg(), [])
        self.assertIsNone(seen[0].peer_certificate())

        class TLSTransport(StringTransport):
            def getPeerCertificate(self) -> object:
                return "the client's certificate"

        proto = self.factory(r, Clock()).buildProtocol(PEER)
        proto.makeConnection(TLSTransport(peerAddress=PEER))
        self.assertEqual(proto.peer_certificate(), "the client's certificate")

    def test_response_metadata(self) -> None:
        """Initial metadata goes in the response headers and trailing metadata in the trailers."""

        def handler(request: Msg, ctx: ServerContext) -> Msg:
            ctx.set_initial_metadata([("x-head", "h")])
            ctx.set_trailing_metadata([("x-tail", "t"), ("x-tail-bin", b"\xff")])
            return request

        r = Registry()
        r.add_unary(ECHO, Msg, handler)
        resp = self.harness(r).call(ECHO, Msg())
        self.assertEqual(resp.headers[b"x-head"], b"h")
        self.assertEqual(resp.trailers[b"x-tail"], b"t")
        self.assertEqual(resp.trailers[b"x-tail-bin"], b"/w")
        self.assertEqual(resp.trailers[b"grpc-status"], b"0")

    def test_bad_binary_metadata(self) -> None:
        """Undecodable -bin metadata is refused with INTERNAL."""
        resp = self.harness(echo_registry()).call(ECHO, Msg(), [(b"x-bin", b"!!!")])
        self.assertEqual(resp.status, StatusCode.INTERNAL)


class DeadlineTests(HarnessCase):
    def test_deadline_cancels(self) -> None:
        """When grpc-timeout passes, the call ends DEADLINE_EXCEEDED and ctx reports cancellation."""
        seen: list[ServerContext] = []

        def never(request: Msg, ctx: ServerContext) -> Deferred[Msg]:
            seen.append(ctx)
            return Deferred()

        r = Registry()
        r.add_unary(ECHO, Msg, never)
        h = self.harness(r)
        resp = h.call(ECHO, Msg(), [(b"grpc-timeout", b"1500m")])
        ctx = seen[0]
        self.assertEqual(ctx.deadline, 1.5)
        self.assertEqual(ctx.time_remaining(), 1.5)
        cancelled = ctx.when_cancelled()
        h.clock.advance(1.4)
        h.exchange()
        self.assertIsNone(resp.status)
        self.assertFalse(ctx.is_cancelled)
        h.clock.advance(0.1)
        h.exchange()
        self.assertEqual(resp.status, StatusCode.DEADLINE_EXCEEDED)
        self.assertEqual(resp.message, b"context deadline exceeded")
        self.assertTrue(ctx.is_cancelled)
        self.assertEqual(self.successResultOf(cancelled).code, StatusCode.DEADLINE_EXCEEDED)

    def test_finished_call_cancels_timer(self) -> None:
        """A call that completes leaves no deadline timer behind."""
        h = self.harness(echo_registry(), idle_timeout=None)
        h.call(ECHO, Msg(), [(b"grpc-timeout", b"5S")])
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_malformed_timeout(self) -> None:
        """A malformed grpc-timeout is refused with HTTP 400 and INTERNAL."""
        h = self.harness(echo_registry())
        resp = h.call(ECHO, Msg(), [(b"grpc-timeout", b"18f6n")])
        self.assertEqual(resp.headers[b":status"], b"400")
        self.assertEqual(resp.status, StatusCode.INTERNAL)


class StreamingTests(HarnessCase):
    def test_server_stream(self) -> None:
        """A server-streaming handler's messages arrive in order, then OK when its Deferred fires."""
        r = Registry()

        def count(request: Msg, ctx: ServerContext, stream: ServerStream) -> Deferred[None]:
            for i in range(3):
                stream.send(Msg(service=f"{request.service}{i}"))
            return succeed(None)

        r.add_server_stream("/test.S/Count", Msg, count)
        resp = self.harness(r).call("/test.S/Count", Msg(service="n"))
        self.assertEqual(texts(resp.messages), ["n0", "n1", "n2"])
        self.assertEqual(resp.status, 0)

    def test_server_stream_stays_open_until_finish(self) -> None:
        """A streaming handler that returns None keeps the call open until stream.finish()."""
        r = Registry()
        streams: list[ServerStream] = []

        def hold(request: Msg, ctx: ServerContext, stream: ServerStream) -> None:
            streams.append(stream)
            stream.send(Msg(service="first"))

        r.add_server_stream("/test.S/Hold", Msg, hold)
        h = self.harness(r)
        resp = h.call("/test.S/Hold", Msg())
        self.assertEqual(texts(resp.messages), ["first"])
        self.assertIsNone(resp.status)
        streams[0].send(Msg(service="second"))
        streams[0].finish(GrpcError(StatusCode.ABORTED, "bye"))
        h.exchange()
        self.assertEqual(texts(resp.messages), ["first", "second"])
        self.assertEqual(resp.status, StatusCode.ABORTED)

    def test_client_stream(self) -> None:
        """A client-streaming handler gets each message and answers once after half-close."""
        r = Registry()

        def join(ctx: ServerContext, stream: ServerStream) -> Deferred[Msg]:
            parts: list[str] = []
            done: Deferred[Msg] = Deferred()
            stream.set_receiver(
                lambda m: parts.append(m.service),
                lambda: done.callback(Msg(service="+".join(parts))),
            )
            return done

        r.add_client_stream("/test.C/Join", Msg, join)
        h = self.harness(r)
        sid = h.start("/test.C/Join")
        for p in "abc":
            h.send(sid, Msg(service=p))
        self.assertIsNone(h.responses[sid].headers)
        h.end(sid)
        self.assertEqual(texts(h.responses[sid].messages), ["a+b+c"])
        self.assertEqual(h.responses[sid].status, 0)

    def test_bidi_echo_many_streams(self) -> None:
        """Many concurrent bidi streams on one connection each echo their own messages."""
        r = Registry()

        def bidi(ctx: ServerContext, stream: ServerStream) -> None:
            stream.set_receiver(lambda m: stream.send(Msg(service=m.service * 2)), stream.finish)

        r.add_bidi_stream("/test.B/Echo", Msg, bidi)
        h = self.harness(r)
        sids = [h.start("/test.B/Echo", flush=False) for _ in range(50)]
        for round_ in range(3):
            for sid in sids:
                h.send(sid, Msg(service=f"{sid}.{round_}"), flush=False)
            h.exchange()
        for sid in sids:
            self.assertEqual(texts(h.responses[sid].messages), [f"{sid}.{i}" * 2 for i in range(3)])
            self.assertIsNone(h.responses[sid].status)
        for sid in sids:
            h.client.end_stream(sid)
        h.exchange()
        self.assertEqual({h.responses[s].status for s in sids}, {0})
        self.assertEqual(h.proto._calls, {})

    def test_bidi_server_finishes_first(self) -> None:
        """A bidi call the server ends while the client is still open is reset with NO_ERROR after its trailers."""
        r = Registry()
        r.add_bidi_stream(
            "/test.B/One", Msg, lambda ctx, stream: stream.set_receiver(lambda m: stream.finish())
        )
        h = self.harness(r)
        sid = h.start("/test.B/One")
        h.send(sid, Msg())
        self.assertEqual(h.responses[sid].status, 0)
        self.assertEqual(h.responses[sid].reset, ErrorCodes.NO_ERROR)
        self.assertEqual(h.proto._calls, {})

    def test_messages_before_receiver_are_kept(self) -> None:
        """Messages that arrive before the handler sets its receiver are delivered when it does."""
        r = Registry()
        got: list[str] = []
        streams: list[ServerStream] = []
        r.add_bidi_stream("/test.B/Late", Msg, lambda ctx, stream: streams.append(stream))
        h = self.harness(r)
        sid = h.start("/test.B/Late")
        h.send(sid, Msg(service="a"))
        h.send(sid, Msg(service="b"))
        streams[0].set_receiver(lambda m: got.append(m.service))
        self.assertEqual(got, ["a", "b"])

    def test_slow_receiver_holds_window(self) -> None:
        """While on_message's Deferred is pending, the stream's window is not reopened; it is after."""
        r = Registry()
        pending: list[Deferred[None]] = []
        got: list[str] = []

        def slow(m: Msg) -> Deferred[None]:
            got.append(m.service)
            pending.append(Deferred())
            return pending[-1]

        r.add_bidi_stream("/test.B/Slow", Msg, lambda ctx, stream: stream.set_receiver(slow))
        h = self.harness(r)
        sid = h.start("/test.B/Slow")
        big = "x" * 300_000
        for _ in range(3):
            h.send(sid, Msg(service=big))
        window = h.client.local_flow_control_window(sid)
        self.assertEqual(len(got), 1)
        self.assertLess(window, (1 << 20) - 900_000)
        pending[0].callback(None)
        pending[1].callback(None)
        h.exchange()
        self.assertEqual(len(got), 3)
        self.assertEqual(h.client.local_flow_control_window(sid), window)
        pending[2].callback(None)
        h.exchange()
        self.assertGreater(h.client.local_flow_control_window(sid), window)

    def test_receiver_error_ends_call(self) -> None:
        """An exception from on_message ends the call with its status."""
        r = Registry()

        def bad(m: Msg) -> None:
            raise GrpcError(StatusCode.INVALID_ARGUMENT, "bad " + m.service)

        r.add_bidi_stream("/test.B/Bad", Msg, lambda ctx, stream: stream.set_receiver(bad))
        h = self.harness(r)
        sid = h.start("/test.B/Bad")
        h.send(sid, Msg(service="x"))
        self.assertEqual(h.responses[sid].status, StatusCode.INVALID_ARGUMENT)
        self.assertEqual(h.responses[sid].message, b"bad x")


class FlowControlTests(HarnessCase):
    def setUp(self) -> None:
        self.streams: list[ServerStream] = []
        r = Registry()
        r.add_server_stream(
            "/test.S/Push", Msg, lambda request, ctx, stream: self.streams.append(stream)
        )
        self.h = self.harness(r, auto_ack=False)
        self.sid = self.h.call("/test.S/Push", Msg()) and max(self.h.responses)

    def test_send_blocks_until_window_update(self) -> None:
        """With the client's window shut, send Deferreds wait; a WINDOW_UPDATE fires them."""
        h, stream = self.h, self.streams[0]
        chunk = Msg(service="y" * 20_000)
        results = [stream.send(chunk) for _ in range(8)]
        h.exchange()
        fired = [d.called for d in results]
        self.assertEqual(fired[:3], [True, True, True])
        self.assertFalse(any(fired[4:]))
        received = len(h.responses[self.sid].data)
        self.assertEqual(received, 65535)
        h.client.increment_flow_control_window(1 << 20)
        h.client.increment_flow_control_window(1 << 20, self.sid)
        h.exchange()
        self.assertTrue(all(d.called for d in results))
        self.assertEqual(len(h.responses[self.sid].messages), 8)

    def test_large_message_split_into_frames(self) -> None:
        """A message larger than the peer's max frame size goes out in several DATA frames."""
        h, stream = self.h, self.streams[0]
        h.client.increment_flow_control_window(1 << 20)
        h.client.increment_flow_control_window(1 << 20, self.sid)
        h.exchange()
        stream.send(Msg(service="z" * 100_000))
        h.exchange()
        self.assertEqual(texts(h.responses[self.sid].messages), ["z" * 100_000])

    def test_transport_pause_holds_output(self) -> None:
        """While the transport has paused us, output waits and reading is paused; resume writes it."""
        h, stream = self.h, self.streams[0]
        h.proto.pauseProducing()
        self.assertEqual(h.transport.producerState, "paused")
        stream.send(Msg(service="held"))
        h.exchange()
        self.assertEqual(h.responses[self.sid].messages, [])
        h.proto.resumeProducing()
        self.assertEqual(h.transport.producerState, "producing")
        h.exchange()
        self.assertEqual(texts(h.responses[self.sid].messages), ["held"])

    def test_send_buffer_threshold(self) -> None:
        """send fires at once while the buffered bytes are within SEND_BUFFER_BYTES."""
        stream = self.streams[0]
        d = stream.send(Msg(service="a" * (SEND_BUFFER_BYTES - 10)))
        self.assertTrue(d.called)
        self.assertFalse(stream.send(Msg(service="b" * 100)).called)


class CancellationTests(HarnessCase):
    def setUp(self) -> None:
        self.ctxs: list[ServerContext] = []
        self.streams: list[ServerStream] = []
        r = Registry()

        def hold(ctx: ServerContext, stream: ServerStream) -> Deferred[None]:
            self.ctxs.append(ctx)
            self.streams.append(stream)
            return Deferred()

        r.add_bidi_stream("/test.B/Hold", Msg, hold)
        r.add_unary(ECHO, Msg, echo)
        self.pending: list[Deferred[Msg]] = []
        r.add_unary("/test.Echo/Later", Msg, lambda request, ctx: self._pending())
        self.h = self.harness(r, auto_ack=False)

    def _pending(self) -> Deferred[Msg]:
        self.pending.append(Deferred())
        return self.pending[-1]

    def test_rst_stream_cancels(self) -> None:
        """RST_STREAM cancels the call: ctx fires, pending sends are released, later sends fail."""
        h = self.h
        sid = h.start("/test.B/Hold")
        ctx, stream = self.ctxs[0], self.streams[0]
        cancelled = ctx.when_cancelled()
        blocked = [stream.send(Msg(service="q" * 40_000)) for _ in range(5)][-1]
        self.assertFalse(blocked.called)
        h.client.reset_stream(sid, ErrorCodes.CANCEL)
        h.exchange()
        self.assertTrue(ctx.is_cancelled)
        self.assertEqual(self.successResultOf(cancelled).code, StatusCode.CANCELLED)
        self.assertIsNone(self.successResultOf(blocked))
        self.failureResultOf(stream.send(Msg()), GrpcError)
        self.assertEqual(h.proto._calls, {})

    def test_connection_lost_cancels(self) -> None:
        """Losing the connection cancels every call."""
        h = self.h
        h.start("/test.B/Hold")
        h.start("/test.B/Hold")
        h.proto.connectionLost()
        self.assertEqual([c.is_cancelled for c in self.ctxs], [True, True])

    def test_shutdown_goaway(self) -> None:
        """shutdown sends GOAWAY, refuses new streams, lets unary calls finish, then closes."""
        h = self.h
        sid = h.call("/test.Echo/Later", Msg(service="inflight")) and max(h.responses)
        done = h.factory.shutdown(10)
        late = h.start(ECHO, end=True)
        self.assertIsNotNone(h.goaway)
        self.assertEqual(h.goaway.last_stream_id, sid)
        self.assertEqual(h.goaway.error_code, ErrorCodes.NO_ERROR)
        self.assertEqual(h.responses[late].reset, ErrorCodes.REFUSED_STREAM)
        self.assertFalse(h.transport.disconnecting)
        self.pending[0].callback(Msg(service="finished"))
        h.exchange()
        self.assertEqual(texts(h.responses[sid].messages), ["finished"])
        self.assertTrue(h.transport.disconnecting)
        self.assertNoResult(done)
        h.proto.connectionLost()
        self.successResultOf(done)
        self.assertIsNone(h.factory.buildProtocol(PEER))

    def test_shutdown_grace_cancels_streams(self) -> None:
        """Streams still open when the grace period ends are cancelled and the connection closed."""
        h = self.h
        h.start("/test.B/Hold")
        done = h.factory.shutdown(5)
        h.clock.advance(4.9)
        self.assertFalse(self.ctxs[0].is_cancelled)
        h.clock.advance(0.1)
        self.assertTrue(self.ctxs[0].is_cancelled)
        self.assertTrue(h.transport.disconnecting)
        h.clock.advance(10)
        h.proto.connectionLost()
        self.successResultOf(done)


class TimeoutTests(HarnessCase):
    def test_preface_timeout(self) -> None:
        """A connection that never sends the HTTP/2 preface is aborted."""
        from twisted.internet.task import Clock
        from twisted.internet.testing import StringTransport

        clock = Clock()
        proto = self.factory(Registry(), clock, preface_timeout=3).buildProtocol(PEER)
        transport = StringTransport()
        proto.makeConnection(transport)
        clock.advance(3)
        self.assertTrue(transport.disconnected)

    def test_preface_seen_cancels_timer(self) -> None:
        """Once the client's SETTINGS arrive the preface timer is gone."""
        h = self.harness(echo_registry(), preface_timeout=3)
        h.clock.advance(10)
        self.assertFalse(h.transport.disconnecting)

    def test_idle_timeout(self) -> None:
        """With idle_timeout set, a connection without calls that long gets GOAWAY and closes."""
        h = self.harness(echo_registry(), idle_timeout=60)
        h.clock.advance(30)
        h.call(ECHO, Msg())
        h.clock.advance(59)
        self.assertFalse(h.transport.disconnecting)
        h.clock.advance(1)
        h.exchange()
        self.assertTrue(h.transport.disconnecting)
        self.assertIsNotNone(h.goaway)

    def test_protocol_error_closes(self) -> None:
        """Bytes that are not HTTP/2 close the connection."""
        from twisted.internet.task import Clock
        from twisted.internet.testing import StringTransport

        proto = self.factory(Registry(), Clock()).buildProtocol(PEER)
        transport = StringTransport()
        proto.makeConnection(transport)
        proto.dataReceived(b"GET / HTTP/1.1\r\n\r\n")
        self.assertTrue(transport.disconnecting)


class HandoffTests(HarnessCase):
    def test_sniffed_connection(self) -> None:
        """A wrapper that read the 24-byte preface first can hand it over in dataReceived."""
        from h2.config import H2Configuration
        from h2.connection import H2Connection
        from twisted.internet.task import Clock
        from twisted.internet.testing import StringTransport

        factory = self.factory(echo_registry(), Clock())
        proto = factory.buildProtocol(PEER)
        transport = StringTransport()
        proto.makeConnection(transport)
        client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        client.initiate_connection()
        client.send_headers(
            1,
            [
                (b":method", b"POST"),
                (b":scheme", b"http"),
                (b":path", ECHO.encode()),
                (b":authority", b"x"),
                (b"content-type", b"application/grpc"),
            ],
        )
        client.send_data(1, b"\x00\x00\x00\x00\x03\n\x01z", end_stream=True)
        wire = client.data_to_send()
        self.assertEqual(wire[:24], b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        proto.dataReceived(wire[:24])
        proto.dataReceived(wire[24:])
        events = client.receive_data(transport.value())
        trailers = [e for e in events if type(e).__name__ == "TrailersReceived"]
        self.assertEqual(dict(trailers[0].headers)[b"grpc-status"], b"0")


UnaryFallbackTests = fallback_twin(UnaryTests)
MetadataFallbackTests = fallback_twin(MetadataTests)
DeadlineFallbackTests = fallback_twin(DeadlineTests)
StreamingFallbackTests = fallback_twin(StreamingTests)
FlowControlFallbackTests = fallback_twin(FlowControlTests)
CancellationFallbackTests = fallback_twin(CancellationTests)
TimeoutFallbackTests = fallback_twin(TimeoutTests)
HandoffFallbackTests = fallback_twin(HandoffTests)
