"""The robustness CI profile: a 1-member and a 3-member run under faults, 0 anomalies each.

Each run starts real processes of our server (the 3-member one behind peer
proxies), drives recorded traffic and watchers through kills and restarts,
pauses, partitions and crash points, then checks linearizability, the watch
guarantees, HashKV agreement and that no member is stuck.  Output (history,
faults, report, member logs) stays in the test's temporary directory.
"""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from robustness.run import Outcome, Settings, describe, run
from robustness.traffic import TrafficSettings

#: Kept modest so the history stays quick to check on a busy 2-core machine.
TRAFFIC = TrafficSettings(clients=3, watchers=2, think=0.01, prev_kv_from_past=False)


class RobustnessCITests(TestCase):
    timeout = 200

    async def run_profile(self, settings: Settings) -> Outcome:
        settings.out_dir = os.path.abspath(self.mktemp())
        lines: list[str] = []
        outcome = await run(reactor, settings, log=lines.append)
        self.assertTrue(outcome.report.ok, describe(outcome) + "\n" + "\n".join(lines[-20:]))
        self.assertGreater(outcome.report.operations, 200, describe(outcome))
        self.assertFalse([a for a in outcome.report.anomalies if a.kind == "hashkv"])
        return outcome

    async def test_one_member(self) -> None:
        """One member through kills, pauses, crash points and defragments: 0 anomalies."""
        await self.run_profile(
            Settings(
                members=1,
                duration=60,
                seed=11,
                traffic=TRAFFIC,
                fault_interval=(1.0, 2.5),
                kinds=("kill_random", "pause", "crash_point", "defragment"),
            )
        )

    async def test_three_members(self) -> None:
        """Three members through kills, pauses, partitions, delay and crash points: 0 anomalies."""
        outcome = await self.run_profile(
            Settings(
                members=3,
                duration=75,
                seed=12,
                traffic=TRAFFIC,
                fault_interval=(1.0, 2.5),
                kinds=(
                    "kill_random",
                    "kill_leader",
                    "pause",
                    "partition_leader",
                    "partition_follower",
                    "delay",
                    "crash_point",
                ),
            )
        )
        self.assertGreaterEqual(sum(outcome.report.faults.values()), 5, describe(outcome))
