"""Measurements of recurrent networks, in NumPy only: what the pictures and the explorer show.

* :func:`loss_curves` - training / validation loss against the step, from ``metrics.jsonl``;
* :func:`gate_activations` - a layer's gates and states over one sequence (T, H);
* :func:`most_active_units` - the hidden units with the largest mean ``|activation|``;
* :func:`gradient_norms_through_time` - how much gradient survives k steps back (vanishing
  gradients, measured exactly).

:mod:`rnnkit.plot` draws them (it needs matplotlib); nothing here does.

Example::

    >>> import numpy as np, rnnkit.nn as nn
    >>> from rnnkit import analysis
    >>> gates = analysis.gate_activations(nn.LSTM(4, 8, seed=0), np.random.randn(12, 4))
    >>> sorted(gates), gates["forget"].shape
    (['candidate', 'cell', 'forget', 'hidden', 'input', 'output'], (12, 8))
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from ._mode import enable_grad, no_grad
from ._validate import as_float_array, check_int, make_rng
from .cells import CELLS, cell_spec, state_arrays
from .errors import ConfigError, DataError, ShapeError

__all__ = ["loss_curves", "gate_activations", "most_active_units", "gradient_norms_through_time"]


def loss_curves(metrics) -> dict:
    """Loss curves from evaluation records: ``{name: (steps, values)}`` of float64 arrays.

    ``metrics`` is a list of dicts (one per evaluation, as in ``metrics.jsonl``) or a
    checkpoint directory (read with :func:`rnnkit.checkpoint.read_metrics`). A record
    contributes ``(record["step"], record[name])`` to the curve ``name`` for every ``name`` in
    ``train_loss``, ``val_loss`` that it holds as a finite number; records without an integer
    ``"step"`` are skipped, and each curve is sorted by step.

    >>> loss_curves([{"step": 10, "train_loss": 2.0}, {"step": 20, "train_loss": 1.5,
    ...              "val_loss": 1.7}])["train_loss"]
    (array([10., 20.]), array([2. , 1.5]))
    """
    who = "loss_curves"
    if isinstance(metrics, (str, os.PathLike)):
        from .checkpoint import read_metrics
        metrics = read_metrics(metrics)
    if not isinstance(metrics, (list, tuple)):
        raise DataError(f"{who}: expected a list of metric records (dicts) or a checkpoint "
                        f"directory, got {type(metrics).__name__}.")
    curves = {}
    for name in ("train_loss", "val_loss"):
        pts = []
        for r in metrics:
            if not isinstance(r, Mapping):
                continue
            step, v = r.get("step"), r.get(name)
            if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
                continue
            if np.isfinite(v):
                pts.append((float(step), float(v)))
        if pts:
            pts.sort(key=lambda p: p[0])
            arr = np.array(pts, dtype=np.float64)                               # (n, 2)
            curves[name] = (arr[:, 0].copy(), arr[:, 1].copy())
    return curves


def _find_layer(who, obj):
    """Return (recurrent layer, model or None) for a layer or a model with ``.rnn``."""
    from .nn.rnn import RNNBase
    if isinstance(obj, RNNBase):
        return obj, None
    rnn = getattr(obj, "rnn", None)
    if isinstance(rnn, RNNBase) and hasattr(obj, "trace"):
        return rnn, obj
    raise ConfigError(f"{who}: expected a recurrent layer (rnnkit.nn.RNN/LSTM/GRU) or a model "
                      f"with an .rnn layer and a trace() method (e.g. rnnkit.nn.CharLM), got "
                      f"{type(obj).__name__}.")


def gate_activations(model_or_layer, inputs, *, layer: int = -1, direction: int = 0,
                     index: int = 0) -> dict:
    """Activated gates and states of one recurrent layer over one sequence, as (T, H) arrays.

    Runs ``model_or_layer`` forward once (in eval mode, so without dropout) with its
    ``trace`` method and returns, for sequence ``index`` of the batch, layer ``layer``
    (negative counts from the top) and direction ``direction`` (1 = the reverse direction of a
    bidirectional layer, in the original time order)::

        LSTM  input  i_t = s(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)     (T, H) in [0, 1]
              forget f_t = s(W_if x_t + ... )                           (T, H) in [0, 1]
              candidate g_t = tanh(W_ig x_t + ...)                      (T, H) in [-1, 1]
              output o_t = s(W_io x_t + ... )                           (T, H) in [0, 1]
              cell   c_t = f_t * c_{t-1} + i_t * g_t                    (T, H)
        GRU   reset  r_t,  update z_t                                   (T, H) in [0, 1]
              candidate n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
        all   hidden h_t                                                (T, H)

    Args:
        model_or_layer: an :class:`rnnkit.nn.RNN`/``LSTM``/``GRU`` layer, or a model with an
            ``.rnn`` layer and a ``trace(inputs)`` method (e.g. :class:`rnnkit.nn.CharLM`).
        inputs: for a layer, floats ``(T, input_size)`` or ``(T, N, input_size)`` (batch-first
            if the layer is); for a model, what the model takes, e.g. token ids ``(T,)`` or
            ``(T, N)``.

    Returns:
        dict name -> float64 array (T, H): the layer's gate names
        (:attr:`rnnkit.cells.CellSpec.gate_names`) plus ``"hidden"`` (and ``"cell"`` for LSTM).

    >>> import rnnkit.nn as nn
    >>> g = gate_activations(nn.GRU(3, 5, seed=0), np.zeros((7, 3)))
    >>> sorted(g), g["update"].shape
    (['candidate', 'hidden', 'reset', 'update'], (7, 5))
    """
    who = "gate_activations"
    rnn, model = _find_layer(who, model_or_layer)
    L, D = rnn.num_layers, rnn.num_directions
    layer = check_int(who, "layer", layer, -L, L - 1) % L
    direction = check_int(who, "direction", direction, 0, D - 1)
    x = np.asarray(inputs)
    if model is None:
        if x.ndim == 2:
            x = x[None] if rnn.batch_first else x[:, None]
        was = rnn.training
        rnn.eval()
        try:
            _, _, acts = rnn.trace(x)
        finally:
            rnn.train(was)
    else:
        if x.ndim == 1:
            x = x[:, None]
        _, _, acts = model.trace(x)
    a = acts[layer][direction]
    N = next(iter(a.values())).shape[1]
    index = check_int(who, "index", index, 0, N - 1)
    return {k: np.asarray(v[:, index], dtype=np.float64) for k, v in a.items()}


def most_active_units(hidden, k: int = 8) -> np.ndarray:
    """Indices of the ``k`` hidden units with the largest mean absolute activation.

    ``hidden`` is (T, H); the score of unit j is ``mean_t |hidden[t, j]|``. Returns an int
    array (min(k, H),), most active first (ties: lower index first).

    >>> most_active_units(np.array([[0.1, -0.9, 0.5], [0.0, -0.8, 0.4]]), k=2).tolist()
    [1, 2]
    """
    h = as_float_array("most_active_units", "hidden", hidden, np.float64)
    if h.ndim != 2 or h.shape[0] == 0 or h.shape[1] == 0:
        raise ShapeError(f"most_active_units: expected hidden of shape (T, H), got shape {h.shape}.")
    k = check_int("most_active_units", "k", k, 1)
    score = np.abs(h).mean(axis=0)                                              # (H,)
    return np.argsort(-score, kind="stable")[:k]


def gradient_norms_through_time(cell="rnn", T: int = 50, hidden_size: int = 32, *,
                                input_size: int | None = None, batch_size: int = 16,
                                seed: int = 0, x=None) -> np.ndarray:
    """How much of a gradient survives k steps back: ``norms[k] = E ||dL/ds_{T-k}||``.

    A recurrent stack runs over ``x`` (T, N, D) from a zero state. The loss puts a gradient
    only on the last output, ``L = <g, h_T>`` with ``g`` a random unit vector per sequence,
    and ``s_t`` is the whole recurrent state after step t (every layer's ``h_t``, and
    ``c_t`` for an LSTM). Backpropagation through time multiplies the gradient by one
    Jacobian per step::

        dL/ds_{T-k} = (ds_T/ds_{T-1})^T ... (ds_{T-k+1}/ds_{T-k})^T g
        tanh RNN:  ds_t/ds_{t-1} = diag(1 - h_t**2) W_hh               (shrinks when |W_hh| < 1)
        LSTM:      dc_t/dc_{t-1} = diag(f_t) + (paths through the gates)
        GRU:       dh_t/dh_{t-1} = diag(z_t) + (paths through r, z, n)

    ``norms[0] = ||g|| = 1``; ``norms[k]`` is the mean over the batch of the Euclidean norm
    of ``dL/ds_{T-k}``, k = 0..T.

    How it is computed, exactly and in one pass: the state ``s_{T-k}`` is the initial state
    of a k-step run over ``x[T-k:]``, so its gradient is that run's ``dstate0``. All T runs
    are stacked into one right-padded batch with ``lengths = k`` and differentiated by one
    call of ``layer.backward``.

    Args:
        cell: ``'rnn'`` (tanh), ``'lstm'``, ``'gru'`` (a fresh layer with PyTorch's default
            initialisation, float64, seeded by ``seed``), or an existing unidirectional
            rnnkit layer (its weights are used as they are).
        T: number of steps (ignored when ``x`` is given).
        hidden_size, input_size: sizes of a fresh layer (input_size defaults to hidden_size).
        batch_size: number of random sequences (ignored when ``x`` is given).
        seed: seeds the layer, the random inputs ``x ~ N(0, 1)`` and ``g``.
        x: optional inputs (T, N, input_size), time-major.

    Returns:
        float64 array (T + 1,).

    >>> n = gradient_norms_through_time("rnn", T=20, hidden_size=16)
    >>> n.shape, float(n[0]), bool(n[20] < 1e-3)
    ((21,), 1.0, True)
    """
    who = "gradient_norms_through_time"
    from .nn.rnn import RNNBase, recurrent_layer
    rng = make_rng(who, seed)
    if isinstance(cell, RNNBase):
        rnn = cell
        if rnn.bidirectional:
            raise ConfigError(f"{who}: expected a unidirectional layer, got a bidirectional one. "
                              f"The state 'k steps back' is only defined for one direction.")
    else:
        try:
            spec = cell_spec(cell)
        except ConfigError:
            raise ConfigError(f"{who}: expected a cell kind ({', '.join(map(repr, CELLS))}) or an "
                              f"rnnkit recurrent layer, got {cell!r}.") from None
        H = check_int(who, "hidden_size", hidden_size, 1)
        D = H if input_size is None else check_int(who, "input_size", input_size, 1)
        rnn = recurrent_layer(spec, D, H, dtype=np.float64, seed=seed)
    H, L = rnn.hidden_size, rnn.num_layers
    if x is None:
        T = check_int(who, "T", T, 1)
        B = check_int(who, "batch_size", batch_size, 1)
        x = rng.standard_normal((T, B, rnn.input_size))
    else:
        x = as_float_array(who, "x", x, rnn.dtype)
        if x.ndim != 3 or x.shape[2] != rnn.input_size or 0 in x.shape:
            raise ShapeError(f"{who}: expected x of shape (T, N, input_size={rnn.input_size}), "
                             f"got shape {x.shape}.")
        T, B = x.shape[:2]
    x = np.asarray(x, dtype=rnn.dtype)
    if rnn.batch_first:
        raise ConfigError(f"{who}: expected a time-major layer (batch_first=False), got "
                          f"batch_first=True.")
    lstm = rnn.spec.cell_state
    was_training = rnn.training
    saved_grads = {k: v.copy() for k, v in rnn.gradients().items()}
    rnn.eval()
    try:
        # 1. the states s_0 .. s_T of every layer, one step at a time
        hs = np.zeros((T + 1, L, B, H), rnn.dtype)
        cs = np.zeros_like(hs) if lstm else None
        state = None
        with no_grad():
            for t in range(T):
                _, state = rnn(x[t:t + 1], state)
                if lstm:
                    hs[t + 1], cs[t + 1] = state
                else:
                    hs[t + 1] = state
        # 2. one batch of T runs: run j (k = j + 1 steps) reads x[T-k:] from state s_{T-k}
        ks = np.arange(1, T + 1)                                                 # (T,)
        X = np.zeros((T, T * B, rnn.input_size), rnn.dtype)                     # right-padded
        for j, k in enumerate(ks):
            X[:k, j * B:(j + 1) * B] = x[T - k:]
        starts = np.repeat(T - ks, B)                                            # (T*B,)
        cols = np.tile(np.arange(B), T)                                          # (T*B,)
        h0 = hs[starts, :, cols].transpose(1, 0, 2)                              # (L, T*B, H)
        s0 = (h0, cs[starts, :, cols].transpose(1, 0, 2)) if lstm else h0
        g = rng.standard_normal((B, H))
        g /= np.linalg.norm(g, axis=1, keepdims=True)                            # unit rows
        dh_n = np.zeros((L, T * B, H), rnn.dtype)
        dh_n[-1] = np.tile(g, (T, 1))                 # the loss reads the top layer's h_T
        with enable_grad():
            rnn(X, s0, np.repeat(ks, B))
            _, ds0 = rnn.backward(None, (dh_n, None) if lstm else dh_n)
    finally:
        rnn.train(was_training)
        for k, v in rnn.gradients().items():    # leave the caller's gradients as they were
            v[...] = saved_grads[k]
    parts = state_arrays(ds0)
    sq = sum((np.asarray(p, np.float64) ** 2).sum(axis=(0, 2)) for p in parts)  # (T*B,)
    norms = np.sqrt(sq).reshape(T, B).mean(axis=1)                               # (T,) k=1..T
    return np.concatenate([[1.0], norms])
