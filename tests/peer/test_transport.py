"""Tests for etcd_twisted.peer.transport over an in-memory network and a fake clock."""

from __future__ import annotations

import os

from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted._pb import raft_pb2
from etcd_twisted.peer import codec
from tests.peer.fakes import CLUSTER, FakeDb, ManualThreads, Member, Network, app, url


class TransportTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.network = Network(self.clock)
        self.dir = self.mktemp()

    def member(
        self, member_id: int, peers: tuple[int, ...] = (), start: bool = True, **kwargs: object
    ) -> Member:
        m = Member(self.network, member_id, self.dir, **kwargs)
        for p in peers:
            m.transport.add_peer(p, [url(p)])
        if start:
            self.start(m)
        return m

    def start(self, *members: Member) -> None:
        for m in members:
            m.transport.startService()
            self.addCleanup(m.transport.stopService)
        self.network.run()

    def pair(self, **kwargs: object) -> tuple[Member, Member]:
        a = self.member(1, (2,), start=False, **kwargs)
        b = self.member(2, (1,), start=False, **kwargs)
        self.start(a, b)
        return a, b


class StreamTests(TransportTestCase):
    def test_messages_arrive_in_order(self) -> None:
        """Messages to one peer arrive in the order sent, across many sends."""
        a, b = self.pair()
        for i in range(50):
            a.transport.send([app(2, 1, i * 3 + k) for k in range(3)])
            if i % 7 == 0:
                self.network.run()
        self.network.run()
        self.assertEqual([m.index for m in b.received], list(range(150)))
        self.assertEqual(b.received[0], app(2, 1, 0))

    def test_sends_in_one_turn_are_one_write(self) -> None:
        """Everything sent to a peer within one reactor turn goes out in a single write."""
        a, b = self.pair()
        stream = a.transport.peers[2]._dialer.link
        assert stream is not None
        writes: list[bytes] = []
        original = stream.write
        stream.write = lambda data: (writes.append(data), original(data))[1]  # type: ignore[method-assign]
        for i in range(10):
            a.transport.send([app(2, 1, i)])
        self.assertEqual(writes, [])
        self.clock.advance(0)
        self.assertEqual(len(writes), 1)
        self.network.run()
        self.assertEqual(len(b.received), 10)

    def test_messages_to_several_peers(self) -> None:
        """One send with messages for two peers reaches each, and not the sender itself."""
        a = self.member(1, (2, 3), start=False)
        b = self.member(2, (1, 3), start=False)
        c = self.member(3, (1, 2), start=False)
        self.start(a, b, c)
        a.transport.send([app(2, 1, 1), app(3, 1, 2), app(9, 1, 3)])
        self.network.run()
        self.assertEqual([m.index for m in b.received], [1])
        self.assertEqual([m.index for m in c.received], [2])

    def test_active_since_and_round_trip(self) -> None:
        """A peer is active from the stream's opening; pings measure its round trip."""
        self.clock.advance(100)
        a, b = self.pair()
        self.assertTrue(a.transport.is_active(2))
        self.assertEqual(a.transport.active_since(2), 100)
        self.assertFalse(a.transport.is_active(7))
        self.network.advance(1.0)
        self.assertEqual(a.round_trips[-1][0], 2)
        self.assertEqual(a.transport.round_trip(2), a.round_trips[-1][1])

    def test_idle_stream_stays_up(self) -> None:
        """With no raft traffic, pings keep both ends from timing out."""
        a, b = self.pair()
        self.network.advance(30.0, step=0.5)
        self.assertTrue(a.transport.is_active(2))
        self.assertEqual(a.unreachable, [])

    def test_silent_peer_is_dropped(self) -> None:
        """A peer that stops answering is found by the idle timeout and reported unreachable."""
        a, b = self.pair()
        link = b.transport._streams[1]
        link.write = lambda data: None  # type: ignore[method-assign]
        link._frames = lambda data: None  # type: ignore[method-assign]
        self.network.advance(7.0)
        self.assertIn(2, a.unreachable)


