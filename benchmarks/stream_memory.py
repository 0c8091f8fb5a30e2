"""Peak memory of forward-only inference over 100,000 steps (streamed) vs. grad mode.

Usage::

    python benchmarks/stream_memory.py                 # LSTM H=256 and CharLM, 100k steps
    python benchmarks/stream_memory.py --steps 20000 --hidden 128 --json out.json

What is measured, each in a fresh subprocess (so ru_maxrss deltas do not mix):

* ``stream``: ``with rnnkit.no_grad():`` the layer is fed ``--chunk`` (1024) steps at a time
  with the state carried, as ``rnnkit eval`` does. No backward cache is kept and the input
  projection is computed in slices of ``rnnkit.sequence.STREAM_CHUNK`` steps, so the peak
  must not depend on the number of steps.
* ``one call``: the same 100k steps in ONE ``no_grad`` call: no cache either, but the output
  (T, N, H) itself is returned, so the peak grows with T (that is the output, not a cache).
* ``grad``: gradients on (a backward cache is kept) for a shorter T, scaled linearly to 100k.
* ``charlm``: a CharLM (embedding -> LSTM -> linear head), streamed like ``rnnkit eval``.

Figures: tracemalloc peak (NumPy allocations are traced) and the ru_maxrss increase of the
process during the run (includes allocator and BLAS buffers).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def _rss_mb():
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 if sys.platform != "darwin" else r / 2 ** 20


def _measure(kind, steps, hidden, chunk, inp=64):
    import numpy as np

    import rnnkit
    from rnnkit import nn

    rng = np.random.default_rng(0)
    if kind == "charlm":
        V = 65
        model = nn.CharLM(nn.CharLMConfig(vocab_size=V, hidden_size=hidden, num_layers=2,
                                          embedding_size=inp), seed=0)
        model.eval()
        ids = rng.integers(0, V, size=(chunk, 1))
    else:
        model = nn.LSTM(inp, hidden, seed=0)
        x = rng.standard_normal((chunk if kind == "stream" else steps, 1, inp)).astype(np.float32)
    rss0 = _rss_mb()
    tracemalloc.start()
    t0 = time.perf_counter()
    if kind in ("stream", "charlm"):
        state = None
        with rnnkit.no_grad():
            for _ in range(steps // chunk):
                out, state = model(ids if kind == "charlm" else x, state)
    elif kind == "one call":
        with rnnkit.no_grad():
            out, state = model(x)
    else:  # grad
        out, state = model(x)
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"kind": kind, "steps": steps, "hidden": hidden, "chunk": chunk,
            "tracemalloc_peak_mb": peak / 2 ** 20, "maxrss_delta_mb": _rss_mb() - rss0,
            "seconds": dt}


def _child(args):
    r = _measure(args.kind, args.n, args.hidden, args.chunk)
    print(json.dumps(r))


def _run(kind, steps, hidden, chunk):
    cmd = [sys.executable, __file__, "--child", "--kind", kind, "--n", str(steps),
           "--hidden", str(hidden), "--chunk", str(chunk)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--chunk", type=int, default=1024)
    p.add_argument("--grad-steps", type=int, default=10_000, help="T measured in grad mode")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--kind", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(args)
    S, H, C = args.steps, args.hidden, args.chunk
    rows = [
        _run("stream", S // 10, H, C),
        _run("stream", S, H, C),
        _run("one call", S, H, C),
        _run("grad", args.grad_steps, H, C),
        _run("charlm", S, H, C),
    ]
    g = rows[3]
    scaled = {"kind": f"grad (scaled x{S / args.grad_steps:g})", "steps": S, "hidden": H,
              "chunk": None, "tracemalloc_peak_mb": g["tracemalloc_peak_mb"] * S / args.grad_steps,
              "maxrss_delta_mb": g["maxrss_delta_mb"] * S / args.grad_steps, "seconds": None}
    rows.insert(4, scaled)
    print(f"{'run':28s} {'steps':>8s} {'H':>5s} {'tracemalloc peak':>17s} {'maxrss delta':>13s} {'time':>8s}")
    for r in rows:
        t = f"{r['seconds']:.1f} s" if r["seconds"] is not None else "-"
        name = r["kind"] + (" (LSTM)" if r["kind"] in ("stream", "one call", "grad") else "")
        print(f"{name:28s} {r['steps']:8d} {r['hidden']:5d} {r['tracemalloc_peak_mb']:14.2f} MB "
              f"{r['maxrss_delta_mb']:10.1f} MB {t:>8s}")
    cache_mb = S * 7 * H * 4 / 2 ** 20
    print(f"backward cache formula for {S} steps (gates 4H + h, c, tanh c; float32): {cache_mb:.0f} MB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "cache_formula_mb": cache_mb}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
