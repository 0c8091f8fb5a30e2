"""Held-out validation data: a random split of examples, or the tail of a stream."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._validate import Range
from ..errors import ConfigError, DataError

#: The share of the data held out for validation (``rnnkit train --val-frac``).
VAL_FRAC = Range("number", 0.0, 1.0, hi_open=True)


def _as_generator(who: str, rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    raise ConfigError(f"{who}: expected rng to be a numpy.random.Generator, got "
                      f"{type(rng).__name__}. Pass np.random.default_rng(seed).")


def train_val_split(items: Sequence, val_frac: float, rng: np.random.Generator) -> tuple[list, list]:
    """Random split of a list of examples (lines mode): ``(train, val)``.

    ``round(len(items) * val_frac)`` items go to ``val`` (at least 1 when ``val_frac > 0`` and
    there are 2 or more items; ``train`` always keeps at least one). Both parts keep the
    original order of the items. ``rng`` is a ``numpy.random.Generator``.
    """
    who = "train_val_split"
    f = VAL_FRAC.check(who, "val_frac", val_frac)
    rng = _as_generator(who, rng)
    items = list(items)
    M = len(items)
    if M == 0:
        raise DataError(f"{who}: expected at least one item, got none.")
    n_val = int(round(M * f))
    if f > 0 and M >= 2:
        n_val = max(1, n_val)
    n_val = min(n_val, M - 1)
    is_val = np.zeros(M, dtype=bool)
    is_val[rng.permutation(M)[:n_val]] = True
    return ([it for it, v in zip(items, is_val) if not v], [it for it, v in zip(items, is_val) if v])


def split_stream(seq: str | np.ndarray, val_frac: float) -> tuple[str, str] | tuple[np.ndarray, np.ndarray]:
    """Split a stream (a str or a 1-D array) by position: the last ``val_frac`` of it is the
    validation part. Returns ``(train, val)`` of the same type as ``seq``."""
    who = "split_stream"
    f = VAL_FRAC.check(who, "val_frac", val_frac)
    n = len(seq)
    if n == 0:
        raise DataError(f"{who}: expected a non-empty stream, got length 0.")
    n_val = min(int(round(n * f)), n - 1)
    cut = n - n_val
    return seq[:cut], seq[cut:]
