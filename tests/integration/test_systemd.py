"""systemd readiness: our member run with ``NOTIFY_SOCKET`` set, as a ``Type=notify`` unit.

The test binds the unix datagram socket systemd would, starts the member with
``NOTIFY_SOCKET`` naming it, and reads ``READY=1`` (once the member serves) and
``STOPPING=1`` (when it is told to stop).
"""

from __future__ import annotations

import os
import signal
import socket

from twisted.trial.unittest import TestCase

from etcd_twisted.testing import server_argv
from tests.support.processes import ServerProcess, etcdctl, new_member, wait_until


class SystemdNotifyTests(TestCase):
    timeout = 120

    async def test_ready_and_stopping(self) -> None:
        """READY=1 arrives once the member serves; STOPPING=1 when it stops."""
        base = self.mktemp()
        member = new_member(base)
        path = os.path.join(base, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind(path)
        sock.setblocking(False)
        states: list[bytes] = []

        async def received() -> bool:
            try:
                states.append(sock.recv(256))
            except BlockingIOError:
                return False
            return True

        process = ServerProcess(
            server_argv("ours", member.flags()),
            os.path.join(base, "member.log"),
            env={"NOTIFY_SOCKET": path},
        )
        process.start()
        self.addCleanup(process.stop)
        await wait_until(received, 30.0, "READY=1")
        self.assertEqual(states, [b"READY=1"])
        put = await etcdctl(member.client_url, "put", "k", "v", timeout=2.0)
        self.assertEqual(put.code, 0, put.err)
        members = await etcdctl(member.client_url, "member", "list", timeout=2.0)
        self.assertIn(member.client_url, members.out)  # published before READY=1

        process.signal(signal.SIGTERM)
        await wait_until(received, 15.0, "STOPPING=1")
        self.assertEqual(states, [b"READY=1", b"STOPPING=1"])
