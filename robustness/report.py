"""The run report: what ran, what was injected, what the checkers found."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from robustness import linearizability
from robustness.history import History, Operation
from robustness.linearizability import Result
from robustness.replay import Replay
from robustness.watch_check import Anomaly, check_watches

EXCERPT = 8


@dataclass
class Report:
    """One run's summary; `str()` is the printed form, `save` the JSON form."""

    seed: int
    cluster_size: int
    operations: int
    watch_sessions: int
    faults: dict[str, int]
    verdict: str
    anomalies: list[Anomaly] = field(default_factory=list)
    excerpt: list[str] = field(default_factory=list)
    evidence: str = "operations"
    check_seconds: float = 0.0
    check_steps: int = 0

    @property
    def ok(self) -> bool:
        """Whether the history passed every check."""
        return self.verdict == "ok" and not self.anomalies

    def save(self, path: str | Path) -> None:
        """Write the report as JSON."""
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    def __str__(self) -> str:
        faults = ", ".join(f"{k}×{v}" for k, v in sorted(self.faults.items())) or "none"
        lines = [
            f"seed {self.seed}, {self.cluster_size} members, {self.operations} operations, "
            f"{self.watch_sessions} watch sessions; faults: {faults}",
            f"linearizability: {self.verdict} against {self.evidence} "
            f"({self.check_steps} steps, {self.check_seconds:.2f} s)",
        ]
        lines += [f"  {a.kind}: {a.detail}" for a in self.anomalies]
        if self.excerpt:
            lines.append("failing history excerpt:")
            lines += [f"  {line}" for line in self.excerpt]
        return "\n".join(lines)


def run_checks(
    history: History,
    *,
    seed: int,
    cluster_size: int,
    faults: Iterable[str] = (),
    timeout: float | None = 60.0,
) -> Report:
    """Check linearizability, then the watches against the replay of the witness."""
    ops = history.operations
    result = linearizability.check(history, timeout=timeout)
    replay = Replay.from_linearization(ops, result.linearization) if result.ok else None
    anomalies = _linearizability_anomalies(ops, result)
    anomalies += check_watches(history.watches, replay)
    return Report(
        seed=seed,
        cluster_size=cluster_size,
        operations=len(ops),
        watch_sessions=len(history.watches),
        faults=dict(Counter(faults)),
        verdict=result.verdict,
        anomalies=anomalies,
        excerpt=_excerpt(ops, result),
        evidence=result.evidence,
        check_seconds=result.elapsed,
        check_steps=result.steps,
    )


def describe(ops: list[Operation], i: int) -> str:
    """One operation on one line."""
    op = ops[i]
    outcome = "unknown" if op.response is None else op.response
    return f"#{i} client {op.client} [{op.call:.6f}, {op.ret:.6f}] {op.request} -> {outcome}"


def _linearizability_anomalies(ops: list[Operation], result: Result) -> list[Anomaly]:
    out = [Anomaly("linearizability", p) for p in result.problems]
    if result.verdict == "unknown":
        out.append(Anomaly("unknown", "the linearizability check ran out of budget"))
    elif result.unplaced:
        out.append(
            Anomaly(
                "linearizability",
                f"after {len(result.linearization)} operations (state {result.state}), "
                f"none of {result.unplaced} can be placed",
            )
        )
    return out


def _excerpt(ops: list[Operation], result: Result) -> list[str]:
    if not result.unplaced:
        return []
    tail = result.linearization[-EXCERPT:]
    return (
        [describe(ops, i) for i in tail]
        + ["-- could not be placed:"]
        + [describe(ops, i) for i in result.unplaced]
    )
