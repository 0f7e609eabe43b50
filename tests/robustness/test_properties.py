"""Property tests: histories from a correct simulated server pass; an observable lie fails."""

import dataclasses
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from robustness.history import KeyValue, Put, Range
from robustness.linearizability import check
from robustness.report import run_checks
from robustness.simulate import Settings, simulate

runs = st.builds(
    Settings,
    clients=st.integers(1, 6),
    operations=st.integers(1, 120),
    keys=st.integers(1, 5),
    sequential=st.integers(0, 20),
    lost=st.sampled_from([0.0, 0.05, 0.2]),
    serializable=st.sampled_from([0.0, 0.5]),
    watchers=st.integers(0, 2),
)
fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class PropertyTests(SynchronousTestCase):
    @fast
    @given(st.randoms(use_true_random=False), runs)
    def test_correct_server_accepted(self, rng: random.Random, s: Settings) -> None:
        """Every history (and watch session) of a correct server passes every check."""
        report = run_checks(simulate(rng, s), seed=0, cluster_size=1, timeout=None)
        self.assertTrue(report.ok, str(report))

    @fast
    @given(st.randoms(use_true_random=False), runs, st.data())
    def test_read_of_unwritten_value_rejected(self, rng, s, data) -> None:
        """A linearizable read changed to show a value nobody wrote is rejected."""
        history = simulate(rng, s)
        reads = [
            i
            for i, o in enumerate(history.operations)
            if isinstance(o.request, Range)
            and not o.request.serializable
            and o.response is not None
            and o.response.error is None
        ]
        if not reads:
            return
        i = data.draw(st.sampled_from(reads))
        o = history.operations[i]
        if o.response.kvs:
            kvs = (o.response.kvs[0]._replace(value="forged"),) + o.response.kvs[1:]
            response = dataclasses.replace(o.response, kvs=kvs)
        else:
            lie = KeyValue(o.request.key, "forged", 2, 2, 1)
            response = dataclasses.replace(o.response, kvs=(lie,), count=o.response.count + 1)
        history.operations[i] = dataclasses.replace(o, response=response)
        self.assertEqual(check(history).verdict, "illegal")

    @fast
    @given(st.randoms(use_true_random=False), runs, st.data())
    def test_write_revision_shift_rejected(self, rng, s, data) -> None:
        """With no lost responses, an acknowledged put claiming another revision is rejected."""
        history = simulate(rng, dataclasses.replace(s, lost=0.0))
        puts = [
            i
            for i, o in enumerate(history.operations)
            if isinstance(o.request, Put) and o.response.error is None
        ]
        if not puts:
            return
        i = data.draw(st.sampled_from(puts))
        o = history.operations[i]
        shift = data.draw(st.sampled_from([-1, 1, 1000]))
        response = dataclasses.replace(o.response, revision=o.response.revision + shift)
        history.operations[i] = dataclasses.replace(o, response=response)
        self.assertEqual(check(history).verdict, "illegal")
