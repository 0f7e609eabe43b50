"""Translate the backend's buckets between our encoding and etcd 3.5's.

Most buckets already hold what etcd's hold, byte for byte: ``key`` (17-byte
revisions to ``mvccpb.KeyValue``), ``lease`` (8-byte ids to ``leasepb.Lease``),
``auth``, ``authUsers`` and ``authRoles`` (authpb; password hashes are carried
unchanged), ``alarm``, ``cluster`` and the meta keys ``consistent_index``,
``term``, ``scheduledCompactRev`` and ``finishedCompactRev``. The differences:

* ``members``: ours maps the 8-byte big-endian id to a ``MemberContext``
  protobuf; etcd maps the id in hex to the member's JSON
  (``{"id","peerURLs","isLearner","name","clientURLs"}``, empty fields left out).
* ``members_removed``: the same key change; the value is ``removed`` in both.
* ``meta``: etcd keeps ``confState`` (the voters and learners, as JSON), derived
  here from the members on the way out and dropped on the way in (nothing of ours
  keeps it current); our ``rejectedConfChange/…`` markers stay home.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Iterator

from etcd_twisted._pb.raft_internal_pb2 import MemberContext
from etcd_twisted.backend import buckets

__all__ = ["from_etcd", "member_from_json", "member_to_json", "to_etcd"]

Pairs = Iterable[tuple[bytes, bytes]]
_ID = struct.Struct(">Q")
CONF_STATE_KEY = b"confState"
_OURS_ONLY_META_PREFIX = b"rejectedConfChange/"


def member_to_json(m: MemberContext) -> bytes:
    """etcd's JSON for a member (Go's field order, ``omitempty`` fields left out)."""
    doc: dict[str, object] = {"id": m.ID, "peerURLs": list(m.peer_urls)}
    if m.is_learner:
        doc["isLearner"] = True
    if m.name:
        doc["name"] = m.name
    if m.client_urls:
        doc["clientURLs"] = list(m.client_urls)
    return json.dumps(doc, separators=(",", ":")).encode()


def member_from_json(data: bytes) -> MemberContext:
    """A member from etcd's JSON."""
    doc = json.loads(data)
    return MemberContext(
        ID=int(doc["id"]),
        name=doc.get("name") or "",
        peer_urls=doc.get("peerURLs") or [],
        client_urls=doc.get("clientURLs") or [],
        is_learner=bool(doc.get("isLearner", False)),
    )


def _hex_id(key: bytes) -> bytes:
    return format(_ID.unpack(key)[0], "x").encode()


def _binary_id(key: bytes) -> bytes:
    return _ID.pack(int(key, 16))


def to_etcd(ours: Iterable[tuple[bytes, Pairs]]) -> Iterator[tuple[bytes, Pairs]]:
    """Our buckets (in name order) as etcd stores them (in name and key order)."""
    voters: list[int] = []
    learners: list[int] = []
    for name, pairs in ours:
        if name == buckets.MEMBERS:
            members = [MemberContext.FromString(value) for _, value in pairs]
            for m in members:
                (learners if m.is_learner else voters).append(m.ID)
            yield name, sorted((format(m.ID, "x").encode(), member_to_json(m)) for m in members)
        elif name == buckets.MEMBERS_REMOVED:
            yield name, sorted((_hex_id(key), value) for key, value in pairs)
        elif name == buckets.META:
            yield name, _meta_to_etcd(pairs, voters, learners)
        else:
            yield name, pairs


def _meta_to_etcd(
    pairs: Pairs, voters: list[int], learners: list[int]
) -> Iterator[tuple[bytes, bytes]]:
    conf: dict[str, object] = {}
    if voters:
        conf["voters"] = sorted(voters)
    if learners:
        conf["learners"] = sorted(learners)
    conf["auto_leave"] = False
    conf_state = (CONF_STATE_KEY, json.dumps(conf, separators=(",", ":")).encode())
    for key, value in pairs:
        if key.startswith(_OURS_ONLY_META_PREFIX) or key == CONF_STATE_KEY:
            continue
        if conf_state is not None and key > CONF_STATE_KEY:
            yield conf_state
            conf_state = None
        yield key, value
    if conf_state is not None:
        yield conf_state


def from_etcd(theirs: Iterable[tuple[bytes, Pairs]]) -> Iterator[tuple[bytes, Pairs]]:
    """etcd's buckets as ours stores them (pairs of a bucket in any order)."""
    for name, pairs in theirs:
        if name == buckets.MEMBERS:
            yield (
                name,
                (
                    (_ID.pack(m.ID), m.SerializeToString())
                    for m in (member_from_json(value) for _, value in pairs)
                ),
            )
        elif name == buckets.MEMBERS_REMOVED:
            yield name, ((_binary_id(key), value) for key, value in pairs)
        elif name == buckets.META:
            yield name, ((k, v) for k, v in pairs if k != CONF_STATE_KEY)
        else:
            yield name, pairs
