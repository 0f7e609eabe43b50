"""Transcript tests: each ``testdata/*.txt`` is replayed and its output compared."""

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.raft.interaction import run_transcript

TESTDATA = Path(__file__).parent / "testdata"


def _summary(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return f"The {path.stem} transcript replays unchanged."


def _make_test(path: Path):
    def test(self: SynchronousTestCase) -> None:
        expected, actual = run_transcript(path)
        self.assertEqual(expected, actual)

    test.__doc__ = _summary(path)
    return test


class TranscriptTests(SynchronousTestCase):
    """One test per transcript file."""

    for _path in sorted(TESTDATA.glob("*.txt")):
        locals()["test_" + _path.stem] = _make_test(_path)
    del _path