class BufferTests(TransportTestCase):
    def test_full_buffer_drops_and_reports(self) -> None:
        """A send to a peer whose buffer is full is dropped and the peer reported unreachable."""
        a = self.member(1, (2,), buffer_size=5)
        self.network.run()
        a.unreachable.clear()
        a.transport.send([app(2, 1, i) for i in range(8)])
        self.assertEqual(a.transport.dropped, 3)
        self.assertEqual(a.unreachable, [2])
        b = self.member(2, (1,))
        self.network.advance(1.0)
        self.assertEqual([m.index for m in b.received], [0, 1, 2, 3, 4])

    def test_paused_stream_fills_buffer(self) -> None:
        """While the connection is backed up, messages queue; the excess drops; resume drains."""
        a, b = self.pair(buffer_size=4)
        stream = a.transport.peers[2]._dialer.link
        assert stream is not None
        stream.pauseProducing()
        a.transport.send([app(2, 1, i) for i in range(6)])
        self.network.run()
        self.assertEqual(b.received, [])
        self.assertEqual(a.unreachable, [2])
        stream.resumeProducing()
        self.network.run()
        self.assertEqual([m.index for m in b.received], [0, 1, 2, 3])


class ReconnectTests(TransportTestCase):
    def test_reconnects_after_peer_restart_with_backoff(self) -> None:
        """After a peer goes away, redials back off (0.1 s, 0.1 s, 0.2 s, 0.4 s...) until it returns."""
        a, b = self.pair()
        self.network.cut(url(2))
        self.assertFalse(a.transport.is_active(2))
        self.assertIn(2, a.unreachable)
        start = self.clock.seconds()
        self.network.attempts.clear()
        self.network.advance(2.0, step=0.01)
        delays = [round(t - start, 2) for t, u in self.network.attempts if u == url(2)]
        gaps = [round(y - x, 2) for x, y in zip([0.0] + delays, delays, strict=False)]
        self.assertEqual(len(gaps), 5)
        for gap, expected in zip(gaps, [0.1, 0.1, 0.2, 0.4, 0.8], strict=True):
            self.assertTrue(expected <= gap <= expected + 0.02, (gaps, expected))
        a.transport.send([app(2, 1, 1)])
        b2 = self.member(2, (1,))
        self.network.advance(5.0)
        self.assertTrue(a.transport.is_active(2))
        self.assertEqual([m.index for m in b2.received], [1])

    def test_peer_that_dials_us_is_dialed_back_at_once(self) -> None:
        """A restarted peer's inbound stream cuts our redial backoff short."""
        a, b = self.pair()
        self.network.cut(url(2))
        self.network.advance(10.0, step=0.1)  # the backoff has grown to its 5 s cap
        a.transport.send([app(2, 1, 1)])
        self.network.attempts.clear()
        b2 = self.member(2, (1,))
        self.network.advance(0.05, step=0.01)
        self.assertTrue(a.transport.is_active(2))
        self.assertEqual([u for _, u in self.network.attempts if u == url(2)], [url(2)])
        self.assertEqual([m.index for m in b2.received], [1])

    def test_dial_soon_leaves_an_open_stream_alone(self) -> None:
        """A new inbound stream from a peer we are linked to does not redial it."""
        a, b = self.pair()
        link = a.transport.peers[2]._dialer.link
        self.network.attempts.clear()
        b.transport.peers[1]._dialer.redial()  # b's stream to a is replaced
        self.network.advance(1.0)
        self.assertIs(a.transport.peers[2]._dialer.link, link)
        self.assertEqual([u for _, u in self.network.attempts if u == url(2)], [])

    def test_update_peer_redials_new_url(self) -> None:
        """When a peer's URLs change, the stream moves to the new URL."""
        a, b = self.pair()
        new = "http://10.9.9.9:2380"
        self.network.servers[new] = self.network.servers[url(2)]
        self.network.attempts.clear()
        a.transport.update_peer(2, [new])
        self.network.advance(1.0)
        self.assertEqual([u for _, u in self.network.attempts], [new])
        a.transport.send([app(2, 1, 5)])
        self.network.run()
        self.assertEqual([m.index for m in b.received], [5])

    def test_remove_peer_closes_links(self) -> None:
        """A removed peer is no longer dialed, sent to, or listened to."""
        a, b = self.pair()
        a.transport.remove_peer(2)
        b.transport.remove_peer(1)
        self.network.advance(2.0)
        self.assertEqual(self.network.pumps, [])
        a.transport.send([app(2, 1, 1)])
        self.network.run()
        self.assertEqual(b.received, [])

    def test_stop_service_closes_everything(self) -> None:
        """Stopping the transport closes its streams and stops redialing."""
        a, b = self.pair()
        d = a.transport.stopService()
        self.network.run()
        self.successResultOf(d)
        self.network.attempts.clear()
        self.network.advance(3.0)
        self.assertEqual([u for _, u in self.network.attempts if u == url(2)], [])


