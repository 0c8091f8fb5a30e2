"""Today's `rnnkit train` recipe against regularised recipes at the same wall time.

Three texts, nothing downloaded:

* ``names``: the US census first names of the ``names`` package (lines mode, what `rnnkit
  train` trains on with no arguments);
* ``pydoc``: the first ``--pydoc-chars`` (30,000) characters of Python's pydoc topics from the
  standard library (stream mode);
* ``source``: Python source code: the first ``--source-chars`` (30,000) characters of a fixed
  list of pure-Python standard-library modules (stream mode).

The two stream texts are cut small on purpose: a user's own text is often a few tens of kB,
and such a text overfits within a budget this script can afford (the whole pydoc text, 465 kB,
was still improving after 1,400 steps: `--texts pydoc --pydoc-chars 0 --stream-steps 1400
--recipes uniform`), which is where regularisers are meant to act. 0 takes a whole text.

Every recipe has `rnnkit train`'s data pipeline, model (2 x 128 LSTM, embedding 32, dropout
0.2, orthogonal recurrent weights, forget-gate bias 1: ``rnnkit.train_setup.TRAIN_DEFAULTS``),
optimizer (Adam, lr 3e-3, clip 5), batch 64, sequence length 100 and seed 0; they differ only
in the regularisers (:class:`rnnkit.nn.CharLMConfig`).

The budget: today's default trains ``--default-steps`` (1,000, `rnnkit train`'s) on names and
``--stream-steps`` (500) on each stream text, where it overfits (its best validation comes
before its last step). Because the machine may be shared and the regularised steps cost more,
each recipe's time per step is measured in this same run (:func:`times_per_step`: rounds of
steps going round the recipes, on the same data) and every other recipe gets
``round(steps_default * t_default / t_recipe)`` steps: the same wall time of training.
Validation every 100 steps on names (as `rnnkit train`), every 50 on the stream texts, on the
held-out 10%; the table shows the best validation bits/char of each run (the weights `rnnkit
train` keeps in best/), its step, and the last one.

Recipes (:data:`RECIPES`, each over today's default): ``light`` = weight drop 0.25 + output
dropout 0.1; ``medium`` = weight drop 0.3 + input dropout 0.1 + output dropout 0.25 +
embedding dropout 0.05 (no new time loop); ``strong`` = medium + recurrent dropout 0.25 (the
recurrent-dropout time loop); ``layernorm`` = layer-normalised LSTM cells; ``uniform`` =
PyTorch's uniform init and no forget-gate bias (the default before issue 25); ``dropout4`` =
dropout 0.4 between the layers instead of 0.2.

    python examples/regularisers.py                      # the table of docs/results.md
    python examples/regularisers.py --texts names --default-steps 200 --recipes default,light

The last lines are the table (markdown) and, per text, ``gain <text>: <bits/char>``.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import tempfile
import time

import numpy as np
from _common import limit_blas_threads

from rnnkit.data import load_text_data
from rnnkit.datasets import corpus
from rnnkit.engines import make_engine
from rnnkit.nn import CharLM, CharLMConfig
from rnnkit.sequence import training_run
from rnnkit.train import TrainConfig, Trainer
from rnnkit.train_setup import TRAIN_DEFAULTS

LN2 = math.log(2.0)
TIMING_STEPS = 30
SOURCE_MODULES = ("argparse", "dataclasses", "textwrap", "string", "fractions", "statistics",
                  "difflib", "shlex", "configparser", "calendar", "heapq", "bisect", "copy",
                  "functools", "pprint", "csv", "ipaddress", "glob", "fnmatch", "tokenize")
PYDOC_CHARS = 30_000
SOURCE_CHARS = 30_000

#: Today's `rnnkit train` model (its defaults, one definition).
DEFAULT = {k: TRAIN_DEFAULTS[k] for k in ("cell", "hidden_size", "num_layers", "embedding_size",
                                          "dropout", "input_dropout", "output_dropout",
                                          "recurrent_dropout", "weight_drop", "embedding_dropout",
                                          "init", "forget_bias")}
MEDIUM = dict(weight_drop=0.3, input_dropout=0.1, output_dropout=0.25, embedding_dropout=0.05)
#: The recipes: CharLMConfig options over today's default.
RECIPES = {
    "default": {},
    "light": dict(weight_drop=0.25, output_dropout=0.1),             # no other time loop
    "medium": MEDIUM,
    "strong": dict(MEDIUM, recurrent_dropout=0.25),
    "layernorm": dict(cell="lstm_ln"),
    "uniform": dict(init="uniform", forget_bias=None),               # before issue 25
    "dropout4": dict(dropout=0.4),
}
#: The recipes each text trains by default (the stream texts take longer per step).
TEXT_RECIPES = {"names": "default,light,medium,strong,layernorm", "pydoc": "default,light,medium",
                "source": "default,light,medium"}


def source_text() -> str:
    """The source of :data:`SOURCE_MODULES`, concatenated."""
    parts = []
    for name in SOURCE_MODULES:
        with open(importlib.util.find_spec(name).origin, encoding="utf-8") as f:
            parts.append(f.read())
    return "\n".join(parts)


def load(name: str, tmp: str, seed: int = 0, pydoc_chars: int = PYDOC_CHARS,
         source_chars: int = SOURCE_CHARS):
    """The text ``name`` as `rnnkit train` would load it (the stream texts cut to their first
    characters, 0: whole)."""
    if name == "names":
        return load_text_data(None, corpus(name), seed=seed)
    text, chars = ((corpus("pydoc").load(), pydoc_chars) if name == "pydoc"
                   else (source_text(), source_chars))
    path = os.path.join(tmp, f"{name}.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text[:chars] if chars else text)
    return load_text_data(path, mode="stream", seed=seed)


def build(data, options: dict, seed: int) -> CharLM:
    return CharLM(CharLMConfig(vocab_size=len(data.vocab), **{**DEFAULT, **options}), seed=seed)


def train_config(steps: int, seed: int, eval_every: int = 100) -> TrainConfig:
    d = TRAIN_DEFAULTS
    return TrainConfig(steps=steps, lr=d["lr"], optimizer=d["optimizer"], clip=d["clip"],
                       eval_every=eval_every, seed=seed, restore_best=False, progress=False)


def times_per_step(data, recipes: dict, seed: int, steps: int = TIMING_STEPS) -> dict:
    """Seconds per training step of each recipe: the median of ``steps`` steps each, taken in
    rounds of 5 steps that go round the recipes (so that a change of the machine's load hits
    them alike), after a first round as warm-up. Within :func:`rnnkit.sequence.training_run`,
    as the trainer's steps: the compiled kernels from the first step (else the first recipe's
    steps would be timed on NumPy's steps, before the kernels load)."""
    with training_run():
        return _times_per_step(data, recipes, seed, steps)


