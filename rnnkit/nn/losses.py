"""Losses with forward and backward.

``loss = crit(pred, target)`` returns a Python float; ``dpred = crit.backward()`` returns
the gradient of that scalar with respect to ``pred`` (scaled by ``scale``, default 1).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .._validate import as_float_array, to_numpy
from ..errors import ConfigError, DataError, DTypeError, NoForwardError, ShapeError
from ..ops import IGNORE_INDEX, log_softmax


def _take_cache(loss, who: str):
    """The cache of ``loss``'s last forward, consumed (one backward per forward)."""
    cache, loss._cache = loss._cache, None
    if cache is None:
        raise NoForwardError(f"{who}.backward: expected a forward call to differentiate, got none "
                             f"(backward was called before any forward, or twice for one "
                             f"forward). Call the loss on (prediction, target) first.")
    return cache


class CrossEntropyLoss:
    """Softmax cross-entropy from logits, mean over valid positions.

    logits (..., C), target (...) ints in [0, C) or ``ignore_index``::

        loss = -1/M * sum_{valid p} log softmax(logits[p])[target[p]]     M = #valid
        dlogits[p] = (softmax(logits[p]) - onehot(target[p])) / M,  0 at ignored p

    ``mask`` (...) of 0/1 may be given instead of (or with) ``ignore_index``.
    ``reduction='sum'`` sums instead of averaging. ``last_count`` holds M.
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX, reduction: str = "mean"):
        if reduction not in ("mean", "sum"):
            raise ConfigError(f"CrossEntropyLoss: expected reduction 'mean' or 'sum', got {reduction!r}.")
        self.ignore_index = ignore_index
        self.reduction = reduction
        self._cache = None
        self.last_count = 0

    def __call__(self, logits: ArrayLike, target: ArrayLike, mask: ArrayLike | None = None) -> float:
        return self.forward(logits, target, mask)

    def forward(self, logits: ArrayLike, target: ArrayLike, mask: ArrayLike | None = None) -> float:
        logits = as_float_array("CrossEntropyLoss", "logits", logits)
        if logits.ndim < 1:
            raise ShapeError("CrossEntropyLoss: expected logits of shape (..., C), got a scalar.")
        target = to_numpy("CrossEntropyLoss", "target", target)
        if target.dtype.kind not in "iu":
            raise DTypeError(f"CrossEntropyLoss: expected integer class targets, got dtype {target.dtype}.")
        if logits.shape[:-1] != target.shape:
            raise ShapeError(f"CrossEntropyLoss: expected target of shape {logits.shape[:-1]} "
                             f"(logits shape without the class axis), got {target.shape}.")
        C = logits.shape[-1]
        valid = target != self.ignore_index
        if mask is not None:
            mask = to_numpy("CrossEntropyLoss", "mask", mask)
            if mask.shape != target.shape:
                raise ShapeError(f"CrossEntropyLoss: expected mask of shape {target.shape} (the "
                                 f"target's), got {mask.shape}.")
            valid = valid & (mask != 0)
        t = np.where(valid, target, 0)
        if t.size and (t.min() < 0 or t.max() >= C):
            raise DataError(f"CrossEntropyLoss: expected targets in [0, {C - 1}] or ignore_index="
                            f"{self.ignore_index}, got values from {t.min()} to {t.max()}.")
        logp = log_softmax(logits, axis=-1)                                 # (..., C)
        picked = np.take_along_axis(logp, t[..., None], axis=-1)[..., 0]   # (...)
        count = int(valid.sum())
        total = -float(picked[valid].sum(dtype=np.float64))
        self.last_count = count
        denom = max(count, 1) if self.reduction == "mean" else 1
        self._cache = (logp, t, valid, denom)
        return total / denom

    def backward(self, scale: float = 1.0) -> np.ndarray:
        logp, t, valid, denom = _take_cache(self, "CrossEntropyLoss")
        d = np.exp(logp)                                                    # softmax
        np.put_along_axis(d, t[..., None], np.take_along_axis(d, t[..., None], axis=-1) - 1, axis=-1)
        d *= (valid[..., None] * (scale / denom)).astype(d.dtype)
        return d


class MSELoss:
    """Mean squared error: ``loss = mean((pred - target)^2)``, ``dpred = 2 (pred - target) / M``.

    ``mask`` (broadcastable to pred) restricts the mean to valid entries.
    """

    def __init__(self, reduction: str = "mean"):
        if reduction not in ("mean", "sum"):
            raise ConfigError(f"MSELoss: expected reduction 'mean' or 'sum', got {reduction!r}.")
        self.reduction = reduction
        self._cache = None
        self.last_count = 0

    def __call__(self, pred: ArrayLike, target: ArrayLike, mask: ArrayLike | None = None) -> float:
        return self.forward(pred, target, mask)

    def forward(self, pred: ArrayLike, target: ArrayLike, mask: ArrayLike | None = None) -> float:
        pred = as_float_array("MSELoss", "pred", pred)
        target = as_float_array("MSELoss", "target", target, pred.dtype)
        if pred.shape != target.shape:
            raise ShapeError(f"MSELoss: expected target of shape {pred.shape} (same as pred), got {target.shape}.")
        diff = pred - target
        if mask is not None:
            m = as_float_array("MSELoss", "mask", mask, pred.dtype)
            try:
                m = np.broadcast_to(m, pred.shape)
            except ValueError:
                raise ShapeError(f"MSELoss: expected mask broadcastable to pred's shape "
                                 f"{pred.shape}, got {m.shape}.") from None
            diff = diff * m
            count = int(m.sum())
        else:
            count = diff.size
        self.last_count = count
        denom = max(count, 1) if self.reduction == "mean" else 1
        self._cache = (diff, denom)
        return float((diff.astype(np.float64) ** 2).sum() / denom)

    def backward(self, scale: float = 1.0) -> np.ndarray:
        diff, denom = _take_cache(self, "MSELoss")
        return diff * (2.0 * scale / denom)
