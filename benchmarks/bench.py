"""Benchmark harness: rnnkit against torch.nn, the seed notebook's loop, numpy-ml and a
min-char-rnn-style trainer, written as a markdown report (``BENCHMARKS.md``).

It lives beside the library, not in it (the baselines it compares against are not part of
rnnkit), and runs from a source checkout with rnnkit installed::

    python benchmarks/bench.py --out BENCHMARKS.md            # full run, a few minutes on 2 cores
    python benchmarks/bench.py --quick --out /tmp/b.md         # tiny shapes (the CI smoke test)
    python benchmarks/bench.py --only lstm,gen --repeats 7     # a subset

Method: every comparison runs in one process, warm (one untimed call each), alternating the
contenders round by round (order rotated), and reports the median of ``--repeats`` (>= 5 for a
real run). Before each timed call the harness sleeps ``--gap`` seconds, so that the BLAS
threads of the previous contender (OpenBLAS for NumPy, OpenMP/MKL for torch) stop spinning and
do not steal the cores of the next one. torch runs with as many threads as NumPy's BLAS uses
(threadpoolctl) and the same dtype.

Throughput is counted in products only: a layer direction's forward does
``2 T N G H (D + H)`` flops (input projection + recurrent product), backward twice that
(dx, dW_ih, dW_hh, dh). The ratio to a 2048 x 2048 ``numpy.matmul`` of the same dtype, measured
in the same run, is the share of this machine's practical limit.

Peak memory of a training step is measured with tracemalloc (NumPy reports its buffers to it):
the peak above the memory held before the forward, against the bytes of the activations the
forward keeps for backward (gates, hidden states, cell states, tanh(c)).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import math
import os
import platform
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

from rnnkit.cells import CELLS as CELL_SPECS
from rnnkit.errors import ConfigError
from rnnkit.io import check_output_file

# the baselines beside this file (benchmarks/ is on sys.path when this file is run as a script)
sys.path.insert(0, str(Path(__file__).resolve().parent))
import regularisers_cost  # noqa: E402  (its section's markers, beside this file)

FULL_SHAPES = [(100, 64, 128, 256), (50, 128, 256, 1024), (1000, 1, 65, 128)]
QUICK_SHAPES = [(6, 4, 5, 8), (4, 8, 6, 16), (12, 1, 5, 4)]
#: LSTM fp32 forward+backward sweep, T = 50: (N, D=H) for N=32 and H in 64..1024, and N in
#: {1, 8, 128} at D=128, H=256
FULL_SWEEP = ([(50, 32, h, h) for h in (64, 128, 256, 512, 1024)]
              + [(50, n, 128, 256) for n in (1, 8, 128)])
QUICK_SWEEP = [(5, 4, 8, 8), (5, 1, 6, 8)]
CELLS = ("LSTM", "GRU", "RNN")            # layer classes of rnnkit.nn (RNN = the tanh RNN)
GATES = {spec.layer: spec.num_gates for spec in CELL_SPECS.values()}
#: The markers of the section ``benchmarks/speed.py`` writes into the same report (kept as is).
SPEED_BEGIN, SPEED_END = "<!-- speed.py: begin -->", "<!-- speed.py: end -->"
#: Every section other scripts write into the same report, kept as is: speed.py's and
#: ``benchmarks/regularisers_cost.py``'s.
KEPT_SECTIONS = ((SPEED_BEGIN, SPEED_END), (regularisers_cost.BEGIN, regularisers_cost.END))
SECTIONS = ("user", "layers", "sweep", "seed", "numpyml", "charlm", "memory", "profile", "engines")


# ----------------------------------------------------------------------------- timing
def time_alternating(fns: dict, repeats: int, gap: float) -> dict:
    """Median wall time (s) of each callable, warm, alternating them round by round
    (see :func:`alternating_times`). Returns name -> median seconds."""
    return {n: float(np.median(v)) for n, v in alternating_times(fns, repeats, gap).items()}


def warm_kernels() -> int:
    """Run, once, the layer-steps after which rnnkit loads its compiled kernels.

    rnnkit loads numba's fused LSTM steps and the N=1 loop only once a process has run
    ``rnnkit.sequence.JIT_MIN_STEPS`` layer-steps that can use them (``rnnkit train`` loads
    them at its first step), so that short scripts never pay numba's start-up. A benchmark
    that compares a few calls per shape would otherwise time NumPy's steps for its first
    shapes and the kernels for the later ones; after this call every row measures the steady
    state a long-running process is in. Returns the layer-steps run.
    """
    import rnnkit
    from rnnkit import nn, sequence
    T = sequence.JIT_MIN_STEPS
    for dtype in (np.float32, np.float64):
        layer = nn.LSTM(2, 4, dtype=dtype, seed=0)
        x = np.zeros((T, 1, 2), dtype)
        layer(x)
        layer.backward(np.ones((T, 1, 4), dtype))           # the fused forward and backward
        with rnnkit.no_grad():
            layer(x)                                         # the N=1 inference loop
    return 3 * 2 * T


def alternating_times(fns: dict, repeats: int, gap: float) -> dict:
    """Every timed call's wall time (s) of each callable, warm, alternating them.

    ``fns`` maps a name to a zero-argument callable. Each is called once untimed, then
    ``repeats`` rounds run every contender once (the order rotates each round), sleeping
    ``gap`` seconds before each timed call. Returns name -> list of seconds.
    """
    names = list(fns)
    for n in names:
        fns[n]()
    times = {n: [] for n in names}
    for r in range(repeats):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            if gap > 0:
                time.sleep(gap)
            t0 = time.perf_counter()
            fns[n]()
            times[n].append(time.perf_counter() - t0)
    return times


def layer_flops(cell: str, T: int, N: int, D: int, H: int, backward: bool) -> float:
    """Flops in the products of one unidirectional layer: forward 2 T N GH (D + H); forward +
    backward three times that (backward: dx, dW_ih, dW_hh and the per-step dh)."""
    f = 2.0 * T * N * GATES[cell] * H * (D + H)
    return 3.0 * f if backward else f


# ----------------------------------------------------------------------------- environment
def _blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None, "threadpoolctl not installed"
    infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    numpy_blas = [i for i in infos if "numpy" in i.get("filepath", "")] or infos
    if not numpy_blas:
        return None, "no BLAS found by threadpoolctl"
    i = numpy_blas[0]
    desc = (f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture', '?')}, "
            f"{i.get('threading_layer', '?')}), {i.get('num_threads')} threads")
    return int(i.get("num_threads") or 1), desc


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _loadavg():
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except (OSError, AttributeError):
        return "n/a"


def _import_torch(threads):
    try:
        import torch
    except ImportError:
        return None
    if threads:
        torch.set_num_threads(threads)
    return torch


def _import_numpy_ml():
    """numpy-ml's LSTMCell, with the ``collections`` aliases it needs on Python >= 3.10."""
    import collections
    import collections.abc
    for name in ("Hashable", "Iterable", "Mapping", "MutableMapping", "Sequence", "Callable",
                 "MutableSequence", "Set", "MutableSet"):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from numpy_ml.neural_nets.layers import LSTMCell
    return LSTMCell


