"""Tests for etcd_twisted.peer.handshake: the upgrade request and its answers."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.peer.handshake import (
    SNAPSHOT_PATH,
    STREAM_PATH,
    HandshakeError,
    HeadReader,
    Hello,
    encode_accept,
    encode_refusal,
    encode_request,
    parse_answer,
    parse_request,
)


def head_of(data: bytes) -> tuple[bytes, bytes]:
    reader = HeadReader()
    result = None
    for i in range(len(data)):
        result = reader.feed(data[i : i + 1]) or result
    assert result is not None
    return result


class HandshakeTests(SynchronousTestCase):
    def test_request_round_trip(self) -> None:
        """The request carries path, cluster id, sender and recipient, read back byte by byte."""
        hello = Hello(SNAPSHOT_PATH, 0xD1CFAF999EB97A2A, 0xBD388E7810915853, 7)
        head, rest = head_of(encode_request(hello, "10.0.0.1:2380") + b"\x01")
        self.assertEqual(parse_request(head), hello)
        self.assertEqual(rest, b"")

    def test_request_is_http(self) -> None:
        """The request is plain HTTP/1.1 with etcd's header names."""
        wire = encode_request(Hello(STREAM_PATH, 0xAB, 1, 2), "h:1")
        self.assertTrue(wire.startswith(b"POST /raft/stream HTTP/1.1\r\nHost: h:1\r\n"))
        self.assertIn(b"X-Etcd-Cluster-ID: ab\r\n", wire)
        self.assertIn(b"X-Server-From: 1\r\nX-Raft-To: 2\r\n", wire)

    def test_bad_requests(self) -> None:
        """Wrong method, unknown path, missing upgrade or ids are refused with a status."""
        good = encode_request(Hello(STREAM_PATH, 1, 2, 3), "h")[:-4]
        cases = {
            good.replace(b"POST", b"GET"): 400,
            good.replace(b"/raft/stream", b"/raft/other"): 404,
            good.replace(b"Upgrade: etcd", b"Upgrade: xtcd"): 426,
            good.replace(b"X-Raft-To: 3", b"X-Raft-To: zz"): 400,
            good.replace(b"X-Server-From", b"X-Other"): 400,
        }
        for head, status in cases.items():
            with self.assertRaises(HandshakeError) as e:
                parse_request(head)
            self.assertEqual(e.exception.status, status, head)

    def test_accept_and_refusal(self) -> None:
        """101 switches; a refusal carries status, our cluster id and a body length."""
        head, rest = head_of(encode_accept(0xABC))
        answer = parse_answer(head)
        self.assertEqual((answer.status, answer.cluster_id), (101, 0xABC))
        refusal = encode_refusal(412, "cluster ID mismatch", 0xABC)
        head, rest = refusal.split(b"\r\n\r\n", 1)
        answer = parse_answer(head)
        self.assertEqual((answer.status, answer.cluster_id), (412, 0xABC))
        self.assertEqual(rest, b"cluster ID mismatch\n")
        self.assertEqual(answer.content_length, len(rest))
        self.assertTrue(refusal.startswith(b"HTTP/1.1 412 Precondition Failed\r\n"))

    def test_head_too_long(self) -> None:
        """A head that never ends is refused once it passes the limit."""
        reader = HeadReader()
        with self.assertRaises(HandshakeError):
            for _ in range(100):
                reader.feed(b"x" * 100)

    def test_answer_not_http(self) -> None:
        """An answer that is not HTTP is an error."""
        with self.assertRaises(HandshakeError):
            parse_answer(b"SSH-2.0-OpenSSH")
