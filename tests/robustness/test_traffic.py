"""How the traffic generator classifies failed calls."""

from __future__ import annotations

import grpc
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import rpc_pb2, rpc_pb2_grpc
from etcd_twisted.testing import free_ports
from robustness.traffic import definite_error, never_sent


class _Failed(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class ClassifyTests(SynchronousTestCase):
    def test_no_listener_means_never_sent(self) -> None:
        """A call to a port nobody listens on (a member that is down) never left."""
        (port,) = free_ports(1)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.addCleanup(channel.close)
        with self.assertRaises(grpc.RpcError) as caught:
            rpc_pb2_grpc.KVStub(channel).Put(rpc_pb2.PutRequest(key=b"k"), timeout=5)
        self.assertTrue(never_sent(caught.exception))
        self.assertIsNone(definite_error(caught.exception))

    def test_broken_connection_is_unknown(self) -> None:
        """A call cut off after it went out may have taken effect."""
        for error in (
            _Failed(grpc.StatusCode.UNAVAILABLE, "Socket closed"),
            _Failed(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
            _Failed(grpc.StatusCode.UNAVAILABLE, "etcdserver: leader changed"),
        ):
            self.assertFalse(never_sent(error), error.details())
            self.assertIsNone(definite_error(error))

    def test_definite_refusals(self) -> None:
        """etcd's refusals are responses, not unknown outcomes."""
        error = _Failed(
            grpc.StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted"
        )
        self.assertFalse(never_sent(error))
        self.assertEqual(definite_error(error), "compacted")
