"""One gRPC call: what its handler sees (`ServerContext`, `ServerStream`) and
the state behind them (`Call`), apart from HTTP/2.

`Call` talks to its connection through a `CallSink`: it queues framed output
and asks to be written (``call_ready``), and returns flow-control credit for
the request bytes its handler has taken (``acknowledge``). The connection
decides when bytes go out.
"""

from __future__ import annotations

import gzip
from collections import deque
from collections.abc import Callable, Iterable
from inspect import iscoroutine
from typing import Any, Protocol

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from etcd_twisted.grpc.framing import MessageDecoder, encode_message
from etcd_twisted.grpc.metadata import Metadata, MetadataValue, encode_metadata
from etcd_twisted.grpc.service import Method, MethodKind
from etcd_twisted.grpc.status import GrpcError, StatusCode, percent_encode

__all__ = ["Call", "CallSink", "ServerContext", "ServerStream"]

log = Logger()

#: `ServerStream.send` fires at once while a call has fewer bytes than this
#: waiting for the peer's flow-control window, later otherwise.
SEND_BUFFER_BYTES = 64 * 1024

_GZIP_HEADER = (b"grpc-encoding", b"gzip")

#: The trailers of a successful call (shared: never mutate).
OK_TRAILERS = [(b"grpc-status", b"0")]


class CallSink(Protocol):
    """What a `Call` needs from its connection."""

    def call_ready(self, call: Call) -> None:
        """``call`` has output or trailers to write."""

    def acknowledge(self, stream_id: int, size: int) -> None:
        """The handler has taken ``size`` flow-controlled bytes of the stream."""

    def peer_certificate(self) -> Any:
        """The client's TLS certificate (``OpenSSL.crypto.X509``), or None."""


class ServerContext:
    """What a handler knows about its call.

    ``metadata`` is the request's `Metadata`; ``deadline`` is in the clock's
    seconds (``None`` when the client set no ``grpc-timeout``); ``peer`` is the
    client's address.
    """

    __slots__ = ("_call", "method", "metadata", "peer", "deadline", "_clock")

    def __init__(
        self,
        call: Call,
        method: str,
        metadata: Metadata,
        peer: IAddress | None,
        deadline: float | None,
        clock: IReactorTime,
    ) -> None:
        self._call = call
        self.method = method
        self.metadata = metadata
        self.peer = peer
        self.deadline = deadline
        self._clock = clock

    def time_remaining(self) -> float | None:
        """Seconds until the deadline, or ``None`` without one."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - self._clock.seconds())

    @property
    def is_cancelled(self) -> bool:
        """True once the call was reset, timed out, or lost its connection."""
        return self._call.cancel_reason is not None

    def when_cancelled(self) -> Deferred[GrpcError]:
        """A Deferred that fires with the reason if the call is cancelled
        (never, if it completes)."""
        return self._call.when_cancelled()

    def peer_certificate(self) -> Any:
        """The certificate the client presented in the TLS handshake (``OpenSSL.crypto.X509``,
        verified by that handshake), or None on a plaintext connection or without one."""
        return self._call._sink.peer_certificate()

    def set_initial_metadata(self, metadata: Iterable[tuple[str, MetadataValue]]) -> None:
        """Metadata for the response headers; before the first message only."""
        if self._call.headers_sent:
            raise RuntimeError("response headers already sent")
        call = self._call
        call.initial_metadata = ([_GZIP_HEADER] if call.compress else []) + encode_metadata(
            metadata
        )

    def set_trailing_metadata(self, metadata: Iterable[tuple[str, MetadataValue]]) -> None:
        """Metadata to send with the status at the end of the call."""
        self._call.trailing_metadata = list(metadata)


class ServerStream:
    """A streaming call's message channel, as its handler sees it."""

    __slots__ = ("_call",)

    def __init__(self, call: Call) -> None:
        self._call = call

    def send(self, message: Any) -> Deferred[None]:
        """Queue a response message.

        The Deferred fires at once while little is buffered, else when the peer
        has opened its flow-control window enough (or the call is cancelled:
        watch ``ctx``). Sending on a finished or cancelled call fails with
        `GrpcError`.
        """
        return self._call.send(message)

    def finish(self, error: GrpcError | None = None) -> None:
        """End the call: OK, or ``error``'s status. Later calls do nothing."""
        self._call.finish(error)

    def set_receiver(
        self, on_message: Callable[[Any], Any], on_end: Callable[[], Any] | None = None
    ) -> None:
        """Deliver request messages to ``on_message`` and the client's half-close
        to ``on_end`` (client- and bidi-streaming calls).

        If ``on_message`` returns a Deferred, the next message waits for it, and
        the stream's flow-control window stays shut meanwhile. An exception (or
        failed Deferred) from either callback ends the call with that error.
        """
        self._call.set_receiver(on_message, on_end)


