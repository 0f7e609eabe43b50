"""Watch guarantees: correct sessions pass, each broken guarantee is named."""

from twisted.trial.unittest import SynchronousTestCase

from robustness.history import (
    Delete,
    Put,
    Response,
    Txn,
    WatchEvent,
    WatchRequest,
    WatchResponse,
    WatchSession,
)
from robustness.replay import Replay
from robustness.watch_check import check_watches
from tests.robustness.support import kv, op

OPS = [
    op(1, 0, 1, Put("a", "1"), Response(2)),
    op(1, 2, 3, Put("b", "1"), Response(3)),
    op(
        1,
        4,
        5,
        Txn(success=(Put("a", "2"), Put("b", "2"))),
        Response(4, results=(Response(), Response())),
    ),
    op(1, 6, 7, Delete("a"), Response(5, deleted=1)),
]
REPLAY = Replay.from_linearization(OPS, [0, 1, 2, 3])
E2 = WatchEvent("PUT", kv("a", "1", 2, 2))
E3 = WatchEvent("PUT", kv("b", "1", 3, 3))
E4A = WatchEvent("PUT", kv("a", "2", 2, 4, 2))
E4B = WatchEvent("PUT", kv("b", "2", 3, 4, 2))
E5 = WatchEvent("DELETE", kv("a", "", 0, 5, 0))
ALL = WatchRequest("a", "\0", start_revision=2)


def session(*batches, request=ALL) -> WatchSession:
    """A session: the created response, then one response per batch (an int is a progress notify)."""
    responses = [WatchResponse(1, created=True)]
    for b in batches:
        responses.append(
            WatchResponse(b)
            if isinstance(b, int)
            else WatchResponse(b[-1].kv.mod_revision, tuple(b))
        )
    return WatchSession(9, request, tuple(responses))


class WatchCheckTests(SynchronousTestCase):
    def kinds(self, s: WatchSession) -> list[str]:
        return [a.kind for a in check_watches([s], REPLAY)]

    def test_correct(self) -> None:
        """In-order, complete sessions pass, batched or not, with progress notifies."""
        self.assertEqual(self.kinds(session([E2], [E3], [E4A, E4B], 4, [E5])), [])
        self.assertEqual(self.kinds(session([E2, E3, E4A, E4B], [E5], 5)), [])

    def test_resumed(self) -> None:
        """A watch restarted at last+1 that continues exactly passes."""
        resumed = WatchRequest("a", "\0", start_revision=4)
        self.assertEqual(self.kinds(session([E4A, E4B], [E5], request=resumed)), [])

    def test_duplicate_event(self) -> None:
        """An event delivered twice breaks uniqueness."""
        self.assertIn("unique", self.kinds(session([E2], [E3], [E3])))

    def test_gap(self) -> None:
        """A dropped revision in the middle breaks reliability."""
        self.assertEqual(self.kinds(session([E2], [E4A, E4B])), ["reliable"])

    def test_out_of_order(self) -> None:
        """A revision after a later one breaks ordering."""
        self.assertIn("ordered", self.kinds(session([E3], [E2])))

    def test_split_revision(self) -> None:
        """One revision's events split across responses breaks atomicity."""
        self.assertEqual(self.kinds(session([E2], [E3], [E4A], [E4B])), ["atomic"])

    def test_fragment_may_split(self) -> None:
        """A revision may continue in the next response after a fragment."""
        s = session([E2], [E3])
        frag = WatchResponse(4, (E4A,), fragment=True)
        s = WatchSession(9, ALL, s.responses + (frag, WatchResponse(4, (E4B,))))
        self.assertEqual(self.kinds(s), [])

    def test_missing_last_event_of_revision(self) -> None:
        """Half of the last revision delivered is a reliability failure."""
        self.assertEqual(self.kinds(session([E2], [E3], [E4A])), ["reliable"])

    def test_resume_skips(self) -> None:
        """A resumed watch whose first event is not the first after its start revision is not resumable."""
        resumed = WatchRequest("a", "\0", start_revision=3)
        self.assertEqual(self.kinds(session([E4A, E4B], request=resumed)), ["resumable"])

    def test_progress_before_events(self) -> None:
        """A progress notify at R before every event up to R breaks bookmarkability."""
        self.assertEqual(self.kinds(session([E2], 4, [E3])), ["bookmarkable"])
        self.assertEqual(self.kinds(session([E2], 3)), ["bookmarkable"])

    def test_prev_kv(self) -> None:
        """prev_kv must be the previous version when asked, and absent when not."""
        asked = WatchRequest("a", start_revision=4, prev_kv=True)
        good = WatchEvent("PUT", E4A.kv, kv("a", "1", 2, 2))
        wrong = WatchEvent("PUT", E4A.kv, kv("a", "0", 2, 2))
        self.assertEqual(self.kinds(session([good], request=asked)), [])
        self.assertEqual(self.kinds(session([wrong], request=asked)), ["prev_kv"])
        unasked = WatchRequest("a", start_revision=4)
        self.assertEqual(self.kinds(session([good], request=unasked)), ["prev_kv"])

    def test_filter(self) -> None:
        """A NODELETE watch that gets a DELETE breaks the filter; skipping it is right."""
        nodelete = WatchRequest("a", start_revision=4, no_delete=True)
        self.assertEqual(self.kinds(session([E4A], 5, request=nodelete)), [])
        self.assertEqual(self.kinds(session([E4A], [E5], request=nodelete)), ["filter"])

    def test_wrong_content(self) -> None:
        """An event the history does not have is reported."""
        bogus = WatchEvent("PUT", kv("a", "9", 2, 2))
        self.assertEqual(self.kinds(session([bogus])), ["event"])

    def test_start_from_now(self) -> None:
        """A watch with start_revision 0 starts after the created response's revision."""
        now = WatchRequest("a", "\0")
        s = WatchSession(9, now, (WatchResponse(3, created=True), WatchResponse(4, (E4A, E4B))))
        self.assertEqual(self.kinds(s), [])

    def test_compaction_cancel(self) -> None:
        """A cancel for compaction is valid only at or above the start and if compaction was asked."""
        s = WatchSession(9, ALL, (WatchResponse(5, canceled=True, compact_revision=3),))
        self.assertEqual(self.kinds(s), ["canceled"])

    def test_without_replay(self) -> None:
        """Without a replay, the per-session guarantees are still checked."""
        self.assertEqual([a.kind for a in check_watches([session([E3], [E2])], None)], ["ordered"])

    def test_prev_kv_missing_below_compaction(self) -> None:
        """A prev_kv may be left out only when its revision may have been compacted."""
        asked = session(
            [E4A._replace(prev_kv=None)], request=WatchRequest("a", start_revision=4, prev_kv=True)
        )
        compacted = Replay(REPLAY.events, REPLAY.revision, compactions=[3])
        self.assertEqual(check_watches([asked], compacted), [])
        self.assertEqual(self.kinds(asked), ["prev_kv"])

    def test_delete_at_compacted_start_may_be_missing(self) -> None:
        """A DELETE at the start revision may be gone when a compaction reached it (as in etcd)."""
        from_five = WatchRequest("a", "\0", start_revision=5)
        compacted = Replay(REPLAY.events, REPLAY.revision, compactions=[5])
        self.assertEqual(check_watches([session(6, request=from_five)], compacted), [])
        self.assertEqual(check_watches([session([E5], 6, request=from_five)], compacted), [])
        self.assertEqual(self.kinds(session(6, request=from_five)), ["bookmarkable"])
