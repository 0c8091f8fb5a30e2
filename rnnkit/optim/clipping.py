"""Gradient clipping over a name -> array dict, in place, like ``torch.nn.utils``.

:func:`clip_grad_norm` rescales all gradients together so that their joint norm is at most
``max_norm``; :func:`clip_grad_value` clips every entry to ``[-clip_value, clip_value]``;
:func:`global_norm` only measures. Norms are computed in float64 over all arrays together. Both
clipping functions return the norm *before* clipping and leave the gradients untouched when it
is NaN or inf, so that the caller can detect a divergence from the returned value.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import numpy as np

from .._validate import check_float
from ..errors import ConfigError, DTypeError

__all__ = ["clip_grad_norm", "clip_grad_value", "global_norm"]


def _check_grad_dict(who: str, grads) -> list[np.ndarray]:
    if not isinstance(grads, Mapping):
        raise ConfigError(f"{who}: expected grads as a dict {{name: ndarray}}, got "
                          f"{type(grads).__name__}.")
    out = []
    for k, g in grads.items():
        if not isinstance(g, np.ndarray) or g.dtype.kind != "f":
            what = g.dtype if isinstance(g, np.ndarray) else type(g).__name__
            raise DTypeError(f"{who}: expected grads[{k!r}] to be a float NumPy array (modified "
                             f"in place), got {what}.")
        out.append(g)
    return out


def _norm(arrays: list[np.ndarray], norm_type: float) -> float:
    """p-norm of all entries of all arrays together, computed in float64."""
    if not arrays:
        return 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        return _norm_unchecked(arrays, norm_type)


def _norm_unchecked(arrays: list[np.ndarray], norm_type: float) -> float:
    if norm_type == math.inf:
        return max((float(np.max(np.abs(a))) if a.size else 0.0) for a in arrays)
    flat = [a.ravel().astype(np.float64, copy=False) for a in arrays]
    if norm_type == 2.0:
        total = math.sqrt(sum(float(np.dot(f, f)) for f in flat))
        if math.isinf(total) and all(np.isfinite(f).all() for f in flat):
            # Overflow of the sum of squares with finite entries: rescale by the largest entry.
            scale = max(float(np.max(np.abs(f))) if f.size else 0.0 for f in flat)
            total = scale * math.sqrt(sum(float(np.dot(f / scale, f / scale)) for f in flat))
        return total
    return float(sum(float(np.sum(np.abs(f) ** norm_type)) for f in flat) ** (1.0 / norm_type))


def global_norm(grads: Mapping) -> float:
    """Euclidean norm of all gradients together: ``sqrt(sum_k sum(g_k ** 2))`` (float64).

    Example::

        global_norm({"a": np.array([3.0]), "b": np.array([[4.0]])})   # 5.0
    """
    return _norm(_check_grad_dict("global_norm", grads), 2.0)


def clip_grad_norm(grads: Mapping, max_norm: float, norm_type: float = 2.0) -> float:
    """Rescale all gradients in place so that their joint norm is at most ``max_norm``.

    Like ``torch.nn.utils.clip_grad_norm_``::

        total = (sum_k ||g_k||_p ** p) ** (1/p)          (max |g| for p = inf)
        coef  = max_norm / (total + 1e-6)
        g_k  *= coef                                     if coef < 1

    Returns the total norm *before* clipping (a Python float). If it is NaN or inf the
    gradients are left untouched (PyTorch would write NaN/0 into them) so that the caller can
    detect the divergence from the returned value.
    """
    who = "clip_grad_norm"
    max_norm = check_float(who, "max_norm", max_norm, 0.0)
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real) or not (
            norm_type > 0):
        raise ConfigError(f"{who}: expected norm_type > 0 (or math.inf), got {norm_type!r}.")
    norm_type = float(norm_type)
    arrays = _check_grad_dict(who, grads)
    total = _norm(arrays, norm_type)
    if not math.isfinite(total):
        return total
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in arrays:
            g *= coef
    return total


def clip_grad_value(grads: Mapping, clip_value: float) -> float:
    """Clip every gradient entry in place to ``[-clip_value, clip_value]``.

    Like ``torch.nn.utils.clip_grad_value_``. Returns the global 2-norm *before* clipping
    (:func:`global_norm`); if it is NaN or inf the gradients are left untouched.
    """
    who = "clip_grad_value"
    clip_value = check_float(who, "clip_value", clip_value, 0.0)
    arrays = _check_grad_dict(who, grads)
    total = _norm(arrays, 2.0)
    if not math.isfinite(total):
        return total
    for g in arrays:
        np.clip(g, -clip_value, clip_value, out=g)
    return total

