"""A real single member through simulated power losses (LazyFS): no acknowledged write is lost."""

from __future__ import annotations

import os
import random
import threading

from twisted.internet import reactor, threads
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from etcd_twisted.testing import Gateway
from tests.support.power_loss import PowerLossMixin
from tests.support.processes import new_member, our_server, wait_healthy

ROUNDS = 4


class MemberPowerLossTests(PowerLossMixin, TestCase):
    timeout = 400

    async def test_acknowledged_writes_survive_power_losses(self) -> None:
        """Power loss (plain, and torn on odd rounds) while puts are in flight, then a restart:
        every acknowledged put is there and the member restarts unaided (snapshots on the way)."""
        seed = random.randrange(1 << 30)
        rnd = random.Random(seed)
        logs = os.path.abspath(self.mktemp())
        os.makedirs(logs)
        member = new_member(self.mnt)
        proc = our_server(member, logs, ["--snapshot-count", "40"])
        acked: dict[bytes, bytes] = {}
        maybe: dict[bytes, bytes] = {}  # the put in flight when the member died: either outcome
        for round_ in range(ROUNDS):
            proc.start()
            await wait_healthy(member.client_url, proc, timeout=60)
            gw = Gateway(member.client_url)
            self.check(gw, acked, maybe, f"round {round_}, seed {seed}")
            stop = threading.Event()

            def write(round_: int = round_, gw: Gateway = gw, stop: threading.Event = stop) -> None:
                i = 0
                while not stop.is_set() and i < 400:
                    key, value = b"k%03d" % (i % 150), b"r%d-%d" % (round_, i)
                    maybe.clear()
                    maybe[key] = value
                    try:
                        gw.put(key, value)
                    except Exception:  # noqa: BLE001 - the member died under it: not acknowledged
                        return
                    acked[key] = value
                    maybe.clear()
                    i += 1

            writer = threads.deferToThread(write)
            await deferLater(reactor, rnd.uniform(0.5, 3.0), lambda: None)
            await proc.kill()
            stop.set()
            await writer
            self.power_loss(torn_seed=rnd.randrange(1 << 30) if round_ % 2 else None)
        proc.start()
        await wait_healthy(member.client_url, proc, timeout=60)
        self.assertGreater(len(acked), 0)
        self.check(
            Gateway(member.client_url), acked, maybe, f"after the last power loss, seed {seed}"
        )
        await proc.stop()

    def check(
        self, gw: Gateway, acked: dict[bytes, bytes], maybe: dict[bytes, bytes], where: str
    ) -> None:
        """Each key holds its last acknowledged value, or the value of the put in flight when
        the member died (its outcome is unknown); the record then follows what is there."""
        wrong = {}
        for key, value in acked.items():
            got = gw.get(key)
            if got != value and got != maybe.get(key):
                wrong[key] = {"read": got, "acknowledged": value, "in flight": maybe.get(key)}
        self.assertEqual(wrong, {}, f"{where}: acknowledged puts lost")
        for key, value in maybe.items():
            if gw.get(key) == value:
                acked[key] = value
        maybe.clear()
