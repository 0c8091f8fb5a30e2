"""Shared pytest fixtures."""

import os

import pytest
from threadpoolctl import threadpool_limits

import counts


def pytest_terminal_summary(terminalreporter):
    """The figures the tests counted for docs/reliability.md (see counts.py)."""
    figures = counts.lines()
    if figures:
        terminalreporter.section("counted figures")
        for line in figures:
            terminalreporter.write_line(line)


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
        with threadpool_limits(limits=1):
            yield


# Text for a stream-mode run: prose with quotations and brackets, so the explorer's
# "inside quotes / brackets" measurement has something to find.
EXPLORE_STREAM_TEXT = ('He said "stop (now)" and left.\nShe wrote [a list] {of things}; '
                       'then "why?" (twice).\n') * 40


@pytest.fixture(scope="session")
def explore_runs(tmp_path_factory):
    """Two real `rnnkit train` runs for the explorer's tests (trained once per session, in a
    few seconds): ``names`` - the defaults (names data set, lines mode, 2x128 LSTM) with only
    20 steps; ``stream`` - a one-layer GRU in stream mode on :data:`EXPLORE_STREAM_TEXT`.
    Returns ``{"names": dir, "stream": dir, "text": path of the stream text}``."""
    from rnnkit.cli import main
    root = tmp_path_factory.mktemp("explore-runs")
    text = root / "quotes.txt"
    text.write_text(EXPLORE_STREAM_TEXT, encoding="utf-8")
    quiet = ["--quiet", "--num-samples", "0"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "fsync", lambda fd: None)
        mp.setattr("rnnkit.plot_hook.maybe_plot", lambda directory: None)
        assert main(["train", "--steps", "20", "--eval-every", "10", "--out", str(root / "names")] + quiet) == 0
        assert main(["train", str(text), "--mode", "stream", "--cell", "gru", "--hidden-size", "24",
                     "--num-layers", "1", "--embedding-size", "8", "--seq-len", "40", "--batch-size", "8",
                     "--steps", "60", "--eval-every", "30", "--lr", "0.01", "--out", str(root / "stream")]
                    + quiet) == 0
    return {"names": root / "names", "stream": root / "stream", "text": text}