def _times_per_step(data, recipes, seed, steps):
    engines = {r: make_engine("numpy", build(data, o, seed), train_config(10, seed))
               for r, o in recipes.items()}
    carry = dict.fromkeys(recipes)
    times = {r: [] for r in recipes}
    for rnd in range(1 + max(1, steps // 5)):
        for r, engine in engines.items():
            for k in range(5):
                t0 = time.perf_counter()
                res, _ = engine.forward(data.train, 5 * rnd + k, carry[r])
                engine.update(TRAIN_DEFAULTS["lr"])
                carry[r] = engine.detach(res.carry)
                if rnd:
                    times[r].append(time.perf_counter() - t0)
    return {r: float(np.median(t)) for r, t in times.items()}


def run(data, options: dict, steps: int, seed: int, eval_every: int = 100) -> dict:
    model = build(data, options, seed)
    trainer = Trainer(model, data.train, data.val, train_config(steps, seed, eval_every),
                      log=lambda m: None)
    t0 = time.perf_counter()
    result = trainer.fit()
    return {"steps": steps, "seconds": time.perf_counter() - t0,
            "best_bpc": result.best_val_loss / LN2, "best_step": result.best_step,
            "last_bpc": result.history[-1]["val_loss"] / LN2}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--texts", default="names,pydoc,source")
    ap.add_argument("--recipes", help=f"of {', '.join(RECIPES)} (default: per text, "
                    f"{TEXT_RECIPES})")
    ap.add_argument("--default-steps", type=int, default=1000, help="the default recipe's "
                    "steps on names (`rnnkit train`'s 1,000)")
    ap.add_argument("--stream-steps", type=int, default=500, help="the default recipe's steps on "
                    "the stream texts (where it overfits the cut texts)")
    ap.add_argument("--pydoc-chars", type=int, default=PYDOC_CHARS, help="characters of the pydoc "
                    "topics (0: all)")
    ap.add_argument("--source-chars", type=int, default=SOURCE_CHARS, help="characters of the "
                    "Python source (0: all)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (0: the library's)")
    ap.add_argument("--timing-steps", type=int, default=TIMING_STEPS)
    ap.add_argument("--eval-every", type=int, help="validate every that many steps (default: 100 "
                    "on names, 50 on the stream texts)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    limit_blas_threads(args.threads)
    texts = args.texts.split(",")
    print(f"load average at the start: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    rows = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for text in texts:
            data = load(text, tmp, args.seed, args.pydoc_chars, args.source_chars)
            every = args.eval_every or (100 if data.mode == "lines" else 50)
            recipes = (args.recipes or TEXT_RECIPES[text]).split(",")
            default_steps = args.default_steps if data.mode == "lines" else args.stream_steps
            print(f"{text}: {data.summary}; {data.mode} mode, vocab {len(data.vocab)}")
            tps = times_per_step(data, {r: RECIPES[r] for r in recipes}, args.seed,
                                 args.timing_steps)
            base = tps["default"] if "default" in tps else tps[recipes[0]]
            budget = default_steps * base
            for r in recipes:
                steps = max(1, round(budget / tps[r]))
                res = run(data, RECIPES[r], steps, args.seed, every)
                rows.append((text, r, tps[r], res))
                print(f"  {r:8s} {1000 * tps[r]:6.1f} ms/step -> {steps:5d} steps "
                      f"({res['seconds']:.0f} s): best val {res['best_bpc']:.3f} bits/char at step "
                      f"{res['best_step']}, last {res['last_bpc']:.3f}", flush=True)
    print(f"load average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}; "
          f"{time.perf_counter() - t_start:.0f} s in all")
    print()
    print("| text | recipe | ms/step | steps | best val bits/char (step) | vs default | last |")
    print("|---|---|---|---|---|---|---|")
    ref = {t: res["best_bpc"] for t, r, _, res in rows if r == "default"}
    for text, r, tps_r, res in rows:
        vs = f"{res['best_bpc'] - ref[text]:+.3f}" if text in ref and r != "default" else "-"
        print(f"| {text} | {r} | {1000 * tps_r:.1f} | {res['steps']} | {res['best_bpc']:.3f} "
              f"({res['best_step']}) | {vs} | {res['last_bpc']:.3f} |")
    for text in texts:
        got = {r: res["best_bpc"] for t, r, _, res in rows if t == text}
        if "default" in got and len(got) > 1:
            best = min((v, r) for r, v in got.items() if r != "default")
            print(f"gain {text}: {got['default'] - best[0]:+.3f} bits/char ({best[1]})")
    print(f"best_bits_per_char: {min(res['best_bpc'] for t, _, _, res in rows if t == texts[0]):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
