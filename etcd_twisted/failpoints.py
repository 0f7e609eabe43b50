"""Named crash points: the server exits at a chosen point when the environment asks.

The robustness harness arms them through one environment variable, read once at
import::

    ETCD_TWISTED_FAILPOINTS="before_wal_save=0.01,after_backend_commit@3,during_compaction"

``name=P`` exits at each hit with probability P, ``name@N`` at the N-th hit, and a
bare ``name`` at the first.  An armed point writes ``failpoint <name>: exiting`` to
stderr and calls ``os._exit(1)`` (no cleanup, no flush: a crash).  With the
variable unset, ``hit`` is a function that returns at once, and ``ENABLED`` is
False so a hot path can skip even that call.  Pure: no Twisted, no I/O at import.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass

ENV = "ETCD_TWISTED_FAILPOINTS"

#: Every crash point the server may hit (a name outside this set is refused).
NAMES = frozenset(
    {
        "before_wal_save",
        "after_wal_save",
        "before_backend_commit",
        "after_backend_commit",
        "before_apply_snapshot",
        "after_apply_snapshot",
        "during_compaction",
        "before_defragment_swap",
        "after_defragment_swap",
        "before_leader_send",
        "before_follower_send",
    }
)


@dataclass
class Arm:
    """When an armed point fires: at hit number ``at`` (counting from 1), or with ``probability``."""

    at: int = 0
    probability: float = 0.0
    hits: int = 0

    def fires(self, rng: random.Random) -> bool:
        """Count one hit; whether it is the one that crashes."""
        self.hits += 1
        if self.at:
            return self.hits == self.at
        return rng.random() < self.probability


def parse(spec: str) -> dict[str, Arm]:
    """Parse the variable's value; ``ValueError`` for an unknown name or a bad number."""
    arms: dict[str, Arm] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        if "=" in item:
            name, _, value = item.partition("=")
            probability = float(value)
            if not 0.0 <= probability <= 1.0:
                raise ValueError(f"{ENV}: probability of {name!r} must be in [0, 1]: {value!r}")
            arm = Arm(probability=probability)
        elif "@" in item:
            name, _, value = item.partition("@")
            at = int(value)
            if at < 1:
                raise ValueError(f"{ENV}: hit number of {name!r} must be at least 1: {value!r}")
            arm = Arm(at=at)
        else:
            name, arm = item, Arm(at=1)
        name = name.strip()
        if name not in NAMES:
            raise ValueError(f"{ENV}: unknown crash point {name!r} (known: {sorted(NAMES)})")
        arms[name] = arm
    return arms


class Failpoints:
    """A set of armed points; ``hit(name)`` exits the process when one fires."""

    def __init__(self, arms: Mapping[str, Arm], rng: random.Random | None = None) -> None:
        self.arms = dict(arms)
        self.rng = rng or random.Random()
        self.exit = os._exit

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Failpoints:
        """The points armed by ``ETCD_TWISTED_FAILPOINTS`` in ``environ``."""
        return cls(parse(environ.get(ENV, "")))

    def hit(self, name: str) -> None:
        """Pass crash point ``name``: exit with status 1 if it is armed and fires."""
        arm = self.arms.get(name)
        if arm is not None and arm.fires(self.rng):
            try:
                os.write(2, f"failpoint {name}: exiting\n".encode())
            finally:
                self.exit(1)


_points = Failpoints.from_environ()

#: Whether any point is armed in this process.
ENABLED = bool(_points.arms)


def _noop(name: str) -> None:
    """Unarmed: nothing to do."""


#: ``failpoints.hit("before_wal_save")`` at a crash point.
hit = _points.hit if ENABLED else _noop
