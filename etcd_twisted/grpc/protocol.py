"""gRPC over HTTP/2: the connection protocol and its factory.

`GrpcProtocol` passes received bytes through an `InputGuard` (frame and header
block sizes checked at the frame header, a client's GOAWAY and a stream's
WINDOW_UPDATE 0 taken out), feeds the whole frames to an ``h2`` state machine,
turns its events into `Call` steps, and writes back whatever the calls queued:
once per ``dataReceived`` batch, or once per reactor turn for output produced
later. It admits a stream in O(1) (h2's own check of MAX_CONCURRENT_STREAMS walks
every open stream) and refuses streams over the limit with REFUSED_STREAM.

The fast path, used only with the h2, hpack and hyperframe releases it was checked
against (`FAST_PATH_VERSIONS`), reaches below h2's public API: `FrameReader` reads
the plain frames of unary calls itself and leaves h2 as it would have, a whole OK
answer goes out as ready-made frames (``_write_whole_response``), and HPACK
blocks are cached (``hpack_cache``). With any other release the protocol uses
h2's public API only, as Twisted's ``_http2.py`` does.
Flow control runs both ways: a call's output leaves only as the peer's window
allows (its ``send`` Deferreds wait meanwhile), and a streaming call's window
is reopened only as its handler takes the messages.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from importlib import metadata as package_metadata
from typing import Any, NamedTuple

from h2.config import H2Configuration
from h2.connection import ConnectionInputs, ConnectionState, H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    DataReceived,
    PingReceived,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError, StreamClosedError
from h2.settings import SettingCodes, Settings
from h2.stream import StreamClosedBy, StreamInputs, StreamState
from hyperframe.frame import GoAwayFrame
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IPushProducer,
    IReactorTime,
    ISSLTransport,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Site
from zope.interface import implementer

from etcd_twisted.grpc.call import OK_TRAILERS, Call
from etcd_twisted.grpc.framing import MessageDecoder
from etcd_twisted.grpc.guard import FrameError, InputGuard, PeerGoAway, Preface, ZeroWindowUpdate
from etcd_twisted.grpc.hpack_cache import CachingDecoder, CachingEncoder, encode_static
from etcd_twisted.grpc.keepalive import TOO_MANY_PINGS, Keepalive, KeepalivePolicy
from etcd_twisted.grpc.metadata import Metadata, parse_timeout
from etcd_twisted.grpc.receive import FrameReader, RequestData, RequestHeaders
from etcd_twisted.grpc.service import Method, Registry
from etcd_twisted.grpc.status import GrpcError, StatusCode, percent_encode
from etcd_twisted.grpc.web import WebStreams

__all__ = ["DEFAULT_MAX_CONCURRENT_STREAMS", "FAST_PATH_VERSIONS", "GrpcFactory", "GrpcProtocol"]

log = Logger()

#: The releases whose internals the fast path touches, as verified.
FAST_PATH_VERSIONS = {"h2": "4.4.1", "hpack": "4.2.0", "hyperframe": "6.1.0"}


def fast_path_supported() -> bool:
    """Whether the installed h2, hpack and hyperframe are the verified releases."""
    try:
        return all(package_metadata.version(n) == v for n, v in FAST_PATH_VERSIONS.items())
    except package_metadata.PackageNotFoundError:
        return False


FAST_PATH = fast_path_supported()

#: Per-stream receive window: what a client may send on a stream before the
#: handler takes it.
STREAM_WINDOW = 1 << 20
#: Connection receive window, shared by all streams.
CONNECTION_WINDOW = 1 << 26
#: Streams one connection may have open (etcd's ``--max-concurrent-streams``,
#: whose default is unlimited): an open stream costs a few KiB, so a connection
#: holds at most some tens of MB; clients queue calls beyond it.
DEFAULT_MAX_CONCURRENT_STREAMS = 10000
#: Largest header block (HEADERS and CONTINUATION bytes) accepted; h2 advertises
#: the same as SETTINGS_MAX_HEADER_LIST_SIZE.
MAX_HEADER_BLOCK = 1 << 16
#: Seconds a connection may stay without calls before it gets GOAWAY and is closed
#: (grpc-go's MaxConnectionIdle; etcd leaves it unlimited). Clients reconnect when
#: they next call; a connection with a watch or keep-alive stream is never idle.
DEFAULT_IDLE_TIMEOUT = 300.0
#: Seconds after the connection is routed to HTTP/2 for the client's preface and
#: SETTINGS (grpc-go's ConnectionTimeout is 120 s for the whole handshake).
DEFAULT_PREFACE_TIMEOUT = 10.0
#: Frames read in one reactor turn; more wait for the next turn (with the socket
#: not read meanwhile), so that a burst of small frames cannot hold the reactor.
FRAMES_PER_TURN = 64
#: Seconds a connection gets to close cleanly before it is aborted.
ABORT_TIMEOUT = 5.0

_RESPONSE_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]
#: The HPACK blocks of the usual response headers and trailers (see ``hpack_cache``).
_RESPONSE_BLOCK = encode_static(_RESPONSE_HEADERS)
_OK_BLOCK = encode_static(OK_TRAILERS)
_STREAM_ID = struct.Struct(">I")
_DATA, _HEADERS = 0x0, 0x1
_END_STREAM, _END_HEADERS = 0x1, 0x4


def _frame_header(length: int, kind: int, flags: int, stream_id: bytes) -> bytes:
    """The 9-byte HTTP/2 frame header."""
    return length.to_bytes(3, "big") + bytes((kind, flags)) + stream_id


#: The usual response blocks' frame headers, less the stream id.
_RESPONSE_HEAD = _frame_header(len(_RESPONSE_BLOCK), _HEADERS, _END_HEADERS, b"")
_OK_HEAD = _frame_header(len(_OK_BLOCK), _HEADERS, _END_HEADERS | _END_STREAM, b"")

_DEFAULT_WINDOW = 65535


def _is_grpc_content_type(value: bytes | None) -> bool:
    if value is None or not value.startswith(b"application/grpc"):
        return False
    return len(value) == 16 or value[16] in b"+;"


class _OwnStreamLimit(Settings):
    """h2's local settings, except that h2 does not enforce MAX_CONCURRENT_STREAMS
    (it would end the connection, and count by walking every stream): the
    protocol refuses streams over the limit itself."""

    @property
    def max_concurrent_streams(self) -> int:
        return 2**32 - 1

    @max_concurrent_streams.setter
    def max_concurrent_streams(self, value: int) -> None:
        self[SettingCodes.MAX_CONCURRENT_STREAMS] = value


class _Request(NamedTuple):
    """What a call's request headers ask for (shared by calls that repeat them)."""

    method: Method
    encoding: str | None
    timeout: float | None
    metadata: Metadata


