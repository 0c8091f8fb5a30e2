"""The cost of issue 25's regularisers: a CharLM training step with every option off on this
tree against the same step on the commit before the regularisers landed, and each option's
cost when on. Writes its section of ``BENCHMARKS.md`` in place (between the
``regularisers_cost.py`` markers; ``bench.py`` keeps it when it rewrites the report)::

    python benchmarks/regularisers_cost.py --out BENCHMARKS.md        # a few minutes on 2 cores
    python benchmarks/regularisers_cost.py --quick                    # tiny: the smoke test

Method. The script checks out ``--base`` (default :data:`BASE`: main just before the merge
that brought the regularisers) into a temporary ``git worktree`` and starts one worker process
per contender, each importing rnnkit from its tree (``PYTHONPATH``; the worker checks which
rnnkit it got). A worker builds ``rnnkit train``'s model (2 x 128 LSTM, embedding 32, dropout
0.2, Adam 3e-3, clip 5, batch 64, seed 0, one BLAS thread) on a built-in text, takes
:data:`WARM_STEPS` untimed steps (enough for the compiled kernels to load in both trees), then
waits. The parent runs ``--rounds`` rounds; in each, every worker in turn (the order rotated
per round) times ``--steps`` training steps (``engine.forward`` + ``engine.update``, the
trainer's step) while the others wait, so that a change of the machine's load hits them alike.
The figure per contender is the median over all its timed steps; ``/ base`` is the median of
the per-round ratios of medians, with their range over the rounds. A second worker of this
tree (``this tree, again``) against the first gives the noise of the method itself: a
difference within that and within the rounds' range is no difference.

Contenders: the base commit and this tree with every option off (the default ``CharLMConfig``
of each: PyTorch's uniform init), both with the compiled kernels (numba) and with
``RNNKIT_NO_JIT=1`` (NumPy's steps: the paths the regularisers touched in Python); this tree
with one option on at a time (the cost of each option, kernels as installed).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: The markers of this script's section (``bench.py`` keeps the section when it rewrites the
#: report; the worker processes import nothing from this tree but rnnkit, so they are here).
BEGIN, END = "<!-- regularisers_cost.py: begin -->", "<!-- regularisers_cost.py: end -->"
#: main just before the merge that brought issue 25's regularisers (272a9cf: threads and the
#: fused kernels included, so the comparison is with what main had).
BASE = "272a9cf"
#: Untimed steps per worker: past the 1,024 layer-steps after which the compiled kernels load
#: (a names step is 2 layers x ~12 steps, a stream step 2 x 100), plus a few.
WARM_STEPS = {"names": 60}
WARM_STEPS_STREAM = 15
#: The options, one at a time, on this tree (CharLMConfig keys over rnnkit train's model).
OPTIONS = {
    "init orthogonal + forget bias 1": dict(init="orthogonal", forget_bias=1.0),
    "input dropout 0.1": dict(input_dropout=0.1),
    "output dropout 0.1": dict(output_dropout=0.1),
    "embedding dropout 0.1": dict(embedding_dropout=0.1),
    "weight drop 0.25": dict(weight_drop=0.25),
    "recurrent dropout 0.25": dict(recurrent_dropout=0.25),
    "layer norm": dict(cell="lstm_ln"),
}
MODEL = dict(cell="lstm", hidden_size=128, num_layers=2, embedding_size=32, dropout=0.2)


# ------------------------------------------------------------------------------- worker
def worker(text: str, options: dict, quick: bool) -> int:
    """Serve timing requests on stdin ("run K" -> one JSON line of K step times; "quit")."""
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:                      # the BLAS's own threads, said in the report
        pass
    import rnnkit
    from rnnkit.data import load_text_data
    from rnnkit.engines import make_engine
    from rnnkit.nn import CharLM, CharLMConfig
    from rnnkit.train import TrainConfig
    try:
        from rnnkit.datasets import corpus  # this round's data API; the base took the name
        dataset = corpus(text)
    except ImportError:
        dataset = text
    size = dict(hidden_size=16, embedding_size=8) if quick else {}
    data = load_text_data(None, dataset, seed=0, **({"seq_len": 20, "batch_size": 8} if quick else {}))
    model = CharLM(CharLMConfig(vocab_size=len(data.vocab), **{**MODEL, **size, **options}), seed=0)
    cfg = TrainConfig(steps=10 ** 6, lr=3e-3, optimizer="adam", clip=5.0, seed=0, progress=False)
    engine = make_engine("numpy", model, cfg)
    step, carry = 0, None

    def one():
        nonlocal step, carry
        res, _ = engine.forward(data.train, step, carry)
        engine.update(3e-3)
        carry = engine.detach(res.carry)
        step += 1

    for _ in range(2 if quick else WARM_STEPS.get(text, WARM_STEPS_STREAM)):
        one()
    print(json.dumps({"rnnkit": str(Path(rnnkit.__file__).resolve().parent)}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        times = []
        for _ in range(int(cmd[1])):
            t0 = time.perf_counter()
            one()
            times.append(time.perf_counter() - t0)
        print(json.dumps(times), flush=True)
    return 0


class Worker:
    """One contender's process (see :func:`worker`)."""

    def __init__(self, name, tree: Path, text, options, quick, no_jit=False):
        env = dict(os.environ, PYTHONPATH=str(tree))
        if no_jit:
            env["RNNKIT_NO_JIT"] = "1"
        self.name, self.tree = name, tree
        args = [sys.executable, str(Path(__file__).resolve()), "--worker", text, json.dumps(options)]
        self.proc = subprocess.Popen(args + (["--quick"] if quick else []), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, cwd=str(tree))
        hello = json.loads(self._line())
        if Path(hello["rnnkit"]) != (tree / "rnnkit").resolve():
            raise SystemExit(f"regularisers_cost: {name} imported rnnkit from {hello['rnnkit']}, "
                             f"expected {tree / 'rnnkit'} (an install shadows PYTHONPATH?)")

    def _line(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"regularisers_cost: worker {self.name!r} ended (exit code "
                             f"{self.proc.wait()}); its error is above")
        return line

    def run(self, steps: int) -> list:
        self.proc.stdin.write(f"run {steps}\n")
        self.proc.stdin.flush()
        return json.loads(self._line())

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait()


