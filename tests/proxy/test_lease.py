"""Tests for etcd_twisted.proxy.lease: keep-alives for a lease share upstream requests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.grpc import GrpcError, StatusCode
from etcd_twisted.proxy.lease import KeepAliveCoalescer


class FakeStream:
    def __init__(self, on_response: Callable, on_closed: Callable) -> None:
        self.on_response, self.on_closed = on_response, on_closed
        self.sent: list[int] = []
        self.cancelled = False

    def send(self, request: rpc_pb2.LeaseKeepAliveRequest) -> None:
        self.sent.append(request.ID)

    def cancel(self) -> None:
        self.cancelled = True

    def answer(self, lease_id: int, ttl: int) -> None:
        self.on_response(rpc_pb2.LeaseKeepAliveResponse(ID=lease_id, TTL=ttl))


class CoalescerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.streams: list[FakeStream] = []

        def open_stream(on_response: Callable, on_closed: Callable) -> FakeStream:
            self.streams.append(FakeStream(on_response, on_closed))
            return self.streams[-1]

        self.coalescer = KeepAliveCoalescer(open_stream)

    def results(self, lease_id: int, n: int) -> list[list[Any]]:
        boxes: list[list[Any]] = []
        for _ in range(n):
            box: list[Any] = []
            self.coalescer.renew(lease_id).addBoth(box.append)
            boxes.append(box)
        return boxes

    def test_concurrent_renewals_share_one_request(self) -> None:
        """1,000 clients renewing one lease at once cost one upstream request."""
        boxes = self.results(7, 1000)
        (stream,) = self.streams
        self.assertEqual(stream.sent, [7])
        stream.answer(7, 30)
        self.assertEqual({box[0].TTL for box in boxes}, {30})
        self.assertEqual(self.coalescer.coalesced, 999)

    def test_leases_are_separate(self) -> None:
        """Different leases get their own requests and answers on the one stream."""
        a, b = self.results(1, 2), self.results(2, 1)
        (stream,) = self.streams
        self.assertEqual(stream.sent, [1, 2])
        stream.answer(2, 0)
        self.assertEqual(b[0][0].TTL, 0)
        self.assertEqual(a[0], [])
        stream.answer(1, 10)
        self.assertEqual(a[1][0].TTL, 10)

    def test_next_round_sends_again(self) -> None:
        """Once answered, the next renewal goes upstream again."""
        self.results(1, 1)
        self.streams[0].answer(1, 10)
        self.results(1, 1)
        self.assertEqual(self.streams[0].sent, [1, 1])

    def test_stream_loss_fails_waiters_and_reopens(self) -> None:
        """A lost stream fails the waiting renewals; the next one opens a new stream."""
        boxes = self.results(1, 2)
        self.streams[0].on_closed(GrpcError(StatusCode.UNAVAILABLE, "transport is closing"))
        self.assertTrue(all(box[0].check(GrpcError) for box in boxes))
        self.results(1, 1)
        self.assertEqual(len(self.streams), 2)
        self.assertEqual(self.streams[1].sent, [1])
