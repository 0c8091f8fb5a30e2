"""benchmarks/speed.py (the issue-26 figures): its report from given timings, and its update
of BENCHMARKS.md in place (only its own section between the markers changes)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import speed  # noqa: E402  (benchmarks/speed.py lives beside the package)


def _row(label, rnnkit, torch, shape=(50, 8, 128, 256), work="forward+backward"):
    return dict(label=label, cell="LSTM", dtype="float32", shape=shape, work=work, load="1.0",
                times={"rnnkit": (rnnkit, rnnkit), "torch": (torch, torch),
                       "torch no oneDNN": (2 * torch, 2 * torch)})


RES = {"sweep": [_row("sweep", 1.0, 1.0), _row("sweep", 3.0, 2.0), _row("sweep", 0.5, 1.0)],
       "layers": [_row("N=1 training", 1.2, 1.0, (1000, 1, 65, 128)),
                  _row("batched forward", 2.0, 1.0, (100, 64, 128, 256), "forward")],
       "busy": [dict(engine="numpy", threads="auto", quiet=(3.0, 3.1), busy=(4.0, 4.2),
                     said="threads: chose 1 of 2", load="1.0")]}
META = dict(command="python benchmarks/speed.py", date="today", load0="0.1", load1="0.2",
            machine="test", steps=200)


def test_the_acceptance_rows_come_from_the_timings():
    text = speed.render(RES, META)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()
            if line.startswith("| ") and ("<=" in line or ">=" in line)}
    assert "| 1.00 | goal met |" in rows["forward+backward sweep of 8 shapes, median"]   # 1, 1.5, 0.5
    assert "| 1.50 | required met |" in rows["same, worst shape"]
    assert "| 1.20 | required met |" in rows["forward+backward (1000, 1, 65, 128)"]
    assert "| 2.00 | MISSED |" in rows["forward (100, 64, 128, 256)"]
    assert "| 0.75 | required met |" in rows["`rnnkit train` default: quiet time / time with one busy process"]
    assert "rnnkit / torch no oneDNN" in text and "threads: chose 1 of 2" in text


def test_the_report_replaces_only_its_own_section(tmp_path, monkeypatch):
    out = tmp_path / "BENCHMARKS.md"
    out.write_text(f"# head\n\n{speed.BEGIN}\nold figures\n{speed.END}\n\n## tail\n")
    monkeypatch.setattr(speed, "render", lambda res, meta: f"{speed.BEGIN}\nnew\n{speed.END}")
    assert speed.main(["--out", str(out), "--only", "none"]) == 0
    assert out.read_text() == f"# head\n\n{speed.BEGIN}\nnew\n{speed.END}\n\n## tail\n"


def test_the_loop_thread_rows_force_each_setting_and_restore_the_rule(monkeypatch):
    """The threads section times the same layer with its time loop forced onto one BLAS thread
    and onto all of them (whatever the rule picks), then leaves the rule as it was; its table
    reports the per-step product and what the rule picks for each shape."""
    import rnnkit.sequence as sequence
    from rnnkit import _threads
    seen = []
    real = _threads.for_step_product
    monkeypatch.setattr(sequence, "for_step_product",
                        lambda macs: (seen.append(macs <= _threads.SMALL_PRODUCT), real(macs))[1])
    rule = _threads.SMALL_PRODUCT
    rows = speed.bench_loop_threads([(3, 2, 4, 5)], repeats=1, gap=0.0, log=lambda m: None)
    assert _threads.SMALL_PRODUCT == rule
    assert True in seen and False in seen                  # each setting ran
    assert rows[0]["macs"] == 2 * 5 * 4 * 5 and rows[0]["rule"] == "1 thread"
    text = speed.render({"threads": rows}, META)
    assert "### The time loop's BLAS threads" in text and "| (3, 2, 4, 5) | 200 |" in text
