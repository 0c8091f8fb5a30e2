"""Stateless primitives shared by the layers, losses and decoding, each with its backward
where one is needed.

All functions work on float32 and float64 arrays of any shape and preserve the dtype. (The
gate nonlinearities live in :mod:`rnnkit.cells`, fused into each cell's step.)
"""

from __future__ import annotations

import math

import numpy as np

#: The target id the losses skip (PyTorch's ``ignore_index`` default): padding of batched lines.
IGNORE_INDEX = -100
#: ln 2: nats per bit (a loss in nats / LN2 = bits; bits per character).
LN2 = math.log(2.0)


# ----------------------------------------------------------------------------- softmax family
def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """log softmax(z) = z - max(z) - log(sum(exp(z - max(z)))), stable for any magnitude."""
    m = z.max(axis=axis, keepdims=True)
    s = z - m
    s -= np.log(np.exp(s).sum(axis=axis, keepdims=True))
    return s


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """softmax(z)_k = exp(z_k - max z) / sum_j exp(z_j - max z) along ``axis`` (stable)."""
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


# ----------------------------------------------------------------------------- linear
def linear(x: np.ndarray, W: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """y = x @ W.T + b over the last axis. x (..., in), W (out, in), b (out,) -> y (..., out)."""
    y = x @ W.T
    if b is not None:
        y += b
    return y


def linear_backward(dy: np.ndarray, x: np.ndarray, W: np.ndarray, need_dx: bool = True):
    """Backward of :func:`linear`: dx = dy @ W, dW = dy^T x (summed over all leading axes),
    db = sum dy. Returns (dx or None, dW, db)."""
    out_f, in_f = W.shape
    dy2 = dy.reshape(-1, out_f)
    x2 = x.reshape(-1, in_f)
    dW = dy2.T @ x2
    db = dy2.sum(axis=0)
    dx = (dy @ W) if need_dx else None
    return dx, dW, db
