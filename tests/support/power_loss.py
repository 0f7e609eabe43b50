"""A trial mixin that gives a test a LazyFS mount (``robustness.lazyfs``) and ``power_loss``."""

from __future__ import annotations

import os

from twisted.trial.unittest import SkipTest

try:
    from robustness.lazyfs import LazyMount, fuse_available

    _why_not = fuse_available()
except OSError as e:  # fusepy raises this when libfuse is not installed
    _why_not = f"libfuse not usable: {e}"


class PowerLossMixin:
    """``self.mnt`` is a directory whose unsynced data ``self.power_loss()`` drops."""

    def setUp(self) -> None:
        if _why_not is not None:
            raise SkipTest(_why_not)
        self.fs = LazyMount(os.path.abspath(self.mktemp()))  # type: ignore[attr-defined]
        self.fs.start()
        self.addCleanup(self.fs.stop)  # type: ignore[attr-defined]
        self.mnt = self.fs.mount

    def power_loss(self, torn_seed: int | None = None) -> None:
        """Drop everything not fsynced under ``self.mnt`` (close what uses it first); with
        ``torn_seed``, a random half of the unsynced pages reach the disk first."""
        self.fs.power_loss(torn_seed)
