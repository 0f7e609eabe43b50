"""Tests for etcd_twisted.snapshot.cli: etcdutl's flags, outputs and exit codes."""

from __future__ import annotations

import io
import json
import os
from contextlib import redirect_stderr, redirect_stdout

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.snapshot.cli import main
from etcd_twisted.wal import backend_path
from tests.snapshot.helpers import snapshot_of_filled_backend


class CliTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        self.snapshot = snapshot_of_filled_backend(self.dir, keys=10)

    def run_main(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as e:
                code = int(e.code or 0)
        return code, out.getvalue(), err.getvalue()

    def test_status_json(self) -> None:
        """``status -w json`` prints etcd's JSON: revision of the last key, every pair counted."""
        code, out, _ = self.run_main("status", self.snapshot, "-w", "json")
        self.assertEqual(code, 0)
        doc = json.loads(out)
        self.assertEqual((doc["revision"], doc["totalKey"]), (10, 10 + 1 + 1 + 1 + 1 + 1 + 3))
        self.assertEqual(doc["totalSize"], os.path.getsize(self.snapshot) - 32)

    def test_status_errors(self) -> None:
        """An unknown format exits 4, a missing argument 128, a missing file 1."""
        self.assertEqual(
            self.run_main("status", self.snapshot, "-w", "yaml")[::2],
            (4, "Error: unsupported output format\n"),
        )
        self.assertEqual(
            self.run_main("status")[::2],
            (128, "Error: snapshot status requires exactly one argument\n"),
        )
        code, _, err = self.run_main("status", os.path.join(self.dir, "nope"))
        self.assertEqual(code, 1)
        self.assertTrue(err.startswith("Error: "))

    def test_restore(self) -> None:
        """``restore`` with etcdutl's flags makes the data dir for the named member."""
        data_dir = os.path.join(self.dir, "out")
        peer = "http://127.0.0.1:7001"
        code, _, err = self.run_main(
            "restore", self.snapshot, "--data-dir", data_dir, "--name", "n1",
            "--initial-cluster", f"n1={peer}", "--initial-cluster-token", "t",
            "--initial-advertise-peer-urls", peer,
        )  # fmt: skip
        self.assertEqual(code, 0, err)
        self.assertTrue(os.path.exists(backend_path(data_dir)))

    def test_restore_defaults(self) -> None:
        """Without flags the member is "default" on localhost:2380, in ``default.etcd``."""
        cwd = os.getcwd()
        os.chdir(self.dir)
        self.addCleanup(os.chdir, cwd)
        code, _, err = self.run_main("restore", self.snapshot)
        self.assertEqual(code, 0, err)
        self.assertTrue(os.path.exists(backend_path("default.etcd")))

    def test_restore_errors(self) -> None:
        """A refused restore prints etcd's ``Error:`` line and exits 1."""
        code, _, err = self.run_main("restore", self.snapshot, "--name", "x")
        self.assertEqual(
            (code, err),
            (1, 'Error: couldn\'t find local name "x" in the initial cluster configuration\n'),
        )
