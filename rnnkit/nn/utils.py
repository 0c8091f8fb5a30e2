"""Padding helpers for variable-length batches (``torch.nn.utils.rnn``'s, on NumPy).

:func:`pad_sequence` stacks sequences of different lengths into one padded array *and* returns
their lengths, which is what rnnkit's layers take for variable-length batches::

    >>> import numpy as np, rnnkit.nn as nn
    >>> from rnnkit.nn.utils import pad_sequence, unpad_sequence
    >>> seqs = [np.ones((5, 3)), np.ones((2, 3)), np.ones((4, 3))]       # (L_i, input_size)
    >>> x, lengths = pad_sequence(seqs)                # x (5, 3, 3) time-major, lengths [5 2 4]
    >>> out, h = nn.GRU(3, 8)(x, lengths=lengths)      # outputs are 0 past each length
    >>> [o.shape for o in unpad_sequence(out, lengths)]
    [(5, 8), (2, 8), (4, 8)]

The padded values are PyTorch's for the same inputs (``batch_first``, ``padding_value``,
``padding_side``). One difference: torch's ``pad_sequence`` returns the padded tensor alone,
rnnkit's returns ``(padded, lengths)``. rnnkit's layers read ``lengths`` for right-padded
batches (the default); a left-padded batch (``padding_side="left"``) is for other consumers,
and :func:`unpad_sequence` undoes either side.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._validate import check_choice, fmt_shape, to_numpy
from ..errors import ConfigError, DTypeError, ShapeError

__all__ = ["pad_sequence", "unpad_sequence"]

_SIDES = ("right", "left")


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Pad sequences ``(L_i, *)`` to one array; returns ``(padded, lengths)``.

    ``sequences``: a list (or tuple) of arrays or tensors with the same trailing shape ``*``
    (any number of axes, none included), or one array whose first axis lists them. ``padded``
    is ``(T, N, *)`` with T the longest length, or ``(N, T, *)`` with ``batch_first``; its dtype is
    the sequences' common one (token ids stay integers; ``padding_value`` is cast to it, as
    PyTorch does). ``padding_side`` "right" (default) puts the padding after each sequence,
    "left" before it. ``lengths`` (N,) int64 holds each ``L_i``.
    """
    who = "pad_sequence"
    check_choice(who, "padding_side", padding_side, _SIDES)
    if isinstance(sequences, (list, tuple)):
        arrays = [to_numpy(who, f"sequences[{i}]", s) for i, s in enumerate(sequences)]
    else:
        arr = to_numpy(who, "sequences", sequences)
        if arr.ndim < 2:
            raise ShapeError(f"{who}: expected a list of sequences (L_i, *) or one array (N, L, *), "
                             f"got an array of shape {fmt_shape(arr.shape)}.")
        arrays = list(arr)
    if not arrays:
        raise ShapeError(f"{who}: expected at least one sequence, got an empty list.")
    for i, a in enumerate(arrays):
        if a.ndim < 1:
            raise ShapeError(f"{who}: expected sequences[{i}] of shape (L, *) (at least 1-D), got "
                             f"a scalar. Each sequence's first axis is time.")
        if a.dtype.kind not in "biuf":
            raise DTypeError(f"{who}: expected sequences of real numbers or integer ids, got "
                             f"sequences[{i}] of dtype {a.dtype}.")
        if a.shape[1:] != arrays[0].shape[1:]:
            raise ShapeError(f"{who}: expected every sequence to have the trailing shape "
                             f"{fmt_shape(arrays[0].shape[1:])} of sequences[0], got "
                             f"sequences[{i}] of shape {fmt_shape(a.shape)}. Only the first axis "
                             f"(time) may differ.")
    lengths = np.array([a.shape[0] for a in arrays], np.int64)
    T, N = int(lengths.max()), len(arrays)
    dtype = np.result_type(*arrays)
    if isinstance(padding_value, bool) or not isinstance(padding_value, numbers.Real) or (
            dtype.kind != "f" and not np.isfinite(padding_value)):
        raise ConfigError(f"{who}: expected padding_value as a number (finite for integer "
                          f"sequences), got {padding_value!r}.")
    padded = np.full((T, N) + arrays[0].shape[1:], padding_value, dtype=dtype)
    for n, (a, L) in enumerate(zip(arrays, lengths)):
        if padding_side == "right":
            padded[:L, n] = a
        else:
            padded[T - L:, n] = a
    if batch_first:
        padded = np.ascontiguousarray(padded.swapaxes(0, 1))
    return padded, lengths


def unpad_sequence(padded_sequences, lengths, batch_first=False, padding_side="right"):
    """The list of sequences ``(L_i, *)`` inside a padded array (the inverse of
    :func:`pad_sequence`, and ``torch.nn.utils.rnn.unpad_sequence``).

    ``padded_sequences`` ``(T, N, *)`` or, with ``batch_first``, ``(N, T, *)``; ``lengths`` (N,)
    integers in [0, T]; ``padding_side`` where the padding is ("right", PyTorch's only one, or
    "left"). Returns copies.
    """
    who = "unpad_sequence"
    check_choice(who, "padding_side", padding_side, _SIDES)
    padded = to_numpy(who, "padded_sequences", padded_sequences)
    if padded.ndim < 2:
        raise ShapeError(f"{who}: expected padded_sequences of shape (T, N, *) (at least 2-D), "
                         f"got shape {fmt_shape(padded.shape)}.")
    if batch_first:
        padded = padded.swapaxes(0, 1)
    T, N = padded.shape[:2]
    lens = to_numpy(who, "lengths", lengths)
    if lens.dtype.kind == "f" and np.all(np.isfinite(lens)) and np.all(lens == np.round(lens)):
        lens = lens.astype(np.int64)
    if lens.dtype.kind not in "iu":
        raise DTypeError(f"{who}: expected lengths as integers, got dtype {lens.dtype}.")
    if lens.shape != (N,):
        raise ShapeError(f"{who}: expected lengths of shape (N={N},), one per sequence, got shape "
                         f"{fmt_shape(lens.shape)}.")
    if N and (lens.min() < 0 or lens.max() > T):
        raise ShapeError(f"{who}: expected every length in [0, T={T}], got min {lens.min()} and "
                         f"max {lens.max()}.")
    if padding_side == "right":
        return [padded[:L, n].copy() for n, L in enumerate(lens)]
    return [padded[T - L:, n].copy() for n, L in enumerate(lens)]
