"""Tests for etcd_twisted.proxy.namespace: keys in, keys out."""

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import kv_pb2, rpc_pb2
from etcd_twisted.proxy.namespace import Namespace


class NamespaceTests(SynchronousTestCase):
    def test_intervals(self) -> None:
        """One key, a range and "from key on" map into the prefix."""
        ns = Namespace(b"t/")
        self.assertEqual(ns.interval(b"a", b""), (b"t/a", b""))
        self.assertEqual(ns.interval(b"a", b"b"), (b"t/a", b"t/b"))
        self.assertEqual(ns.interval(b"a", b"\0"), (b"t/a", b"t0"))
        self.assertEqual(Namespace(b"\xff").interval(b"", b"\0"), (b"\xff", b"\0"))

    def test_txn_round_trip(self) -> None:
        """A txn's compares and ops go in, and its answers come out without the prefix."""
        ns = Namespace(b"t/")
        txn = rpc_pb2.TxnRequest(
            compare=[rpc_pb2.Compare(key=b"c")],
            success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"k"))],
            failure=[
                rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"r", range_end=b"\0"))
            ],
        )
        ns.request(txn)
        self.assertEqual(txn.compare[0].key, b"t/c")
        self.assertEqual(txn.success[0].request_put.key, b"t/k")
        self.assertEqual(txn.failure[0].request_range.range_end, b"t0")
        answer = rpc_pb2.TxnResponse(
            responses=[
                rpc_pb2.ResponseOp(
                    response_range=rpc_pb2.RangeResponse(kvs=[kv_pb2.KeyValue(key=b"t/r")])
                )
            ]
        )
        ns.response(answer)
        self.assertEqual(answer.responses[0].response_range.kvs[0].key, b"r")
