"""A sliding window of in-flight MsgApp messages to one follower."""

from collections import deque


class Inflights:
    """The last indexes of MsgApp messages sent but not yet acknowledged, oldest first.

    The leader stops sending to a follower in replicate state when the window is full; an
    acknowledgement up to some index frees every message at or below it.
    """

    __slots__ = ("size", "_queue")

    def __init__(self, size: int) -> None:
        self.size = size
        self._queue: deque[int] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, index: int) -> None:
        """Record a message whose last entry is ``index`` (indexes must increase)."""
        if len(self._queue) >= self.size:
            raise AssertionError("cannot add into a full inflights window")
        self._queue.append(index)

    def free_le(self, index: int) -> None:
        """Free every in-flight message whose last index is at most ``index``."""
        q = self._queue
        while q and q[0] <= index:
            q.popleft()

    def free_first_one(self) -> None:
        """Free the oldest in-flight message."""
        if self._queue:
            self._queue.popleft()

    def full(self) -> bool:
        """Whether no more messages may be sent."""
        return len(self._queue) >= self.size

    def reset(self) -> None:
        """Forget every in-flight message."""
        self._queue.clear()

    def copy(self) -> "Inflights":
        """An independent copy."""
        other = Inflights(self.size)
        other._queue.extend(self._queue)
        return other