class HandshakeRefusalTests(TransportTestCase):
    def test_cluster_id_mismatch_is_refused(self) -> None:
        """A member of another cluster is refused with "cluster ID mismatch" and nothing flows."""
        a = self.member(1, (2,), cluster_id=0xBAD)
        b = self.member(2, (1,))
        refusals: list[str] = []
        original = a.transport.peer_refused
        a.transport.peer_refused = lambda i, e: (refusals.append(e.reason), original(i, e))  # type: ignore[method-assign]
        self.network.advance(0.5)
        a.transport.send([app(2, 1, 1)])
        self.network.advance(0.5)
        self.assertIn("cluster ID mismatch", refusals)
        self.assertFalse(a.transport.is_active(2))
        self.assertEqual(b.received, [])

    def test_recipient_mismatch_and_unknown_sender_refused(self) -> None:
        """The acceptor refuses links meant for another member or from a non-member."""
        a = self.member(1, (2,))
        b = self.member(3, (1,))  # serves url(3)
        self.network.servers[url(2)] = self.network.servers[url(3)]
        refusals: list[tuple[int, str]] = []
        a.transport.peer_refused = lambda i, e: refusals.append((e.status, e.reason))  # type: ignore[method-assign]
        self.network.advance(0.5)
        self.assertEqual(refusals[0], (412, "to field mismatch"))
        c = self.member(4)
        c.transport.add_peer(1, [url(1)])
        c_refusals: list[tuple[int, str]] = []
        c.transport.peer_refused = lambda i, e: c_refusals.append((e.status, e.reason))  # type: ignore[method-assign]
        self.network.advance(0.5)
        self.assertEqual(c_refusals[0], (404, "error sender not found"))
        self.assertFalse(c.transport.is_active(1))
        self.assertFalse(b.transport.is_active(1))

    def test_removed_member_is_told(self) -> None:
        """A removed member is refused with 410 and learns it was removed, once."""
        removed = {1}
        a = self.member(1, (2, 3))
        self.member(2, (1, 3), is_removed=lambda i: i in removed)
        self.member(3, (1, 2), is_removed=lambda i: i in removed)
        self.network.advance(3.0)
        self.assertGreater(len([u for _, u in self.network.attempts if u == url(2)]), 2)
        self.assertEqual(a.removed_calls, 1)
        self.assertFalse(a.transport.is_active(2))


