"""Dropout masks and initialisations of the recurrent regularisers (one definition each).

* :func:`dropout_mask`: inverted-dropout factors, 0 with probability ``p`` and ``1 / (1 - p)``
  otherwise, drawn from a layer's own generator (so a checkpointed run repeats its masks).
  Variational ("locked") dropout draws one (N, K) mask per sequence and applies it at every
  time step; weight dropping draws one mask of ``W_hh``'s shape per batch; embedding dropout
  one factor per vocabulary entry per batch.
* :func:`orthogonal_recurrent`: each gate block of ``W_hh`` (H, H) orthogonal (the QR of a
  Gaussian matrix with the signs of R's diagonal, as ``torch.nn.init.orthogonal_``).
* :func:`parameter_init`: the starting values of a recurrent layer's or cell's parameters by
  name (PyTorch's uniform init; the layer norms' gains 1 and shifts 0; learned states 0).
* :func:`set_forget_bias`: the forget gate's bias (LSTM ``forget``, GRU ``update``, the
  registry's :attr:`~rnnkit.cells.CellSpec.forget_gate`) set to ``B`` in ``bias_ih`` and 0 in
  ``bias_hh`` (their sum is the gate's bias), Jozefowicz et al. 2015.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

#: Initialisations of the recurrent weights: PyTorch's U(-1/sqrt(H), 1/sqrt(H)) everywhere, or
#: that with orthogonal blocks of ``W_hh``.
INITS = ("uniform", "orthogonal")


def parameter_init(name: str, rng, hidden_size: int):
    """The initialiser ``shape -> array`` of the recurrent parameter ``name`` (layers and
    cells alike): zeros for learned initial states (``h0``, ``c0``) and the layer norms'
    shifts (``ln_bias*``), ones for their gains (``ln_weight*``), else PyTorch's
    U(-1/sqrt(H), 1/sqrt(H)) drawn from ``rng``."""
    if name in ("h0", "c0") or name.startswith("ln_bias"):
        return np.zeros
    if name.startswith("ln_weight"):
        return np.ones
    k = 1.0 / np.sqrt(hidden_size)
    return lambda shape: rng.uniform(-k, k, size=shape)


def dropout_mask(rng, shape, p: float, dtype) -> np.ndarray:
    """Inverted-dropout factors of ``shape``: 0 with probability ``p``, else ``1 / (1 - p)``."""
    keep = 1.0 - p
    dtype = np.dtype(dtype)
    return (rng.random(shape) < keep).astype(dtype) / dtype.type(keep)


def orthogonal_block(rng, n: int, m: int, dtype) -> np.ndarray:
    """An (n, m) matrix with orthonormal rows or columns (the smaller side)."""
    a = rng.standard_normal((max(n, m), min(n, m)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))[None, :]
    q = q if n >= m else q.T
    return q.astype(dtype)


def orthogonal_recurrent(W_hh: np.ndarray, num_gates: int, rng) -> None:
    """Fill each of the ``num_gates`` row blocks of ``W_hh`` (G*H, S) with an orthogonal
    matrix, in place."""
    H = W_hh.shape[0] // num_gates
    for g in range(num_gates):
        W_hh[g * H:(g + 1) * H] = orthogonal_block(rng, H, W_hh.shape[1], W_hh.dtype)


def set_forget_bias(spec, b_ih: np.ndarray, b_hh: np.ndarray, value: float, who: str) -> None:
    """Set the forget gate's rows of ``b_ih`` to ``value`` and of ``b_hh`` to 0, in place."""
    if not spec.forget_gate:
        raise ConfigError(f"{who}: expected forget_bias=None for cell {spec.name!r}, got "
                          f"{value!r}: only LSTM (forget gate) and GRU (update gate) have a gate "
                          f"that keeps the state. Drop forget_bias, or use cell 'lstm' or 'gru'.")
    H = b_ih.shape[0] // spec.num_gates
    g = spec.gate_names.index(spec.forget_gate)
    b_ih[g * H:(g + 1) * H] = value
    b_hh[g * H:(g + 1) * H] = 0

