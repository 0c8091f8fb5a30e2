"""Does attention earn its place? `rnnkit train` on a pair task with each kind of attention.

For every ``--attention`` kind this runs the real command line, ``rnnkit train --dataset
dates --attention KIND`` (every other option at its default unless given here), timing it,
then decodes the held-out pairs (greedy) with the best weights and prints the exact match
overall and by source length, as a markdown table (the one in docs/results.md)::

    python examples/seq2seq_attention.py                         # dates: additive, general, none
    python examples/seq2seq_attention.py --dataset numbers --attention additive

The last line is ``exact_match: X`` for the first kind.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rnnkit.cli import main as rnnkit_main  # noqa: E402
from rnnkit.data import load_pairs_data  # noqa: E402
from rnnkit.datasets import corpus  # noqa: E402
from rnnkit.translate import load_translator  # noqa: E402

BUCKETS = ((1, 10), (11, 15), (16, 20), (21, 1000))


def bucket_name(lo, hi):
    return f"{lo}+" if hi >= 1000 else f"{lo}-{hi}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="dates", choices=["dates", "numbers"])
    p.add_argument("--attention", nargs="+", default=["additive", "general", "none"])
    p.add_argument("--steps", type=int, help="override the default number of steps")
    p.add_argument("--hidden-size", type=int, help="override the default hidden size")
    p.add_argument("--max-val", type=int, help="decode only the first N held-out pairs")
    p.add_argument("--val-frac", type=float, default=0.1, help="share of the pairs held out")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    data = load_pairs_data(dataset=args.dataset, pairs=corpus(args.dataset).load(), seed=args.seed,
                           val_frac=args.val_frac)  # train's split
    val = data.val_pairs[:args.max_val] if args.max_val else data.val_pairs
    rows, first = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.attention:
            out = Path(tmp) / kind
            cmd = ["train", "--dataset", args.dataset, "--attention", kind, "--out", str(out),
                   "--seed", str(args.seed), "--val-frac", str(args.val_frac), "--num-samples", "0",
                   "--quiet"]
            if args.steps:
                cmd += ["--steps", str(args.steps)]
            if args.hidden_size:
                cmd += ["--hidden-size", str(args.hidden_size)]
            t0 = time.perf_counter()
            code = rnnkit_main(cmd)
            wall = time.perf_counter() - t0
            if code != 0:
                raise SystemExit(f"rnnkit train failed for --attention {kind} (exit {code})")
            outputs = load_translator(out).translate([s for s, _ in val])
            ok = [o.text == t for o, (_, t) in zip(outputs, val)]
            by = []
            for lo, hi in BUCKETS:
                hits = [k for k, (s, _) in zip(ok, val) if lo <= len(s) <= hi]
                by.append(f"{sum(hits) / len(hits):.4f} ({len(hits)})" if hits else "-")
            match = sum(ok) / len(ok)
            first = match if first is None else first
            rows.append(f"| {kind} | {match:.4f} | " + " | ".join(by) + f" | {wall:.0f} s |")
            print(f"{kind}: exact match {match:.4f}, {wall:.0f} s", file=sys.stderr)
    print(f"{args.dataset}: {len(data.train_pairs):,} train / {len(val):,} held-out pairs, "
          f"exact match (greedy) by source length in characters (pairs in the bucket)\n")
    print("| attention | all | " + " | ".join(bucket_name(*b) for b in BUCKETS) + " | wall time |")
    print("|---|---|" + "---|" * len(BUCKETS) + "---|")
    for r in rows:
        print(r)
    print(f"\nexact_match: {first:.6f}")


if __name__ == "__main__":
    main()