# ----------------------------------------------------------------------------- work items
def bench_matmul(n, repeats, gap):
    """GFLOP/s of an n x n numpy.matmul for float32 and float64 (same run)."""
    out = {}
    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64):
        a = rng.standard_normal((n, n)).astype(dt)
        b = rng.standard_normal((n, n)).astype(dt)
        c = np.empty((n, n), dt)
        t = time_alternating({"mm": lambda: np.matmul(a, b, out=c)}, repeats, gap)["mm"]
        out[np.dtype(dt).name] = 2.0 * n ** 3 / t / 1e9
    return out


def bench_layers(cells, shapes, dtypes, torch, repeats, gap, log=None):
    """Rows: rnnkit vs torch.nn, forward (inference) and forward + backward."""
    import rnnkit
    import rnnkit.nn as rnn

    rows = []
    for cell in cells:
        for dt in dtypes:
            for (T, N, D, H) in shapes:
                rng = np.random.default_rng(0)
                layer = getattr(rnn, cell)(D, H, dtype=dt, seed=0)
                x = rng.standard_normal((T, N, D)).astype(dt)
                dout = rng.standard_normal((T, N, H)).astype(dt)

                def r_fwd():
                    with rnnkit.no_grad():
                        layer(x)

                def r_fb():
                    layer(x)
                    layer.backward(dout)

                fns_f, fns_b = {"rnnkit": r_fwd}, {"rnnkit": r_fb}
                if torch is not None:
                    tdt = torch.float32 if dt == np.float32 else torch.float64
                    tl = getattr(torch.nn, cell)(D, H).to(tdt)
                    tl.load_state_dict({k: torch.from_numpy(v.copy())
                                        for k, v in layer.state_dict().items()})
                    xt = torch.from_numpy(x.copy()).requires_grad_(True)
                    dt_ = torch.from_numpy(dout.copy())

                    def t_fwd(tl=tl, xt=xt):
                        with torch.no_grad():
                            tl(xt)

                    def t_fb(tl=tl, xt=xt, dt_=dt_):
                        o, _ = tl(xt)
                        o.backward(dt_)

                    fns_f["torch"], fns_b["torch"] = t_fwd, t_fb
                for work, fns in (("forward", fns_f), ("forward+backward", fns_b)):
                    if log is not None:
                        log(f"  {cell} {np.dtype(dt).name} {(T, N, D, H)} {work}")
                    t = time_alternating(fns, repeats, gap)
                    rows.append(dict(cell=cell, dtype=np.dtype(dt).name, shape=(T, N, D, H),
                                     work=work, rnnkit=t["rnnkit"], torch=t.get("torch"),
                                     flops=layer_flops(cell, T, N, D, H, work != "forward")))
    return rows


def bench_seed(shape, n_y, repeats, gap):
    """rnnkit LSTM forward (+ output softmax) vs the seed notebook's lstm_forward, float64."""
    import seed_lstm as seed

    import rnnkit.nn as rnn
    from rnnkit.ops import linear, softmax

    T, N, D, H = shape
    p = seed.init_parameters(D, H, n_y)
    rng = np.random.default_rng(1)
    x_seed = rng.standard_normal((D, N, T))                       # (n_x, m, T_x)
    a0 = np.zeros((H, N))
    layer = rnn.LSTM(D, H, dtype=np.float64)
    # same weights: seed rows act on [a_prev; x]; PyTorch rows i, f, g, o
    Wg = [p["Wi"], p["Wf"], p["Wc"], p["Wo"]]
    bg = [p["bi"], p["bf"], p["bc"], p["bo"]]
    layer.load_state_dict({
        "weight_ih_l0": np.concatenate([w[:, H:] for w in Wg]),
        "weight_hh_l0": np.concatenate([w[:, :H] for w in Wg]),
        "bias_ih_l0": np.concatenate([b[:, 0] for b in bg]),
        "bias_hh_l0": np.zeros(4 * H),
    })
    x = np.ascontiguousarray(x_seed.transpose(2, 1, 0))           # (T, N, D)
    Wy, by = p["Wy"], p["by"][:, 0]

    def r_run():
        out, _ = layer(x)                                         # keeps the cache, like the seed
        return out, softmax(linear(out, Wy, by), axis=-1)         # (T, N, n_y)

    def s_run():
        return seed.lstm_forward(x_seed, a0, p)

    # agreement check (so the two do the same work)
    a_s, y_s, _, _ = s_run()
    out, y = r_run()
    err = max(np.abs(a_s.transpose(2, 1, 0) - out).max(), np.abs(y_s.transpose(2, 1, 0) - y).max())
    t = time_alternating({"rnnkit": r_run, "seed": s_run}, repeats, gap)
    return dict(shape=shape, n_y=n_y, rnnkit=t["rnnkit"], seed=t["seed"], max_abs_diff=float(err))


