"""Tests for etcd_twisted.api.gojson: requests read and responses written as etcd 3.5.1's
grpc-gateway (Go's encoding/json under jsonpb) does; the expected texts are etcd's
answers to the same bodies (curl against etcd 3.5.1)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.api.gojson import Decoder, GoJsonError, go_base64, marshal, parse

RANGE = rpc_pb2.RangeRequest

#: Request bodies etcd 3.5.1 refused, with its error text.
REFUSED = [
    (b'{"key":"YQ==","limit":"abc"}', "invalid character 'a' looking for beginning of value"),
    (b'{"key":"YQ==","limit":"1.5"}', "json: cannot unmarshal number 1.5 into Go value of type int64"),
    (b'{"key":"YQ==","limit":1.5}', "json: cannot unmarshal number 1.5 into Go value of type int64"),
    (b'{"key":"YQ==","limit":1e3}', "json: cannot unmarshal number 1e3 into Go value of type int64"),
    (b'{"key":"YQ==","limit":"1e3"}', "json: cannot unmarshal number 1e3 into Go value of type int64"),
    (b'{"key":"YQ==","limit":9223372036854775808}',
     "json: cannot unmarshal number 9223372036854775808 into Go value of type int64"),
    (b'{"key":"YQ==","serializable":"true"}', "json: cannot unmarshal string into Go value of type bool"),
    (b'{"key":"YQ==","serializable":1}', "json: cannot unmarshal number into Go value of type bool"),
    (b'{"key":1}', "json: cannot unmarshal number into Go value of type []uint8"),
    (b'{"key":[300]}', "json: cannot unmarshal number 300 into Go value of type uint8"),
    (b'{"key":"!!"}', "illegal base64 data at input byte 0"),
    (b'{"key":"YQ"}', "illegal base64 data at input byte 0"),
    (b'{"key":"YQ=","limit":1}', "illegal base64 data at input byte 3"),
    (b'{"key":"YQ==x"}', "illegal base64 data at input byte 4"),
    (b'{"key":"\\u00e9"}', "illegal base64 data at input byte 0"),
    (b'{"key":"YQ==","sort_order":"BAD"}',
     'unknown value "\\"BAD\\"" for enum etcdserverpb.RangeRequest.SortOrder'),
    (b'{"key":"YQ==","sort_order":"\\u0041SCEND"}',
     'unknown value "\\"\\\\u0041SCEND\\"" for enum etcdserverpb.RangeRequest.SortOrder'),
    (b'{"key":"YQ==","sort_order":"1"}',
     'unknown value "\\"1\\"" for enum etcdserverpb.RangeRequest.SortOrder'),
    (b'{"key":"YQ==","sort_order":1.5}',
     "json: cannot unmarshal number 1.5 into Go value of type protoreflect.EnumNumber"),
    (b"[1]", "json: cannot unmarshal array into Go value of type map[string]json.RawMessage"),
    (b'"x"', "json: cannot unmarshal string into Go value of type map[string]json.RawMessage"),
    (b"5", "json: cannot unmarshal number into Go value of type map[string]json.RawMessage"),
    (b'{"key":"YQ=="', "unexpected EOF"),
    (b"{nope", "invalid character 'n' looking for beginning of object key string"),
    (b'{"key":"YQ==",}', "invalid character '}' looking for beginning of object key string"),
    (b'{"key":"YQ==" "a"}', "invalid character '\"' after object key:value pair"),
    (b'{"key":"YQ==","limit":1x}', "invalid character 'x' after object key:value pair"),
    (b'{"key":"YQ==","limit":1.}', "invalid character '}' after decimal point in numeric literal"),
    (b'{"key":"YQ==","limit":"-"}', "invalid character ' ' in numeric literal"),
    (b'{"key":"YQ==","limit":"tru"}', "invalid character ' ' in literal true (expecting 'e')"),
    (b'{"key":"YQ==","limit":""}', "unexpected end of JSON input"),
    (b'{"key":"YQ==","limit":"1 2"}', "invalid character '2' after top-level value"),
    (b'{"key":"YQ==","limit":{}}', "json: cannot unmarshal object into Go value of type int64"),
    (b'{"key":"YQ==","limit":true}', "json: cannot unmarshal bool into Go value of type int64"),
    (b'{"key":"YQ==","limit":"\\"5\\""}', "invalid character '\\\\' looking for beginning of value"),
    (b'{"key":"YQ==","limit":"\'"}', "invalid character '\\'' looking for beginning of value"),
    (b'{"key":"YQ==","limit":"\xc3\xa9"}', "invalid character '\xc3' looking for beginning of value"),
    (b'{"key":"YQ==","limit":"<"}', "invalid character '<' looking for beginning of value"),
]  # fmt: skip

#: Request bodies etcd 3.5.1 took, and the request they make.
ACCEPTED = [
    (b"", RANGE()),
    (b" ", RANGE()),
    (b"null", RANGE()),
    (b'{"key":null}', RANGE()),
    (b'{"key":[97]}', RANGE(key=b"a")),
    (b'{"key":"Yg==", "key": "YQ=="}', RANGE(key=b"a")),
    (b'{"key":"YQ==","keysOnly":true,"keys_only":false}', RANGE(key=b"a", keys_only=True)),
    (b'{"key":"YQ\\n=="}', RANGE(key=b"a")),
    (b'{"key":"YR=="}', RANGE(key=b"a")),
    (b'{"key":"YQ==","limit":" 5 "}', RANGE(key=b"a", limit=5)),
    (b'{"key":"YQ==","limit":"-0"}', RANGE(key=b"a")),
    (b'{"key":"YQ==","limit":-1}', RANGE(key=b"a", limit=-1)),
    (b'{"key":"YQ==","sort_order":7}', RANGE(key=b"a", sort_order=7)),
    (b'{"key":"YQ==","sortOrder":"DESCEND"}', RANGE(key=b"a", sort_order=RANGE.DESCEND)),
    (b'{"key":"YQ==","nope":1}', RANGE(key=b"a")),
    (b'{"key":"YQ=="}x', RANGE(key=b"a")),
]


class ParseTests(SynchronousTestCase):
    def test_refused_as_etcd_refuses(self) -> None:
        """Each body etcd 3.5.1 refused is refused with etcd's exact text."""
        for body, text in REFUSED:
            with self.subTest(body=body):
                error = self.assertRaises(GoJsonError, parse, body, RANGE)
                self.assertEqual(error.message, text)

    def test_accepted_as_etcd_accepts(self) -> None:
        """Each body etcd 3.5.1 took makes the same request (quoted integers, lowerCamel
        names winning, duplicate keys, trailing data ignored, a null body, byte arrays)."""
        for body, expected in ACCEPTED:
            with self.subTest(body=body):
                self.assertEqual(parse(body, RANGE), expected)

    def test_txn_nested_and_oneof(self) -> None:
        """Nested messages and repeated fields; of two oneof members the later declared wins,
        a null list element is an empty op."""
        txn = parse(
            b'{"compare":[{"key":"YQ==","target":"VALUE","value":"Yg=="}],'
            b'"success":[{"request_put":{"key":"YQ==","value":"YQ=="},'
            b'"request_delete_range":{"key":"YQ=="}}, null],'
            b'"failure":[{"request_range":{}}]}',
            rpc_pb2.TxnRequest,
        )
        self.assertEqual(txn.compare[0].value, b"b")
        self.assertEqual(txn.compare[0].target, rpc_pb2.Compare.VALUE)
        self.assertEqual(txn.success[0].WhichOneof("request"), "request_delete_range")
        self.assertEqual(txn.success[1], rpc_pb2.RequestOp())
        self.assertEqual(txn.failure[0].WhichOneof("request"), "request_range")
        error = self.assertRaises(GoJsonError, parse, b'{"success":{}}', rpc_pb2.TxnRequest)
        self.assertEqual(
            error.message, "json: cannot unmarshal object into Go value of type []json.RawMessage"
        )

    def test_unsigned(self) -> None:
        """A negative uint64 is refused with its literal."""
        error = self.assertRaises(GoJsonError, parse, b'{"ID":-1}', rpc_pb2.MemberRemoveRequest)
        self.assertEqual(
            error.message, "json: cannot unmarshal number -1 into Go value of type uint64"
        )
        self.assertEqual(
            parse(b'{"ID":"18446744073709551615"}', rpc_pb2.MemberRemoveRequest).ID, 2**64 - 1
        )

    def test_decoder_stream(self) -> None:
        """Values back to back, with or without newlines, then the end; a truncated one is
        "unexpected EOF"."""
        decoder = Decoder(b'{"ID":"1"}{"ID":2}\n {"ID":3}  ')
        ids = []
        while (m := decoder.decode(rpc_pb2.LeaseKeepAliveRequest)) is not None:
            ids.append(m.ID)
        self.assertEqual(ids, [1, 2, 3])
        decoder = Decoder(b'{"ID":1} {"ID"')
        self.assertEqual(decoder.decode(rpc_pb2.LeaseKeepAliveRequest).ID, 1)
        error = self.assertRaises(GoJsonError, decoder.decode, rpc_pb2.LeaseKeepAliveRequest)
        self.assertEqual(error.message, "unexpected EOF")

    def test_base64(self) -> None:
        """Go's StdEncoding: padding required, newlines skipped, error positions."""
        self.assertEqual(go_base64(b"YWJj"), b"abc")
        self.assertEqual(go_base64(b"YWI="), b"ab")
        self.assertEqual(go_base64(b"Y\r\nWI="), b"ab")
        self.assertEqual(go_base64(b""), b"")
        for text, position in (
            (b"YWI", 0),
            (b"YW=", 3),
            (b"Y===", 1),
            (b"YQ==YQ==", 4),
            (b"YQ=x", 2),
        ):
            error = self.assertRaises(GoJsonError, go_base64, text)
            self.assertEqual(error.message, f"illegal base64 data at input byte {position}")


class MarshalTests(SynchronousTestCase):
    def test_go_escapes(self) -> None:
        """Go's json.Marshal: HTML characters, U+2028/9 and control bytes escaped, other
        text as UTF-8."""
        self.assertEqual(
            marshal({"a": "<x> & \u2028é\x01\b\n", "b": [1, True, None]}),
            '{"a":"\\u003cx\\u003e \\u0026 \\u2028é\\u0001\\u0008\\n","b":[1,true,null]}',
        )
