"""Training throughput of `rnnkit train` on each engine: steps/s and characters/s.

Usage::

    python benchmarks/engines.py                 # prints the markdown table (a few minutes)
    python benchmarks/engines.py --quick         # tiny step counts (a smoke run)

From benchmarks/bench.py: ``rows = engines.run(); text = engines.render(rows)``.

Method: every figure times the real command, end to end, in a fresh process, started once
the machine's CPUs are idle (medians of 3 runs of each step count):
``rnnkit train ... --steps N1`` and ``--steps N2`` (each in a new run directory, no
validation, no samples); the difference ``(N2 - N1) / (t2 - t1)`` cancels start-up (Python,
imports, data, model build, the final checkpoint). Characters per second use the trainer's own
count of predicted characters (``tokens_seen`` in trainer.json) over the same difference.

Models: the default model (``rnnkit train`` with no model options: LSTM 2x128, batch 64, the
built-in names, lines mode, float32, dropout 0.2) and LSTM 2x512, batch 128, seq 128 on the
built-in pydoc text (stream mode). Engines: ``--engine numpy`` (OpenBLAS threads as NumPy
starts them), ``--engine torch`` on the CPU in one process (torch's default threads), and
``torchrun --nproc_per_node=2`` with one thread per process; on a machine with a GPU, also
``--engine torch --device cuda``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

#: (name, rnnkit train options, (N1, N2), (quick N1, N2))
MODELS = [
    ("default model (LSTM 2x128, batch 64, names, lines mode)", [], (50, 1050), (2, 6)),
    ("LSTM 2x512, batch 128, seq 128 (pydoc, stream mode)",
     ["--dataset", "pydoc", "--hidden-size", "512", "--batch-size", "128", "--seq-len", "128"],
     (1, 6), (1, 2)),
]
COMMON = ["--val-frac", "0", "--eval-every", "1000000", "--quiet", "--num-samples", "0"]


def _torch_info():
    try:
        import torch
    except ImportError:
        return None
    return {"version": torch.__version__, "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def engines(torch_info) -> list:
    """(label, command prefix, extra options, environment) of every engine set-up to time."""
    py = [sys.executable]
    out = [("numpy", py + ["-m", "rnnkit", "train"], ["--engine", "numpy"], {})]
    if torch_info is None:
        return out
    out.append((f"torch CPU, 1 process x {torch_info['threads']} threads", py + ["-m", "rnnkit", "train"],
                ["--engine", "torch", "--device", "cpu"], {}))
    out.append(("torchrun CPU, 2 processes x 1 thread",
                py + ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                      "rnnkit", "train"], ["--engine", "torch", "--device", "cpu"],
                {"OMP_NUM_THREADS": "1"}))
    if torch_info["cuda"]:
        out.append((f"torch CUDA ({torch_info['cuda']})", py + ["-m", "rnnkit", "train"],
                    ["--engine", "torch", "--device", "cuda"], {}))
    return out


def _busy(seconds: float = 0.5) -> float:
    """The share of the machine's CPU time spent busy over ``seconds`` (Linux /proc/stat)."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]                        # total, idle + iowait
    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except OSError:
        return 0.0
    return 1.0 - (i1 - i0) / max(t1 - t0, 1)


def wait_for_quiet(limit: float = 0.15, max_wait: float = 300.0) -> float:
    """Wait (up to ``max_wait`` s) until other work leaves the CPUs idle: on a shared machine,
    multi-threaded BLAS slows down many times when another process takes a core. Returns the
    busy share seen last."""
    deadline = time.monotonic() + max_wait
    busy = _busy()
    while busy > limit and time.monotonic() < deadline:
        time.sleep(2.0)
        busy = _busy()
    return busy


def timed_run(prefix, options, env_extra, steps, out_dir) -> tuple:
    """Wall time of one `rnnkit train` command and the characters it trained on (started
    once the machine is quiet)."""
    wait_for_quiet()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.update(env_extra)
    cmd = [*prefix, *options, *COMMON, "--steps", str(steps), "--out", str(out_dir)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=out_dir.parent)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    version = (out_dir / "LATEST").read_text().strip()
    state = json.loads((out_dir / version / "trainer.json").read_text())
    return dt, int(state["tokens_seen"])


def measure(prefix, options, env_extra, steps: tuple, root: Path, repeats: int = 3) -> dict:
    """steps/s and chars/s from two step counts (start-up cancelled): the medians of
    ``repeats`` runs of each, alternated."""
    (n1, n2) = steps
    runs = {n1: [], n2: []}
    for _ in range(repeats):
        for n in (n1, n2):
            d = root / f"s{n}-{len(runs[n])}"
            runs[n].append(timed_run(prefix, options, env_extra, n, d))
    (t1, c1), (t2, c2) = (tuple(float(np.median(v)) for v in zip(*runs[n])) for n in (n1, n2))
    dt = max(t2 - t1, 1e-9)
    return {"steps_per_s": (n2 - n1) / dt, "chars_per_s": (c2 - c1) / dt, "steps": [n1, n2],
            "seconds": [t1, t2], "repeats": repeats}


def run(quick: bool = False, only_models=None, verbose: bool = True, repeats: int = 3) -> list:
    """Time every (model, engine) pair; returns rows for :func:`render`."""
    info = _torch_info()
    rows = []
    with tempfile.TemporaryDirectory(prefix="rnnkit-engines-") as tmp:
        root = Path(tmp)
        for m, (model, options, steps, quick_steps) in enumerate(MODELS):
            if only_models is not None and m not in only_models:
                continue
            for label, prefix, extra, env in engines(info):
                d = root / f"m{m}-{len(rows)}"
                d.mkdir()
                r = measure(prefix, [*options, *extra], env, quick_steps if quick else steps, d,
                            repeats=1 if quick else repeats)
                r.update(model=model, engine=label)
                rows.append(r)
                if verbose:
                    print(f"  {model} | {label}: {r['steps_per_s']:.2f} steps/s, "
                          f"{r['chars_per_s']:,.0f} chars/s", file=sys.stderr)
    return rows


def render(rows) -> str:
    """The markdown section of BENCHMARKS.md for ``rows`` from :func:`run`."""
    info = _torch_info()
    lines = ["## Engines: `rnnkit train --engine numpy | torch`, and torchrun", "",
             f"Real `rnnkit train` commands, end to end; each figure is (N2 - N1) steps over the "
             f"difference of the wall times of a `--steps N1` and a `--steps N2` run, so start-up "
             f"(imports, data, model, final checkpoint) cancels; medians of "
             f"{max((r.get('repeats', 1) for r in rows), default=1)} runs of each. Machine: "
             f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
             + (f", torch {info['version']}" if info else ", no torch")
             + "; every run starts once the CPUs are idle (other work on a shared machine slows "
             "multi-threaded BLAS many times over).", "",
             "| model | engine | steps/s | characters/s | vs numpy |",
             "|---|---|---:|---:|---:|"]
    base = {r["model"]: r["steps_per_s"] for r in rows if r["engine"] == "numpy"}
    for r in rows:
        ratio = r["steps_per_s"] / base[r["model"]] if r["model"] in base else float("nan")
        lines.append(f"| {r['model']} | {r['engine']} | {r['steps_per_s']:.2f} | "
                     f"{r['chars_per_s']:,.0f} | {ratio:.2f}x |")
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny step counts (smoke run)")
    p.add_argument("--models", help="comma-separated indices of MODELS to run (default: all)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each step count (medians)")
    args = p.parse_args(argv)
    only = None if not args.models else {int(i) for i in args.models.split(",")}
    print(render(run(quick=args.quick, only_models=only, repeats=args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
