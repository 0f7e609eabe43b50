"""The gateway's JSON decoder (etcd_twisted.api.gojson) against deep nesting and huge
numbers: etcd 3.5.1's answers, no RecursionError or ValueError."""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.api.gojson import MAX_NESTING_DEPTH, GoJsonError, parse

from .support import HttpConnection, status_and_body


def nested_unknown(levels: int, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    """A range request whose unknown field nests ``levels`` containers (the request's
    own object makes one level more)."""
    return b'{"key":"YQ==","x":' + opener * levels + closer * levels + b"}"


def nested_txn(levels: int) -> bytes:
    """A Txn nested ``levels`` deep, as JSON."""
    inner = b'{"success":[{"request_put":{"key":"YQ==","value":"YQ=="}}]}'
    for _ in range(levels - 1):
        inner = b'{"success":[{"request_txn":' + inner + b"}]}"
    return inner


class DepthTests(SynchronousTestCase):
    def test_depth_limit_is_gos(self) -> None:
        """10000 levels in all are read; 10001 is Go's "exceeded max depth"."""
        self.assertEqual(
            parse(nested_unknown(MAX_NESTING_DEPTH - 1), rpc_pb2.RangeRequest).key, b"a"
        )
        with self.assertRaises(GoJsonError) as e:
            parse(nested_unknown(MAX_NESTING_DEPTH), rpc_pb2.RangeRequest)
        self.assertEqual(e.exception.message, "invalid character '[' exceeded max depth")

    def test_depth_error_names_the_opener(self) -> None:
        """The error quotes the opening character that went too deep."""
        with self.assertRaises(GoJsonError) as e:
            parse(nested_unknown(MAX_NESTING_DEPTH, b'{"a":', b"}"), rpc_pb2.RangeRequest)
        self.assertEqual(e.exception.message, "invalid character '{' exceeded max depth")

    def test_depth_checked_before_end_of_input(self) -> None:
        """An unclosed nest deeper than the limit is a depth error, as in Go."""
        with self.assertRaises(GoJsonError) as e:
            parse(b'{"x":' + b"[" * 20000, rpc_pb2.RangeRequest)
        self.assertEqual(e.exception.message, "invalid character '[' exceeded max depth")

    def test_deep_txn_decodes(self) -> None:
        """A Txn nested 3000 deep in JSON decodes into a message that deep (no recursion)."""
        txn = parse(nested_txn(3000), rpc_pb2.TxnRequest)
        depth = 1
        while txn.success[0].HasField("request_txn"):
            txn = txn.success[0].request_txn
            depth += 1
        self.assertEqual(depth, 3000)

    def test_deep_txn_over_gateway(self) -> None:
        """A deep Txn over HTTP is answered, not a 500."""
        conn = HttpConnection()
        body = nested_txn(200)
        out = conn.send(
            b"POST /v3/kv/txn HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        self.assertEqual(status_and_body(out), (200, b'{"succeeded":true}'))


class NumberTests(SynchronousTestCase):
    def assert_out_of_range(self, body: bytes, number: str, go_type: str) -> None:
        with self.assertRaises(GoJsonError) as e:
            parse(body, rpc_pb2.RangeRequest)
        expected = f"json: cannot unmarshal number {number} into Go value of type {go_type}"
        self.assertEqual(e.exception.message, expected)

    def test_huge_integer(self) -> None:
        """An int64 of 5000 digits is Go's out-of-range error, not Python's ValueError."""
        number = "1" + "0" * 5000
        self.assert_out_of_range(b'{"limit":' + number.encode() + b"}", number, "int64")

    def test_huge_quoted_integer(self) -> None:
        """The same number quoted is refused the same way."""
        number = "1" + "0" * 4300
        self.assert_out_of_range(b'{"limit":"' + number.encode() + b'"}', number, "int64")

    def test_huge_enum_number(self) -> None:
        """An enum given as a huge number is refused as Go refuses it."""
        number = "9" * 4400
        self.assert_out_of_range(
            b'{"sort_order":' + number.encode() + b"}", number, "protoreflect.EnumNumber"
        )

    def test_huge_byte_in_array(self) -> None:
        """A bytes field given as an array with a huge element is refused as Go refuses it."""
        number = "1" + "0" * 5000
        self.assert_out_of_range(b'{"key":[' + number.encode() + b"]}", number, "uint8")

    def test_largest_int64_still_read(self) -> None:
        """The bounds themselves still parse."""
        request = parse(b'{"limit":"9223372036854775807","revision":-9223372036854775808}',
                        rpc_pb2.RangeRequest)  # fmt: skip
        self.assertEqual((request.limit, request.revision), (2**63 - 1, -(2**63)))

    def test_huge_number_in_unknown_field_ignored(self) -> None:
        """A huge number in a field the message does not have is skipped, as etcd does."""
        body = b'{"key":"YQ==","zz":1' + b"0" * 5000 + b"}"
        self.assertEqual(parse(body, rpc_pb2.RangeRequest).key, b"a")

    def test_huge_integer_over_gateway(self) -> None:
        """Over HTTP the answer is 400 with the gateway's JSON error."""
        conn = HttpConnection()
        body = b'{"key":"YQ==","limit":1' + b"0" * 5000 + b"}"
        out = conn.send(
            b"POST /v3/kv/range HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        status, answer = status_and_body(out)
        self.assertEqual((status, json.loads(answer)["code"]), (400, 3))
