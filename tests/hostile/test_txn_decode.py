"""Nested and oversized Txns on the gRPC side: decoded as deep as etcd takes them
(etcd_twisted.deep_proto), refused as too many ops before decoding
(etcd_twisted.api.txn_wire)."""

from __future__ import annotations

from google.protobuf.message import DecodeError
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted import deep_proto
from etcd_twisted._pb import rpc_pb2
from etcd_twisted._pb.raft_internal_pb2 import InternalRaftRequest
from etcd_twisted.api.txn_wire import TOO_MANY_OPS, TxnDecoder, too_many_ops


def nested_txn(levels: int) -> rpc_pb2.TxnRequest:
    """A Txn nested ``levels`` deep, a put at the bottom, a compare at each level."""
    txn = rpc_pb2.TxnRequest()
    level = txn
    for i in range(levels - 1):
        level.compare.add(key=b"c%d" % i, target=rpc_pb2.Compare.VALUE, value=b"v")
        level.failure.add().request_range.key = b"f%d" % i
        level = level.success.add().request_txn
    level.success.add().request_put.key = b"k"
    return txn


def depth_of(txn: rpc_pb2.TxnRequest) -> int:
    depth = 1
    while txn.success and txn.success[0].HasField("request_txn"):
        txn = txn.success[0].request_txn
        depth += 1
    return depth


class DeepProtoTests(SynchronousTestCase):
    def test_upb_limit_is_real(self) -> None:
        """upb alone refuses a Txn nested 51 deep (the limit this module works around)."""
        data = nested_txn(51).SerializeToString()
        self.assertRaises(DecodeError, rpc_pb2.TxnRequest.FromString, data)

    def test_deep_txn_round_trips(self) -> None:
        """A Txn nested 129 deep decodes to the same message, byte for byte."""
        data = nested_txn(129).SerializeToString()
        txn = deep_proto.parse(rpc_pb2.TxnRequest, data)
        self.assertEqual((depth_of(txn), txn.SerializeToString()), (129, data))

    def test_raft_entry_with_deep_txn(self) -> None:
        """The apply path's InternalRaftRequest with a Txn 128 deep decodes."""
        request = InternalRaftRequest(header={"ID": 7})
        request.txn.CopyFrom(nested_txn(128))
        data = request.SerializeToString()
        decoded = deep_proto.parse(InternalRaftRequest, data)
        self.assertEqual((decoded.header.ID, depth_of(decoded.txn)), (7, 128))

    def test_wire_order_kept_for_oneof(self) -> None:
        """A later oneof member replaces an earlier deep one, as upb would decide."""
        op = rpc_pb2.RequestOp()
        op.request_txn.CopyFrom(nested_txn(60))
        later = rpc_pb2.RequestOp(request_put={"key": b"p"}).SerializeToString()
        decoded = deep_proto.parse(rpc_pb2.RequestOp, op.SerializeToString() + later)
        self.assertEqual(decoded.WhichOneof("request"), "request_put")

    def test_repeated_singular_merges(self) -> None:
        """A singular sub-message sent twice is merged, as protobuf merges it."""
        first = rpc_pb2.RequestOp()
        first.request_txn.CopyFrom(nested_txn(60))
        second = rpc_pb2.RequestOp()
        second.request_txn.failure.add().request_range.key = b"extra"
        decoded = deep_proto.parse(
            rpc_pb2.RequestOp, first.SerializeToString() + second.SerializeToString()
        )
        self.assertEqual(decoded.request_txn.failure[-1].request_range.key, b"extra")
        self.assertEqual(depth_of(decoded.request_txn), 60)

    def test_too_deep_refused(self) -> None:
        """Past max_depth the decode fails with TooDeepError, not RecursionError."""
        data = nested_txn(3000).SerializeToString()
        self.assertRaises(deep_proto.TooDeepError, deep_proto.parse, rpc_pb2.TxnRequest, data, 500)

    def test_malformed_still_refused(self) -> None:
        """Bytes that are not a message still fail to decode."""
        data = nested_txn(60).SerializeToString()[:-3]
        self.assertRaises(DecodeError, deep_proto.parse, rpc_pb2.TxnRequest, data)


def many_ops(n: int) -> bytes:
    return rpc_pb2.TxnRequest(
        success=[rpc_pb2.RequestOp(request_put={"key": b"k%d" % i}) for i in range(n)]
    ).SerializeToString()


class TxnDecoderTests(SynchronousTestCase):
    def test_too_many_ops_before_decoding(self) -> None:
        """129 ops followed by bytes that do not decode: refused on the count alone."""
        data = many_ops(129) + b"\x12\xff\xff\xff"
        self.assertIs(TxnDecoder(128).FromString(data), TOO_MANY_OPS)

    def test_100k_ops(self) -> None:
        """A Txn of 100k ops is refused after looking at 129 of them."""
        self.assertTrue(too_many_ops(many_ops(100_000), 128))

    def test_at_limit_decoded(self) -> None:
        """128 ops (or 128 compares) are decoded as usual."""
        decoded = TxnDecoder(128).FromString(many_ops(128))
        self.assertEqual(len(decoded.success), 128)

    def test_nested_as_deep_as_etcd(self) -> None:
        """A Txn nested 128 deep decodes with the default 128 ops budget."""
        decoded = TxnDecoder(128).FromString(nested_txn(128).SerializeToString())
        self.assertEqual(depth_of(decoded), 128)

    def test_deeper_than_the_budget_is_too_many_ops(self) -> None:
        """A Txn nested deeper than any budget allows is too many ops, as etcd's check says."""
        data = nested_txn(2000).SerializeToString()
        self.assertIs(TxnDecoder(128).FromString(data), TOO_MANY_OPS)

    def test_many_unknown_fields_left_to_upb(self) -> None:
        """Thousands of unknown fields before the ops: the count gives up, decoding decides."""
        data = b"\x28\x01" * 5000 + many_ops(3)
        self.assertFalse(too_many_ops(data, 128))
