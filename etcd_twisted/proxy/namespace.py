"""``--namespace``: every key a client names is under the prefix upstream, and the
prefix is taken off every key in the answers (etcd's ``namespace`` package)."""

from __future__ import annotations

from etcd_twisted._pb import kv_pb2, rpc_pb2

__all__ = ["Namespace"]


def _prefix_end(prefix: bytes) -> bytes:
    """The first key after every key starting with ``prefix`` (``\\0`` when there is none)."""
    raw = bytearray(prefix)
    while raw:
        if raw[-1] < 0xFF:
            raw[-1] += 1
            return bytes(raw)
        raw.pop()
    return b"\0"


class Namespace:
    """Rewrites requests into, and answers out of, one key prefix."""

    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix

    def interval(self, key: bytes, range_end: bytes) -> tuple[bytes, bytes]:
        """``[key, range_end)`` under the prefix."""
        if range_end == b"\0":
            return self.prefix + key, _prefix_end(self.prefix)
        if range_end:
            return self.prefix + key, self.prefix + range_end
        return self.prefix + key, b""

    def strip_kv(self, kv: kv_pb2.KeyValue) -> None:
        if kv.key.startswith(self.prefix):
            kv.key = kv.key[len(self.prefix) :]

    def request(self, message: object) -> None:
        """Rewrite a KV request (Range, Put, DeleteRange, Txn) in place."""
        if isinstance(message, rpc_pb2.PutRequest):
            message.key = self.prefix + message.key
        elif isinstance(message, (rpc_pb2.RangeRequest, rpc_pb2.DeleteRangeRequest)):
            message.key, message.range_end = self.interval(message.key, message.range_end)
        elif isinstance(message, rpc_pb2.TxnRequest):
            for compare in message.compare:
                compare.key, compare.range_end = self.interval(compare.key, compare.range_end)
            for op in list(message.success) + list(message.failure):
                self.request(getattr(op, op.WhichOneof("request")))

    def response(self, message: object) -> None:
        """Take the prefix off the keys of a KV answer, in place."""
        if isinstance(message, rpc_pb2.RangeResponse):
            for kv in message.kvs:
                self.strip_kv(kv)
        elif isinstance(message, rpc_pb2.PutResponse):
            if message.HasField("prev_kv"):
                self.strip_kv(message.prev_kv)
        elif isinstance(message, rpc_pb2.DeleteRangeResponse):
            for kv in message.prev_kvs:
                self.strip_kv(kv)
        elif isinstance(message, rpc_pb2.TxnResponse):
            for op in message.responses:
                kind = op.WhichOneof("response")
                if kind is not None:
                    self.response(getattr(op, kind))

    def events(self, response: rpc_pb2.WatchResponse) -> None:
        for event in response.events:
            self.strip_kv(event.kv)
            if event.HasField("prev_kv"):
                self.strip_kv(event.prev_kv)
