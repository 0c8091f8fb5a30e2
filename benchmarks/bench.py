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

FULL_SHAPES = [(100, 64, 128, 256), (50, 128, 256, 1024), (1000, 1, 65, 128)]
QUICK_SHAPES = [(6, 4, 5, 8), (4, 8, 6, 16), (12, 1, 5, 4)]
CELLS = ("LSTM", "GRU", "RNN")            # layer classes of rnnkit.nn (RNN = the tanh RNN)
GATES = {spec.layer: spec.num_gates for spec in CELL_SPECS.values()}
SECTIONS = ("layers", "seed", "numpyml", "gen", "charlm", "memory", "profile")


# ----------------------------------------------------------------------------- timing
def time_alternating(fns: dict, repeats: int, gap: float) -> dict:
    """Median wall time (s) of each callable, warm, alternating them round by round.

    ``fns`` maps a name to a zero-argument callable. Each is called once untimed, then
    ``repeats`` rounds run every contender once (the order rotates each round), sleeping
    ``gap`` seconds before each timed call. Returns name -> median seconds.
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
    return {n: float(np.median(v)) for n, v in times.items()}


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


def bench_generation(torch, n_chars, repeats, gap, V=65, H=256, layers=2, E=32):
    """Per-character latency of greedy generation at N=1 from a CharLM (embedding -> LSTM
    -> linear): rnnkit's ``CharLM.stepper()`` (the path ``rnnkit sample`` runs) vs the same
    model as a torch eager loop."""
    import rnnkit.nn as rnn

    lm = rnn.CharLM(rnn.CharLMConfig(vocab_size=V, hidden_size=H, num_layers=layers,
                                     embedding_size=E), seed=0)
    lm.eval()

    def r_run():
        step = lm.stepper().step
        tok, st, out = np.array([0]), None, []
        for _ in range(n_chars):
            logits, st = step(tok, st)
            tok = logits.argmax(axis=-1)
            out.append(int(tok[0]))
        return out

    fns = {"rnnkit": r_run}
    if torch is not None:
        from rnnkit.interop.torch import to_torch
        tm = to_torch(lm).eval()

        def t_run():
            tok, st, out = torch.zeros((1, 1), dtype=torch.int64), None, []
            with torch.no_grad():
                for _ in range(n_chars):
                    logits, st = tm(tok, st)
                    tok = logits[-1].argmax(dim=-1, keepdim=True)
                    out.append(int(tok[0, 0]))
            return out

        fns["torch"] = t_run
        same = r_run() == t_run()
    else:
        same = None
    t = time_alternating(fns, repeats, gap)
    return dict(n_chars=n_chars, layers=layers, H=H, V=V, same_text=same,
                rnnkit=t["rnnkit"] / n_chars, torch=(t["torch"] / n_chars) if "torch" in t else None)


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


def _targets(res, shapes):
    """Rows (work, target, measured, verdict) of the issue's target table."""
    rows = []
    layers = res.get("layers") or []
    s0, s1 = shapes[0], shapes[1]

    def find(cell, dt, shape, work):
        for r in layers:
            if r["cell"] == cell and r["dtype"] == dt and r["shape"] == shape and r["work"] == work:
                return r
        return None

    def add(work, target, value, ok_fn, fmt=_fmt_r):
        verdict = "n/a" if value is None else ("met" if ok_fn(value) else "MISSED")
        rows.append((work, target, fmt(value), verdict))

    r = find("LSTM", "float32", s0, "forward+backward")
    v = _ratio(r["rnnkit"], r["torch"]) if r else None
    verdict = "n/a" if v is None else ("met" if v <= 1.0 else ("required met (<= 1.3)" if v <= 1.3 else "MISSED"))
    rows.append((f"LSTM fp32 forward+backward {_shape_s(s0)}, rnnkit / torch", "<= 1.0 (required <= 1.3)",
                 _fmt_r(v), verdict))
    r = find("LSTM", "float32", s0, "forward")
    add(f"LSTM fp32 forward {_shape_s(s0)}, rnnkit / torch", "<= 1.3",
        _ratio(r["rnnkit"], r["torch"]) if r else None, lambda v: v <= 1.3)
    for cell in ("GRU", "RNN"):
        r = find(cell, "float32", s0, "forward+backward")
        add(f"{cell} fp32 forward+backward {_shape_s(s0)}, rnnkit / torch", "<= 1.3",
            _ratio(r["rnnkit"], r["torch"]) if r else None, lambda v: v <= 1.3)
    for cell in CELLS:
        r = find(cell, "float64", s0, "forward+backward")
        add(f"{cell} fp64 forward+backward {_shape_s(s0)}, rnnkit / torch", "<= 0.8",
            _ratio(r["rnnkit"], r["torch"]) if r else None, lambda v: v <= 0.8)
    g = res.get("gen")
    add("generation latency per character, N=1, rnnkit / torch", "<= 0.5",
        _ratio(g["rnnkit"], g["torch"]) if g else None, lambda v: v <= 0.5)
    for key, shp in (("numpyml", shapes[0]), ("numpyml_small", shapes[2])):
        m = res.get(key)
        add(f"numpy-ml LSTMCell loop / rnnkit, forward+backward {_shape_s(shp)} (speed-up)", ">= 5x",
            _ratio(m.get("numpy_ml"), m.get("rnnkit")) if m and "skipped" not in m else None,
            lambda v: v >= 5, lambda v: "n/a" if v is None else f"{v:.1f}x")
    s = res.get("seed")
    add("seed-style loop / rnnkit, forward (speed-up)", ">= 1.5x",
        _ratio(s["seed"], s["rnnkit"]) if s else None, lambda v: v >= 1.5,
        lambda v: "n/a" if v is None else f"{v:.1f}x")
    r = find("LSTM", "float32", s1, "forward+backward")
    mm = (res.get("matmul") or {}).get("float32")
    v = (r["flops"] / r["rnnkit"] / 1e9 / mm) if (r and mm) else None
    add(f"LSTM fp32 forward+backward {_shape_s(s1)}: rnnkit GFLOP/s / matmul GFLOP/s", ">= 0.6",
        v, lambda v: v >= 0.6)
    mem = res.get("memory")
    add("training-step peak memory / activation bytes kept", "<= 1.5",
        _ratio(mem["peak"], mem["activations"]) if mem else None, lambda v: v <= 1.5)
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
    w("| work | target | measured | verdict |")
    w("|---|---|---|---|")
    for row in _targets(res, meta["shapes"]):
        w("| " + " | ".join(row) + " |")
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
    g = res.get("gen")
    if g:
        w("## Generation latency (per character, N=1)")
        w("")
        w(f"CharLM: embedding -> {g['layers']}-layer LSTM H={g['H']} -> linear over {g['V']} "
          f"characters, float32, {g['n_chars']} characters decoded greedily one at a time "
          f"(`CharLM.stepper()`, the path `rnnkit sample` runs, vs the same model as a torch "
          f"eager loop under no_grad); same text from both: {g['same_text']}.")
        w("")
        w("| rnnkit us/char | torch us/char | rnnkit / torch |")
        w("|---|---|---|")
        w(f"| {_fmt_us(g['rnnkit'])} | {_fmt_us(g['torch'])} | {_fmt_r(_ratio(g['rnnkit'], g['torch']))} |")
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
    notes = _explain_misses(res, meta)
    if notes:
        w("## Misses, explained from this run's numbers")
        w("")
        L.extend(notes)
        w("")
    return "\n".join(L)


