"""Shared pytest fixtures."""

import os

import pytest


@pytest.fixture(scope="module")
def fast_io():
    """For modules that train many tiny models: fsync becomes a no-op (checkpoint durability
    has its own tests in test_checkpoint.py and test_kill.py), the end-of-training loss plot
    is skipped (test_plot.py covers it), and BLAS uses one thread (tiny matrices run fastest
    that way; on a loaded machine extra BLAS threads spin). Opt in with
    ``pytestmark = pytest.mark.usefixtures("fast_io")``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "fsync", lambda fd: None)
        mp.setattr("rnnkit.plot_hook.maybe_plot", lambda directory: None)
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            yield
            return
        with threadpool_limits(limits=1):
            yield
