"""Tests for etcd_twisted.server.wal_writer: ordered, grouped WAL writes on one thread."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.trial.unittest import TestCase

from etcd_twisted._pb import raft_pb2
from etcd_twisted.server.wal_writer import WALWriter
from etcd_twisted.wal import WAL

WAIT = 5.0  # seconds: the bound on waiting for the writer thread


def entry(i: int) -> raft_pb2.Entry:
    """Entry ``i`` of term 1."""
    return raft_pb2.Entry(term=1, index=i, data=b"%d" % i)


class RecordingWAL:
    """Records saves; every save waits until ``release`` is set."""

    def __init__(self) -> None:
        self.saves: list[tuple[raft_pb2.HardState, list[int]]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.threads: set[str] = set()

    def save(self, hard_state: raft_pb2.HardState, entries: Sequence[raft_pb2.Entry]) -> None:
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        if not self.release.wait(WAIT):
            raise AssertionError("never released")
        self.saves.append((hard_state, [e.index for e in entries]))


class FailingWAL:
    """A WAL whose disk has failed."""

    def save(self, hard_state: raft_pb2.HardState, entries: Sequence[raft_pb2.Entry]) -> None:
        raise OSError(5, "Input/output error")


class WALWriterTests(TestCase):
    timeout = 20

    def start(self, wal: object) -> WALWriter:
        writer = WALWriter(wal, reactor)  # type: ignore[arg-type]
        writer.startService()
        self.addCleanup(lambda: writer.stopService() if writer.running else None)
        return writer

    @inlineCallbacks
    def test_saves_queued_during_a_sync_are_grouped(self):
        """Batches submitted while a write runs become one WAL.save, in order, with the newest hard state."""
        wal = RecordingWAL()
        writer = self.start(wal)
        first = writer.save(raft_pb2.HardState(term=1, commit=0), [entry(1)])
        self.assertTrue(wal.entered.wait(WAIT))
        rest = [
            writer.save(raft_pb2.HardState(term=1, commit=1), [entry(2), entry(3)]),
            writer.save(raft_pb2.HardState(), [entry(4)]),
            writer.save(raft_pb2.HardState(term=1, commit=3), [entry(5)]),
        ]
        wal.release.set()
        yield gatherResults([first, *rest])
        self.assertEqual(
            wal.saves,
            [
                (raft_pb2.HardState(term=1, commit=0), [1]),
                (raft_pb2.HardState(term=1, commit=3), [2, 3, 4, 5]),
            ],
        )
        self.assertEqual(writer.writes, 2)
        self.assertEqual(wal.threads, {"wal-writer"})

    @inlineCallbacks
    def test_call_runs_in_order_with_saves(self):
        """call() runs after the saves queued before it and before those queued after it."""
        wal = RecordingWAL()
        writer = self.start(wal)
        order: list[str] = []
        a = writer.save(raft_pb2.HardState(), [entry(1)])
        self.assertTrue(wal.entered.wait(WAIT))
        b = writer.call(lambda: order.append(f"call after {len(wal.saves)} saves") or 7)
        c = writer.save(raft_pb2.HardState(), [entry(2)])
        wal.release.set()
        results = yield gatherResults([a, b, c])
        self.assertEqual(results[1], 7)
        self.assertEqual(order, ["call after 1 saves"])
        self.assertEqual([s[1] for s in wal.saves], [[1], [2]])

    @inlineCallbacks
    def test_failure_fails_everything_after(self):
        """After a failed write the batch and every later operation fail with the same error."""
        writer = self.start(FailingWAL())
        first = writer.save(raft_pb2.HardState(), [entry(1)])
        yield self.assertFailure(first, OSError)
        later = writer.save(raft_pb2.HardState(), [entry(2)])
        yield self.assertFailure(later, OSError)
        self.flushLoggedErrors(OSError)

    @inlineCallbacks
    def test_stop_drains_the_queue(self):
        """stopService finishes queued saves before the thread ends; later saves are refused."""
        wal = RecordingWAL()
        writer = self.start(wal)
        saves = [writer.save(raft_pb2.HardState(), [entry(i)]) for i in range(1, 4)]
        self.assertTrue(wal.entered.wait(WAIT))
        stopped = writer.stopService()
        wal.release.set()
        yield stopped
        yield gatherResults(saves)
        self.assertEqual(sum(len(s[1]) for s in wal.saves), 3)
        yield self.assertFailure(writer.save(raft_pb2.HardState(), [entry(9)]), RuntimeError)

    @inlineCallbacks
    def test_real_wal_group_commit(self):
        """Against a real WAL, 200 concurrent saves are durable in fewer fdatasyncs than saves."""
        path = os.path.join(self.mktemp(), "wal")
        os.makedirs(os.path.dirname(path))
        syncs: list[float] = []
        wal = WAL.create(path, b"m", on_sync=syncs.append)
        writer = self.start(wal)
        syncs.clear()
        ds: list[Deferred[None]] = [
            writer.save(raft_pb2.HardState(term=1, commit=i - 1), [entry(i)]) for i in range(1, 201)
        ]
        yield gatherResults(ds)
        yield writer.stopService()
        self.assertLess(len(syncs), 200)
        self.assertEqual(len(syncs), writer.writes)
        wal.close()
        reopened = WAL.open(path)
        try:
            self.assertEqual([e.index for e in reopened.read_all()[2]], list(range(1, 201)))
        finally:
            reopened.close()
