"""SIGINT stops a member gracefully even when it was started with SIGINT ignored.

A shell runs a background job (``etcd &`` in a script) with SIGINT ignored; etcd still
installs its handler and, on SIGINT, stops and ends by the signal (exit status 130 in
the shell). The member is started through a small wrapper that ignores SIGINT and
execs it, then gets SIGINT; real etcd 3.5.1 is run the same way for comparison.
"""

from __future__ import annotations

import os
import signal
import sys

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from etcd_twisted.testing import server_argv
from tests.support.processes import ServerProcess, etcdctl, new_member, wait_healthy, wait_until

#: Execs its arguments with SIGINT ignored, as a non-interactive shell's ``&`` does.
IGNORING_SIGINT = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "os.execv(sys.argv[1], sys.argv[1:])",
]


class IgnoredSigintTests(TestCase):
    timeout = 120

    async def stop_by_sigint(self, kind: str) -> tuple[int | None, float]:
        base = self.mktemp()
        member = new_member(base)
        argv = server_argv(kind, member.flags())
        process = ServerProcess([*IGNORING_SIGINT, *argv], os.path.join(base, f"{kind}.log"))
        process.start()
        self.addCleanup(process.stop)
        await wait_healthy(member.client_url, process)
        put = await etcdctl(member.client_url, "put", "k", "v")
        self.assertEqual(put.code, 0, put.err)
        started = reactor.seconds()
        process.signal(signal.SIGINT)

        async def exited() -> bool:
            return not process.running

        await wait_until(exited, 10.0, f"{kind} to exit on SIGINT", interval=0.02)
        took = reactor.seconds() - started
        print(f"\n[signals] {kind}: exit {process.child.exit} {took:.2f}s after SIGINT")
        self.output = process.output()
        return process.child.exit, took

    async def test_ours_stops_on_sigint(self) -> None:
        """Ours stops promptly on SIGINT and ends by it (status 130), as etcd does."""
        exit_code, took = await self.stop_by_sigint("ours")
        self.assertEqual(exit_code, -signal.SIGINT)
        self.assertLess(took, 5.0)
        self.assertIn("Main loop terminated.", self.output)  # stopped, not killed

    async def test_etcd_stops_on_sigint(self) -> None:
        """Real etcd 3.5.1 started the same way (the behaviour ours matches)."""
        exit_code, took = await self.stop_by_sigint("etcd")
        self.assertEqual(exit_code, -signal.SIGINT)
        self.assertLess(took, 5.0)