class SnapshotTests(TransportTestCase):
    def snap(self, index: int = 42) -> raft_pb2.Message:
        return raft_pb2.Message(
            type=raft_pb2.MsgSnap,
            to=2,
            from_=1,
            term=3,
            snapshot=raft_pb2.Snapshot(
                metadata=raft_pb2.SnapshotMetadata(
                    index=index, term=3, conf_state=raft_pb2.ConfState(voters=[1, 2])
                )
            ),
        )

    def test_snapshot_reassembled_exactly(self) -> None:
        """The database stream arrives byte for byte, with its message, and raft hears "ok"."""
        a, b = self.pair()
        chunks = [bytes([i % 251]) * (1000 + i) for i in range(40)]
        a.db = FakeDb(chunks)
        message = self.snap()
        a.transport.send([message, app(2, 1, 7)])
        self.network.run()
        self.assertEqual(len(b.snapshots), 1)
        got_message, data = b.snapshots[0]
        self.assertEqual(got_message, message)
        self.assertEqual(data, b"".join(chunks))
        self.assertEqual(a.snapshot_status, [(2, True)])
        self.assertTrue(a.db.closed)
        self.assertEqual([m.index for m in b.received], [7])

    def test_snapshot_refused_by_receiver(self) -> None:
        """If the server cannot take the snapshot, the sender reports failure to raft."""
        a, b = self.pair()

        def refuse(message: raft_pb2.Message, path: str) -> None:
            raise OSError("disk full")

        b.transport.on_snapshot = refuse
        a.transport.send([self.snap()])
        self.network.run()
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertEqual(a.snapshot_status, [(2, False)])
        self.assertIn(2, a.unreachable)
        self.assertTrue(a.db.closed)

    def test_snapshot_to_unreachable_peer_fails(self) -> None:
        """A snapshot to a peer that cannot be reached fails at once and releases the database."""
        a = self.member(1, (2,))
        a.transport.send([self.snap()])
        self.network.run()
        self.assertEqual(a.snapshot_status, [(2, False)])
        self.assertTrue(a.db.closed)

    def test_interrupted_snapshot_leaves_no_file(self) -> None:
        """A snapshot cut off mid-stream fails, releases the database, and leaves no file."""
        threads = ManualThreads()
        a = self.member(1, (2,), start=False, run_in_thread=threads)
        b = self.member(2, (1,), start=False)
        self.start(a, b)
        a.db = FakeDb([b"x" * 100] * 5)
        a.transport.send([self.snap()])
        self.network.run()
        threads.run_one()
        threads.run_one()
        self.network.run()
        self.assertEqual(len(os.listdir(self.dir)), 1)
        self.network.cut(url(2))
        self.assertFalse(a.db.closed)
        threads.run_one()
        self.assertTrue(a.db.closed)
        self.assertEqual(threads.pending, [])
        self.assertEqual(b.snapshots, [])
        self.assertEqual(a.snapshot_status, [(2, False)])
        self.assertEqual(os.listdir(self.dir), [])

    def test_frames_in_order_on_wire(self) -> None:
        """The snapshot link carries MESSAGE, SNAP_DATA..., SNAP_END."""
        a, b = self.pair()
        a.db = FakeDb([b"ab", b"cd"])
        seen: list[int] = []
        original = b.transport.snapshot_received

        def spy(message: raft_pb2.Message, path: str) -> object:
            seen.append(message.snapshot.metadata.index)
            return original(message, path)

        b.transport.snapshot_received = spy  # type: ignore[method-assign]
        a.transport.send([self.snap(index=9)])
        self.network.run()
        self.assertEqual(seen, [9])
        self.assertEqual(b.snapshots[0][1], b"abcd")
        self.assertEqual(codec.SNAP_END, 5)


class ClusterIdTests(TransportTestCase):
    def test_cluster_id_can_be_set_later(self) -> None:
        """A joining member that learns the cluster id later can then connect."""
        a = self.member(1, (2,), cluster_id=0)
        b = self.member(2, (1,))
        self.network.advance(0.3)
        self.assertFalse(a.transport.is_active(2))
        a.transport.cluster_id = CLUSTER
        self.network.advance(3.0)
        self.assertTrue(a.transport.is_active(2))
        self.assertTrue(b.transport.is_active(1))


class SilentPeerTests(TransportTestCase):
    def silent_server(self) -> None:
        self.network.servers[url(2)] = Factory.forProtocol(Protocol)

    def test_handshake_times_out_and_backs_off(self) -> None:
        """A peer that accepts TCP but never answers the upgrade is dropped and redialed."""
        self.silent_server()
        a = self.member(1, (2,))
        self.network.advance(6.0, step=0.1)
        self.assertEqual(len(self.network.attempts), 1)
        self.network.advance(1.0, step=0.1)
        self.assertEqual(len(self.network.attempts), 2)
        self.assertFalse(a.transport.is_active(2))
        self.assertIn(2, a.unreachable)

    def test_stop_during_handshake(self) -> None:
        """Stopping while a handshake is pending drops that connection and dials no more."""
        self.silent_server()
        a = self.member(1, (2,))
        d = a.transport.stopService()
        self.network.run()
        self.successResultOf(d)
        self.assertEqual(self.network.pumps, [])
        self.network.advance(10.0, step=0.5)
        self.assertEqual(len(self.network.attempts), 1)
