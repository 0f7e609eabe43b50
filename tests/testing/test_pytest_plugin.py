"""Tests for ``etcd_twisted.testing.pytest_plugin``: pytest runs the fixtures' own suite
(``pytest_suite/``) and the README's ``examples/`` in a subprocess, through the
``pytest11`` entry point (no conftest.py names the plugin)."""

from __future__ import annotations

import os
import sys

from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUITE = os.path.join(ROOT, "tests", "testing", "pytest_suite")


async def run_python(*args: str) -> tuple[int, str]:
    """``python *args`` from the project root; exit code and combined output."""
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    env.pop("PYTEST_ADDOPTS", None)
    out, err, code = await getProcessOutputAndValue(sys.executable, args, env=env, path=ROOT)
    return code, (out + err).decode(errors="replace")


class PytestPluginTests(TestCase):
    timeout = 600

    async def test_fixtures_under_pytest(self) -> None:
        """Every fixture, marker and scope works under pytest with our server."""
        code, out = await run_python("-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", SUITE)
        self.assertEqual(code, 0, out[-5000:])
        self.assertIn("14 passed", out)
        self.assertIn("KIND ours twistd", out)

    async def test_fixtures_on_real_etcd(self) -> None:
        """``--etcd-kind=etcd`` runs the same fixtures on real etcd 3.5.1."""
        code, out = await run_python(
            "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "--etcd-kind=etcd",
            "-k", "reset or marker or module or kind", SUITE,
        )  # fmt: skip
        self.assertEqual(code, 0, out[-5000:])
        self.assertIn("KIND etcd etcd", out)

    async def test_examples(self) -> None:
        """The README's examples pass: a leader-election app that survives losing the etcd
        leader, a partition, an expired lease and a full disk."""
        code, out = await run_python("-m", "pytest", "-q", "-p", "no:cacheprovider", "examples")
        self.assertEqual(code, 0, out[-5000:])
        self.assertIn("7 passed", out)

    async def test_kit_does_not_import_pytest(self) -> None:
        """pytest stays optional: only the plugin module imports it."""
        code, out = await run_python(
            "-c",
            "import sys, etcd_twisted.testing; assert 'pytest' not in sys.modules; print('ok')",
        )
        self.assertEqual((code, out.strip()), (0, "ok"))
