"""Raised alarms (NOSPACE, CORRUPT) per member, persisted in the backend ``alarm`` bucket.

As in etcd, an alarm is keyed by the encoded ``AlarmMember`` itself; activating an
alarm a member already has, or deactivating one it does not, changes nothing.
"""

from __future__ import annotations

from typing import Protocol

from etcd_twisted._pb import rpc_pb2
from etcd_twisted.backend import buckets

NONE = rpc_pb2.NONE
NOSPACE = rpc_pb2.NOSPACE


class Storage(Protocol):
    """The backend calls the alarm store needs."""

    def put(self, bucket: bytes, key: bytes, value: bytes) -> None: ...
    def delete(self, bucket: bytes, key: bytes) -> object: ...
    def range(
        self, bucket: bytes, start: bytes, end: bytes | None = None, limit: int = 0
    ) -> list[tuple[bytes, bytes]]: ...


class AlarmStore:
    """The alarms raised in the cluster, by (member, type)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._alarms: set[tuple[int, int]] = set()
        #: Alarm types raised by at least one member (checked on every applied write).
        self._types: frozenset[int] = frozenset()
        for key, _ in storage.range(buckets.ALARM, b"\x00", b"\xff" * 32):
            member = rpc_pb2.AlarmMember.FromString(key)
            self._alarms.add((member.memberID, member.alarm))
        self._retype()

    def _retype(self) -> None:
        self._types = frozenset(kind for _, kind in self._alarms)

    def activate(self, member_id: int, alarm: int) -> rpc_pb2.AlarmMember | None:
        """Raise ``alarm`` for a member; None if it was already raised."""
        if (member_id, alarm) in self._alarms:
            return None
        self._alarms.add((member_id, alarm))
        self._retype()
        member = rpc_pb2.AlarmMember(memberID=member_id, alarm=alarm)
        self._storage.put(buckets.ALARM, _key(member), b"")
        return member

    def deactivate(self, member_id: int, alarm: int) -> rpc_pb2.AlarmMember | None:
        """Clear ``alarm`` for a member; None if it was not raised."""
        if (member_id, alarm) not in self._alarms:
            return None
        self._alarms.discard((member_id, alarm))
        self._retype()
        member = rpc_pb2.AlarmMember(memberID=member_id, alarm=alarm)
        self._storage.delete(buckets.ALARM, _key(member))
        return member

    def active(self, alarm: int) -> bool:
        """Whether any member has ``alarm`` raised."""
        return alarm in self._types

    def get(self, alarm: int = NONE) -> list[rpc_pb2.AlarmMember]:
        """The raised alarms of one type (NONE: every type), by member then type."""
        return [
            rpc_pb2.AlarmMember(memberID=m, alarm=a)
            for m, a in sorted(self._alarms)
            if alarm == NONE or a == alarm
        ]


def _key(member: rpc_pb2.AlarmMember) -> bytes:
    return member.SerializeToString(deterministic=True)
