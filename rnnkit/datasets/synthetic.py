"""Synthetic sequence tasks with known baselines, generated from a seed.

All arrays are time-major: ``(T, N, ...)``. Every generator takes ``rng``: a
``numpy.random.Generator`` or an int seed (the default seed 0 gives the same data every time).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from .._validate import check_dtype_arg, check_float, check_int
from ..errors import ConfigError


def as_rng(who: str, rng) -> np.random.Generator:
    """A ``numpy.random.Generator`` from a Generator (returned as is) or an int seed."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise ConfigError(f"{who}: expected rng to be a numpy.random.Generator or a non-negative int "
                      f"seed, got {rng!r} ({type(rng).__name__}).")


def adding_problem(n: int, seq_len: int, rng: int | np.random.Generator = 0,
                   dtype: DTypeLike = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015).

    Returns ``X`` of shape (T, N, 2) and ``y`` of shape (N, 1), ``T = seq_len``:

    * ``X[:, n, 0]`` ~ U(0, 1) values;
    * ``X[:, n, 1]`` markers: exactly two 1s, one at ``i ~ U{0 .. T//2 - 1}`` and one at
      ``j ~ U{T//2 .. T-1}``, zeros elsewhere;
    * ``y[n, 0] = X[i, n, 0] + X[j, n, 0]``.

    Baseline: always predicting 1 gives MSE = Var(u1 + u2) = 1/6 ~ 0.167.

    Example::

        >>> X, y = adding_problem(4, 10, rng=0)
        >>> X.shape, y.shape, X[:, :, 1].sum(axis=0).tolist()
        ((10, 4, 2), (4, 1), [2.0, 2.0, 2.0, 2.0])
    """
    who = "adding_problem"
    N = check_int(who, "n", n, 1)
    T = check_int(who, "seq_len", seq_len, 2)
    dt = check_dtype_arg(who, dtype)
    g = as_rng(who, rng)
    half = T // 2
    values = g.random((T, N))                                               # (T, N)
    i = g.integers(0, half, size=N)                                         # (N,) first half
    j = g.integers(half, T, size=N)                                         # (N,) second half
    cols = np.arange(N)
    markers = np.zeros((T, N))
    markers[i, cols] = 1.0
    markers[j, cols] = 1.0
    X = np.stack([values, markers], axis=-1).astype(dt)                     # (T, N, 2)
    y = (X[i, cols, 0].astype(np.float64) + X[j, cols, 0]).astype(dt)[:, None]  # (N, 1)
    return X, y


def copy_memory(n: int, delay: int, rng: int | np.random.Generator = 0, n_symbols: int = 8, copy_len: int = 10
                ) -> tuple[np.ndarray, np.ndarray]:
    """The copy-memory task (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016).

    Token ids: 0 = blank, 1..n_symbols = data symbols, ``n_symbols + 1`` = "go" delimiter,
    so the vocabulary size is ``n_symbols + 2``. With ``K = copy_len`` and sequence length
    ``T = delay + 2K``::

        x = [s_1 .. s_K,  0 x (delay - 1),  GO,  0 x K]
        y = [0 x (delay + K),                    s_1 .. s_K]

    Returns ``X, Y`` int64 of shape (T, N). Baseline (predict blanks, then uniform symbols):
    cross-entropy ``K log(n_symbols) / T`` nats per step.
    """
    who = "copy_memory"
    N = check_int(who, "n", n, 1)
    D = check_int(who, "delay", delay, 1)
    S = check_int(who, "n_symbols", n_symbols, 1)
    K = check_int(who, "copy_len", copy_len, 1)
    g = as_rng(who, rng)
    T = D + 2 * K
    seq = g.integers(1, S + 1, size=(K, N))                                 # (K, N)
    X = np.zeros((T, N), dtype=np.int64)
    Y = np.zeros((T, N), dtype=np.int64)
    X[:K] = seq
    X[K + D - 1] = S + 1
    Y[T - K:] = seq
    return X, Y


def noisy_sine(n: int, seq_len: int, rng: int | np.random.Generator = 0, noise: float = 0.1,
               dtype: DTypeLike = np.float64
               ) -> tuple[np.ndarray, np.ndarray]:
    """Next-value regression on noisy sine waves (many-to-many).

    For each sequence: period ``P ~ U(8, 32)`` steps, phase ``phi ~ U(0, 2 pi)``, amplitude
    ``a ~ U(0.5, 1.5)``; ``s_t = a sin(2 pi t / P + phi) + noise * e_t``, ``e_t ~ N(0, 1)``,
    ``t = 0 .. T``. Returns ``X = s[0:T]`` and ``Y = s[1:T+1]``, both (T, N, 1), so
    ``Y[t] == X[t + 1]``. The best possible MSE is about ``noise**2`` (the fresh noise);
    predicting ``Y[t] = X[t]`` is the naive baseline.
    """
    who = "noisy_sine"
    N = check_int(who, "n", n, 1)
    T = check_int(who, "seq_len", seq_len, 1)
    sigma = check_float(who, "noise", noise, 0.0)
    dt = check_dtype_arg(who, dtype)
    g = as_rng(who, rng)
    period = g.uniform(8.0, 32.0, size=N)                                   # (N,)
    phase = g.uniform(0.0, 2 * np.pi, size=N)                               # (N,)
    amp = g.uniform(0.5, 1.5, size=N)                                       # (N,)
    t = np.arange(T + 1, dtype=np.float64)[:, None]                         # (T+1, 1)
    s = amp * np.sin(2 * np.pi * t / period + phase)                        # (T+1, N)
    s = s + sigma * g.standard_normal((T + 1, N))
    s = s.astype(dt)[:, :, None]                                            # (T+1, N, 1)
    return s[:-1].copy(), s[1:].copy()
