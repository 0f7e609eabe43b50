"""A dict-backed stand-in for the backend's batch transaction."""


class DictStorage:
    """Buckets of sorted keys in memory, with the range semantics of the backend."""

    def __init__(self) -> None:
        self.buckets: dict[bytes, dict[bytes, bytes]] = {}

    def put(self, bucket: bytes, key: bytes, value: bytes) -> None:
        self.buckets.setdefault(bucket, {})[key] = value

    def delete(self, bucket: bytes, key: bytes) -> None:
        self.buckets.get(bucket, {}).pop(key, None)

    def range(
        self, bucket: bytes, start: bytes, end: bytes | None = None, limit: int = 0
    ) -> list[tuple[bytes, bytes]]:
        items = self.buckets.get(bucket, {})
        if end is None:
            return [(start, items[start])] if start in items else []
        rows = [(k, items[k]) for k in sorted(items) if start <= k < end]
        return rows[:limit] if limit else rows