def _explain_misses(res, meta) -> list:
    """One bullet per missed target, with the measured figures that explain it."""
    out = []
    missed = {row[0] for row in _targets(res, meta["shapes"]) if row[3] == "MISSED"}
    layers = res.get("layers") or []
    s0, s1 = meta["shapes"][0], meta["shapes"][1]
    mm = res.get("matmul") or {}

    def find(cell, dt, shape, work):
        return next((r for r in layers if r["cell"] == cell and r["dtype"] == dt
                     and r["shape"] == shape and r["work"] == work), None)

    p = res.get("profile")
    for work, key, pk in (("forward", "fwd", "products_fwd"), ("forward+backward", "fb", None)):
        r = find("LSTM", "float32", s0, work)
        if p and r and r["torch"] and any(m.startswith(f"LSTM fp32 {work} ") for m in missed):
            prod = p["products_fwd"] + p["products_bwd"] if pk is None else p[pk]
            out.append(f"- LSTM fp32 {work} {_shape_s(s0)}: the products alone (same BLAS calls) "
                       f"take {prod * 1e3:.1f} ms, {prod / r['torch']:.2f} x torch's whole "
                       f"{r['torch'] * 1e3:.1f} ms; the other {(p[key] - prod) * 1e3:.1f} ms are "
                       f"NumPy's separate elementwise passes over the gates (about 9 per step "
                       f"forward, 20 backward) that torch fuses into one kernel. Pure NumPy cannot "
                       f"fuse them; an optional compiled kernel would be the next step.")
    fp64 = [m for m in missed if "fp64" in m]
    if fp64:
        rows = [find(c, "float64", s0, "forward+backward") for c in CELLS]
        rows = [r for r in rows if r and r["torch"]]
        if rows:
            desc = ", ".join(f"{r['cell']} {r['flops'] / r['rnnkit'] / 1e9:.0f} vs "
                             f"{r['flops'] / r['torch'] / 1e9:.0f}" for r in rows)
            out.append(f"- fp64 forward+backward {_shape_s(s0)} (target <= 0.8): both libraries "
                       f"are bound by the float64 products (GFLOP/s rnnkit vs torch: {desc}; the "
                       f"2048^2 matmul limit is {mm.get('float64', float('nan')):.0f}). Going 20% "
                       f"below torch would need faster products than this BLAS delivers; at "
                       f"N=1, where torch's per-step overhead dominates, rnnkit is far ahead (see "
                       f"the (1000, 1, 65, 128) rows).")
    m = res.get("numpyml")
    if m and "skipped" not in m and any(k.startswith("numpy-ml") and _shape_s(s0) in k for k in missed):
        out.append(f"- numpy-ml at {_shape_s(s0)}: at this shape the time is in the products, which "
                   f"numpy-ml also does with BLAS (its cell multiplies the concatenated [h, x] by "
                   f"four gate matrices at every step), so no loop-level change can give 5x; at N=1, where per-step "
                   f"Python overhead dominates, the speed-up is "
                   f"{_fmt_r(_ratio(res.get('numpyml_small', {}).get('numpy_ml'), res.get('numpyml_small', {}).get('rnnkit')), 1)}x.")
    r = find("LSTM", "float32", s1, "forward+backward")
    if r and mm.get("float32") and any("GFLOP/s / matmul" in k for k in missed):
        gf = r["flops"] / r["rnnkit"] / 1e9
        out.append(f"- {_shape_s(s1)}: rnnkit reaches {gf:.0f} GFLOP/s, {gf / mm['float32']:.2f} of "
                   f"the 2048^2 matmul's {mm['float32']:.0f}; the per-step products are ({s1[1]} x {s1[3]}) "
                   f"by ({s1[3]} x {4 * s1[3]}), smaller and less efficient than 2048^2, and the elementwise "
                   f"gate work takes the rest.")
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

    machine = {
        "CPU": _cpu_model(),
        "logical cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "BLAS (numpy, threadpoolctl)": blas,
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
    if "gen" in sections:
        log("generation")
        res["gen"] = bench_generation(torch, 8 if quick else 300, repeats, gap,
                                      H=16 if quick else 256)
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
    text = render(res, meta)
    try:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    except OSError as e:
        print(f"bench: cannot write --out {args.out}: {e.strerror or e}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"[bench] wrote {args.out} in {meta['seconds']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
