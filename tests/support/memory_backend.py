"""An in-memory stand-in for ``etcd_twisted.backend``'s batch transaction, for unit tests."""

from __future__ import annotations

from sortedcontainers import SortedDict


class MemoryBatchTx:
    """Buckets of sorted byte keys; the same calls as the LMDB batch transaction."""

    def __init__(self) -> None:
        self.buckets: dict[bytes, SortedDict] = {}

    def put(self, bucket: bytes, key: bytes, value: bytes) -> None:
        self.buckets.setdefault(bucket, SortedDict())[bytes(key)] = bytes(value)

    def get(self, bucket: bytes, key: bytes) -> bytes | None:
        return self.buckets.get(bucket, {}).get(key)

    def get_many(self, bucket: bytes, keys: list[bytes]) -> list[tuple[bytes, bytes]]:
        table = self.buckets.get(bucket, {})
        return [(key, table[key]) for key in keys if key in table]

    def delete(self, bucket: bytes, key: bytes) -> None:
        self.buckets.get(bucket, {}).pop(key, None)

    def range(
        self, bucket: bytes, start: bytes, end: bytes | None = None, limit: int = 0
    ) -> list[tuple[bytes, bytes]]:
        data = self.buckets.get(bucket)
        if data is None:
            return []
        if end is None:
            value = data.get(start)
            return [] if value is None else [(start, value)]
        keys = data.irange(start, end, inclusive=(True, False))
        rows = []
        for key in keys:
            rows.append((key, data[key]))
            if limit and len(rows) >= limit:
                break
        return rows


class MemoryBackend:
    """Holds one :class:`MemoryBatchTx`; reopening is sharing the same object."""

    def __init__(self) -> None:
        self.batch_tx = MemoryBatchTx()
