"""Stateless primitives, each forward next to its backward.

All functions work on float32 and float64 arrays of any shape and preserve the dtype. The
``*_`` variants work in place (``out=`` semantics) and return their argument; the fused
recurrent kernels use them to avoid temporaries.
"""

from __future__ import annotations

import numpy as np


# ----------------------------------------------------------------------------- sigmoid
def sigmoid(x: np.ndarray) -> np.ndarray:
    """sigma(x) = 1 / (1 + exp(-x)), computed as 0.5 * tanh(0.5 x) + 0.5 (never overflows)."""
    return sigmoid_(np.array(x, dtype=np.result_type(x, np.float32), copy=True))


def sigmoid_(x: np.ndarray) -> np.ndarray:
    """In-place sigmoid: x <- 0.5 * tanh(0.5 x) + 0.5."""
    x *= 0.5
    np.tanh(x, out=x)
    x *= 0.5
    x += 0.5
    return x


def sigmoid_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d sigma / dx given y = sigma(x): dx = dy * y * (1 - y)."""
    return dy * y * (1.0 - y)


# ----------------------------------------------------------------------------- tanh
def tanh_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d tanh / dx given y = tanh(x): dx = dy * (1 - y^2)."""
    return dy * (1.0 - y * y)


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


def softmax_backward(dy: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Given y = softmax(z): dz = y * (dy - sum(dy * y))."""
    return y * (dy - (dy * y).sum(axis=axis, keepdims=True))


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
