"""A min-heap of lease ids by due time, with at most one live entry per id."""

from heapq import heapify, heappop, heappush

# Rebuild the heap when stale entries outnumber live ones by this much and more.
_SLACK = 64


class ExpiryQueue:
    """Lease ids ordered by the time they fall due (an expiry, or a checkpoint).

    Rescheduling or removing an id leaves its old heap entry behind as stale (it no
    longer matches the id's current sequence number) instead of searching the heap;
    stale entries are dropped when they reach the top, and the heap is rebuilt when
    they pile up, so every operation is O(log n) amortized on C ``heapq``.
    """

    __slots__ = ("_heap", "_live", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int]] = []  # (due, seq, lease id)
        self._live: dict[int, int] = {}  # lease id -> seq of its live entry
        self._seq = 0

    def __len__(self) -> int:
        return len(self._live)

    def schedule(self, lease_id: int, due: float) -> None:
        """Make ``lease_id`` fall due at ``due``, replacing any earlier schedule."""
        self._seq += 1
        self._live[lease_id] = self._seq
        heappush(self._heap, (due, self._seq, lease_id))
        self._maybe_compact()

    def remove(self, lease_id: int) -> None:
        """Forget ``lease_id`` (a no-op if it is not scheduled)."""
        if self._live.pop(lease_id, None) is not None:
            self._maybe_compact()

    def pop_due(self, now: float) -> int | None:
        """Take the earliest id whose due time is ``<= now`` out of the queue, or None."""
        heap, live = self._heap, self._live
        while heap:
            due, seq, lease_id = heap[0]
            if live.get(lease_id) != seq:
                heappop(heap)
            elif due <= now:
                heappop(heap)
                del live[lease_id]
                return lease_id
            else:
                return None
        return None

    def clear(self) -> None:
        """Forget every id."""
        self._heap.clear()
        self._live.clear()

    def _maybe_compact(self) -> None:
        if len(self._heap) > 2 * len(self._live) + _SLACK:
            live = self._live
            self._heap = [e for e in self._heap if live.get(e[2]) == e[1]]
            heapify(self._heap)
