"""Benchmarks: ``bench.run`` (``bin/bench``) compares etcd-twisted with real etcd 3.5.1.

Not part of the test suite; ``tests/bench/test_bench_smoke.py`` checks the harness runs.
"""