class Call:
    """The state of one call on one HTTP/2 stream."""

    __slots__ = (
        "stream_id",
        "_sink",
        "_method",
        "_decoder",
        "ctx",
        "_inbox",
        "_on_message",
        "_on_end",
        "_blocked",
        "_pumping",
        "_held",
        "input_ended",
        "_end_delivered",
        "out",
        "out_bytes",
        "headers_sent",
        "initial_metadata",
        "compress",
        "trailing_metadata",
        "trailers",
        "_waiters",
        "closed",
        "cancel_reason",
        "_cancel_waiters",
        "_timer",
    )

    def __init__(
        self,
        sink: CallSink,
        stream_id: int,
        method: Method,
        decoder: MessageDecoder,
        metadata: Metadata,
        peer: IAddress | None,
        clock: IReactorTime,
        timeout: float | None,
        compress: bool = False,
    ) -> None:
        self.stream_id = stream_id
        self._sink = sink
        self._method = method
        self._decoder = decoder
        deadline = None if timeout is None else clock.seconds() + timeout
        self.ctx = ServerContext(self, method.path, metadata, peer, deadline, clock)
        self._inbox: deque[Any] = deque()
        self._on_message: Callable[[Any], Any] | None = None
        self._on_end: Callable[[], Any] | None = None
        self._blocked = False
        self._pumping = False
        self._held = 0
        self.input_ended = False
        self._end_delivered = False
        #: Framed response bytes not yet handed to HTTP/2.
        self.out: list[bytes] = []
        self.out_bytes = 0
        self.headers_sent = False
        #: Answer gzip-compressed (the request was): grpc-go answers in the request's
        #: encoding. Its ``grpc-encoding`` header leads the initial metadata.
        self.compress = compress
        self.initial_metadata: list[tuple[bytes, bytes]] = [_GZIP_HEADER] if compress else []
        self.trailing_metadata: list[tuple[str, MetadataValue]] = []
        #: The trailing headers, once the call has ended.
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self._waiters: list[Deferred[None]] = []
        #: True once no more messages may be sent (finished or cancelled).
        self.closed = False
        self.cancel_reason: GrpcError | None = None
        self._cancel_waiters: list[Deferred[GrpcError]] = []
        self._timer: IDelayedCall | None = None
        if timeout is not None:
            self._timer = clock.callLater(timeout, self._expire)

    # -- from the connection

    def start(self) -> None:
        """Run a client- or bidi-streaming handler as soon as the call opens."""
        self._invoke(self.ctx, ServerStream(self))

    def data_received(self, data: bytes, size: int) -> None:
        """Request bytes arrived; ``size`` is their flow-controlled length."""
        if self.closed:
            self._sink.acknowledge(self.stream_id, size)
            return
        try:
            raws = self._decoder.feed(data)
        except GrpcError as e:
            self._sink.acknowledge(self.stream_id, size)
            self.finish(e)
            return
        if not self._method.streams_requests:
            self._sink.acknowledge(self.stream_id, size)
            self._inbox.extend(raws)
            return
        self._held += size
        if raws:
            deserialize = self._method.deserialize
            for raw in raws:
                try:
                    self._inbox.append(deserialize(raw))
                except Exception as e:
                    self.finish(_unmarshal_error(e))
                    return
        self._pump()

    def end_of_input(self) -> None:
        """The client half-closed the stream."""
        self.input_ended = True
        if self.closed:
            return
        if self._decoder.has_partial:
            # grpc-go's reader hits the end of the stream inside a message (io.ErrUnexpectedEOF).
            self.finish(GrpcError(StatusCode.UNKNOWN, "unexpected EOF"))
            return
        if self._method.streams_requests:
            self._pump()
            return
        if len(self._inbox) != 1:
            self.finish(
                GrpcError(
                    StatusCode.INTERNAL,
                    f"grpc: expected one request message, got {len(self._inbox)}",
                )
            )
            return
        try:
            request = self._method.deserialize(self._inbox.pop())
        except Exception as e:
            self.finish(_unmarshal_error(e))
            return
        if self._method.kind is MethodKind.UNARY:
            self._invoke(request, self.ctx)
        else:
            self._invoke(request, self.ctx, ServerStream(self))

    def cancel(self, reason: GrpcError) -> None:
        """The stream is gone (reset, connection lost, shutdown): nothing more is
        written; pending sends fire and cancellation watchers fire."""
        self.out = []
        self.out_bytes = 0
        self._abandon(reason)

    def written(self) -> None:
        """The connection wrote some of ``out``: wake senders if it drained."""
        if self._waiters and self.out_bytes <= SEND_BUFFER_BYTES:
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                d.callback(None)

    def done(self) -> None:
        """The trailers are written; the call is over."""
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    # -- from the handler

    def send(self, message: Any) -> Deferred[None]:
        if self.closed:
            return fail(self.cancel_reason or GrpcError(StatusCode.INTERNAL, "call is finished"))
        self._queue(message)
        if self.out_bytes <= SEND_BUFFER_BYTES:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiters.append(d)
        return d

    def _queue(self, message: Any) -> None:
        payload = message.SerializeToString()
        if self.compress:
            data = encode_message(gzip.compress(payload, mtime=0), compressed=True)
        else:
            data = encode_message(payload)
        self.out.append(data)
        self.out_bytes += len(data)
        self._sink.call_ready(self)

    def finish(self, error: GrpcError | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        if error is None and not self.trailing_metadata:
            self.trailers = OK_TRAILERS
        else:
            self.trailers = _trailers(error, self.trailing_metadata)
        self._sink.call_ready(self)

    def set_receiver(
        self, on_message: Callable[[Any], Any], on_end: Callable[[], Any] | None
    ) -> None:
        if not self._method.streams_requests:
            raise RuntimeError(f"{self._method.path} does not stream requests")
        self._on_message = on_message
        self._on_end = on_end
        self._pump()

    def when_cancelled(self) -> Deferred[GrpcError]:
        if self.cancel_reason is not None:
            return succeed(self.cancel_reason)
        d: Deferred[GrpcError] = Deferred()
        self._cancel_waiters.append(d)
        return d

    # -- internals

    def _expire(self) -> None:
        self._timer = None
        if self.closed:
            return
        reason = GrpcError(StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded")
        self.trailers = _trailers(reason, self.trailing_metadata)
        self._abandon(reason)
        self._sink.call_ready(self)

    def _abandon(self, reason: GrpcError) -> None:
        self.closed = True
        if self.cancel_reason is not None:
            return
        self.cancel_reason = reason
        self.done()
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)
        watchers, self._cancel_waiters = self._cancel_waiters, []
        for w in watchers:
            w.callback(reason)

    def _pump(self) -> None:
        """Deliver queued messages while the receiver keeps up; then return the
        stream's flow-control credit and report the half-close."""
        if self._pumping or self._on_message is None:
            return
        self._pumping = True
        try:
            while self._inbox and not self._blocked and not self.closed:
                try:
                    result = self._on_message(self._inbox.popleft())
                except Exception:
                    self._handler_failed(Failure())
                    return
                if isinstance(result, Deferred):
                    self._blocked = True
                    result.addCallbacks(self._unblock, self._handler_failed)
            if self._blocked or self.closed:
                return
            if self._held:
                self._sink.acknowledge(self.stream_id, self._held)
                self._held = 0
            if self.input_ended and not self._end_delivered:
                self._end_delivered = True
                if self._on_end is not None:
                    try:
                        self._on_end()
                    except Exception:
                        self._handler_failed(Failure())
        finally:
            self._pumping = False

    def _unblock(self, _: object) -> None:
        self._blocked = False
        self._pump()

    def _invoke(self, *args: Any) -> None:
        try:
            result = self._method.handler(*args)
        except Exception:
            self._handler_failed(Failure())
            return
        if iscoroutine(result):
            result = Deferred.fromCoroutine(result)
        if isinstance(result, Deferred):
            if result.called and not result.paused and not isinstance(result.result, Failure):
                # Fired already (a synchronous handler behind maybeDeferred): take the
                # value without another round of callbacks.
                self._handler_returned(result.result)
            else:
                result.addCallbacks(self._handler_returned, self._handler_failed)
        elif result is not None or self._method.kind is MethodKind.UNARY:
            self._handler_returned(result)

    def _handler_returned(self, result: Any) -> None:
        if self.closed:
            return
        if self._method.kind in (MethodKind.UNARY, MethodKind.CLIENT_STREAM):
            if result is None:
                self.finish(GrpcError(StatusCode.INTERNAL, "grpc: handler returned no response"))
                return
            try:
                self._queue(result)
            except Exception:
                self._handler_failed(Failure())
                return
        self.finish()

    def _handler_failed(self, failure: Failure) -> None:
        error = failure.value
        if isinstance(error, GrpcError):
            status = error
        elif isinstance(error, CancelledError):
            status = GrpcError(StatusCode.CANCELLED, "context canceled")
        else:
            log.failure("handler of {method} failed", failure, method=self._method.path)
            status = GrpcError(StatusCode.UNKNOWN, str(error))
        self.finish(status)


def _unmarshal_error(e: Exception) -> GrpcError:
    return GrpcError(StatusCode.INTERNAL, f"grpc: error unmarshalling request: {e}")


def _trailers(
    error: GrpcError | None, metadata: list[tuple[str, MetadataValue]]
) -> list[tuple[bytes, bytes]]:
    if error is None:
        trailers = list(OK_TRAILERS)
    else:
        trailers = [(b"grpc-status", b"%d" % error.code)]
        if error.message:
            trailers.append((b"grpc-message", percent_encode(error.message)))
        metadata = metadata + error.trailing_metadata
    trailers.extend(encode_metadata(metadata))
    return trailers