def bench_numpy_ml(shape, repeats, gap):
    """rnnkit LSTM forward+backward vs numpy-ml's LSTMCell stepped over time, float64."""
    try:
        LSTMCell = _import_numpy_ml()
    except Exception as e:  # noqa: BLE001 - any import failure means: skip with a note
        return dict(skipped=f"numpy-ml not importable ({type(e).__name__}: {e})")
    import rnnkit.nn as rnn

    T, N, D, H = shape
    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, N, D))
    dout = rng.standard_normal((T, N, H))
    layer = rnn.LSTM(D, H, dtype=np.float64, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cell = LSTMCell(H)

        def m_run():
            for t in range(T):
                cell.forward(x[t])
            for t in range(T - 1, -1, -1):
                cell.backward(dout[t])
            cell.flush_gradients()            # resets its lists, not the BPTT accumulators
            cell.derived_variables["dLdA_accumulator"] = None
            cell.derived_variables["dLdC_accumulator"] = None

        def r_run():
            layer(x)
            layer.backward(dout)

        t = time_alternating({"rnnkit": r_run, "numpy-ml": m_run}, repeats, gap)
    return dict(shape=shape, rnnkit=t["rnnkit"], numpy_ml=t["numpy-ml"])


def bench_sweep(shapes, torch, repeats, gap, log=None):
    """LSTM float32 forward+backward over the sweep's shapes: rows as :func:`bench_layers`."""
    rows = []
    for shape in shapes:
        rows += [r for r in bench_layers(["LSTM"], [shape], (np.float32,), torch, repeats, gap, log)
                 if r["work"] == "forward+backward"]
    return rows


def plot_sweep(rows, path) -> str | None:
    """rnnkit / torch against N and against H (two panels), or None without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=(8, 3.2), dpi=110)
    FigureCanvasAgg(fig)
    for ax, key, label, keep in ((fig.add_subplot(1, 2, 1), 1, "batch N (D=128, H=256)",
                                  lambda s: s[2] == 128 and s[3] == 256),
                                 (fig.add_subplot(1, 2, 2), 3, "hidden H = D (N=32)",
                                  lambda s: s[1] == 32 and s[2] == s[3])):
        pts = sorted((r["shape"][key], r["rnnkit"] / r["torch"]) for r in rows
                     if r["torch"] and keep(r["shape"]))
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-")
        ax.axhline(1.0, color="gray", lw=0.8, ls="--")
        ax.set_xscale("log", base=2)
        ax.set_xlabel(label)
        ax.set_ylabel("rnnkit / torch (lower is better)")
        ax.set_ylim(bottom=0)
    fig.suptitle("LSTM float32 forward+backward, T = 50")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return str(path)


def bench_charlm(repeats, gap, V=65, H=100, T=25, N=64, chunks=4, dtypes=(np.float32, np.float64)):
    """Characters/s of a char-level RNN training step: rnnkit batched vs a min-char-rnn loop.

    Both: vanilla tanh RNN (H hidden), one-hot input over V characters, softmax output,
    T-step truncated BPTT, gradient clipping and Adagrad. min-char-rnn style: batch 1, dicts of
    column vectors, float64. rnnkit: N sequences per step through ``nn.RNN`` + ``ops``.
    """
    import minchar

    import rnnkit.nn as rnn
    from rnnkit.ops import linear, linear_backward, log_softmax
    from rnnkit.optim import Adagrad, clip_grad_value

    rng = np.random.default_rng(4)
    data = rng.integers(0, V, size=T * N * chunks + 1)
    fns, chars = {}, {}
    for dt in dtypes:
        name = f"rnnkit {np.dtype(dt).name} (N={N})"
        layer = rnn.RNN(V, H, dtype=dt, seed=0)
        Why = (rng.standard_normal((V, H)) * 0.01).astype(dt)
        by = np.zeros(V, dt)
        params = dict(layer.parameters(), Why=Why, by=by)
        opt = Adagrad(params, lr=0.1)
        onehot = np.eye(V, dtype=dt)

        def r_run(layer=layer, Why=Why, by=by, opt=opt, onehot=onehot, dt=dt):
            h = None
            for k in range(chunks):
                seq = data[k * T * N: (k + 1) * T * N + 1]
                inp = seq[:-1].reshape(N, T).T                          # (T, N)
                tgt = seq[1:].reshape(N, T).T
                layer.zero_grad()
                out, h = layer(onehot[inp], h)                           # (T, N, H)
                logits = linear(out, Why, by)                            # (T, N, V)
                lp = log_softmax(logits)
                dlog = np.exp(lp)
                dlog[np.arange(T)[:, None], np.arange(N)[None, :], tgt] -= 1
                dlog /= T * N
                dx_out, dWhy, dby = linear_backward(dlog, out, Why)
                layer.backward(dx_out)
                grads = dict(layer.gradients(), Why=dWhy, by=dby)
                clip_grad_value(grads, 5.0)
                opt.step(grads)

        fns[name] = r_run
        chars[name] = T * N * chunks
    m, mem = minchar.init_model(V, H)
    dlist = data.tolist()
    n_chunks = chunks * 4

    def m_run():
        minchar.train_chunks(m, mem, dlist, seq_length=T, n_chunks=n_chunks)

    fns["min-char-rnn loop (N=1)"] = m_run
    chars["min-char-rnn loop (N=1)"] = T * n_chunks
    t = time_alternating(fns, repeats, gap)
    return dict(V=V, H=H, T=T, N=N, rows={k: chars[k] / t[k] for k in fns})


def bench_memory(shape, dtype=np.float32):
    """Peak memory (tracemalloc) of one LSTM training step vs the activation bytes it keeps."""
    import rnnkit.nn as rnn

    T, N, D, H = shape
    rng = np.random.default_rng(5)
    layer = rnn.LSTM(D, H, dtype=dtype, seed=0)
    x = rng.standard_normal((T, N, D)).astype(dtype)
    dout = rng.standard_normal((T, N, H)).astype(dtype)
    layer(x)
    layer.backward(dout)                         # warm: parameter gradients exist already
    gc.collect()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out, _ = layer(x)
        kept = {}
        for layer_caches in layer._cache[0]:
            for cache, _ in layer_caches:
                arrays = [cache.G, cache.Hs, cache.Cs, cache.keep]
                for a in arrays:
                    if isinstance(a, np.ndarray):
                        b = a if a.base is None else a.base
                        kept[id(b)] = b.nbytes
        after_fwd = tracemalloc.get_traced_memory()[0] - base
        del out
        layer.backward(dout)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        if started:
            tracemalloc.stop()
    act = sum(kept.values())
    return dict(shape=shape, dtype=np.dtype(dtype).name, peak=peak, activations=act,
                forward_alloc=after_fwd, input_bytes=x.nbytes)


def bench_profile(shape, repeats, gap, dtype=np.float32):
    """Split an LSTM forward+backward into its products (run alone) and everything else."""
    import rnnkit.nn as rnn

    T, N, D, H = shape
    rng = np.random.default_rng(6)
    layer = rnn.LSTM(D, H, dtype=dtype, seed=0)
    x = rng.standard_normal((T, N, D)).astype(dtype)
    dout = rng.standard_normal((T, N, H)).astype(dtype)
    W_ih = layer.parameters()["weight_ih_l0"]
    W_hh = layer.parameters()["weight_hh_l0"]
    W_hhT = np.ascontiguousarray(W_hh.T)
    G = rng.standard_normal((T, N, 4 * H)).astype(dtype)
    Hs = rng.standard_normal((T + 1, N, H)).astype(dtype)
    hp = np.empty((N, 4 * H), dtype)
    dh = np.empty((N, H), dtype)

    def products_fwd():
        np.matmul(x.reshape(T * N, D), W_ih.T)
        for t in range(T):
            np.matmul(Hs[t], W_hhT, out=hp)

    def products_bwd():
        for t in range(T - 1, -1, -1):
            np.matmul(G[t], W_hh, out=dh)
        G2 = G.reshape(T * N, 4 * H)
        G2.T @ x.reshape(T * N, D)
        G2.T @ Hs[:-1].reshape(T * N, H)
        G2 @ W_ih

    def full_fwd():
        layer(x)

    def full_fb():
        layer(x)
        layer.backward(dout)

    t = time_alternating({"products_fwd": products_fwd, "products_bwd": products_bwd,
                          "fwd": full_fwd, "fb": full_fb}, repeats, gap)
    return dict(shape=shape, dtype=np.dtype(dtype).name, **t)


# ----------------------------------------------------------------------------- report
def _fmt_ms(s):
    return "n/a" if s is None else f"{s * 1e3:.2f}"


def _fmt_us(s):
    return "n/a" if s is None else f"{s * 1e6:.1f}"


def _ratio(a, b):
    return None if (a is None or b is None or b == 0) else a / b


def _fmt_r(r, digits=2):
    if r is None:
        return "n/a"
    return f"{r:.{digits}f}" if abs(r) >= 0.1 else f"{r:.2g}"


def _shape_s(s):
    return "(" + ", ".join(str(v) for v in s) + ")"


def _verdict(value, required, goal, higher_is_better=False):
    if value is None:
        return "n/a"
    ok = (lambda v, t: v >= t) if higher_is_better else (lambda v, t: v <= t)
    if goal is not None and ok(value, goal):
        return "goal met"
    return "required met" if ok(value, required) else "MISSED"


def _sweep_stats(res):
    rows = [r for r in res.get("sweep") or [] if r["torch"]]
    if not rows:
        return None, None, None
    ratios = [r["rnnkit"] / r["torch"] for r in rows]
    worst = rows[int(np.argmax(ratios))]
    return float(np.median(ratios)), float(max(ratios)), worst


def _targets(res, shapes):
    """Rows (work, required, goal, measured, verdict): the user paths and layer targets first,
    then the targets of the first performance round."""
    rows = []
    layers = res.get("layers") or []
    s0, s1, s2 = shapes

    def find(cell, dt, shape, work):
        return next((r for r in layers if r["cell"] == cell and r["dtype"] == dt
                     and r["shape"] == shape and r["work"] == work), None)

    def add(work, value, required, goal=None, higher=False, fmt=_fmt_r):
        sym = ">=" if higher else "<="
        rows.append((work, f"{sym} {required:g}", "-" if goal is None else f"{sym} {goal:g}",
                     fmt(value), _verdict(value, required, goal, higher)))

    u = res.get("user") or {}
    for key, work, req, goal in (
            ("sample", "`rnnkit sample` per character (stream, LSTM 2x256, temperature 1), "
                       "command end to end vs torch eager", 0.5, 0.3),
            ("eval", "`rnnkit eval` per character (stream, same model), command end to end vs "
                     "torch in 1024-step chunks", 1.5, 1.0),
            ("names", "`rnnkit sample DIR --num 200` (lines mode), start-up cancelled, vs torch "
                      "batched", 1.0, 0.5)):
        r = u.get(key)
        add(work, _ratio(r["rnnkit"], r.get("torch")) if r else None, req, goal)
    r = find("LSTM", "float32", s2, "forward")
    add(f"LSTM fp32 forward {_shape_s(s2)} (N=1), rnnkit / torch",
        _ratio(r["rnnkit"], r["torch"]) if r else None, 1.5, 1.0)
    r = find("LSTM", "float32", s0, "forward")
    add(f"LSTM fp32 forward {_shape_s(s0)}, rnnkit / torch",
        _ratio(r["rnnkit"], r["torch"]) if r else None, 1.3, 1.0)
    r = find("LSTM", "float32", s0, "forward+backward")
    add(f"LSTM fp32 forward+backward {_shape_s(s0)}, rnnkit / torch",
        _ratio(r["rnnkit"], r["torch"]) if r else None, 1.0, 0.8)
    med, worst, _ = _sweep_stats(res)
    add("LSTM fp32 forward+backward sweep (8 shapes): median rnnkit / torch", med, 1.0, 0.8)
    add("LSTM fp32 forward+backward sweep (8 shapes): worst rnnkit / torch", worst, 1.5, 1.0)
    # the first performance round
    for cell in ("GRU", "RNN"):
        r = find(cell, "float32", s0, "forward+backward")
        add(f"{cell} fp32 forward+backward {_shape_s(s0)}, rnnkit / torch",
            _ratio(r["rnnkit"], r["torch"]) if r else None, 1.3)
    for cell in CELLS:
        r = find(cell, "float64", s0, "forward+backward")
        add(f"{cell} fp64 forward+backward {_shape_s(s0)}, rnnkit / torch",
            _ratio(r["rnnkit"], r["torch"]) if r else None, 0.8)
    times = lambda v: "n/a" if v is None else f"{v:.1f}x"          # noqa: E731
    for key, shp in (("numpyml", s0), ("numpyml_small", s2)):
        m = res.get(key)
        add(f"numpy-ml LSTMCell loop / rnnkit, forward+backward {_shape_s(shp)} (speed-up)",
            _ratio(m.get("numpy_ml"), m.get("rnnkit")) if m and "skipped" not in m else None,
            5, higher=True, fmt=times)
    s = res.get("seed")
    add("seed-style loop / rnnkit, forward (speed-up)", _ratio(s["seed"], s["rnnkit"]) if s else None,
        1.5, higher=True, fmt=times)
    r = find("LSTM", "float32", s1, "forward+backward")
    mm = (res.get("matmul") or {}).get("float32")
    add(f"LSTM fp32 forward+backward {_shape_s(s1)}: rnnkit GFLOP/s / matmul GFLOP/s",
        (r["flops"] / r["rnnkit"] / 1e9 / mm) if (r and mm) else None, 0.6, higher=True)
    mem = res.get("memory")
    add("training-step peak memory / activation bytes kept",
        _ratio(mem["peak"], mem["activations"]) if mem else None, 1.5)
    return rows


def render(res, meta) -> str:
    """The markdown report for a result dict from :func:`run`."""
    L = []
    w = L.append
    w("# rnnkit benchmarks")
    w("")
    w(f"Generated by `{meta['command']}` on {meta['date']} "
      f"({'quick/tiny shapes - not meaningful timings' if meta['quick'] else 'full run'}). "
      f"Do not edit by hand: rerun the command.")
    w("")
    w("## Machine")
    w("")
    w("| item | value |")
    w("|---|---|")
    for k, v in meta["machine"].items():
        w(f"| {k} | {v} |")
    w("")
    w(f"Method: one process, warm, contenders alternated round by round (order rotated), median "
      f"of {meta['repeats']} runs, {meta['gap']} s pause before each timed call so the previous "
      f"contender's BLAS/OpenMP threads stop spinning. Same dtype and thread count for rnnkit and "
      f"torch. GFLOP/s count the products only. Forward = inference (`rnnkit.no_grad()` / "
      f"`torch.no_grad()`); forward+backward = a training step without the optimizer "
      f"(input gradient included on both sides).")
    w("")
    w("## Targets")
    w("")
    w("| work | required | goal | measured | verdict |")
    w("|---|---|---|---|---|")
    for row in _targets(res, meta["shapes"]):
        w("| " + " | ".join(row) + " |")
    w("")
    u = res.get("user")
    if u:
        w("## The paths users run: `rnnkit sample` and `rnnkit eval`, end to end")
        w("")
        w("Each rnnkit figure is the wall time of the real command in a fresh process, two sizes, "
          "and the difference: per character = (t(large) - t(small)) / (large - small), so "
          "start-up (interpreter, imports, checkpoint load) cancels and is reported on its own. "
          "The torch reference runs the same model with the same weights and threads in this "
          "process, two sizes likewise (see benchmarks/userpaths.py).")
        w("")
        w("| path | command (difference of) | rnnkit | torch | rnnkit / torch | rnnkit start-up |")
        w("|---|---|---|---|---|---|")
        for key, unit in (("sample", "us/char"), ("eval", "us/char")):
            r = u[key]
            w(f"| {key} | `{r['command']}` | {_fmt_us(r['rnnkit'])} {unit} | "
              f"{_fmt_us(r.get('torch'))} {unit} | {_fmt_r(_ratio(r['rnnkit'], r.get('torch')))} | "
              f"{r['startup']:.2f} s |")
        r = u["names"]
        w(f"| {r['num']} names, lines mode | `{r['command']}` | {_fmt_ms(r['rnnkit'])} ms "
          f"({_fmt_ms(r['wall'])} ms with start-up) | {_fmt_ms(r.get('torch'))} ms | "
          f"{_fmt_r(_ratio(r['rnnkit'], r.get('torch')))} | {r['startup']:.2f} s |")
        w("")
        w(f"Model: {u['model']}. {u['lines_note']}")
        w("")
    sw = res.get("sweep")
    if sw:
        med, worst, wrow = _sweep_stats(res)
        w("## LSTM float32 forward+backward sweep (T = 50)")
        w("")
        if meta.get("sweep_plot"):
            w(f"![rnnkit / torch against N and H]({meta['sweep_plot']})")
            w("")
        w("| (T, N, D, H) | rnnkit ms | torch ms | rnnkit / torch |")
        w("|---|---|---|---|")
        for r in sw:
            w(f"| {_shape_s(r['shape'])} | {_fmt_ms(r['rnnkit'])} | {_fmt_ms(r['torch'])} | "
              f"{_fmt_r(_ratio(r['rnnkit'], r['torch']))} |")
        w("")
        if med is not None:
            w(f"Median {med:.2f}, worst {worst:.2f} at {_shape_s(wrow['shape'])}.")
            w("")
    mm = res.get("matmul")
    if mm:
        w("## Reference: numpy.matmul")
        w("")
        w(f"{meta['mm_n']} x {meta['mm_n']} product, same run: "
          + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in mm.items()) + ".")
        w("")
    if res.get("layers"):
        w("## Layers: rnnkit vs torch.nn")
        w("")
        w("Shapes are (T, N, D, H), one unidirectional layer.")
        w("")
        w("| cell | dtype | (T, N, D, H) | work | rnnkit ms | torch ms | rnnkit / torch | "
          "rnnkit GFLOP/s | / matmul | torch GFLOP/s |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        for r in res["layers"]:
            gf = r["flops"] / r["rnnkit"] / 1e9
            tgf = r["flops"] / r["torch"] / 1e9 if r["torch"] else None
            share = gf / mm[r["dtype"]] if mm else None
            w(f"| {r['cell']} | {r['dtype']} | {_shape_s(r['shape'])} | {r['work']} | "
              f"{_fmt_ms(r['rnnkit'])} | {_fmt_ms(r['torch'])} | "
              f"{_fmt_r(_ratio(r['rnnkit'], r['torch']))} | {gf:.3g} | {_fmt_r(share)} | "
              f"{'n/a' if tgf is None else f'{tgf:.3g}'} |")
        w("")
    s = res.get("seed")
    ms = [res[k] for k in ("numpyml", "numpyml_small") if res.get(k)]
    if "seed" in meta["sections"] or "numpyml" in meta["sections"]:
        w("## Baselines: the naive NumPy loops")
        w("")
        w("| baseline | (T, N, D, H) | work | rnnkit ms | baseline ms | speed-up |")
        w("|---|---|---|---|---|---|")
        if s:
            w(f"| seed notebook `lstm_forward` (completed, benchmarks/seed_lstm.py), float64, "
              f"with its per-step softmax output (n_y={s['n_y']}) | {_shape_s(s['shape'])} | "
              f"forward | {_fmt_ms(s['rnnkit'])} | {_fmt_ms(s['seed'])} | "
              f"{_fmt_r(_ratio(s['seed'], s['rnnkit']), 1)}x |")
        elif "seed" in meta["sections"]:
            w("| seed notebook `lstm_forward` | - | forward | - | - | skipped: benchmarks/seed_lstm.py "
              "not found (run from a source checkout) |")
        for m in ms:
            if "skipped" not in m:
                w(f"| numpy-ml `LSTMCell` stepped over time, float64 | {_shape_s(m['shape'])} | "
                  f"forward+backward | {_fmt_ms(m['rnnkit'])} | {_fmt_ms(m['numpy_ml'])} | "
                  f"{_fmt_r(_ratio(m['numpy_ml'], m['rnnkit']), 1)}x |")
            else:
                w(f"| numpy-ml `LSTMCell` | - | forward+backward | - | - | {m['skipped']} |")
        w("")
        if s:
            w(f"rnnkit and the seed loop run the same weights; max |difference| of outputs "
              f"{s['max_abs_diff']:.1e}. numpy-ml needs `collections.Hashable` etc. aliased to "
              f"`collections.abc` on Python >= 3.10; the harness does that before importing it.")
            w("")
    c = res.get("charlm")
    if c:
        w("## Char-LM training throughput")
        w("")
        w(f"Vanilla tanh RNN, H={c['H']}, {c['V']} characters one-hot, {c['T']}-step truncated "
          f"BPTT, softmax cross-entropy, gradient clipping and Adagrad, whole training step.")
        w("")
        w("| trainer | characters/s |")
        w("|---|---|")
        base = c["rows"].get("min-char-rnn loop (N=1)")
        for k, v in c["rows"].items():
            extra = f" ({v / base:.1f}x the loop)" if base and not k.startswith("min-char") else ""
            w(f"| {k} | {v:,.0f}{extra} |")
        if base is None:
            w("| min-char-rnn loop | skipped: benchmarks/minchar.py not found |")
        w("")
    mem = res.get("memory")
    if mem:
        w("## Training-step memory")
        w("")
        w(f"LSTM {_shape_s(mem['shape'])} {mem['dtype']}, tracemalloc peak above the memory held "
          f"before the forward, over forward + backward.")
        w("")
        w("| activations kept (gates, h, c, tanh c) | allocated by forward | peak of the step | "
          "peak / activations | input x (held by the caller) |")
        w("|---|---|---|---|---|")
        w(f"| {mem['activations'] / 2**20:.2f} MiB | {mem['forward_alloc'] / 2**20:.2f} MiB | "
          f"{mem['peak'] / 2**20:.2f} MiB | {mem['peak'] / mem['activations']:.2f} | "
          f"{mem['input_bytes'] / 2**20:.2f} MiB |")
        w("")
    p = res.get("profile")
    if p:
        w("## Profile: where an LSTM training step spends its time")
        w("")
        w(f"LSTM {_shape_s(p['shape'])} {p['dtype']}: the same products run alone (same shapes, "
          f"same BLAS calls) against the full layer; the rest is elementwise gate math, copies "
          f"and Python overhead.")
        w("")
        w("| part | products alone ms | full ms | rest ms | products share |")
        w("|---|---|---|---|---|")
        for name, pk, fk in (("forward", "products_fwd", "fwd"),
                             ("forward+backward", None, "fb")):
            prod = p["products_fwd"] + p["products_bwd"] if pk is None else p[pk]
            w(f"| {name} | {prod * 1e3:.2f} | {p[fk] * 1e3:.2f} | {(p[fk] - prod) * 1e3:.2f} | "
              f"{prod / p[fk]:.2f} |")
        w("")
    if res.get("engines"):
        L.append(res["engines"].rstrip())
        w("")
    notes = _explain_misses(res, meta)
    if notes:
        w("## Misses, explained from this run's numbers")
        w("")
        L.extend(notes)
        w("")
    return "\n".join(L)


def _explain_misses(res, meta) -> list:
    """One bullet per missed target, with this run's own figures that explain it."""
    out = []
    missed = {row[0] for row in _targets(res, meta["shapes"]) if row[4] == "MISSED"}
    layers = res.get("layers") or []
    s0, s1, s2 = meta["shapes"]
    mm = res.get("matmul") or {}

    def find(cell, dt, shape, work):
        return next((r for r in layers if r["cell"] == cell and r["dtype"] == dt
                     and r["shape"] == shape and r["work"] == work), None)

    def is_missed(prefix):
        return any(m.startswith(prefix) for m in missed)

    u = res.get("user") or {}
    for key in ("sample", "eval"):
        r = u.get(key)
        if r and r.get("torch") and is_missed(f"`rnnkit {key}` per character"):
            out.append(f"- `rnnkit {key}`: {r['rnnkit'] * 1e6:.1f} us per character against torch's "
                       f"{r['torch'] * 1e6:.1f} us in this run (start-up {r['startup']:.2f} s, "
                       f"cancelled). {meta['machine']['compiled N=1 LSTM kernel (numba)']}: see "
                       f"the N=1 layer row below for the per-step cost.")
    r = u.get("names")
    if r and r.get("torch") and is_missed("`rnnkit sample DIR --num 200`"):
        H, L = r["hidden"], r["layers"]
        out.append(f"- 200 names: {r['rnnkit'] * 1e3:.2f} ms against torch's {r['torch'] * 1e3:.2f} ms, "
                   f"a difference of two {r['startup']:.2f} s commands (standard deviation of the "
                   f"25 paired differences {r['spread'] * 1e3:.2f} ms). A step is {L} layers of "
                   f"(n x {H}) x ({H} x {4 * H}) products over the n names still running, plus "
                   f"NumPy's separate gate passes; torch runs the same products with fused gate "
                   f"math (see the batched forward row).")
    p = res.get("profile")
    for work, key, pk in (("forward", "fwd", "products_fwd"), ("forward+backward", "fb", None)):
        r = find("LSTM", "float32", s0, work)
        if p and r and r["torch"] and is_missed(f"LSTM fp32 {work} {_shape_s(s0)}"):
            prod = p["products_fwd"] + p["products_bwd"] if pk is None else p[pk]
            out.append(f"- LSTM fp32 {work} {_shape_s(s0)}: the products alone (same BLAS calls) "
                       f"take {prod * 1e3:.1f} ms, {prod / r['torch']:.2f} x torch's whole "
                       f"{r['torch'] * 1e3:.1f} ms; the other {(p[key] - prod) * 1e3:.1f} ms are "
                       f"NumPy's separate elementwise passes over the gates that torch fuses.")
    r = find("LSTM", "float32", s2, "forward")
    if r and r["torch"] and is_missed(f"LSTM fp32 forward {_shape_s(s2)}"):
        out.append(f"- LSTM fp32 forward {_shape_s(s2)}: {r['rnnkit'] / s2[0] * 1e6:.1f} us per "
                   f"step against torch's {r['torch'] / s2[0] * 1e6:.1f} us; at N=1 a step is a "
                   f"({s2[3]} x {4 * s2[3]}) product and about ten elementwise calls, so the time is "
                   f"call overhead unless the compiled kernel runs "
                   f"({meta['machine']['compiled N=1 LSTM kernel (numba)']}).")
    med, worst, wrow = _sweep_stats(res)
    if wrow is not None and (is_missed("LSTM fp32 forward+backward sweep")):
        out.append(f"- sweep: median {med:.2f}, worst {worst:.2f} at {_shape_s(wrow['shape'])} "
                   f"({wrow['rnnkit'] * 1e3:.1f} ms vs {wrow['torch'] * 1e3:.1f} ms); the products of "
                   f"both libraries run at the BLAS's speed, and the gap is the unfused gate passes "
                   f"(larger at small N, where each pass is a separate call).")
    fp64 = [m for m in missed if "fp64" in m]
    if fp64:
        rows = [find(c, "float64", s0, "forward+backward") for c in CELLS]
        rows = [r for r in rows if r and r["torch"]]
        if rows:
            desc = ", ".join(f"{r['cell']} {r['flops'] / r['rnnkit'] / 1e9:.0f} vs "
                             f"{r['flops'] / r['torch'] / 1e9:.0f}" for r in rows)
            out.append(f"- fp64 forward+backward {_shape_s(s0)}: both libraries are bound by the "
                       f"float64 products (GFLOP/s rnnkit vs torch: {desc}; the 2048^2 matmul "
                       f"reaches {mm.get('float64', float('nan')):.0f}).")
    m = res.get("numpyml")
    if m and "skipped" not in m and is_missed(f"numpy-ml LSTMCell loop / rnnkit, forward+backward {_shape_s(s0)}"):
        out.append(f"- numpy-ml at {_shape_s(s0)}: the time is in the products, which numpy-ml also "
                   f"does with BLAS, so no loop-level change gives 5x here.")
    r = find("LSTM", "float32", s1, "forward+backward")
    if r and mm.get("float32") and is_missed(f"LSTM fp32 forward+backward {_shape_s(s1)}: rnnkit GFLOP/s"):
        gf = r["flops"] / r["rnnkit"] / 1e9
        out.append(f"- {_shape_s(s1)}: rnnkit reaches {gf:.0f} GFLOP/s, {gf / mm['float32']:.2f} of "
                   f"the 2048^2 matmul's {mm['float32']:.0f}; the per-step products ({s1[1]} x {s1[3]}) "
                   f"by ({s1[3]} x {4 * s1[3]}) are smaller and less efficient than 2048^2.")
    return out


def run(quick=False, repeats=5, gap=0.2, only=None, mm_n=None, verbose=True):
    """Run the selected sections and return ``(results, meta)``."""
    sections = tuple(only) if only else SECTIONS
    bad = [s for s in sections if s not in SECTIONS + ("lstm", "gru", "rnn")]
    if bad:
        raise ConfigError(f"bench: expected --only from {SECTIONS + ('lstm', 'gru', 'rnn')}, "
                          f"got {bad}.")
    cells = [c for c in CELLS if c.lower() in sections]
    if "layers" in sections:
        cells = list(CELLS)
    shapes = QUICK_SHAPES if quick else FULL_SHAPES
    mm_n = mm_n or (128 if quick else 2048)
    threads, blas = _blas_info()
    torch = _import_torch(threads)

    def log(msg):
        if verbose:
            print(f"[bench] {msg}", file=sys.stderr, flush=True)

    from rnnkit import _jit
    if _jit.enabled():
        log(f"warm-up: {warm_kernels()} layer-steps, so that rnnkit's compiled kernels are loaded")
    machine = {
        "CPU": _cpu_model(),
        "logical cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "BLAS (numpy, threadpoolctl)": blas,
        "OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE": (f"{os.environ.get('OPENBLAS_CORETYPE', 'unset')} / "
                                                 f"{os.environ.get('OPENBLAS_L2_SIZE', 'unset')}"),
        "compiled N=1 LSTM kernel (numba)": ("on" if _jit.enabled() else "off (numba not installed "
                                             "or RNNKIT_NO_JIT=1): the NumPy loop"),
        "torch": (f"{torch.__version__}, {torch.get_num_threads()} threads "
                  f"(set to NumPy's BLAS threads)") if torch is not None else "not installed",
    }
    res = {}
    load0 = _loadavg()
    t_start = time.perf_counter()
    log(f"matmul {mm_n}x{mm_n}")
    res["matmul"] = bench_matmul(mm_n, repeats, gap)
    if cells:
        log(f"layers {cells}")
        res["layers"] = bench_layers(cells, shapes, (np.float32, np.float64), torch, repeats, gap,
                                     log)
    if "sweep" in sections:
        log("sweep")
        res["sweep"] = bench_sweep(QUICK_SWEEP if quick else FULL_SWEEP, torch, repeats, gap, log)
    if "user" in sections:
        log("user paths (rnnkit sample / eval commands)")
        from userpaths import bench_user_paths
        res["user"] = bench_user_paths(torch, threads or 1, repeats=repeats, quick=quick)
    if "engines" in sections:
        log("engines (rnnkit train --engine numpy | torch | torchrun)")
        import engines
        res["engines"] = engines.render(engines.run(quick=quick, verbose=verbose,
                                                    repeats=1 if quick else 3))
    if "profile" in sections:
        log("profile")
        res["profile"] = bench_profile(shapes[0], repeats, gap)
    if "seed" in sections:
        log("seed baseline")
        res["seed"] = bench_seed(shapes[0], 65 if not quick else 3, repeats, gap)
    if "numpyml" in sections:
        log("numpy-ml baseline")
        res["numpyml"] = bench_numpy_ml(shapes[0], repeats, gap)
        res["numpyml_small"] = bench_numpy_ml(shapes[2], repeats, gap)
    if "charlm" in sections:
        log("char-LM")
        res["charlm"] = bench_charlm(repeats, gap, V=11 if quick else 65, H=8 if quick else 100,
                                     T=5 if quick else 25, N=4 if quick else 64,
                                     chunks=1 if quick else 4)
    if "memory" in sections:
        log("memory")
        res["memory"] = bench_memory(shapes[0])
    machine["load average (1 min) at start / end"] = f"{load0} / {_loadavg()} (other processes share the cores)"
    meta = dict(quick=quick, repeats=repeats, gap=gap, shapes=shapes, mm_n=mm_n,
                sections=sections, machine=machine,
                date=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
                seconds=time.perf_counter() - t_start)
    return res, meta


def main(argv=None) -> int:
    """Run the harness and write the markdown report. Returns 0 on success."""
    ap = argparse.ArgumentParser(prog="python benchmarks/bench.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny shapes (smoke test; timings meaningless)")
    ap.add_argument("--out", default="BENCHMARKS.md", help="markdown report path (default BENCHMARKS.md)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per contender, median (default 5)")
    ap.add_argument("--gap", type=float, default=None,
                    help="seconds to pause before each timed call (default 0.2; 0 with --quick)")
    ap.add_argument("--only", default=None,
                    help="comma list of sections: " + ",".join(SECTIONS + ("lstm", "gru", "rnn")))
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    ap.add_argument("--plot", default=None, help="where to draw the sweep's ratios (PNG; default "
                    "docs/img/bench_sweep.png beside the report's folder, none with --quick)")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error(f"--repeats: expected an integer >= 1, got {args.repeats}.")
    if args.gap is not None and not (math.isfinite(args.gap) and args.gap >= 0):
        ap.error(f"--gap: expected a finite number >= 0, got {args.gap}.")
    try:                                   # before the benchmark runs, not after
        check_output_file(args.out, "--out", example="BENCHMARKS.md")
    except ConfigError as e:
        ap.error(str(e))
    only = [s.strip().lower() for s in args.only.split(",") if s.strip()] if args.only else None
    gap = args.gap if args.gap is not None else (0.0 if args.quick else 0.2)
    try:
        res, meta = run(quick=args.quick, repeats=args.repeats, gap=gap, only=only,
                        verbose=not args.quiet)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return 2
    cmd = "python benchmarks/bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    meta["command"] = cmd.strip()
    plot = args.plot or (None if args.quick else str(Path(args.out).parent / "docs/img/bench_sweep.png"))
    if plot and res.get("sweep") and plot_sweep(res["sweep"], plot):
        meta["sweep_plot"] = os.path.relpath(plot, Path(args.out).parent)
    text = render(res, meta) + "\n"
    try:
        old = Path(args.out).read_text(encoding="utf-8") if Path(args.out).exists() else ""
        for begin, end in KEPT_SECTIONS:                        # the other scripts' sections stay
            if begin in old and end in old:
                kept = old[old.index(begin):old.index(end) + len(end)]
                text = text.rstrip("\n") + "\n\n" + kept + "\n"
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
    except OSError as e:
        print(f"bench: cannot write --out {args.out}: {e.strerror or e}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"[bench] wrote {args.out} in {meta['seconds']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
