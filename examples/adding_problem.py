"""The adding problem (Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015).

Each input is a sequence of T pairs ``(value ~ U(0, 1), marker)``; exactly two markers are 1,
one in each half of the sequence. The target is the sum of the two marked values. Predicting
the constant 1 gives MSE = Var(u1 + u2) = 1/6 ~ 0.167; a model only beats that by carrying
the first marked value across ~T/2 steps.

Model: :class:`rnnkit.nn.SequenceRegressor` (many-to-one, last hidden state -> linear),
inputs (T, N, 2) time-major, float32. Training sees a fresh batch at every step, drawn from
``default_rng([seed, 1, step])`` - a pure function of the step, as the Trainer's sources
require; validation (1000) and test (2000) sequences are separate draws.

    python examples/adding_problem.py --cell lstm --seq-len 100
    python examples/adding_problem.py --cell rnn --seq-len 100 --seed 1

The last line printed is ``test_mse: <value>``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import fmt_best, limit_blas_threads

from rnnkit import datasets, nn
from rnnkit.data import ArrayBatch, ArraySource
from rnnkit.train import TrainConfig, Trainer

BASELINE_MSE = 1.0 / 6.0     # always predict 1: Var(U1 + U2)


class FreshAddingSource:
    """Training source: batch ``k`` is ``adding_problem(batch_size, T, rng=[seed, 1, k])``,
    x (T, N, 2), y (N, 1); nothing is stored, every step sees new sequences."""

    carries_state = False

    def __init__(self, seq_len: int, batch_size: int, seed: int, dtype):
        self.seq_len, self.batch_size, self.seed, self.dtype = seq_len, batch_size, seed, dtype

    def batch(self, step: int):
        rng = np.random.default_rng([self.seed, 1, step])
        x, y = datasets.adding_problem(self.batch_size, self.seq_len, rng=rng, dtype=self.dtype)
        return ArrayBatch(x, y), True

    def eval_batches(self, batch_size: int = 512):
        return iter(())

    def tokens_in(self, batch) -> int:
        return int(batch.y.shape[0])


def log_eval(trainer, record):
    """Trainer hook: one line per validation (the losses are MSEs)."""
    print(f"step {record['step']:5d}: train_mse {record['train_loss']:.5f}  "
          f"val_mse {record['val_loss']:.5f}", flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm")
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--steps", type=int, default=2000, help="training steps (one fresh batch each)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--clip", type=float, default=1.0, help="global gradient-norm clipping")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--val-size", type=int, default=1000)
    p.add_argument("--test-size", type=int, default=2000)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--blas-threads", type=int, default=1, help="BLAS threads (0 = library default)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    _blas = limit_blas_threads(args.blas_threads)  # noqa: F841 (kept for the whole run)
    t0 = time.perf_counter()
    dt = np.dtype(args.dtype)
    T = args.seq_len
    Xv, yv = datasets.adding_problem(args.val_size, T, rng=np.random.default_rng([args.seed, 2]), dtype=dt)
    Xt, yt = datasets.adding_problem(args.test_size, T, rng=np.random.default_rng([args.seed, 3]), dtype=dt)

    model = nn.SequenceRegressor(nn.SequenceRegressorConfig(
        input_size=2, output_size=1, cell=args.cell, hidden_size=args.hidden, dtype=args.dtype),
        seed=args.seed)
    train = FreshAddingSource(T, args.batch_size, args.seed, dt)
    val = ArraySource(Xv, yv, batch_size=512)
    cfg = TrainConfig(steps=args.steps, lr=args.lr, clip=args.clip, eval_every=args.eval_every,
                      schedule="cosine", min_lr_frac=0.1, restore_best=True,
                      explode_factor=1e6,   # the plateau is noisy; rely on clipping, not the guard
                      seed=args.seed, progress=False)
    print(f"adding problem: cell={args.cell} T={T} hidden={args.hidden} steps={args.steps} "
          f"batch={args.batch_size} lr={args.lr} clip={args.clip} dtype={args.dtype} seed={args.seed}")
    result = Trainer(model, train, val, cfg, on_eval=log_eval).fit()

    pred = model.predict(Xt)                                                # (N, 1)
    test_mse = float(np.mean((pred.astype(np.float64) - yt) ** 2))
    const_mse = float(np.mean((1.0 - yt.astype(np.float64)) ** 2))
    wall = time.perf_counter() - t0
    print(f"training: {result.stopped} after {result.steps} steps; best val_mse "
          f"{fmt_best(result)}")
    print(f"baseline (always predict 1): test_mse {const_mse:.4f} (theory 1/6 = {BASELINE_MSE:.4f})")
    print(f"{args.cell} on {len(yt)} test sequences: test_mse {test_mse:.5f} "
          f"({test_mse / const_mse:.2%} of the baseline)")
    print(f"wall time: {wall:.1f} s")
    print(f"test_mse: {test_mse:.6f}")
    return test_mse


if __name__ == "__main__":
    main()
