"""Smoke test of the benchmark harness (benchmarks/bench.py) on tiny shapes: it runs, every
section and target row is in the report, and the numbers are sane. No timing thresholds."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnkit.errors import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench  # noqa: E402  (benchmarks/bench.py: the harness lives beside the package)
from needs import require


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "BENCH.md"
    # every section but the engines' (tests/test_engines.py runs that one's smoke test)
    only = ",".join(s for s in bench.SECTIONS if s != "engines")
    rc = bench.main(["--quick", "--repeats", "1", "--quiet", "--only", only, "--out", str(out)])
    assert rc == 0
    return out.read_text()


SECTIONS = ["## Machine", "## Targets", "## The paths users run", "## LSTM float32 forward+backward sweep",
            "## Reference: numpy.matmul", "## Layers: rnnkit vs torch.nn",
            "## Baselines: the naive NumPy loops", "## Char-LM training throughput",
            "## Training-step memory", "## Profile"]
# (row, whether its measured value is a difference of two command timings: in a quick run on a
# busy machine such a difference can come out negative, so only its presence is checked)
TARGET_ROWS = [("`rnnkit sample` per character", True), ("`rnnkit eval` per character", True),
               ("`rnnkit sample DIR --num 200`", True),
               ("LSTM fp32 forward+backward (", False), ("LSTM fp32 forward (", False),
               ("sweep (8 shapes): median", False), ("sweep (8 shapes): worst", False),
               ("GRU fp32 forward+backward", False), ("RNN fp32 forward+backward", False),
               ("LSTM fp64 forward+backward", False), ("GRU fp64 forward+backward", False),
               ("RNN fp64 forward+backward", False), ("numpy-ml LSTMCell loop", False),
               ("seed-style loop", False), ("rnnkit GFLOP/s / matmul GFLOP/s", False),
               ("peak memory / activation bytes", False)]


@pytest.mark.slow
@pytest.mark.parametrize("heading", SECTIONS)
def test_report_has_section(report, heading):
    assert heading in report


@pytest.mark.slow
@pytest.mark.parametrize("row,difference", TARGET_ROWS)
def test_report_has_target_row(report, row, difference):
    lines = [ln for ln in report.splitlines() if ln.startswith("| ") and row in ln]
    assert lines, row
    cells = [c.strip() for c in lines[0].strip("|").split("|")]
    assert cells[4] in ("goal met", "required met", "MISSED", "n/a")
    assert cells[3] != "n/a"
    value = float(cells[3].rstrip("x"))
    assert difference or value > 0


@pytest.mark.slow
def test_numpy_ml_is_compared_at_two_shapes(report):
    rows = [ln for ln in report.splitlines() if ln.startswith("| numpy-ml LSTMCell loop / rnnkit")]
    assert len(rows) == 2


@pytest.mark.slow
def test_layer_table_is_complete_and_positive(report):
    rows = [ln for ln in report.splitlines()
            if re.match(r"\| (LSTM|GRU|RNN) \| float(32|64) \|", ln)]
    # 3 cells x 2 dtypes x 3 shapes x 2 works
    assert len(rows) == 36
    for ln in rows:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        assert float(cells[4]) > 0                      # rnnkit ms
        assert float(cells[7]) > 0                      # rnnkit GFLOP/s


def test_layer_flops_counts_the_products():
    # LSTM forward: input projection 2*T*N*4H*D + recurrent 2*T*N*4H*H; backward twice that
    T, N, D, H = 3, 2, 5, 7
    fwd = 2 * T * N * 4 * H * D + 2 * T * N * 4 * H * H
    assert bench.layer_flops("LSTM", T, N, D, H, False) == fwd
    assert bench.layer_flops("LSTM", T, N, D, H, True) == 3 * fwd
    assert bench.layer_flops("RNN", T, N, D, H, False) == fwd / 4


def test_time_alternating_calls_each_contender_warm_plus_repeats():
    calls = {"a": 0, "b": 0}

    def mk(k):
        def f():
            calls[k] += 1
        return f

    t = bench.time_alternating({"a": mk("a"), "b": mk("b")}, repeats=3, gap=0.0)
    assert calls == {"a": 4, "b": 4}
    assert set(t) == {"a", "b"} and all(v >= 0 for v in t.values())


def test_seed_baseline_matches_rnnkit():
    res = bench.bench_seed((4, 3, 5, 6), 3, repeats=1, gap=0.0)
    assert res is not None and res["max_abs_diff"] < 1e-12


def test_seed_baseline_is_the_notebook_loop_step_by_step():
    """benchmarks/seed_lstm.py does the notebook's per-step work: same outputs as
    rnnkit.scratch.lstm_forward (c starts at 0) and one 10-field cache per step."""
    import seed_lstm as seed  # benchmarks/ is on sys.path (see the top)

    from rnnkit import scratch
    p = seed.init_parameters(3, 5, 2)
    rng = np.random.default_rng(4)
    x, a0 = rng.standard_normal((3, 4, 6)), rng.standard_normal((5, 4))
    a, y, c, (caches, x_back) = seed.lstm_forward(x, a0, p)
    ra, ry, rc, (rcaches, _) = scratch.lstm_forward(x, a0, p)
    for got, want in ((a, ra), (y, ry), (c, rc)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    assert x_back is x and len(caches) == 6
    for step, ref in zip(caches, rcaches):
        assert len(step) == 10 and step[-1] is p
        for got, want in zip(step[:9], ref[:9]):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


def test_memory_counts_kept_activations():
    T, N, D, H = 7, 3, 5, 4
    m = bench.bench_memory((T, N, D, H), np.float64)
    # gates (T, N, 4H) + h (T+1, N, H) + c (T+1, N, H) + tanh c (T, N, H), float64
    expect = 8 * (T * N * 4 * H + 2 * (T + 1) * N * H + T * N * H)
    assert m["activations"] >= expect
    assert m["peak"] >= expect


def test_bad_only_is_an_error():
    with pytest.raises(ConfigError):
        bench.run(quick=True, repeats=1, gap=0.0, only=["nope"], verbose=False)


# --- the generation path the harness times: layer.step must equal the full forward and torch
@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_step_matches_forward_and_torch(cell):
    import rnnkit.nn as nn
    torch = require("torch")
    rng = np.random.default_rng(0)
    m = getattr(nn, cell)(5, 6, num_layers=2, dtype=np.float64, seed=1)
    x = rng.standard_normal((7, 3, 5))
    h0 = rng.standard_normal((2, 3, 6))
    state = (h0, rng.standard_normal((2, 3, 6))) if cell == "LSTM" else h0
    tm = getattr(torch.nn, cell)(5, 6, num_layers=2).double()
    tm.load_state_dict({k: torch.tensor(v) for k, v in m.state_dict().items()})
    with torch.no_grad():
        tst = tuple(torch.tensor(s) for s in state) if cell == "LSTM" else torch.tensor(state)
        tout, tsn = tm(torch.tensor(x), tst)
    st = state
    for t in range(7):
        h, st = m.step(x[t], st)
        np.testing.assert_allclose(h, tout[t].numpy(), rtol=0, atol=1e-12)
    ref = tsn if cell == "LSTM" else (tsn,)
    got = st if cell == "LSTM" else (st,)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b.numpy(), rtol=0, atol=1e-12)
    # the caller's state arrays are not modified
    np.testing.assert_array_equal(state[0] if cell == "LSTM" else state, h0)


def test_step_refuses_bidirectional_and_bad_input():
    import rnnkit.nn as nn
    from rnnkit.errors import ShapeError
    with pytest.raises(ConfigError):
        nn.LSTM(3, 4, bidirectional=True).step(np.zeros((1, 3), np.float32))
    with pytest.raises(ShapeError):
        nn.GRU(3, 4).step(np.zeros((1, 5), np.float32))


def test_the_report_keeps_the_speed_section(tmp_path, monkeypatch):
    """bench.py rewrites BENCHMARKS.md but keeps the section benchmarks/speed.py writes."""
    out = tmp_path / "BENCHMARKS.md"
    out.write_text(f"# old report\n\n{bench.SPEED_BEGIN}\nspeed figures\n{bench.SPEED_END}\n")
    monkeypatch.setattr(bench, "run", lambda **kw: ({}, {"seconds": 0.0}))
    monkeypatch.setattr(bench, "render", lambda res, meta: "# new report")
    assert bench.main(["--out", str(out), "--quiet"]) == 0
    assert out.read_text() == f"# new report\n\n{bench.SPEED_BEGIN}\nspeed figures\n{bench.SPEED_END}\n"


@pytest.mark.slow
def test_warm_up_loads_the_compiled_kernels(tmp_path):
    """After bench.warm_kernels() a process runs rnnkit's compiled LSTM kernels (fused steps and
    the N=1 loop) from its next call on: the steady state every benchmark row measures. Run in
    a fresh process: the kernels and the step counters are per process."""
    require("numba")
    import subprocess
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import bench; from rnnkit import _jit, sequence;"
            "import rnnkit.nn as nn, numpy as np;"
            "assert _jit._KERNELS.get('lstm_step') is None and _jit._KERNELS.get('lstm_n1') is None;"
            "bench.warm_kernels();"
            "assert _jit._KERNELS.get('lstm_step') is not None, 'fused steps not loaded';"
            "assert _jit._KERNELS.get('lstm_n1') is not None, 'N=1 loop not loaded';"
            "assert sequence._fused(nn.LSTM(3, 5).cell, np.float32, 2) is not None; print('ok')")
    r = subprocess.run([sys.executable, "-c", code, str(Path(bench.__file__).parent)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
