"""Speed III figures (issue 26): rnnkit's LSTM layers against torch with and without oneDNN,
the rows that must stay ahead, and `rnnkit train` next to a busy program.

Writes its section of ``BENCHMARKS.md`` in place (between the ``speed.py`` markers; the rest of
the file is bench.py's)::

    python benchmarks/speed.py --out BENCHMARKS.md              # about 10 minutes on 2 cores
    python benchmarks/speed.py --only sweep,layers --repeats 9  # a subset, printed
    python benchmarks/speed.py --quick                          # tiny shapes, smoke test

Method: one process, warm (first the layer-steps after which rnnkit loads its compiled kernels,
``bench.warm_kernels``, so that every row is a long-running process's steady state); the contenders (rnnkit, torch, torch with
``torch.backends.mkldnn.flags(enabled=False)``) alternate call by call, the order rotated each
round, with a pause before each call so the previous contender's spinning threads stop; each
figure is the minimum and the median of ``--repeats`` calls, and the ratio of the minima is the
verdict (the least disturbed call of each; the machine is shared, so the median is given too,
with the 1-minute load average when the row was measured). Both libraries run on NumPy's BLAS
thread count. ``rnnkit train`` rows are wall times of the real command, 200 steps of the
default run, quiet and with one ``python -c "while True: pass"`` process started beside it
(and killed after). OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are reported, never set.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import SPEED_BEGIN as BEGIN
from bench import SPEED_END as END

SWEEP = [(50, 32, h, h) for h in (64, 128, 256, 512, 1024)] + [(50, n, 128, 256) for n in (1, 8, 128)]
N1 = (1000, 1, 65, 128)
BATCH = (100, 64, 128, 256)
REQUIRED = {"sweep median": 1.10, "sweep worst": 1.50, "N=1 training": 1.50, "forward": 1.50,
            "busy": 0.65}
GOAL = {"sweep median": 1.00, "sweep worst": 1.20, "N=1 training": 1.00, "forward": 1.20,
        "busy": 0.85}


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def time_rounds(fns: dict, repeats: int, gap: float) -> dict:
    """name -> (min, median) seconds of bench.py's alternating rounds (one untimed call
    each, then ``repeats`` rounds, the order rotated, ``gap`` s pause before each call)."""
    from bench import alternating_times
    return {n: (min(v), float(np.median(v))) for n, v in alternating_times(fns, repeats, gap).items()}


def layer_contenders(torch, cell, dtype, shape, work, options=None):
    """rnnkit, torch and torch without oneDNN doing ``work`` ('forward' or 'forward+backward')
    on the same weights; ``options`` are rnnkit-only layer options (e.g. proj_size), shown as
    extra rnnkit contenders."""
    import rnnkit
    import rnnkit.nn as rnn
    T, N, D, H = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, N, D)).astype(dtype)
    fns = {}

    def rnnkit_fn(layer):
        S = layer.proj_size or H
        dout = rng.standard_normal((T, N, S)).astype(dtype)
        if work == "forward":
            def f():
                with rnnkit.no_grad():
                    layer(x)
        else:
            def f():
                layer(x)
                layer.backward(dout)
        return f

    base = getattr(rnn, cell)(D, H, dtype=dtype, seed=0)
    fns["rnnkit"] = rnnkit_fn(base)
    for name, opts in (options or {}).items():
        fns[f"rnnkit {name}"] = rnnkit_fn(getattr(rnn, cell)(D, H, dtype=dtype, seed=0, **opts))
    if torch is not None:
        tdt = torch.float32 if dtype == np.float32 else torch.float64
        tl = getattr(torch.nn, cell)(D, H).to(tdt)
        tl.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in base.state_dict().items()})
        xt = torch.from_numpy(x.copy()).requires_grad_(work != "forward")
        dt = torch.from_numpy(rng.standard_normal((T, N, H)).astype(dtype))

        def t_fn(onednn):
            def f():
                with torch.backends.mkldnn.flags(enabled=onednn):
                    if work == "forward":
                        with torch.no_grad():
                            tl(xt)
                    else:
                        o, _ = tl(xt)
                        o.backward(dt)
            return f
        fns["torch"] = t_fn(True)
        fns["torch no oneDNN"] = t_fn(False)
    return fns


def loop_thread_contenders(shape):
    """The same rnnkit LSTM float32 layer (forward+backward) with its time loop on one BLAS
    thread and on all of NumPy's, whatever ``rnnkit._threads.SMALL_PRODUCT`` decides: the
    measurement behind that rule."""
    import rnnkit.nn as rnn
    from rnnkit import _threads
    T, N, D, H = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, N, D)).astype(np.float32)
    dout = rng.standard_normal((T, N, H)).astype(np.float32)
    layer = rnn.LSTM(D, H, dtype=np.float32, seed=0)

    def with_limit(limit):
        def f():
            rule = _threads.SMALL_PRODUCT
            _threads.SMALL_PRODUCT = limit
            try:
                layer(x)
                layer.backward(dout)
            finally:
                _threads.SMALL_PRODUCT = rule
        return f
    return {"loop on 1 thread": with_limit(2 ** 62), "loop on all threads": with_limit(-1)}


def bench_loop_threads(shapes, repeats, gap, log):
    from rnnkit import _threads
    rows = []
    for shape in shapes:
        log(f"loop threads: {shape}")
        T, N, D, H = shape
        macs = N * H * 4 * H
        t = time_rounds(loop_thread_contenders(shape), repeats, gap)
        rows.append(dict(shape=shape, macs=macs, rule="1 thread" if macs <= _threads.SMALL_PRODUCT
                         else "all threads", times=t, load=load()))
    return rows


def bench_layer_rows(torch, items, repeats, gap, log):
    rows = []
    for label, cell, dtype, shape, work, options in items:
        log(f"{label}: {cell} {np.dtype(dtype).name} {shape} {work}")
        t = time_rounds(layer_contenders(torch, cell, dtype, shape, work, options), repeats, gap)
        rows.append(dict(label=label, cell=cell, dtype=np.dtype(dtype).name, shape=shape, work=work,
                         times=t, load=load()))
    return rows


@contextlib.contextmanager
def busy_process(on: bool):
    """One process spinning on a core while the block runs (none when ``on`` is false)."""
    if not on:
        yield
        return
    p = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        p.kill()
        p.wait()


def time_train(engine, busy, threads, steps, out):
    """Wall time of the default ``rnnkit train`` (``--steps`` steps) and what it said about threads."""
    cmd = [sys.executable, "-m", "rnnkit", "train", "--steps", str(steps), "--out", out, "--overwrite",
           "--engine", engine, "--num-samples", "0", "--quiet"]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    with busy_process(busy):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        t = time.perf_counter() - t0
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {p.stderr[-2000:]}")
    said = [line for line in p.stderr.splitlines() if line.startswith("threads:")]
    return t, said


def bench_busy(torch, repeats, steps, log):
    """Rows: (engine, threads) -> quiet and busy wall times (min, median) of rnnkit train."""
    engines = ["numpy"] + (["torch"] if torch is not None else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for engine in engines:
            for threads in (None, 2):
                log(f"rnnkit train --engine {engine} --threads {threads or 'auto'}")
                q, b, said = [], [], []
                for r in range(repeats):
                    for busy in ((False, True) if r % 2 == 0 else (True, False)):
                        t, s = time_train(engine, busy, threads, steps, os.path.join(tmp, "run"))
                        (b if busy else q).append(t)
                        if busy:
                            said += s
                rows.append(dict(engine=engine, threads=threads or "auto", quiet=(min(q), float(np.median(q))),
                                 busy=(min(b), float(np.median(b))), said=said[-1] if said else "",
                                 load=load()))
    return rows


# ----------------------------------------------------------------------------- report
def _ms(t):
    return f"{t * 1e3:.2f}"


def _verdict(key, value, higher=False):
    req, goal = REQUIRED[key], GOAL[key]
    ok = (lambda v, lim: v >= lim) if higher else (lambda v, lim: v <= lim)
    return "goal met" if ok(value, goal) else ("required met" if ok(value, req) else "MISSED")


def render(res, meta) -> str:
    out = [BEGIN, "", "## Speed III: LSTM against torch with and without oneDNN, and a busy CPU", "",
           f"Generated by `{meta['command']}` on {meta['date']}; load average (1 min) "
           f"{meta['load0']} at start, {meta['load1']} at end; {meta['machine']}. "
           "Each figure: minimum / median of the repeats (the ratio column uses the minima); "
           "`load` is the 1-minute load average when the row finished: on this shared machine "
           "other programs ran during the measurement.", ""]
    targets = []
    sw = res.get("sweep")
    if sw:
        out += ["### LSTM float32 forward+backward sweep, T = 50", "",
                "| (T, N, D, H) | rnnkit ms | torch ms | torch no oneDNN ms | rnnkit / torch | "
                "rnnkit / torch no oneDNN | load |", "|---|---|---|---|---|---|---|"]
        ratios = []
        for r in sw:
            t = r["times"]
            ratio = t["rnnkit"][0] / t["torch"][0]
            ratios.append((ratio, r["shape"]))
            out.append(f"| {r['shape']} | {_ms(t['rnnkit'][0])} / {_ms(t['rnnkit'][1])} | "
                       f"{_ms(t['torch'][0])} / {_ms(t['torch'][1])} | "
                       f"{_ms(t['torch no oneDNN'][0])} / {_ms(t['torch no oneDNN'][1])} | "
                       f"{ratio:.2f} | {t['rnnkit'][0] / t['torch no oneDNN'][0]:.2f} | {r['load']} |")
        med = float(np.median([r for r, _ in ratios]))
        worst, wshape = max(ratios)
        out += ["", f"Median {med:.2f}, worst {worst:.2f} at {wshape}.", ""]
        targets += [("forward+backward sweep of 8 shapes, median", med, "sweep median"),
                    ("same, worst shape", worst, "sweep worst")]
    lr = res.get("layers")
    if lr:
        out += ["### Layers", "",
                "rnnkit with the fused kernels (numba) as installed; torch with oneDNN (its default "
                "on a CPU) and without. Extra rnnkit rows run the same layer with an option.", "",
                "| row | cell | dtype | (T, N, D, H) | work | contender | ms (min / median) | "
                "/ torch | / torch no oneDNN | load |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in lr:
            t = r["times"]
            for name, (tmin, tmed) in t.items():
                rel = f"{tmin / t['torch'][0]:.2f}" if "torch" in t else "-"
                rel2 = f"{tmin / t['torch no oneDNN'][0]:.2f}" if "torch" in t else "-"
                out.append(f"| {r['label']} | {r['cell']} | {r['dtype']} | {r['shape']} | {r['work']} | "
                           f"{name} | {_ms(tmin)} / {_ms(tmed)} | {rel} | {rel2} | {r['load']} |")
            if r["label"] == "N=1 training":
                targets.append(("forward+backward (1000, 1, 65, 128)",
                                t["rnnkit"][0] / t["torch"][0], "N=1 training"))
            if r["label"] == "batched forward":
                targets.append(("forward (100, 64, 128, 256)", t["rnnkit"][0] / t["torch"][0],
                                "forward"))
        out.append("")
    lt = res.get("threads")
    if lt:
        from rnnkit import _threads
        out += ["### The time loop's BLAS threads", "",
                "The rule of `rnnkit._threads` (docs/design.md): a time loop whose per-step product "
                f"has at most SMALL_PRODUCT = {_threads.SMALL_PRODUCT:,} multiply-adds runs on one "
                "BLAS thread, larger ones on all of NumPy's. The same LSTM float32 layer, "
                "forward+backward, with the loop forced each way (the products over all steps keep "
                "every thread in both).", "",
                "| (T, N, D, H) | per-step product (multiply-adds) | loop on 1 thread ms | "
                "loop on all threads ms | 1 / all | rule picks | load |",
                "|---|---:|---|---|---|---|---|"]
        for r in lt:
            one, every = r["times"]["loop on 1 thread"], r["times"]["loop on all threads"]
            out.append(f"| {r['shape']} | {r['macs']:,} | {_ms(one[0])} / {_ms(one[1])} | "
                       f"{_ms(every[0])} / {_ms(every[1])} | {one[0] / every[0]:.2f} | {r['rule']} | "
                       f"{r['load']} |")
        out.append("")
    bz = res.get("busy")
    if bz:
        out += ["### `rnnkit train` with a competing busy process", "",
                f"The default run (`rnnkit train --steps {meta['steps']}`: names, LSTM 2x128, batch "
                "64), whole command, quiet and with one `python -c \"while True: pass\"` beside it; "
                "`--threads auto` is the default, `--threads 2` is what the previous release did "
                "(all of NumPy's / torch's threads).", "",
                "| engine | --threads | quiet s (min / median) | busy s (min / median) | quiet / busy | "
                "what auto chose when busy | load |", "|---|---|---|---|---|---|---|"]
        for r in bz:
            ratio = r["quiet"][0] / r["busy"][0]
            out.append(f"| {r['engine']} | {r['threads']} | {r['quiet'][0]:.2f} / {r['quiet'][1]:.2f} | "
                       f"{r['busy'][0]:.2f} / {r['busy'][1]:.2f} | {ratio:.2f} | {r['said'] or '-'} | "
                       f"{r['load']} |")
            if r["engine"] == "numpy" and r["threads"] == "auto":
                targets.append(("`rnnkit train` default: quiet time / time with one busy process",
                                ratio, "busy"))
        out.append("")
    if targets:
        out += ["### Acceptance (issue 26)", "", "| work | required | goal | measured | verdict |",
                "|---|---:|---:|---:|---|"]
        for text, value, key in targets:
            sign = ">=" if key == "busy" else "<="
            out.append(f"| {text} | {sign} {REQUIRED[key]:.2f} | {sign} {GOAL[key]:.2f} | {value:.2f} | "
                       f"{_verdict(key, value, higher=key == 'busy')} |")
        out.append("")
    out.append(END)
    return "\n".join(out)


def layer_items(quick):
    if quick:
        s, n1, b = (4, 2, 3, 8), (12, 1, 5, 4), (6, 4, 5, 8)
    else:
        s, n1, b = None, N1, BATCH
    f32, f64 = np.float32, np.float64
    items = [("N=1 training", "LSTM", f32, n1, "forward+backward", None),
             ("N=1 inference", "LSTM", f32, n1, "forward", None),
             ("batched forward", "LSTM", f32, b, "forward", None),
             ("batched training", "LSTM", f32, b, "forward+backward",
              {"learn_initial_state": dict(learn_initial_state=True), "proj_size=H/2":
               dict(proj_size=b[3] // 2)}),
             ("stays ahead", "LSTM", f64, b, "forward+backward", None)]
    for cell in ("GRU", "RNN"):
        for dt in (f32, f64):
            items.append(("stays ahead", cell, dt, b, "forward+backward", None))
    return items, s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python benchmarks/speed.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="BENCHMARKS.md to update in place (its speed.py section); "
                    "without it the section is printed")
    ap.add_argument("--only", default="sweep,threads,layers,busy",
                    help="comma list of sweep, threads, layers, busy")
    ap.add_argument("--repeats", type=int, default=7, help="timed calls per contender (default 7)")
    ap.add_argument("--train-repeats", type=int, default=3, help="rnnkit train runs per condition (default 3)")
    ap.add_argument("--gap", type=float, default=0.1, help="pause before each timed call, s (default 0.1)")
    ap.add_argument("--steps", type=int, default=200, help="steps of the rnnkit train runs (default 200)")
    ap.add_argument("--quick", action="store_true", help="tiny shapes, 1 repeat (smoke test)")
    args = ap.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    repeats = 1 if args.quick else args.repeats
    try:
        import torch
    except ImportError:
        torch = None

    def log(msg):
        print(f"[speed] {msg}  (load {load()})", file=sys.stderr, flush=True)

    from threadpoolctl import threadpool_info
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas" and "numpy" in i.get("filepath", "")]
    threads = int(blas[0]["num_threads"]) if blas else (os.cpu_count() or 1)
    if torch is not None:
        torch.set_num_threads(threads)
    from rnnkit import _jit
    kernel = blas[0].get("architecture", "?") if blas else "?"
    machine = (f"{os.cpu_count()} logical cores, NumPy {np.__version__} with OpenBLAS ({kernel} kernel, "
               f"{threads} threads; OPENBLAS_CORETYPE {os.environ.get('OPENBLAS_CORETYPE', 'unset')}), "
               f"torch {torch.__version__ if torch else 'not installed'} on {threads} threads, "
               f"fused kernels (numba) {'on' if _jit.enabled() else 'off'}")
    res = {}
    meta = dict(load0=load(), machine=machine, steps=args.steps,
                command="python benchmarks/speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    items, sweep_shape = layer_items(args.quick)
    if only & {"sweep", "layers", "threads"} and _jit.enabled():
        from bench import warm_kernels
        log(f"warm-up: {warm_kernels()} layer-steps, so that rnnkit's compiled kernels are loaded")
    if "sweep" in only:
        shapes = [sweep_shape] if args.quick else SWEEP
        res["sweep"] = bench_layer_rows(torch, [("sweep", "LSTM", np.float32, s, "forward+backward", None)
                                                for s in shapes], repeats, args.gap, log)
    if "threads" in only:
        res["threads"] = bench_loop_threads([sweep_shape] if args.quick else SWEEP, repeats, args.gap, log)
    if "layers" in only:
        res["layers"] = bench_layer_rows(torch, items, repeats, args.gap, log)
    if "busy" in only:
        res["busy"] = bench_busy(torch, 1 if args.quick else args.train_repeats,
                                 5 if args.quick else args.steps, log)
    meta["load1"] = load()
    text = render(res, meta)
    if not args.out:
        print(text)
        return 0
    path = Path(args.out)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + text + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(new, encoding="utf-8")
    print(f"[speed] wrote the speed.py section of {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
