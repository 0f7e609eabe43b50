"""Tests for etcd_twisted.proxy.datadir: member, proxy and empty data dirs."""

import os

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.proxy.datadir import InvalidDataDir, identify, refusal


class DataDirTests(SynchronousTestCase):
    def dir_with(self, *names: str) -> str:
        path = self.mktemp()
        os.makedirs(path)
        for name in names:
            os.mkdir(os.path.join(path, name))
        return path

    def test_kinds(self) -> None:
        """Missing or empty is empty; member/ is a member's; proxy/ a proxy's."""
        self.assertEqual(identify(self.mktemp()), "empty")
        self.assertEqual(identify(self.dir_with("lost+found")), "empty")
        self.assertEqual(identify(self.dir_with("member")), "member")
        self.assertEqual(identify(self.dir_with("proxy")), "proxy")

    def test_both_is_invalid(self) -> None:
        """member/ and proxy/ together is etcd's fatal line."""
        with self.assertRaises(InvalidDataDir) as e:
            identify(self.dir_with("member", "proxy"))
        self.assertEqual(
            str(e.exception), "invalid datadir; both member and proxy directories exist"
        )

    def test_refusals(self) -> None:
        """A member starts on empty and member dirs; a proxy's dir is refused in one line."""
        self.assertIsNone(refusal(self.dir_with()))
        self.assertIsNone(refusal(self.dir_with("member")))
        message = refusal(self.dir_with("proxy"))
        self.assertIn("v2 proxy", message)
        self.assertNotIn("\n", message)
