"""Watchers found by the keys they watch (etcd's ``server/mvcc/watcher_group.go``).

Single-key watchers sit in a dict by key; range watchers share one entry per
distinct interval, so many watchers on one prefix cost one comparison per key.
Everything iterates in insertion order, which keeps delivery deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from .watcher import Watcher

_K = TypeVar("_K")


class WatcherGroup:
    """A set of watchers with lookup by key."""

    __slots__ = ("_all", "_keys", "_ranges")

    def __init__(self, watchers: Iterable[Watcher] = ()) -> None:
        self._all: dict[Watcher, None] = {}
        self._keys: dict[bytes, dict[Watcher, None]] = {}
        #: ``(start, end)`` to its watchers; an empty ``end`` is unbounded.
        self._ranges: dict[tuple[bytes, bytes], dict[Watcher, None]] = {}
        for w in watchers:
            self.add(w)

    def __len__(self) -> int:
        return len(self._all)

    def __iter__(self) -> Iterator[Watcher]:
        return iter(self._all)

    def __contains__(self, w: object) -> bool:
        return w in self._all

    def add(self, w: Watcher) -> None:
        """Add ``w``, which must not be in the group."""
        if w in self._all:
            raise ValueError(f"watcher {w.id} is already in the group")
        self._all[w] = None
        if w.end is None:
            self._keys.setdefault(w.key, {})[w] = None
        else:
            self._ranges.setdefault((w.key, w.end), {})[w] = None

    def remove(self, w: Watcher) -> bool:
        """Remove ``w``; False if it was not in the group."""
        if w not in self._all:
            return False
        del self._all[w]
        if w.end is None:
            _discard(self._keys, w.key, w)
        else:
            _discard(self._ranges, (w.key, w.end), w)
        return True

    def watchers_for(self, key: bytes) -> list[Watcher]:
        """The watchers whose key or range holds ``key``."""
        found = list(self._keys.get(key, ()))
        for (start, end), members in self._ranges.items():
            if start <= key and (not end or key < end):
                found.extend(members)
        return found

    def watches(self, key: bytes) -> bool:
        """Whether any watcher of the group wants ``key``."""
        if key in self._keys:
            return True
        return any(start <= key and (not end or key < end) for start, end in self._ranges)


def _discard(table: dict[_K, dict[Watcher, None]], slot: _K, w: Watcher) -> None:
    members = table[slot]
    del members[w]
    if not members:
        del table[slot]