@implementer(IPushProducer)
class GrpcProtocol(Protocol):
    """One HTTP/2 connection carrying gRPC calls."""

    def __init__(self, factory: GrpcFactory) -> None:
        self._factory = factory
        self._clock = factory.clock
        self._h2 = H2Connection(
            H2Configuration(
                client_side=False,
                header_encoding=None,
                # We build our headers correctly and check the few request
                # headers we use ourselves; h2's per-header checks cost ~10%.
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
                validate_inbound_headers=False,
                normalize_inbound_headers=False,
            )
        )
        # We refuse streams over the limit ourselves (h2 would end the connection).
        self._h2.local_settings = _OwnStreamLimit(
            client=False, initial_values=dict(self._h2.local_settings)
        )
        self._guard = InputGuard(max_header_block=MAX_HEADER_BLOCK)
        self._fast = factory.fast_path
        self._receive: Callable[[bytes], list] = self._h2.receive_data
        if self._fast:
            # Our usual response blocks are constants, and repeated request blocks decode once.
            self._h2.encoder = CachingEncoder(
                [_RESPONSE_HEADERS, OK_TRAILERS, _RESPONSE_HEADERS + OK_TRAILERS]
            )
            self._h2.decoder = CachingDecoder()
            self._receive = FrameReader(self._h2).receive
        self._peer: IAddress | None = None
        self._calls: dict[int, Call] = {}
        self._ready: dict[int, Call] = {}
        self._blocked: dict[int, Call] = {}
        self._in_receive = False
        self._flush_pending = False
        self._paused = False
        self._input_held = False
        self._lost = False
        self._goaway_sent = False
        self._peer_gone = False
        self._closing = False
        self._lost_waiters: list[Deferred[None]] = []
        self._preface_timer: IDelayedCall | None = None
        self._idle_timer: IDelayedCall | None = None
        self._idle_since = 0.0
        self._grace_timer: IDelayedCall | None = None
        self._abort_timer: IDelayedCall | None = None
        #: Streams that are not gRPC calls, when the factory has a web site for them.
        self._web: WebStreams | None = None
        self._keepalive: Keepalive | None = None
        self._dispatch: dict[type, Callable] = {
            DataReceived: self._data_received,
            RequestReceived: self._request_received,
            RequestHeaders: self._request_headers,
            RequestData: self._request_data,
            StreamEnded: self._stream_ended,
            StreamReset: self._stream_reset,
            WindowUpdated: self._window_opened,
            RemoteSettingsChanged: self._settings_changed,
            PingReceived: self._ping_received,
        }

    # -- IProtocol

    def connectionMade(self) -> None:
        self._factory._connections.add(self)
        self._peer = self.transport.getPeer()
        if ITCPTransport.providedBy(self.transport):
            self.transport.setTcpNoDelay(True)
        self.transport.registerProducer(self, True)
        h2 = self._h2
        h2.initiate_connection()
        h2.update_settings(
            {
                SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                SettingCodes.MAX_CONCURRENT_STREAMS: self._factory.max_concurrent_streams,
            }
        )
        h2.increment_flow_control_window(CONNECTION_WINDOW - _DEFAULT_WINDOW)
        self.transport.write(h2.data_to_send())
        if self._factory.web is not None:
            self._web = WebStreams(
                self._factory.web,
                h2,
                self.acknowledge,
                self._schedule_flush,
                self._peer,
                self.transport.getHost(),
                ISSLTransport.providedBy(self.transport),
                getattr(self.transport, "getPeerCertificate", lambda: None),
            )
        self._preface_timer = self._clock.callLater(
            self._factory.preface_timeout, self._preface_expired
        )
        if self._factory.keepalive is not None:
            self._keepalive = Keepalive(
                self._factory.keepalive,
                self._clock,
                self._send_keepalive_ping,
                self._too_many_pings,
                self._keepalive_expired,
            )
            self._keepalive.start()
        self._became_idle()

    def dataReceived(self, data: bytes) -> None:
        if self._lost or self._closing:
            return
        if self._keepalive is not None:
            self._keepalive.read()
        if type(data) is not bytes:
            data = bytes(data)
        dispatch = self._dispatch
        self._in_receive = True
        try:
            for item in self._guard.receive(data, FRAMES_PER_TURN):
                if type(item) is bytes:
                    for event in self._receive(item):
                        handler = dispatch.get(type(event))
                        if handler is not None:
                            handler(event)
                elif isinstance(item, Preface):
                    self._h2.receive_data(item)
                elif isinstance(item, PeerGoAway):
                    self._peer_goaway(item)
                elif isinstance(item, ZeroWindowUpdate):
                    self._zero_window_update(item.stream_id)
                if self._closing:
                    return
        except FrameError as e:
            log.info("HTTP/2 frame error from {peer}: {error}", peer=self._peer, error=e)
            self._send_goaway(e.code)
            self._close(abort=False)
            return
        except ProtocolError as e:
            log.info("HTTP/2 protocol error from {peer}: {error}", peer=self._peer, error=e)
            self._write_pending()
            self._close(abort=False)
            return
        finally:
            self._in_receive = False
        self._flush()
        if self._guard.backlog:
            if not self._input_held:
                self._input_held = True
                self.transport.pauseProducing()
                self._clock.callLater(0, self._read_backlog)

    def _read_backlog(self) -> None:
        """Read the frames a burst left for this turn; read the socket again once done."""
        if self._lost or self._closing:
            return
        self._input_held = False
        self.dataReceived(b"")
        if not self._input_held and not self._paused:
            self.transport.resumeProducing()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = True
        self._factory._connections.discard(self)
        for timer in (self._preface_timer, self._idle_timer, self._grace_timer, self._abort_timer):
            if timer is not None and timer.active():
                timer.cancel()
        calls, self._calls = self._calls, {}
        self._ready.clear()
        self._blocked.clear()
        error = GrpcError(StatusCode.CANCELLED, "context canceled: connection lost")
        for call in calls.values():
            call.cancel(error)
        waiters, self._lost_waiters = self._lost_waiters, []
        for d in waiters:
            d.callback(None)
        if self._web is not None:
            self._web.connection_lost(reason)
        if self._keepalive is not None:
            self._keepalive.stop()

    # -- IPushProducer (the transport's write buffer)

    def pauseProducing(self) -> None:
        """The peer is not reading: hold output and stop reading requests."""
        self._paused = True
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self._paused = False
        if not self._input_held:
            self.transport.resumeProducing()
        self._flush()

    def stopProducing(self) -> None:
        self._paused = True

    # -- CallSink

    def call_ready(self, call: Call) -> None:
        """Queue ``call`` for writing at the end of this batch or reactor turn."""
        self._ready[call.stream_id] = call
        self._schedule_flush()

    def acknowledge(self, stream_id: int, size: int) -> None:
        """Return flow-control credit for ``size`` bytes the handler took."""
        if size and not self._lost:
            self._h2.acknowledge_received_data(size, stream_id)
            self._schedule_flush()

    def peer_certificate(self) -> Any:
        """The client's certificate on a TLS connection (``getPeerCertificate``), else None."""
        get = getattr(self.transport, "getPeerCertificate", None)
        return None if get is None else get()

    # -- shutdown

    def shutdown(self, grace: float) -> Deferred[None]:
        """Send GOAWAY, let calls finish for ``grace`` seconds, then cancel the
        rest and close. Fires when the connection is closed."""
        if self._lost:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._lost_waiters.append(d)
        if not self._goaway_sent:
            self._send_goaway()
            if self._calls:
                self._grace_timer = self._clock.callLater(grace, self._grace_expired)
            self._flush()
        return d

    # -- h2 events

    def _request_received(self, event: RequestReceived) -> None:
        self._open_call(event.stream_id, self._parse_request(event.headers), event.headers)

    def _request_headers(self, event: RequestHeaders) -> None:
        # A repeated header block was parsed before: its memo keeps the result.
        memo = event.memo
        request = memo.get("request")
        if request is None:
            request = self._parse_request(event.headers)
            if isinstance(request, _Request):
                memo["request"] = request
        self._open_call(event.stream_id, request, event.headers)

    def _parse_request(
        self, headers: Sequence[tuple[bytes, bytes]]
    ) -> _Request | tuple[bytes, GrpcError] | None:
        """What the request headers ask for, the HTTP status and error to refuse them,
        or None for a request that is not gRPC and goes to the web site."""
        path = http_method = content_type = timeout = encoding = None
        for name, value in headers:
            if name == b":path":
                path = value
            elif name == b":method":
                http_method = value
            elif name == b"content-type":
                content_type = value
            elif name == b"grpc-timeout":
                timeout = value
            elif name == b"grpc-encoding":
                encoding = value
        if self._web is not None and not _is_grpc_content_type(content_type):
            return None
        if http_method != b"POST":
            message = f"http2Server.operateHeaders parsed a :method field: {http_method!r} which should be POST"
            return b"405", GrpcError(StatusCode.INTERNAL, message)
        if not _is_grpc_content_type(content_type):
            ct = (content_type or b"").decode("latin-1")
            message = f'invalid gRPC request content-type "{ct}"'
            return b"415", GrpcError(StatusCode.INVALID_ARGUMENT, message)
        try:
            seconds = None if timeout is None else parse_timeout(timeout)
            metadata = Metadata.from_headers(headers)
        except ValueError as e:
            return b"400", GrpcError(StatusCode.INTERNAL, str(e))
        try:
            method = self._factory.registry.lookup((path or b"").decode("utf-8", "replace"))
        except GrpcError as e:
            return b"200", e
        return _Request(
            method, None if encoding is None else encoding.decode("latin-1"), seconds, metadata
        )

    def _open_call(
        self,
        sid: int,
        request: _Request | tuple[bytes, GrpcError] | None,
        headers: Sequence[tuple[bytes, bytes]],
    ) -> None:
        h2 = self._h2
        calls = self._calls
        if (
            self._goaway_sent
            or self._peer_gone
            or len(calls) >= self._factory.max_concurrent_streams
        ):
            h2.reset_stream(sid, ErrorCodes.REFUSED_STREAM)
            return
        if request is None:
            assert self._web is not None
            self._web.open(sid, headers)
            return
        if not isinstance(request, _Request):
            self._reject(sid, *request)
            return
        method = request.method
        decoder = MessageDecoder(self._factory.max_receive_bytes, request.encoding)
        call = Call(
            self,
            sid,
            method,
            decoder,
            request.metadata,
            self._peer,
            self._clock,
            request.timeout,
            request.encoding == "gzip",
        )
        calls[sid] = call
        if method.streams_requests:
            call.start()

    def _data_received(self, event: DataReceived) -> None:
        call = self._calls.get(event.stream_id)
        if call is not None:
            call.data_received(event.data, event.flow_controlled_length)
        elif self._web is not None and self._web.received(
            event.stream_id, event.data, event.flow_controlled_length, False
        ):
            return
        elif event.flow_controlled_length:
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)

    def _request_data(self, event: RequestData) -> None:
        sid = event.stream_id
        call = self._calls.get(sid)
        data = event.data
        if call is not None:
            call.data_received(data, len(data))
            if event.ended:
                call.end_of_input()
        elif self._web is not None and self._web.received(sid, data, len(data), event.ended):
            return
        elif data:
            self._h2.acknowledge_received_data(len(data), sid)

    def _stream_ended(self, event: StreamEnded) -> None:
        call = self._calls.get(event.stream_id)
        if call is not None:
            call.end_of_input()
        elif self._web is not None:
            self._web.ended(event.stream_id)

    def _stream_reset(self, event: StreamReset) -> None:
        call = self._calls.pop(event.stream_id, None)
        if call is not None:
            self._forget(call)
            call.cancel(GrpcError(StatusCode.CANCELLED, "context canceled"))
        elif self._web is not None:
            self._web.reset(event.stream_id)

    def _window_opened(self, event: WindowUpdated | None = None) -> None:
        if self._web is not None:
            self._web.window_opened()
        if self._blocked:
            self._ready.update(self._blocked)
            self._blocked.clear()

    def _settings_changed(self, event: RemoteSettingsChanged) -> None:
        if self._preface_timer is not None:
            if self._preface_timer.active():
                self._preface_timer.cancel()
            self._preface_timer = None
        self._window_opened()

    def _peer_goaway(self, event: PeerGoAway) -> None:
        """The client is going away: serve the streams it opened, refuse new ones,
        close when they are done (RFC 9113 §6.8; h2 would refuse every later frame)."""
        log.debug("GOAWAY {code} from {peer}", code=event.error_code, peer=self._peer)
        self._peer_gone = True

    def _zero_window_update(self, sid: int) -> None:
        """WINDOW_UPDATE 0 on a stream: a stream error (RFC 9113 §6.9)."""
        h2 = self._h2
        if sid > h2.highest_inbound_stream_id:
            raise FrameError(ErrorCodes.PROTOCOL_ERROR, f"WINDOW_UPDATE on idle stream {sid}")
        stream = h2.streams.get(sid)
        if stream is None or stream.closed:
            return
        h2.reset_stream(sid, ErrorCodes.PROTOCOL_ERROR)
        call = self._calls.pop(sid, None)
        if call is not None:
            self._forget(call)
            call.cancel(GrpcError(StatusCode.CANCELLED, "context canceled"))

    def _ping_received(self, event: PingReceived) -> None:
        if self._keepalive is not None:
            self._keepalive.ping_received(len(self._calls))

    # -- keepalive (see ``keepalive``)

    def _send_keepalive_ping(self, data: bytes) -> None:
        if not self._lost and self._h2.state_machine.state is not ConnectionState.CLOSED:
            self._h2.ping(data)
            self._write_pending()

    def _too_many_pings(self) -> None:
        """GOAWAY ENHANCE_YOUR_CALM "too_many_pings" and close, as grpc-go does."""
        log.info("too many pings from {peer}: closing the connection", peer=self._peer)
        self._factory.too_many_pings += 1
        self._goaway_sent = True
        self._write_pending()
        frame = GoAwayFrame(0)
        frame.last_stream_id = self._h2.highest_inbound_stream_id
        frame.error_code = ErrorCodes.ENHANCE_YOUR_CALM
        frame.additional_data = TOO_MANY_PINGS
        self.transport.write(frame.serialize())
        self._close(abort=False)

    def _keepalive_expired(self) -> None:
        log.info("no keepalive answer from {peer}: closing the connection", peer=self._peer)
        self._close(abort=False)

    # -- writing

    def _schedule_flush(self) -> None:
        if not self._in_receive and not self._flush_pending and not self._lost:
            self._flush_pending = True
            self._clock.callLater(0, self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_pending = False
        self._flush()

    def _flush(self) -> None:
        """Write what the ready calls queued, as far as windows allow."""
        if self._lost or self._h2.state_machine.state is ConnectionState.CLOSED:
            # h2 ended the connection (a protocol error): nothing more may be sent.
            return
        written: list[Call] = []
        if self._ready and not self._paused:
            ready, self._ready = self._ready, {}
            calls = self._calls
            for sid, call in ready.items():
                if calls.get(sid) is not call:
                    continue
                try:
                    self._write_call(call)
                except StreamClosedError:
                    # h2 closed the stream itself (a stream-level error).
                    del calls[sid]
                    self._forget(call)
                    call.cancel(GrpcError(StatusCode.CANCELLED, "context canceled"))
                    continue
                written.append(call)
        self._write_pending()
        if written and self._keepalive is not None:
            self._keepalive.wrote_response()
        for call in written:
            call.written()
        h2 = self._h2
        if len(h2.streams) > 2 * len(self._calls) + 64:
            # Closed streams leave h2's table only when h2 counts the open ones
            # (amortized O(1) a stream, as at least as many closed since the last time).
            h2.open_inbound_streams  # noqa: B018
        if (self._goaway_sent or self._peer_gone) and not self._calls and not self._closing:
            if not self._goaway_sent:
                self._send_goaway()
            self._close(abort=False)

    def _write_call(self, call: Call) -> None:
        h2 = self._h2
        sid = call.stream_id
        out = call.out
        if (
            self._fast
            and not call.headers_sent
            and call.trailers is OK_TRAILERS
            and len(out) == 1
            and not call.initial_metadata
            and self._write_whole_response(call, out[0])
        ):
            call.headers_sent = True
            call.out = []
            call.out_bytes = 0
            self._finished(call)
            return
        if not call.headers_sent:
            call.headers_sent = True
            if not out and call.trailers is not None:
                h2.send_headers(sid, _RESPONSE_HEADERS + call.trailers, end_stream=True)
                self._finished(call)
                return
            h2.send_headers(sid, _RESPONSE_HEADERS + call.initial_metadata)
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            window = h2.local_flow_control_window(sid)
            frame = h2.max_outbound_frame_size
            size = len(data)
            sent = 0
            while sent < size and window > 0:
                n = min(size - sent, window, frame)
                h2.send_data(sid, data[sent : sent + n] if n < size else data)
                sent += n
                window -= n
            if sent < size:
                call.out = [memoryview(data)[sent:]]  # no copy of a long remainder per window
                call.out_bytes = size - sent
                self._blocked[sid] = call
                return
            call.out = []
            call.out_bytes = 0
        if call.trailers is not None:
            h2.send_headers(sid, call.trailers, end_stream=True)
            self._finished(call)

    def _write_whole_response(self, call: Call, data: bytes) -> bool:
        """Write a whole successful response (headers, one DATA frame, OK trailers) as
        three frames at once; False, having done nothing, if it must go the long way.

        This is what ``send_headers``/``send_data``/``send_headers(end_stream)`` would
        write, with the same state-machine inputs and flow-control accounting, but
        without building frame objects: the common unary answer is most of a
        server's output, and h2's general path costs more than everything else.
        """
        h2 = self._h2
        sid = call.stream_id
        size = len(data)
        stream = h2.streams.get(sid)
        if (
            stream is None
            or h2.encoder.header_table.resized
            or size > h2.max_outbound_frame_size
            or size > stream.outbound_flow_control_window
            or size > h2.outbound_flow_control_window
        ):
            return False
        machine = stream.state_machine
        if (
            h2.state_machine.state is ConnectionState.SERVER_OPEN
            and machine.state is StreamState.HALF_CLOSED_REMOTE
            and machine.client is False
            and not machine.headers_sent
        ):
            # The usual case (the request has ended), where those inputs change only
            # these: h2's connection stays SERVER_OPEN, the stream goes through
            # response_sent twice (headers, then trailers) and send_end_stream.
            machine.headers_sent = True
            machine.trailers_sent = True
            machine.state = StreamState.CLOSED
            machine.stream_closed_by = StreamClosedBy.SEND_END_STREAM
        else:
            connection_input = h2.state_machine.process_input
            stream_input = machine.process_input
            connection_input(ConnectionInputs.SEND_HEADERS)
            stream_input(StreamInputs.SEND_HEADERS)
            connection_input(ConnectionInputs.SEND_DATA)
            stream_input(StreamInputs.SEND_DATA)
            connection_input(ConnectionInputs.SEND_HEADERS)
            stream_input(StreamInputs.SEND_HEADERS)
            stream_input(StreamInputs.SEND_END_STREAM)
        stream.outbound_flow_control_window -= size
        h2.outbound_flow_control_window -= size
        sid_bytes = _STREAM_ID.pack(sid & 0x7FFFFFFF)
        h2._data_to_send += b"".join(
            (
                _RESPONSE_HEAD,
                sid_bytes,
                _RESPONSE_BLOCK,
                _frame_header(size, _DATA, 0, sid_bytes),
                data,
                _OK_HEAD,
                sid_bytes,
                _OK_BLOCK,
            )
        )
        return True

    def _finished(self, call: Call) -> None:
        """The trailers are queued: close our side and forget the call."""
        self._close_stream(call.stream_id)
        del self._calls[call.stream_id]
        self._forget(call)
        call.done()

    def _forget(self, call: Call) -> None:
        self._blocked.pop(call.stream_id, None)
        if not self._calls:
            self._became_idle()

    def _reject(self, sid: int, http_status: bytes, error: GrpcError) -> None:
        """Answer a call that cannot start with a trailers-only response."""
        headers = [
            (b":status", http_status),
            (b"content-type", b"application/grpc"),
            (b"grpc-status", b"%d" % error.code),
            (b"grpc-message", percent_encode(error.message)),
        ]
        self._h2.send_headers(sid, headers, end_stream=True)
        self._close_stream(sid)

    def _close_stream(self, sid: int) -> None:
        """After our END_STREAM: reset the stream if the client has not ended
        its side, as grpc-go does, so that it does not linger half-open."""
        stream = self._h2.streams.get(sid)
        if stream is not None and not stream.closed:
            self._h2.reset_stream(sid, ErrorCodes.NO_ERROR)

    def _write_pending(self) -> None:
        data = self._h2.data_to_send()
        if data:
            self.transport.write(data)

    # -- timers and closing

    def _became_idle(self) -> None:
        timeout = self._factory.idle_timeout
        if timeout is None:
            return
        self._idle_since = self._clock.seconds()
        if self._idle_timer is None:
            self._idle_timer = self._clock.callLater(timeout, self._idle_check)

    def _idle_check(self) -> None:
        self._idle_timer = None
        if self._calls:
            return
        timeout = self._factory.idle_timeout
        assert timeout is not None
        remaining = self._idle_since + timeout - self._clock.seconds()
        if remaining > 0:
            self._idle_timer = self._clock.callLater(remaining, self._idle_check)
            return
        log.info("closing idle connection from {peer}", peer=self._peer)
        self._send_goaway()
        self._close(abort=False)

    def _preface_expired(self) -> None:
        self._preface_timer = None
        log.info("no HTTP/2 preface from {peer} in time", peer=self._peer)
        self._close(abort=True)

    def _grace_expired(self) -> None:
        self._grace_timer = None
        calls, self._calls = self._calls, {}
        error = GrpcError(StatusCode.UNAVAILABLE, "grpc: the server has been stopped")
        for call in calls.values():
            call.cancel(error)
        self._close(abort=False)

    def _send_goaway(self, code: ErrorCodes = ErrorCodes.NO_ERROR) -> None:
        """GOAWAY naming the last stream we accept; h2's own ``close_connection``
        would forbid finishing the streams in flight."""
        self._goaway_sent = True
        self._write_pending()
        frame = GoAwayFrame(0)
        frame.last_stream_id = self._h2.highest_inbound_stream_id
        frame.error_code = code
        self.transport.write(frame.serialize())

    def _close(self, abort: bool) -> None:
        if self._lost:
            return
        self._closing = True
        if abort:
            self.transport.abortConnection()
            return
        self.transport.loseConnection()
        if self._abort_timer is None:
            self._abort_timer = self._clock.callLater(ABORT_TIMEOUT, self._abort)

    def _abort(self) -> None:
        self._abort_timer = None
        self.transport.abortConnection()


class GrpcFactory(Factory):
    """Builds `GrpcProtocol` connections serving ``registry``.

    ``clock`` schedules deadlines, timeouts and write batching. Requests larger
    than ``max_receive_bytes`` fail with RESOURCE_EXHAUSTED. A connection may have
    ``max_concurrent_streams`` streams open; more are refused. ``idle_timeout``
    (seconds without calls, ``None`` for never) closes quiet connections;
    ``preface_timeout`` closes those that do not send their SETTINGS in time.
    ``fast_path`` (default: whether the verified h2 releases are installed)
    chooses the fast path or h2's public API. ``web`` (if given) serves the requests
    whose content type is not gRPC's, as Go's etcd does (see `WebStreams`).
    ``keepalive`` (if given) enforces the clients' ping rate and pings idle clients.
    """

    protocol = GrpcProtocol

    def __init__(
        self,
        registry: Registry,
        clock: IReactorTime,
        max_receive_bytes: int = 4 * 1024 * 1024,
        max_concurrent_streams: int = DEFAULT_MAX_CONCURRENT_STREAMS,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        preface_timeout: float = DEFAULT_PREFACE_TIMEOUT,
        fast_path: bool = FAST_PATH,
        web: Site | None = None,
        keepalive: KeepalivePolicy | None = None,
    ) -> None:
        if fast_path and not FAST_PATH:
            raise ValueError(f"the gRPC fast path needs exactly {FAST_PATH_VERSIONS}")
        self.registry = registry
        self.clock = clock
        self.max_receive_bytes = max_receive_bytes
        # 0 means unlimited, as grpc-go reads etcd's --max-concurrent-streams.
        self.max_concurrent_streams = max_concurrent_streams or 2**32 - 1
        self.idle_timeout = idle_timeout
        self.preface_timeout = preface_timeout
        self.fast_path = fast_path
        self.web = web
        self.keepalive = keepalive
        #: Connections closed for pinging too often.
        self.too_many_pings = 0
        self._connections: set[GrpcProtocol] = set()
        self._stopping = False

    def buildProtocol(self, addr: IAddress) -> GrpcProtocol | None:
        if self._stopping:
            return None
        return GrpcProtocol(self)

    def shutdown(self, grace: float) -> Deferred[None]:
        """Stop taking connections, send GOAWAY on each, let calls in flight
        finish for up to ``grace`` seconds, then cancel the rest and close.
        Fires when every connection is closed."""
        self._stopping = True
        d = gatherResults([c.shutdown(grace) for c in list(self._connections)])
        return d.addCallback(lambda _: None)
