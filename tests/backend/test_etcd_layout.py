"""Tests for etcd_twisted.backend.etcd_layout: our buckets as etcd 3.5 stores them, and back."""

from __future__ import annotations

import struct

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb.raft_internal_pb2 import MemberContext
from etcd_twisted.backend import buckets
from etcd_twisted.backend.etcd_layout import from_etcd, member_from_json, member_to_json, to_etcd

VOTER = MemberContext(ID=13668033151171901709, name="default", peer_urls=["http://127.0.0.1:23801"])
LEARNER = MemberContext(
    ID=0x10,
    name="l",
    peer_urls=["http://b:2380", "http://a:2380"],
    client_urls=["http://a:2379"],
    is_learner=True,
)
_ID = struct.Struct(">Q")


def ours() -> list[tuple[bytes, list[tuple[bytes, bytes]]]]:
    return [
        (buckets.KEY, [(b"\x00" * 8 + b"_" + b"\x00" * 8, b"kv")]),
        (
            buckets.MEMBERS,
            [
                (_ID.pack(LEARNER.ID), LEARNER.SerializeToString()),
                (_ID.pack(VOTER.ID), VOTER.SerializeToString()),
            ],
        ),
        (buckets.MEMBERS_REMOVED, [(_ID.pack(0xABC), b"removed")]),
        (
            buckets.META,
            [
                (b"consistent_index", b"\x00" * 7 + b"\x15"),
                (b"rejectedConfChange/\x00", b""),
                (b"term", b"\x00" * 7 + b"\x02"),
            ],
        ),
    ]


def materialise(bs: object) -> dict[bytes, list[tuple[bytes, bytes]]]:
    return {name: list(pairs) for name, pairs in bs}  # type: ignore[attr-defined]


class EtcdLayoutTests(SynchronousTestCase):
    def test_member_json_is_etcds(self) -> None:
        """A member's JSON is byte for byte what etcd 3.5.1 stored for the same member."""
        self.assertEqual(
            member_to_json(VOTER),
            b'{"id":13668033151171901709,"peerURLs":["http://127.0.0.1:23801"],"name":"default"}',
        )
        self.assertEqual(
            member_to_json(LEARNER),
            b'{"id":16,"peerURLs":["http://b:2380","http://a:2380"],"isLearner":true,'
            b'"name":"l","clientURLs":["http://a:2379"]}',
        )

    def test_member_json_round_trip(self) -> None:
        """etcd's JSON reads back into the same member."""
        for m in (VOTER, LEARNER):
            self.assertEqual(member_from_json(member_to_json(m)), m)

    def test_to_etcd(self) -> None:
        """Member keys become hex ids with JSON values (sorted by the new key), confState is
        derived from the members, our own meta keys stay out, other buckets pass through."""
        got = materialise(to_etcd(ours()))
        self.assertEqual(got[buckets.KEY], ours()[0][1])
        self.assertEqual(
            got[buckets.MEMBERS],
            [(b"10", member_to_json(LEARNER)), (b"bdae9bbc11dd390d", member_to_json(VOTER))],
        )
        self.assertEqual(got[buckets.MEMBERS_REMOVED], [(b"abc", b"removed")])
        self.assertEqual(
            got[buckets.META],
            [
                (
                    b"confState",
                    b'{"voters":[13668033151171901709],"learners":[16],"auto_leave":false}',
                ),
                (b"consistent_index", b"\x00" * 7 + b"\x15"),
                (b"term", b"\x00" * 7 + b"\x02"),
            ],
        )

    def test_conf_state_after_every_key(self) -> None:
        """confState goes last when every meta key sorts before it."""
        got = materialise(to_etcd([(buckets.META, [(b"a", b"1")])]))
        self.assertEqual(got[buckets.META], [(b"a", b"1"), (b"confState", b'{"auto_leave":false}')])

    def test_from_etcd(self) -> None:
        """etcd's buckets come back in our encoding, without confState."""
        back = materialise(from_etcd(to_etcd(ours())))
        want = materialise(ours())
        want[buckets.META] = [p for p in want[buckets.META] if not p[0].startswith(b"rejected")]
        self.assertEqual(
            {k: sorted(v) for k, v in back.items()}, {k: sorted(v) for k, v in want.items()}
        )
