"""A client port's HTTP/1 side over a ``StringTransport``, for the hostile tests."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.api.gateway import Gateway
from etcd_twisted.api.http import HttpApi
from etcd_twisted.grpc import Registry
from etcd_twisted.metrics import Metrics


class HalfClosingTransport(StringTransport):
    """A ``StringTransport`` that records a half-close (TCP's ``shutdown(SHUT_WR)``)."""

    write_closed = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True


def range_handler(request: rpc_pb2.RangeRequest, ctx: Any) -> rpc_pb2.RangeResponse:
    """Answers with the key asked for and the limit as its mod revision."""
    return rpc_pb2.RangeResponse(kvs=[{"key": request.key, "mod_revision": request.limit}])


def put_handler(request: rpc_pb2.PutRequest, ctx: Any) -> rpc_pb2.PutResponse:
    return rpc_pb2.PutResponse()


def txn_handler(request: rpc_pb2.TxnRequest, ctx: Any) -> rpc_pb2.TxnResponse:
    return rpc_pb2.TxnResponse(succeeded=True)


class HttpConnection:
    """One HTTP/1 connection to a site like the client port's, with a small gateway."""

    def __init__(self, max_receive_bytes: int = 2 << 20) -> None:
        registry = Registry()
        registry.add_unary("/etcdserverpb.KV/Range", rpc_pb2.RangeRequest, range_handler)
        registry.add_unary("/etcdserverpb.KV/Put", rpc_pb2.PutRequest, put_handler)
        registry.add_unary("/etcdserverpb.KV/Txn", rpc_pb2.TxnRequest, txn_handler)
        self.clock = Clock()
        site = HttpApi(
            Metrics(), gateway=Gateway(registry, max_receive_bytes=max_receive_bytes)
        ).site(self.clock)
        self.protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.transport = HalfClosingTransport()
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> bytes:
        """Feed ``data``; return everything written so far."""
        self.protocol.dataReceived(data)
        return self.transport.value()

    @property
    def closed(self) -> bool:
        """The server ended (or half-closed) the connection."""
        t = self.transport
        return bool(t.disconnecting or t.disconnected or t.write_closed)


def status_and_body(response: bytes) -> tuple[int, bytes]:
    """The status code and body of one HTTP/1 response (Content-Length or chunked)."""
    head, _, body = response.partition(b"\r\n\r\n")
    if b"\r\ntransfer-encoding: chunked" in head.lower():
        chunks = []
        while True:
            size_line, _, body = body.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            chunks.append(body[:size])
            body = body[size + 2 :]
        body = b"".join(chunks)
    return int(head.split(b" ", 2)[1]), body
