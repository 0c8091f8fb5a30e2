"""Smoke tests of the scripts in examples/: each runs in a subprocess with tiny settings and
must end with a ``name: value`` line holding a finite float. The baseline lines they print
are checked against figures computed here directly from the data sets."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow          # each example runs in a subprocess

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
LAST_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*): (\S+)$")

CASES = {
    "adding_problem": (["--cell", "lstm", "--seq-len", "20", "--steps", "20", "--batch-size", "16",
                        "--eval-every", "10", "--val-size", "64", "--test-size", "4000", "--hidden", "8"],
                       "test_mse"),
    "names_classifier": (["--steps", "20", "--eval-every", "10", "--hidden", "8", "--embedding", "4"],
                         "balanced_accuracy"),
    "sunspots": (["--steps", "20", "--eval-every", "10", "--hidden", "8"], "test_rmse"),
    "seq2seq_attention": (["--attention", "general", "--steps", "2", "--hidden-size", "4",
                           "--max-val", "20", "--val-frac", "0.005"], "exact_match"),
    "regularisers": (["--texts", "names", "--recipes", "default,light", "--default-steps", "4",
                      "--timing-steps", "5", "--eval-every", "2"], "best_bits_per_char"),
}


def run_example(name: str, args: list[str]) -> list[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args, "--seed", "3"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert lines, f"{name} printed nothing"
    return lines


def figure(lines: list[str], pattern: str) -> float:
    """The first float after ``pattern`` (a regex) in the printed lines."""
    for ln in lines:
        m = re.search(pattern + r"\s*([-+0-9.eE]+)", ln)
        if m:
            return float(m.group(1))
    raise AssertionError(f"no line matches {pattern!r} in:\n" + "\n".join(lines))


@pytest.fixture(scope="module", params=sorted(CASES))
def example(request):
    name = request.param
    args, metric = CASES[name]
    return name, metric, run_example(name, args)


def test_last_line_is_name_value(example):
    name, metric, lines = example
    m = LAST_LINE.match(lines[-1])
    assert m, f"{name}: last line {lines[-1]!r} is not 'name: value'"
    assert m.group(1) == metric
    value = float(m.group(2))
    assert math.isfinite(value)
    if metric == "balanced_accuracy":
        assert 0.0 <= value <= 1.0
    else:
        assert value >= 0.0


def test_baselines_match_independent_figures(example):
    """The baselines the scripts print, recomputed here from the raw data."""
    name, _, lines = example
    if name == "adding_problem":
        # predicting 1: E[(u1 + u2 - 1)^2] = 1/6; 4000 test sequences -> sd of the mean ~0.003
        assert figure(lines, r"always predict 1\): test_mse") == pytest.approx(1 / 6, abs=0.015)
    elif name == "sunspots":
        from rnnkit.datasets import sunspots
        _, x = sunspots()
        split = len(x) - round(0.2 * len(x))
        persistence = np.sqrt(np.mean(np.diff(x)[split - 1:] ** 2))
        assert figure(lines, r"persistence x\[t-1\]:") == pytest.approx(persistence, abs=0.01)
        # AR(9) fitted on the training part should beat persistence on this series
        assert figure(lines, r"AR\(9\) least squares:") < persistence
    elif name == "names_classifier":
        # majority class = female; its accuracy is the female share of a stratified 15% split
        female_share = 3944 / (3944 + 888)
        assert figure(lines, r"majority class \(female\):\s+accuracy") == pytest.approx(female_share, abs=0.005)
        assert figure(lines, r"majority class \(female\):.*balanced accuracy") == pytest.approx(0.5, abs=1e-9)
