"""The history format: recording and the JSON-lines round trip."""

import os
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from robustness.history import (
    Compare,
    Delete,
    History,
    LeaseGrant,
    Put,
    Range,
    Recorder,
    Response,
    Txn,
    WatchEvent,
    WatchRequest,
    WatchResponse,
    WatchSession,
)
from tests.robustness.support import got, kv, op


class HistoryTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        """Every request kind, responses, unknown outcomes and watch sessions survive save/load."""
        txn = Txn((Compare("a", "mod", "=", 2),), (Put("a", "2"), Range("a")), (Delete("a"),))
        txn_resp = Response(3, succeeded=True, results=(Response(), got(0, kv("a", "2", 2, 3, 2))))
        history = History(
            [
                op(1, 0.5, 1.0, Put("a", "1", lease=7), Response(2)),
                op(2, 1.5, 2.0, txn, txn_resp),
                op(1, 2.5, 3.0, LeaseGrant(7, 30), None),
                op(3, 3.5, 4.0, Range("a", "\0", serializable=True), got(3, kv("a", "2", 2, 3, 2))),
            ],
            [
                WatchSession(
                    4,
                    WatchRequest("a", start_revision=2, prev_kv=True),
                    (
                        WatchResponse(1, created=True),
                        WatchResponse(
                            3, (WatchEvent("PUT", kv("a", "2", 2, 3, 2), kv("a", "1", 2, 2)),)
                        ),
                        WatchResponse(3),
                    ),
                )
            ],
        )
        fd, path = tempfile.mkstemp(suffix=".jsonl")
        os.close(fd)
        self.addCleanup(os.remove, path)
        history.save(path)
        self.assertEqual(History.load(path), history)

    def test_recorder(self) -> None:
        """The recorder stamps call and return times and records unknown outcomes as None."""
        ticks = iter([1.0, 2.0, 3.0, 4.0])
        rec = Recorder(clock=lambda: next(ticks))
        first = rec.call(1, Put("a", "1"))
        second = rec.call(2, Range("a"))
        rec.unknown(second)
        rec.ok(first, Response(2))
        self.assertEqual(
            rec.history.operations,
            [op(2, 2.0, 3.0, Range("a"), None), op(1, 1.0, 4.0, Put("a", "1"), Response(2))],
        )

    def test_not_sent_is_left_out(self) -> None:
        """A request that never left the client is not in the history."""
        ticks = iter([1.0, 2.0, 3.0, 4.0])
        rec = Recorder(clock=lambda: next(ticks))
        rec.not_sent(rec.call(1, Put("a", "1")))
        rec.ok(rec.call(1, Range("a")), Response(1))
        self.assertEqual(rec.history.operations, [op(1, 2.0, 3.0, Range("a"), Response(1))])

    def test_progress_notify(self) -> None:
        """A response with no events, flags or compaction is a progress notification."""
        self.assertTrue(WatchResponse(5).is_progress_notify)
        self.assertFalse(WatchResponse(5, created=True).is_progress_notify)
        self.assertFalse(
            WatchResponse(5, (WatchEvent("PUT", kv("a", "1", 5, 5)),)).is_progress_notify
        )
