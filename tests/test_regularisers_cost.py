"""benchmarks/regularisers_cost.py (issue 25: no slowdown with the options off): the verdict
and the table from given timings, its section of BENCHMARKS.md replaced in place and kept by
bench.py, and one real --quick run against a worktree of HEAD (slow)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import regularisers_cost as rc  # noqa: E402

import bench  # noqa: E402  (benchmarks/ lives beside the package)


def _times(per_round_medians, steps=3):
    return [[m] * steps for m in per_round_medians]


def test_the_verdict_compares_with_the_rounds_and_the_same_tree_twice():
    times = {"base": _times([1.0, 1.0, 1.0]), "this tree": _times([1.0, 1.02, 0.99]),
             "this tree, again": _times([1.01, 1.0, 1.0]), "slow": _times([1.3, 1.25, 1.35]),
             "fast": _times([0.8, 0.82, 0.79])}
    assert rc.ratio_stats(times, "slow", "base") == pytest.approx((1.3, 1.25, 1.35))
    said = rc.verdict(times, [("this tree", "base"), ("slow", "base"), ("fast", "base")],
                      ("this tree, again", "this tree"))
    assert "this tree / base: 1.000 [0.990, 1.020], within the noise" in said
    assert "slow / base: 1.300 [1.250, 1.350], SLOWER, beyond the noise" in said
    assert "fast / base: 0.800 [0.790, 0.820], faster, beyond the noise" in said


def test_the_section_is_replaced_in_place_and_bench_keeps_it(tmp_path, monkeypatch):
    times = {"base": _times([0.1, 0.1]), "this tree": _times([0.1, 0.11]),
             "this tree, again": _times([0.1, 0.1])}
    res = {"names": dict(times=times, rows=[("base", None), ("this tree", "base")], shape="s",
                         verdict="Options off: fine.")}
    meta = dict(command="c", date="d", load0=1.0, load1=2.0, machine="m", base="abc",
                base_subject="abc subject", rounds=2, steps=3)
    text = rc.render(res, meta)
    assert "| base | 100.0 | - | - |" in text and "| this tree | 105.0 | 1.050 [1.000, 1.100] | base |" in text
    out = tmp_path / "BENCHMARKS.md"
    out.write_text(f"# head\n\n{rc.BEGIN}\nold\n{rc.END}\n\n## tail\n")
    rc.write_section(out, text)
    new = out.read_text()
    assert new.startswith("# head\n\n" + rc.BEGIN) and new.endswith(rc.END + "\n\n## tail\n")
    assert "old" not in new and "Options off: fine." in new
    monkeypatch.setattr(bench, "run", lambda **kw: ({}, {"seconds": 0.0}))
    monkeypatch.setattr(bench, "render", lambda res, meta: "# new report")
    assert bench.main(["--out", str(out), "--quiet"]) == 0
    assert out.read_text() == "# new report\n\n" + text + "\n"


@pytest.mark.slow
def test_a_quick_run_against_a_worktree_of_head_writes_the_table(tmp_path):
    out = tmp_path / "b.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "regularisers_cost.py"), "--quick",
                           "--base", "HEAD", "--texts", "names", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 5 + len(rc.OPTIONS)                    # header, contenders, options
    assert all(line.count("|") == 5 for line in rows)
    assert "this tree / base:" in text
    listed = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True)
    assert "rnnkit-base-" not in listed.stdout                     # the worktree was removed
