"""Today's default `rnnkit train` recipe against regularised recipes at the same wall time.

Three texts, nothing downloaded:

* ``names``: the US census first names of the ``names`` package (lines mode, what `rnnkit
  train` trains on with no arguments);
* ``pydoc``: Python's pydoc topics from the standard library (stream mode);
* ``stdlib``: Python source code: the first ``STDLIB_CHARS`` characters of a fixed list of
  pure-Python standard-library modules (stream mode).

Every recipe has `rnnkit train`'s data pipeline, model size (2 x 128 LSTM, embedding 32),
optimizer (Adam, lr 3e-3, clip 5), batch 64, sequence length 100 and seed 0; they differ only
in the regularisers and initialisation (:class:`rnnkit.nn.CharLMConfig`).

The budget: today's default trains 1,000 steps on names (`rnnkit train`'s) and 200 steps on
each stream text (``--stream-steps``; `rnnkit train` would take 1,000, too long for one
script on 2 cores). Because the machine may be shared and the regularised steps cost more,
each recipe's time per step is measured in this same run (:func:`times_per_step`: rounds of
steps going round the recipes, on the same data) and every other recipe gets
``round(steps_default * t_default / t_recipe)`` steps: the same wall time of training.
Validation every 100 steps on the held-out 10%; the table shows the best validation
bits/char of each run (the weights `rnnkit train` keeps in best/) and the last one.

Recipes (:data:`RECIPES`): ``init`` = orthogonal W_hh + forget-gate bias 1; ``light`` = init +
weight drop 0.25 + output dropout 0.1; ``strong`` = init + recurrent dropout 0.25 + weight
drop 0.3 + input dropout 0.1 + output dropout 0.25 + embedding dropout 0.05; ``layernorm`` =
init with layer-normalised LSTM cells; ``embedding`` = init + embedding dropout 0.1.

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
from rnnkit.train import TrainConfig, Trainer

LN2 = math.log(2.0)
TIMING_STEPS = 30
STDLIB_MODULES = ("argparse", "dataclasses", "textwrap", "string", "fractions", "statistics",
                  "difflib", "shlex", "configparser", "calendar", "heapq", "bisect", "copy",
                  "functools", "pprint", "csv", "ipaddress", "glob", "fnmatch", "tokenize")
STDLIB_CHARS = 600_000

#: The recipes: CharLMConfig options over today's default (2x128 LSTM, dropout 0.2).
INIT = dict(init="orthogonal", forget_bias=1.0)
RECIPES = {
    "default": {},
    "init": INIT,                                                    # costs nothing per step
    "light": dict(INIT, weight_drop=0.25, output_dropout=0.1),       # no other time loop
    "strong": dict(INIT, recurrent_dropout=0.25, weight_drop=0.3, input_dropout=0.1,
                   output_dropout=0.25, embedding_dropout=0.05),
    "layernorm": dict(INIT, cell="lstm_ln"),
    "embedding": dict(INIT, embedding_dropout=0.1),
}
#: The recipes each text trains by default (the stream texts take longer per step).
TEXT_RECIPES = {"names": "default,init,light,strong,layernorm", "pydoc": "default,init,light,strong",
                "stdlib": "default,init,light,strong"}
DEFAULT = dict(cell="lstm", hidden_size=128, num_layers=2, embedding_size=32, dropout=0.2)


def stdlib_text() -> str:
    """The source of :data:`STDLIB_MODULES`, concatenated, cut to :data:`STDLIB_CHARS`."""
    parts = []
    for name in STDLIB_MODULES:
        with open(importlib.util.find_spec(name).origin, encoding="utf-8") as f:
            parts.append(f.read())
    return "\n".join(parts)[:STDLIB_CHARS]


def load(name: str, tmp: str, seed: int = 0):
    if name == "stdlib":
        path = os.path.join(tmp, "stdlib.py.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(stdlib_text())
        return load_text_data(path, mode="stream", seed=seed)
    return load_text_data(None, corpus(name), seed=seed)


def build(data, options: dict, seed: int) -> CharLM:
    return CharLM(CharLMConfig(vocab_size=len(data.vocab), **{**DEFAULT, **options}), seed=seed)


def train_config(steps: int, seed: int, eval_every: int = 100) -> TrainConfig:
    return TrainConfig(steps=steps, lr=3e-3, optimizer="adam", clip=5.0, eval_every=eval_every,
                       seed=seed, restore_best=False, progress=False)


def times_per_step(data, recipes: dict, seed: int, steps: int = TIMING_STEPS) -> dict:
    """Seconds per training step of each recipe: the median of ``steps`` steps each, taken in
    rounds of 5 steps that go round the recipes (so that a change of the machine's load hits
    them alike), after a first round as warm-up."""
    engines = {r: make_engine("numpy", build(data, o, seed), train_config(10, seed))
               for r, o in recipes.items()}
    carry = dict.fromkeys(recipes)
    times = {r: [] for r in recipes}
    for rnd in range(1 + max(1, steps // 5)):
        for r, engine in engines.items():
            for k in range(5):
                t0 = time.perf_counter()
                res, _ = engine.forward(data.train, 5 * rnd + k, carry[r])
                engine.update(3e-3)
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
    ap.add_argument("--texts", default="names,pydoc,stdlib")
    ap.add_argument("--recipes", help=f"of {', '.join(RECIPES)} (default: per text, "
                    f"{TEXT_RECIPES})")
    ap.add_argument("--default-steps", type=int, default=1000, help="the default recipe's "
                    "steps on names (`rnnkit train`'s 1,000)")
    ap.add_argument("--stream-steps", type=int, default=200, help="the default recipe's steps on "
                    "the stream texts (fewer than `rnnkit train`'s 1,000, to keep the script "
                    "near 10 minutes)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (0: the library's)")
    ap.add_argument("--timing-steps", type=int, default=TIMING_STEPS)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    limit_blas_threads(args.threads)
    texts = args.texts.split(",")
    print(f"load average at the start: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    rows = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for text in texts:
            data = load(text, tmp, args.seed)
            recipes = (args.recipes or TEXT_RECIPES[text]).split(",")
            default_steps = args.default_steps if data.mode == "lines" else args.stream_steps
            print(f"{text}: {data.summary}; {data.mode} mode, vocab {len(data.vocab)}")
            tps = times_per_step(data, {r: RECIPES[r] for r in recipes}, args.seed,
                                 args.timing_steps)
            base = tps["default"] if "default" in tps else tps[recipes[0]]
            budget = default_steps * base
            for r in recipes:
                steps = max(1, round(budget / tps[r]))
                res = run(data, RECIPES[r], steps, args.seed, args.eval_every)
                rows.append((text, r, tps[r], res))
                print(f"  {r:8s} {1000 * tps[r]:6.1f} ms/step -> {steps:5d} steps "
                      f"({res['seconds']:.0f} s): best val {res['best_bpc']:.3f} bits/char at step "
                      f"{res['best_step']}, last {res['last_bpc']:.3f}", flush=True)
    print(f"load average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}; "
          f"{time.perf_counter() - t_start:.0f} s in all")
    print()
    print("| text | recipe | ms/step | steps | best val bits/char (step) | last |")
    print("|---|---|---|---|---|---|")
    for text, r, tps_r, res in rows:
        print(f"| {text} | {r} | {1000 * tps_r:.1f} | {res['steps']} | {res['best_bpc']:.3f} "
              f"({res['best_step']}) | {res['last_bpc']:.3f} |")
    for text in texts:
        got = {r: res["best_bpc"] for t, r, _, res in rows if t == text}
        if "default" in got and len(got) > 1:
            best = min((v, r) for r, v in got.items() if r != "default")
            print(f"gain {text}: {got['default'] - best[0]:+.3f} bits/char ({best[1]})")
    print(f"best_bits_per_char: {min(res['best_bpc'] for t, _, _, res in rows if t == texts[0]):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