# ------------------------------------------------------------------------------- parent
def base_worktree(base: str, into: Path) -> Path:
    """A detached ``git worktree`` of ``base`` at ``into``."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(into), base],
                   check=True, capture_output=True, text=True)
    return into


def remove_worktree(path: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
                   capture_output=True, text=True)
    shutil.rmtree(path, ignore_errors=True)


def measure(workers: dict, rounds: int, steps: int, log=print) -> dict:
    """name -> list (one per round) of lists of step times, the order rotated per round."""
    names = list(workers)
    out = {n: [] for n in names}
    for r in range(rounds):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            out[n].append(workers[n].run(steps))
        log(f"  round {r + 1}/{rounds}: load {os.getloadavg()[0]:.1f}", flush=True)
    return out


def ratio_stats(times: dict, name: str, ref: str):
    """(median of the per-round ratios of medians, min, max)."""
    r = [np.median(a) / np.median(b) for a, b in zip(times[name], times[ref])]
    return float(np.median(r)), float(min(r)), float(max(r))


def render(results: dict, meta: dict) -> str:
    """The markdown section from ``results`` (text -> {"times": ..., "rows": [(name, ref)]})."""
    out = [BEGIN, "", "## Cost of the regularisers (issue 25)", "",
           f"Generated by `{meta['command']}` on {meta['date']}; load average (1 min) "
           f"{meta['load0']:.1f} at start, {meta['load1']:.1f} at end; {meta['machine']}. Base: "
           f"`{meta['base']}` ({meta['base_subject']}). One CharLM training step of `rnnkit "
           f"train`'s model (forward, backward, Adam), one BLAS thread, in worker processes "
           f"taking turns ({meta['rounds']} rounds of {meta['steps']} steps each; method in the "
           f"script's docstring). `/ ref` is the median of the per-round ratios [their range].",
           ""]
    for text, res in results.items():
        times = res["times"]
        out += [f"### {text} ({res['shape']})", "",
                "| contender | ms/step (median) | / ref [range over rounds] | ref |", "|---|---|---|---|"]
        for name, ref in res["rows"]:
            ms = 1000 * float(np.median(np.concatenate(times[name])))
            if ref is None:
                out.append(f"| {name} | {ms:.1f} | - | - |")
            else:
                m, lo, hi = ratio_stats(times, name, ref)
                out.append(f"| {name} | {ms:.1f} | {m:.3f} [{lo:.3f}, {hi:.3f}] | {ref} |")
        out.append("")
        if res.get("verdict"):
            out += [res["verdict"], ""]
    out.append(END)
    return "\n".join(out)


def verdict(times: dict, pairs, noise_pair) -> str:
    """One line per (this, base) pair: within noise or not, against the A/A pair."""
    aa = ratio_stats(times, *noise_pair)
    aa_dev = max(abs(aa[1] - 1), abs(aa[2] - 1))
    lines = []
    for this, base in pairs:
        m, lo, hi = ratio_stats(times, this, base)
        if lo <= 1.0 <= hi or abs(m - 1) <= aa_dev:
            said = "within the noise"
        else:
            said = "faster, beyond the noise" if m < 1 else "SLOWER, beyond the noise"
        lines.append(f"{this} / {base}: {m:.3f} [{lo:.3f}, {hi:.3f}], {said} (the same tree "
                     f"twice: {aa[0]:.3f} [{aa[1]:.3f}, {aa[2]:.3f}]).")
    return "Options off: " + " ".join(lines)


def write_section(path: Path, text: str) -> None:
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + text + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + text + "\n"
    path.write_text(new, encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default=BASE, help="the commit to compare with (default %(default)s)")
    ap.add_argument("--texts", default="names,pydoc", help="built-in texts (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per worker per round")
    ap.add_argument("--options-on", default="names", help="texts on which each option is timed "
                    "on (default %(default)s; '' for none)")
    ap.add_argument("--out", help="markdown file to write the section into (else stdout)")
    ap.add_argument("--quick", action="store_true", help="tiny model and data, 2 rounds")
    ap.add_argument("--worker", nargs=2, metavar=("TEXT", "OPTIONS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker[0], json.loads(args.worker[1]), args.quick)
    if args.quick:
        args.rounds, args.steps = 2, 2
    base_subject = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s", args.base],
                                  check=True, capture_output=True, text=True).stdout.strip()
    meta = dict(command="python benchmarks/regularisers_cost.py " + " ".join(argv or sys.argv[1:]),
                date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                load0=os.getloadavg()[0], base=args.base, base_subject=base_subject[:100],
                rounds=args.rounds, steps=args.steps,
                machine=f"{os.cpu_count()} logical cores, Python {platform.python_version()}, "
                        f"NumPy {np.__version__}")
    results = {}
    tmp = Path(tempfile.mkdtemp(prefix="rnnkit-base-"))
    tree = base_worktree(args.base, tmp / "base")
    workers = {}
    try:
        for text in [t for t in args.texts.split(",") if t]:
            print(f"{text}: starting the workers", flush=True)
            workers = {"base": Worker("base", tree, text, {}, args.quick),
                       "this tree": Worker("this tree", ROOT, text, {}, args.quick),
                       "this tree, again": Worker("this tree, again", ROOT, text, {}, args.quick),
                       "base, NumPy steps": Worker("base, NumPy steps", tree, text, {}, args.quick, True),
                       "this tree, NumPy steps": Worker("this tree, NumPy steps", ROOT, text, {},
                                                        args.quick, True)}
            rows = [("base", None), ("this tree", "base"), ("this tree, again", "this tree"),
                    ("base, NumPy steps", None), ("this tree, NumPy steps", "base, NumPy steps")]
            if text in args.options_on.split(","):
                for name, opts in OPTIONS.items():
                    workers[name] = Worker(name, ROOT, text, opts, args.quick)
                    rows.append((name, "this tree"))
            times = measure(workers, args.rounds, args.steps)
            for w in workers.values():
                w.close()
            workers = {}
            n, t = (8, 20) if args.quick else (64, 100)
            shape = (f"lines mode, batch {n}, T = the longest line of the batch" if text == "names"
                     else f"stream mode, batch {n}, T = {t}") + (", hidden 16: --quick" if args.quick else "")
            results[text] = dict(times=times, rows=rows, shape=shape,
                                 verdict=verdict(times, [("this tree", "base"),
                                                         ("this tree, NumPy steps", "base, NumPy steps")],
                                                 ("this tree, again", "this tree")))
    finally:
        for w in workers.values():
            w.proc.kill()
        remove_worktree(tree)
        shutil.rmtree(tmp, ignore_errors=True)
    meta["load1"] = os.getloadavg()[0]
    text = render(results, meta)
    if args.out:
        write_section(Path(args.out), text)
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
