"""Sunspots: one-step-ahead forecasts of the yearly sunspot number with a small GRU.

Data: :func:`rnnkit.datasets.sunspots`, 1700-2008 (309 values). The last 20% of the series
(62 years, 1947-2008) is the test period; everything before it is the training split. The
series is standardised with the mean and standard deviation of the training split only.

Model: :class:`rnnkit.nn.SequenceRegressor` (many-to-one): a window of the previous
``--window`` standardised values, (W, N, 1) time-major, -> GRU -> last state -> linear ->
the next value; float64 (the data set is tiny, so the cost is negligible). Training windows
are all windows whose target lies in the training split; the last ``--val-frac`` of them (in
time) are held out to pick the best weights (``restore_best``).

Baselines on the same test years, all one step ahead from the true past values:

* persistence: ``x_hat[t] = x[t-1]``;
* AR(9): ``x_hat[t] = c + sum_{k=1..9} a_k x[t-k]``, fitted by least squares on the
  training split only.

RMSEs are in the original units (sunspot number).

    python examples/sunspots.py
    python examples/sunspots.py --seed 1

The last line printed is ``test_rmse: <value>`` (the recurrent model's RMSE).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import fmt_best, limit_blas_threads

from rnnkit import datasets, nn
from rnnkit.data import ArraySource
from rnnkit.train import TrainConfig, Trainer


def windows(z, targets, W):
    """Inputs (W, M, 1) ``z[t-W:t]`` and targets (M, 1) ``z[t]`` for each ``t`` in ``targets``."""
    t = np.asarray(targets)
    X = np.stack([z[k - W:k] for k in t], axis=1)[:, :, None]              # (W, M, 1)
    return X, z[t][:, None]                                                 # (M, 1)


def fit_ar(x, p):
    """Least-squares AR(p) with intercept on the 1-D series ``x``: ``(c, a)`` with
    ``x[t] ~ c + sum_k a[k-1] x[t-k]``."""
    rows = np.stack([x[p - k:len(x) - k] for k in range(1, p + 1)], axis=1)   # (n-p, p)
    A = np.concatenate([np.ones((len(rows), 1)), rows], axis=1)             # (n-p, p+1)
    coef, *_ = np.linalg.lstsq(A, x[p:], rcond=None)
    return coef[0], coef[1:]


def predict_ar(x, c, a, targets):
    p = len(a)
    return np.array([c + a @ x[t - p:t][::-1] for t in targets])


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def log_eval(trainer, record):
    print(f"step {record['step']:5d}: train_mse {record['train_loss']:.4f}  "
          f"val_mse {record['val_loss']:.4f} (standardised units)", flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="gru")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--window", type=int, default=20, help="past values fed to the model")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--val-frac", type=float, default=0.15)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--patience", type=int, default=10, help="evaluations without improvement before stopping")
    p.add_argument("--test-frac", type=float, default=0.2)
    p.add_argument("--blas-threads", type=int, default=1, help="BLAS threads (0 = library default)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    _blas = limit_blas_threads(args.blas_threads)  # noqa: F841 (kept for the whole run)
    t0 = time.perf_counter()
    years, x = datasets.sunspots()
    n = len(x)
    n_test = int(round(args.test_frac * n))
    split = n - n_test                                   # x[:split] train, x[split:] test
    W = args.window
    mu, sd = x[:split].mean(), x[:split].std()
    z = (x - mu) / sd                                                       # (n,)

    train_t = np.arange(W, split)                        # targets inside the training split
    n_val = int(round(args.val_frac * len(train_t)))
    fit_t, val_t = train_t[:-n_val], train_t[-n_val:]
    test_t = np.arange(split, n)
    Xf, yf = windows(z, fit_t, W)
    Xv, yv = windows(z, val_t, W)
    Xt, _ = windows(z, test_t, W)
    print(f"sunspots {years[0]}-{years[-1]} ({n} years): train {years[0]}-{years[split - 1]} "
          f"({split}), test {years[split]}-{years[-1]} ({n_test}); window {W}; "
          f"RNN fit on {len(fit_t)} windows, val {len(val_t)} (targets {years[val_t[0]]}-{years[val_t[-1]]}); float64")

    model = nn.SequenceRegressor(nn.SequenceRegressorConfig(
        input_size=1, output_size=1, cell=args.cell, hidden_size=args.hidden, dtype="float64"),
        seed=args.seed)
    cfg = TrainConfig(steps=args.steps, lr=args.lr, weight_decay=args.weight_decay, clip=1.0,
                      eval_every=args.eval_every, patience=args.patience, schedule="cosine", restore_best=True,
                      explode_factor=1e6, seed=args.seed, progress=False)
    result = Trainer(model, ArraySource(Xf, yf, args.batch_size, seed=args.seed),
                     ArraySource(Xv, yv, 512), cfg, on_eval=log_eval).fit()
    print(f"training: {result.stopped} after {result.steps} steps; best val_mse "
          f"{fmt_best(result)}")
    model.eval()

    y_test = x[test_t]
    rnn_pred = model.predict(Xt)[:, 0] * sd + mu                            # original units
    persist = x[test_t - 1]
    c, a = fit_ar(x[:split], 9)
    ar_pred = predict_ar(x, c, a, test_t)
    r_rnn, r_pers, r_ar = rmse(rnn_pred, y_test), rmse(persist, y_test), rmse(ar_pred, y_test)
    wall = time.perf_counter() - t0
    print(f"test RMSE (sunspot number, {n_test} one-step-ahead forecasts):")
    print(f"  persistence x[t-1]:         {r_pers:.2f}")
    print(f"  AR(9) least squares:        {r_ar:.2f}")
    print(f"  {args.cell} (hidden {args.hidden}, window {W}): {r_rnn:.2f}  "
          f"({'beats' if r_rnn < r_pers else 'does not beat'} persistence, "
          f"{'beats' if r_rnn < r_ar else 'does not beat'} AR(9))")
    print(f"wall time: {wall:.1f} s")
    print(f"test_rmse: {r_rnn:.4f}")
    return r_rnn


if __name__ == "__main__":
    main()
