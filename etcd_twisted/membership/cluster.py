"""The cluster's members as the applied log says they are, persisted in the backend.

Conf-change entries add, update and remove members; each member's record (id, name,
peer and client URLs, learner flag) is stored in the backend ``members`` bucket, and
a removed member's id in ``members_removed``, so a restarted member knows its
cluster without replaying history.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Protocol

from etcd_twisted._pb.raft_internal_pb2 import MemberContext
from etcd_twisted.backend import buckets

_ID = struct.Struct(">Q")


class Storage(Protocol):
    """The backend calls the cluster needs."""

    def put(self, bucket: bytes, key: bytes, value: bytes) -> None: ...
    def delete(self, bucket: bytes, key: bytes) -> object: ...
    def range(
        self, bucket: bytes, start: bytes, end: bytes | None = None, limit: int = 0
    ) -> list[tuple[bytes, bytes]]: ...


@dataclass
class Member:
    """One member of the cluster."""

    id: int
    name: str = ""
    peer_urls: list[str] = field(default_factory=list)
    client_urls: list[str] = field(default_factory=list)
    is_learner: bool = False

    def to_context(self) -> bytes:
        """The member encoded for a ConfChange's context and the backend."""
        return MemberContext(
            ID=self.id,
            name=self.name,
            peer_urls=self.peer_urls,
            client_urls=self.client_urls,
            is_learner=self.is_learner,
        ).SerializeToString()

    @classmethod
    def from_context(cls, data: bytes) -> Member:
        """Decode a member from a ConfChange context or a backend record."""
        m = MemberContext.FromString(data)
        return cls(m.ID, m.name, list(m.peer_urls), list(m.client_urls), m.is_learner)


class Cluster:
    """Members by id, the cluster id, and removed ids."""

    def __init__(self, cluster_id: int, storage: Storage) -> None:
        self.cluster_id = cluster_id
        self._storage = storage
        self.members: dict[int, Member] = {}
        self.removed: set[int] = set()

    def load(self) -> None:
        """Read members and removed ids from the backend."""
        start, end = b"\x00" * 8, b"\xff" * 9
        for _key, value in self._storage.range(buckets.MEMBERS, start, end):
            member = Member.from_context(value)
            self.members[member.id] = member
        for key, _ in self._storage.range(buckets.MEMBERS_REMOVED, start, end):
            self.removed.add(_ID.unpack(key)[0])

    def add(self, member: Member) -> None:
        """Add (or replace) a member."""
        self.members[member.id] = member
        self._storage.put(buckets.MEMBERS, _ID.pack(member.id), member.to_context())

    def remove(self, member_id: int) -> None:
        """Remove a member and remember its id as removed."""
        self.members.pop(member_id, None)
        self.removed.add(member_id)
        self._storage.delete(buckets.MEMBERS, _ID.pack(member_id))
        self._storage.put(buckets.MEMBERS_REMOVED, _ID.pack(member_id), b"removed")

    def set_attributes(self, member_id: int, name: str, client_urls: list[str]) -> None:
        """Record a member's published name and client URLs."""
        member = self.members.get(member_id)
        if member is None:
            return
        member.name = name
        member.client_urls = list(client_urls)
        self.add(member)

    def sorted_members(self) -> list[Member]:
        """Members ordered by id, as etcd lists them."""
        return [self.members[i] for i in sorted(self.members)]
