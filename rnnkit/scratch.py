"""The seed notebook's RNN / LSTM API, completed and exact, plus a GRU in the same style.

This module is written for learners: every function is a literal transcription of the
equations in its docstring, in float64, with the notebook's names and layout. It is also the
independent oracle that rnnkit's fast core (:mod:`rnnkit.cells`, :mod:`rnnkit.sequence`,
:mod:`rnnkit.nn`) is tested against, so it stays simple on purpose: no fused matrices, no
workspaces, no cleverness.

Layout (features first, as in the notebook)
-------------------------------------------
==========  ======================  =============================================
name        shape                   meaning
==========  ======================  =============================================
``xt``      ``(n_x, m)``            input at one time step (``m`` = batch size)
``x``       ``(n_x, m, T_x)``       a whole input sequence
``a_prev``  ``(n_a, m)``            hidden state before the step (``a0`` at t=0)
``a``       ``(n_a, m, T_x)``       hidden states of every step
``c``       ``(n_a, m, T_x)``       LSTM cell states of every step
``y``       ``(n_y, m, T_x)``       softmax outputs of every step
==========  ======================  =============================================

PyTorch (and the rest of rnnkit) is time-major ``(T, N, D)``: ``x_torch = x.transpose(2, 1, 0)``.

Parameter dicts (notebook keys)
-------------------------------
* RNN: ``Wax (n_a, n_x)``, ``Waa (n_a, n_a)``, ``ba (n_a, 1)``, ``Wya (n_y, n_a)``, ``by (n_y, 1)``.
* LSTM: ``Wf, Wi, Wc, Wo (n_a, n_a + n_x)`` acting on ``concat = [a_prev; xt]`` (a first),
  ``bf, bi, bc, bo (n_a, 1)``, ``Wy (n_y, n_a)``, ``by (n_y, 1)``.
* GRU (PyTorch's equations): ``Wr, Wz (n_a, n_a + n_x)`` on ``[a_prev; xt]``, ``br, bz (n_a, 1)``;
  the candidate keeps its input and hidden parts apart because the reset gate multiplies only
  the hidden part: ``Wnx (n_a, n_x)``, ``bnx (n_a, 1)``, ``Wna (n_a, n_a)``, ``bna (n_a, 1)``;
  output ``Wy (n_y, n_a)``, ``by (n_y, 1)``.

Backward functions
------------------
The ``*_backward`` functions follow the course style: they receive ``da`` (and ``dc``), the
gradient of some loss with respect to the **hidden states**, and return the gradients of the
inputs, initial states and recurrent parameters. They do **not** backpropagate through the
output softmax layer: ``y`` is a side output, and ``Wya``/``Wy``/``by`` get no gradient. To
train the output layer, compute its gradient yourself and add ``Wy.T @ dz_y`` to ``da``.

Examples
--------
>>> import numpy as np
>>> from rnnkit.scratch import rnn_forward, rnn_backward
>>> rng = np.random.default_rng(0)
>>> p = {"Wax": rng.standard_normal((5, 3)), "Waa": rng.standard_normal((5, 5)),
...      "ba": rng.standard_normal((5, 1)), "Wya": rng.standard_normal((2, 5)),
...      "by": rng.standard_normal((2, 1))}
>>> x, a0 = rng.standard_normal((3, 10, 4)), np.zeros((5, 10))
>>> a, y, caches = rnn_forward(x, a0, p)
>>> a.shape, y.shape
((5, 10, 4), (2, 10, 4))
>>> grads = rnn_backward(np.ones_like(a), caches)
>>> sorted(grads)
['dWaa', 'dWax', 'da0', 'dba', 'dx']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from ._validate import as_float_array, check_choice, check_shape, fmt_shape, require_keys
from .errors import ConfigError, ShapeError

__all__ = [
    "sigmoid", "softmax",
    "RNNCache", "LSTMCache", "GRUCache",
    "rnn_cell", "rnn_cell_forward", "rnn_forward", "rnn_cell_backward", "rnn_backward",
    "lstm_cell", "lstm_cell_forward", "lstm_forward", "lstm_cell_backward", "lstm_backward",
    "gru_cell", "gru_cell_forward", "gru_forward", "gru_cell_backward", "gru_backward",
    "check_parameters",
]

_BIAS_HINT = "Biases are column vectors: reshape a 1-D bias b with b.reshape(-1, 1)."


# ----------------------------------------------------------------------------------------
# Activation helpers
# ----------------------------------------------------------------------------------------

def sigmoid(x):
    """Logistic function ``sigmoid(x) = 1 / (1 + exp(-x))``, elementwise, float64.

    Numerically stable: ``exp`` is only ever evaluated at non-positive numbers,

        x >= 0:  sigmoid(x) = 1 / (1 + exp(-x))
        x <  0:  sigmoid(x) = exp(x) / (1 + exp(x))

    so nothing overflows (``sigmoid(1000.0) == 1.0``, ``sigmoid(-1000.0) == 0.0``, no warning)
    and every result is correctly rounded to within an ulp or two.

    >>> sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    array([0. , 0.5, 1. ])
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    pos = x >= 0
    neg = ~pos                     # NaN lands here and stays NaN
    with np.errstate(under="ignore"):  # exp(-1000) = 0 exactly; underflow is not an error here
        out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
        e = np.exp(x[neg])
        out[neg] = e / (1.0 + e)
    return out if out.ndim else out[()]


def softmax(x):
    """Softmax over axis 0 (the class axis), one column (example) at a time, float64.

        softmax(x)[k, j] = exp(x[k, j] - max_k x[k, j]) / sum_k exp(x[k, j] - max_k x[k, j])

    Each column's own maximum is subtracted, so every column is exact even when the columns
    live on very different scales. (The notebook subtracts one global maximum; a column far
    below the others then underflows to 0/0 = NaN.)

    >>> softmax(np.array([[1000.0, -1000.0], [1001.0, -1001.0]])).round(4)
    array([[0.2689, 0.7311],
           [0.7311, 0.2689]])
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0:
        raise ShapeError("softmax: expected x with at least 1 dimension (classes first), got a "
                         "0-D scalar. Pass an array of shape (n_y,) or (n_y, m).")
    col_max = x.max(axis=0, keepdims=True)           # (1, m): the largest score of each column
    with np.errstate(under="ignore"):
        unnorm = np.exp(x - col_max)                 # (n_y, m), each column's largest entry is 1
    return unnorm / np.sum(unnorm, axis=0, keepdims=True)


# ----------------------------------------------------------------------------------------
# Vanilla RNN
# ----------------------------------------------------------------------------------------

class RNNCache(NamedTuple):
    """Values saved by :func:`rnn_cell` for :func:`rnn_cell_backward`.

    The first four fields are the notebook's cache ``(a_next, yt_pred, xt, parameters)``;
    ``a_prev`` is added because ``dWaa = dz @ a_prev.T`` needs it.
    """
    a_next: np.ndarray       # (n_a, m)
    yt_pred: np.ndarray      # (n_y, m)
    xt: np.ndarray           # (n_x, m)
    parameters: dict
    a_prev: np.ndarray       # (n_a, m)


def _rnn_step(xt, a_prev, p):
    pre_act = p["Waa"] @ a_prev + p["Wax"] @ xt + p["ba"]   # (n_a, m)
    h_new = np.tanh(pre_act)                                # a_next, (n_a, m)
    probs = softmax(p["Wya"] @ h_new + p["by"])             # yt_pred, (n_y, m)
    return h_new, probs, RNNCache(h_new, probs, xt, p, a_prev)


def rnn_cell(xt: np.ndarray, a_prev: np.ndarray, parameters: Mapping) -> tuple:
    """One step of a vanilla RNN.

    Equations::

        a_next  = tanh(Waa @ a_prev + Wax @ xt + ba)      # (n_a, m)
        yt_pred = softmax(Wya @ a_next + by)              # (n_y, m)

    Args:
        xt: input at this step, ``(n_x, m)``.
        a_prev: previous hidden state, ``(n_a, m)``.
        parameters: dict with ``Wax (n_a, n_x)``, ``Waa (n_a, n_a)``, ``ba (n_a, 1)``,
            ``Wya (n_y, n_a)``, ``by (n_y, 1)``.

    Returns:
        ``(a_next, yt_pred, cache)``; ``cache`` is an :class:`RNNCache`
        ``(a_next, yt_pred, xt, parameters, a_prev)``.

    Raises:
        ShapeError: wrong shapes (a ``ValueError``).
        ParameterKeyError: missing keys (a ``KeyError``).

    >>> p = {"Wax": np.ones((2, 3)), "Waa": np.eye(2), "ba": np.zeros((2, 1)),
    ...      "Wya": np.ones((1, 2)), "by": np.zeros((1, 1))}
    >>> a_next, yt, cache = rnn_cell(np.zeros((3, 4)), np.zeros((2, 4)), p)
    >>> a_next.shape, yt.shape
    ((2, 4), (1, 4))
    """
    who = "rnn_cell"
    p, n_x, n_a, _ = _check_rnn_parameters(who, parameters)
    xt, a_prev, _ = _check_step_inputs(who, n_x, n_a, xt, a_prev)
    return _rnn_step(xt, a_prev, p)


rnn_cell_forward = rnn_cell


def rnn_forward(x: np.ndarray, a0: np.ndarray, parameters: Mapping) -> tuple:
    """Run a vanilla RNN over a whole sequence.

    For t = 0 .. T_x-1::

        a<t>    = tanh(Waa @ a<t-1> + Wax @ x<t> + ba)    # a<-1> = a0
        y<t>    = softmax(Wya @ a<t> + by)

    Args:
        x: inputs ``(n_x, m, T_x)``; ``x[:, :, t]`` is step t.
        a0: initial hidden state ``(n_a, m)``.
        parameters: as for :func:`rnn_cell`.

    Returns:
        ``(a, y_pred, caches)`` with ``a (n_a, m, T_x)``, ``y_pred (n_y, m, T_x)`` and
        ``caches = (list_of_caches, x)``: one :class:`RNNCache` per step.

    >>> p = {"Wax": np.ones((2, 3)), "Waa": np.eye(2), "ba": np.zeros((2, 1)),
    ...      "Wya": np.ones((1, 2)), "by": np.zeros((1, 1))}
    >>> a, y, caches = rnn_forward(np.zeros((3, 4, 6)), np.zeros((2, 4)), p)
    >>> a.shape, y.shape, len(caches[0])
    ((2, 4, 6), (1, 4, 6), 6)
    """
    who = "rnn_forward"
    p, n_x, n_a, n_y = _check_rnn_parameters(who, parameters)
    x, a0, m = _check_sequence_inputs(who, n_x, n_a, x, a0)
    T_x = x.shape[2]

    a = np.zeros((n_a, m, T_x))            # filled one time slice per step
    y_pred = np.zeros((n_y, m, T_x))
    step_caches = []
    h = a0                                 # the running hidden state
    for t in range(T_x):
        h, probs, step_cache = _rnn_step(x[:, :, t], h, p)
        a[..., t], y_pred[..., t] = h, probs
        step_caches.append(step_cache)
    return a, y_pred, (step_caches, x)


def _rnn_step_backward(da_next, cache):
    a_next, _, xt, p, a_prev = cache
    dz = da_next * (1.0 - a_next ** 2)            # (n_a, m)  gradient before tanh
    return {
        "dxt": p["Wax"].T @ dz,                   # (n_x, m)
        "da_prev": p["Waa"].T @ dz,               # (n_a, m)
        "dWax": dz @ xt.T,                        # (n_a, n_x)
        "dWaa": dz @ a_prev.T,                    # (n_a, n_a)
        "dba": dz.sum(axis=1, keepdims=True),     # (n_a, 1)
    }


def rnn_cell_backward(da_next: np.ndarray, cache: RNNCache) -> dict:
    """Backward pass of one :func:`rnn_cell` step.

    ``da_next`` is dL/da_next, the gradient on the hidden state; the output softmax
    ``yt_pred`` is **not** backpropagated (``Wya``/``by`` get no gradient). Equations::

        dz      = da_next * (1 - a_next**2)           # (n_a, m)  through tanh
        dxt     = Wax.T @ dz                          # (n_x, m)
        da_prev = Waa.T @ dz                          # (n_a, m)
        dWax    = dz @ xt.T                           # (n_a, n_x)
        dWaa    = dz @ a_prev.T                       # (n_a, n_a)
        dba     = sum_over_m(dz)                      # (n_a, 1)

    Returns:
        dict with keys ``dxt, da_prev, dWax, dWaa, dba``.
    """
    who = "rnn_cell_backward"
    cache = _as_cache(who, cache, RNNCache,
                      "The notebook's 4-field cache lacks a_prev; use rnnkit.scratch.rnn_cell.")
    da_next = _array(who, "da_next", da_next, (("n_a", cache.a_next.shape[0]), ("m", cache.a_next.shape[1])))
    return _rnn_step_backward(da_next, cache)


def rnn_backward(da: np.ndarray, caches: tuple) -> dict:
    """Backpropagation through time for :func:`rnn_forward`.

    ``da (n_a, m, T_x)`` is the upstream gradient on every hidden state ``a<t>`` (e.g. from
    a loss on ``a``, or ``Wya.T @ dz_y`` computed by you); the output softmax is **not**
    backpropagated. Going backwards in time, the gradient reaching step t is its own
    ``da[:, :, t]`` plus what step t+1 sends back::

        da_prevt = 0
        for t = T_x-1 .. 0:
            g = rnn_cell_backward(da[:, :, t] + da_prevt, caches[t])
            dx[:, :, t] = g["dxt"];  da_prevt = g["da_prev"]
            dWax += g["dWax"];  dWaa += g["dWaa"];  dba += g["dba"]
        da0 = da_prevt

    Returns:
        dict with keys ``dx (n_x, m, T_x), da0 (n_a, m), dWax, dWaa, dba``.

    The gradient of ``L = sum(a * da)`` with respect to one weight, against a central finite
    difference:

    >>> rng = np.random.default_rng(0)
    >>> p = {"Wax": rng.normal(size=(4, 3)), "Waa": rng.normal(size=(4, 4)) / 2,
    ...      "ba": rng.normal(size=(4, 1)), "Wya": rng.normal(size=(2, 4)), "by": np.zeros((2, 1))}
    >>> x, a0 = rng.normal(size=(3, 5, 6)), rng.normal(size=(4, 5))
    >>> a, y, caches = rnn_forward(x, a0, p)
    >>> da = rng.normal(size=a.shape)
    >>> g = rnn_backward(da, caches)
    >>> def loss(Waa):
    ...     return float(np.sum(rnn_forward(x, a0, dict(p, Waa=Waa))[0] * da))
    >>> E = np.zeros((4, 4)); E[1, 2] = 1e-6
    >>> fd = (loss(p["Waa"] + E) - loss(p["Waa"] - E)) / 2e-6
    >>> bool(abs(fd - g["dWaa"][1, 2]) < 1e-6 * max(1.0, abs(fd)))
    True
    >>> g["dx"].shape, g["da0"].shape
    ((3, 5, 6), (4, 5))
    """
    who = "rnn_backward"
    steps, x = _unpack_caches(who, caches, RNNCache)
    n_x, m, T_x = x.shape
    n_a = steps[0].a_next.shape[0]
    da = _array(who, "da", da, (("n_a", n_a), ("m", m), ("T_x", T_x)))

    p = steps[0].parameters
    dx = np.zeros((n_x, m, T_x))
    dWax, dWaa, dba = np.zeros_like(p["Wax"]), np.zeros_like(p["Waa"]), np.zeros_like(p["ba"])
    da_prevt = np.zeros((n_a, m))
    for t in reversed(range(T_x)):
        g = _rnn_step_backward(da[:, :, t] + da_prevt, steps[t])
        dx[:, :, t] = g["dxt"]
        da_prevt = g["da_prev"]
        dWax += g["dWax"]
        dWaa += g["dWaa"]
        dba += g["dba"]
    return {"dx": dx, "da0": da_prevt, "dWax": dWax, "dWaa": dWaa, "dba": dba}


# ----------------------------------------------------------------------------------------
# LSTM
# ----------------------------------------------------------------------------------------

class LSTMCache(NamedTuple):
    """Values saved by :func:`lstm_cell`, in the notebook's order."""
    a_next: np.ndarray       # (n_a, m)
    c_next: np.ndarray       # (n_a, m)
    a_prev: np.ndarray       # (n_a, m)
    c_prev: np.ndarray       # (n_a, m)
    ft: np.ndarray           # (n_a, m) forget gate
    it: np.ndarray           # (n_a, m) update (input) gate
    cct: np.ndarray          # (n_a, m) candidate c~<t>
    ot: np.ndarray           # (n_a, m) output gate
    xt: np.ndarray           # (n_x, m)
    parameters: dict


def _lstm_step(xt, a_prev, c_prev, p):
    concat = np.vstack((a_prev, xt))                      # [a_prev; xt], (n_a + n_x, m)
    f_gate = sigmoid(p["Wf"] @ concat + p["bf"])          # ft,  (n_a, m)
    i_gate = sigmoid(p["Wi"] @ concat + p["bi"])          # it,  (n_a, m)
    c_tilde = np.tanh(p["Wc"] @ concat + p["bc"])         # cct, (n_a, m)
    o_gate = sigmoid(p["Wo"] @ concat + p["bo"])          # ot,  (n_a, m)
    c_new = f_gate * c_prev + i_gate * c_tilde            # c_next, (n_a, m)
    h_new = o_gate * np.tanh(c_new)                       # a_next, (n_a, m)
    probs = softmax(p["Wy"] @ h_new + p["by"])            # yt_pred, (n_y, m)
    saved = LSTMCache(a_next=h_new, c_next=c_new, a_prev=a_prev, c_prev=c_prev,
                      ft=f_gate, it=i_gate, cct=c_tilde, ot=o_gate, xt=xt, parameters=p)
    return h_new, c_new, probs, saved


def lstm_cell(xt: np.ndarray, a_prev: np.ndarray, c_prev: np.ndarray,
              parameters: Mapping) -> tuple:
    """One step of an LSTM (the notebook's equations).

    With ``concat = [a_prev; xt]`` of shape ``(n_a + n_x, m)`` (hidden state first)::

        ft      = sigmoid(Wf @ concat + bf)           # forget gate      (n_a, m)
        it      = sigmoid(Wi @ concat + bi)           # update gate      (n_a, m)
        cct     = tanh(Wc @ concat + bc)              # candidate c~<t>  (n_a, m)
        c_next  = ft * c_prev + it * cct              # (n_a, m)
        ot      = sigmoid(Wo @ concat + bo)           # output gate      (n_a, m)
        a_next  = ot * tanh(c_next)                   # (n_a, m)
        yt_pred = softmax(Wy @ a_next + by)           # (n_y, m)

    Inputs:
        xt ``(n_x, m)``, a_prev ``(n_a, m)``, c_prev ``(n_a, m)``; parameters with
        ``Wf, Wi, Wc, Wo (n_a, n_a + n_x)``, ``bf, bi, bc, bo (n_a, 1)``, ``Wy (n_y, n_a)``,
        ``by (n_y, 1)``.

    Returns:
        ``(a_next, c_next, yt_pred, cache)``. The :class:`LSTMCache` holds the two new
        states ``a_next, c_next``, the two old ones ``a_prev, c_prev``, the gate values
        ``ft, it, cct, ot``, and finally ``xt`` and ``parameters``.

    >>> p = {k: np.zeros((2, 5)) for k in ("Wf", "Wi", "Wc", "Wo")}
    >>> p.update({k: np.zeros((2, 1)) for k in ("bf", "bi", "bc", "bo")})
    >>> p.update(Wy=np.zeros((4, 2)), by=np.zeros((4, 1)))
    >>> a, c, y, cache = lstm_cell(np.ones((3, 7)), np.zeros((2, 7)), np.ones((2, 7)), p)
    >>> float(c[0, 0]), y.shape
    (0.5, (4, 7))
    """
    who = "lstm_cell"
    p, n_x, n_a, _ = _check_lstm_parameters(who, parameters)
    xt, a_prev, m = _check_step_inputs(who, n_x, n_a, xt, a_prev)
    c_prev = _array(who, "c_prev", c_prev, (("n_a", n_a), ("m", m)))
    return _lstm_step(xt, a_prev, c_prev, p)


lstm_cell_forward = lstm_cell


def lstm_forward(x: np.ndarray, a0: np.ndarray, parameters: Mapping,
                 c0: np.ndarray | None = None) -> tuple:
    """Run an LSTM over a whole sequence (the notebook's unfinished function, completed).

    For t = 0 .. T_x-1::

        a<t>, c<t>, y<t>, cache<t> = lstm_cell(x<t>, a<t-1>, c<t-1>, parameters)

    with ``a<-1> = a0`` and ``c<-1> = 0`` (the notebook's choice). ``c0`` is an optional
    extension: pass an ``(n_a, m)`` array to start from another cell state.

    Inputs:
        x ``(n_x, m, T_x)``, a0 ``(n_a, m)``, parameters as for :func:`lstm_cell`,
        c0 ``(n_a, m)`` or None (zeros).

    Returns:
        ``(a, y, c, caches)``: ``a (n_a, m, T_x)``, ``y (n_y, m, T_x)``, ``c (n_a, m, T_x)``
        and ``caches = (list_of_caches, x)`` with one :class:`LSTMCache` per step.

    >>> p = {k: np.zeros((2, 5)) for k in ("Wf", "Wi", "Wc", "Wo")}
    >>> p.update({k: np.zeros((2, 1)) for k in ("bf", "bi", "bc", "bo")})
    >>> p.update(Wy=np.zeros((4, 2)), by=np.zeros((4, 1)))
    >>> a, y, c, caches = lstm_forward(np.ones((3, 7, 6)), np.zeros((2, 7)), p)
    >>> a.shape, y.shape, c.shape, len(caches[0])
    ((2, 7, 6), (4, 7, 6), (2, 7, 6), 6)
    """
    who = "lstm_forward"
    p, n_x, n_a, n_y = _check_lstm_parameters(who, parameters)
    x, a0, m = _check_sequence_inputs(who, n_x, n_a, x, a0)
    cell = np.zeros((n_a, m)) if c0 is None else _array(who, "c0", c0, (("n_a", n_a), ("m", m)))
    T_x = x.shape[2]

    a = np.zeros((n_a, m, T_x))            # filled one time slice per step
    c = np.zeros((n_a, m, T_x))
    y = np.zeros((n_y, m, T_x))
    step_caches = []
    h = a0                                 # the running hidden state; cell is the running c
    for t in range(T_x):
        h, cell, probs, step_cache = _lstm_step(x[:, :, t], h, cell, p)
        a[..., t], c[..., t], y[..., t] = h, cell, probs
        step_caches.append(step_cache)
    return a, y, c, (step_caches, x)


def _lstm_step_backward(da_next, dc_next, cache):
    ft, it, cct, ot = cache.ft, cache.it, cache.cct, cache.ot        # the four gates
    c_next, c_prev, a_prev, xt = cache.c_next, cache.c_prev, cache.a_prev, cache.xt
    p = cache.parameters
    n_a = a_prev.shape[0]
    tanh_c = np.tanh(c_next)
    dot = da_next * tanh_c * ot * (1.0 - ot)                       # (n_a, m) before sigmoid
    dc = dc_next + da_next * ot * (1.0 - tanh_c ** 2)              # (n_a, m) total dL/dc_next
    dcct = dc * it * (1.0 - cct ** 2)                              # (n_a, m) before tanh
    dit = dc * cct * it * (1.0 - it)                               # (n_a, m) before sigmoid
    dft = dc * c_prev * ft * (1.0 - ft)                            # (n_a, m) before sigmoid
    concat = np.concatenate([a_prev, xt], axis=0)                  # (n_a + n_x, m)
    dconcat = (p["Wf"].T @ dft + p["Wi"].T @ dit                   # (n_a + n_x, m)
               + p["Wc"].T @ dcct + p["Wo"].T @ dot)
    return {
        "dxt": dconcat[n_a:],                                      # (n_x, m)
        "da_prev": dconcat[:n_a],                                  # (n_a, m)
        "dc_prev": dc * ft,                                        # (n_a, m)
        "dWf": dft @ concat.T, "dbf": dft.sum(axis=1, keepdims=True),
        "dWi": dit @ concat.T, "dbi": dit.sum(axis=1, keepdims=True),
        "dWc": dcct @ concat.T, "dbc": dcct.sum(axis=1, keepdims=True),
        "dWo": dot @ concat.T, "dbo": dot.sum(axis=1, keepdims=True),
    }


def lstm_cell_backward(da_next: np.ndarray, dc_next: np.ndarray, cache: LSTMCache) -> dict:
    """Backward pass of one :func:`lstm_cell` step.

    ``da_next`` and ``dc_next`` are dL/da_next and dL/dc_next; the output softmax is **not**
    backpropagated (``Wy``/``by`` get no gradient). With ``concat = [a_prev; xt]``::

        dot   = da_next * tanh(c_next) * ot * (1 - ot)            # output gate, pre-sigmoid
        dc    = dc_next + da_next * ot * (1 - tanh(c_next)**2)    # everything reaching c_next
        dcct  = dc * it * (1 - cct**2)                            # candidate, pre-tanh
        dit   = dc * cct * it * (1 - it)                          # update gate, pre-sigmoid
        dft   = dc * c_prev * ft * (1 - ft)                       # forget gate, pre-sigmoid
        dc_prev = dc * ft
        dW<g> = d<g>t @ concat.T;   db<g> = sum_over_m(d<g>t)     # g in f, i, c, o
        dconcat = Wf.T @ dft + Wi.T @ dit + Wc.T @ dcct + Wo.T @ dot
        da_prev = dconcat[:n_a];    dxt = dconcat[n_a:]

    Returns:
        dict with keys ``dxt, da_prev, dc_prev, dWf, dbf, dWi, dbi, dWc, dbc, dWo, dbo``.
    """
    who = "lstm_cell_backward"
    cache = _as_cache(who, cache, LSTMCache)
    spec = (("n_a", cache.a_next.shape[0]), ("m", cache.a_next.shape[1]))
    da_next = _array(who, "da_next", da_next, spec)
    dc_next = _array(who, "dc_next", dc_next, spec)
    return _lstm_step_backward(da_next, dc_next, cache)


def lstm_backward(da: np.ndarray, caches: tuple) -> dict:
    """Backpropagation through time for :func:`lstm_forward`.

    ``da (n_a, m, T_x)`` is the upstream gradient on every hidden state ``a<t>``; no loss
    acts on the cell states ``c`` directly, so the cell-state gradient starts at 0 after
    the last step. The output softmax is **not** backpropagated::

        da_prevt = 0; dc_prevt = 0
        for t = T_x-1 .. 0:
            g = lstm_cell_backward(da[:, :, t] + da_prevt, dc_prevt, caches[t])
            dx[:, :, t] = g["dxt"]; da_prevt = g["da_prev"]; dc_prevt = g["dc_prev"]
            dW<g> += g["dW<g>"]; db<g> += g["db<g>"]
        da0 = da_prevt; dc0 = dc_prevt

    Returns:
        dict with keys ``dx (n_x, m, T_x), da0 (n_a, m), dc0 (n_a, m)`` and
        ``dWf, dbf, dWi, dbi, dWc, dbc, dWo, dbo``. ``dc0`` is the gradient with respect to
        the initial cell state (zeros unless ``c0`` was passed to :func:`lstm_forward`).

    The gradient of ``L = sum(a * da)`` with respect to the forget gate's weights and the
    initial state, against central finite differences:

    >>> rng = np.random.default_rng(1)
    >>> p = {k: rng.normal(size=(4, 7)) / 2 for k in ("Wf", "Wi", "Wc", "Wo")}
    >>> p.update({k: rng.normal(size=(4, 1)) for k in ("bf", "bi", "bc", "bo")})
    >>> p.update(Wy=rng.normal(size=(2, 4)), by=np.zeros((2, 1)))
    >>> x, a0 = rng.normal(size=(3, 5, 6)), rng.normal(size=(4, 5))
    >>> a, y, c, caches = lstm_forward(x, a0, p)
    >>> da = rng.normal(size=a.shape)
    >>> g = lstm_backward(da, caches)
    >>> def loss(Wf=p["Wf"], a0=a0):
    ...     return float(np.sum(lstm_forward(x, a0, dict(p, Wf=Wf))[0] * da))
    >>> E = np.zeros((4, 7)); E[2, 5] = 1e-6
    >>> fd = (loss(Wf=p["Wf"] + E) - loss(Wf=p["Wf"] - E)) / 2e-6
    >>> bool(abs(fd - g["dWf"][2, 5]) < 1e-6 * max(1.0, abs(fd)))
    True
    >>> e = np.zeros((4, 5)); e[0, 3] = 1e-6
    >>> fd0 = (loss(a0=a0 + e) - loss(a0=a0 - e)) / 2e-6
    >>> bool(abs(fd0 - g["da0"][0, 3]) < 1e-6 * max(1.0, abs(fd0)))
    True
    """
    who = "lstm_backward"
    steps, x = _unpack_caches(who, caches, LSTMCache)
    n_x, m, T_x = x.shape
    n_a = steps[0].a_next.shape[0]
    da = _array(who, "da", da, (("n_a", n_a), ("m", m), ("T_x", T_x)))

    p = steps[0].parameters
    grads = {"dx": np.zeros((n_x, m, T_x)), "da0": None, "dc0": None}
    for g in "fico":
        grads[f"dW{g}"] = np.zeros_like(p[f"W{g}"])
        grads[f"db{g}"] = np.zeros_like(p[f"b{g}"])
    da_prevt = np.zeros((n_a, m))
    dc_prevt = np.zeros((n_a, m))
    for t in reversed(range(T_x)):
        g = _lstm_step_backward(da[:, :, t] + da_prevt, dc_prevt, steps[t])
        grads["dx"][:, :, t] = g["dxt"]
        da_prevt, dc_prevt = g["da_prev"], g["dc_prev"]
        for k in ("dWf", "dbf", "dWi", "dbi", "dWc", "dbc", "dWo", "dbo"):
            grads[k] += g[k]
    grads["da0"], grads["dc0"] = da_prevt, dc_prevt
    return grads


# ----------------------------------------------------------------------------------------
# GRU (PyTorch's equations, notebook style)
# ----------------------------------------------------------------------------------------

class GRUCache(NamedTuple):
    """Values saved by :func:`gru_cell` for :func:`gru_cell_backward`."""
    a_next: np.ndarray       # (n_a, m)
    yt_pred: np.ndarray      # (n_y, m)
    a_prev: np.ndarray       # (n_a, m)
    rt: np.ndarray           # (n_a, m) reset gate
    zt: np.ndarray           # (n_a, m) update gate
    nt: np.ndarray           # (n_a, m) candidate
    hn: np.ndarray           # (n_a, m) Wna @ a_prev + bna (what the reset gate scales)
    xt: np.ndarray           # (n_x, m)
    parameters: dict


_GRU_KEYS = ("Wr", "br", "Wz", "bz", "Wnx", "bnx", "Wna", "bna")


def _gru_step(xt, a_prev, p):
    concat = np.concatenate([a_prev, xt], axis=0)               # (n_a + n_x, m)
    rt = sigmoid(p["Wr"] @ concat + p["br"])                    # (n_a, m)
    zt = sigmoid(p["Wz"] @ concat + p["bz"])                    # (n_a, m)
    hn = p["Wna"] @ a_prev + p["bna"]                           # (n_a, m)
    nt = np.tanh(p["Wnx"] @ xt + p["bnx"] + rt * hn)            # (n_a, m)
    a_next = (1.0 - zt) * nt + zt * a_prev                      # (n_a, m)
    yt_pred = softmax(p["Wy"] @ a_next + p["by"])               # (n_y, m)
    return a_next, yt_pred, GRUCache(a_next, yt_pred, a_prev, rt, zt, nt, hn, xt, p)


def gru_cell(xt: np.ndarray, a_prev: np.ndarray, parameters: Mapping) -> tuple:
    """One step of a GRU with PyTorch's equations (``torch.nn.GRU``), notebook layout.

    With ``concat = [a_prev; xt]`` of shape ``(n_a + n_x, m)``::

        rt      = sigmoid(Wr @ concat + br)                        # reset gate   (n_a, m)
        zt      = sigmoid(Wz @ concat + bz)                        # update gate  (n_a, m)
        nt      = tanh(Wnx @ xt + bnx + rt * (Wna @ a_prev + bna)) # candidate    (n_a, m)
        a_next  = (1 - zt) * nt + zt * a_prev                      # (n_a, m)
        yt_pred = softmax(Wy @ a_next + by)                        # (n_y, m)

    The reset gate scales only the hidden part of the candidate, bias ``bna`` included, so
    the candidate has separate input (``Wnx (n_a, n_x)``, ``bnx``) and hidden (``Wna (n_a,
    n_a)``, ``bna``) parameters. ``Wr, Wz`` are ``(n_a, n_a + n_x)``; all biases ``(n_a, 1)``.

    Returns:
        ``(a_next, yt_pred, cache)``; ``cache`` is a :class:`GRUCache`
        ``(a_next, yt_pred, a_prev, rt, zt, nt, hn, xt, parameters)``.

    >>> p = {"Wr": np.zeros((2, 5)), "Wz": np.zeros((2, 5)), "Wnx": np.zeros((2, 3)),
    ...      "Wna": np.zeros((2, 2)), "Wy": np.zeros((4, 2)), "by": np.zeros((4, 1))}
    >>> p.update({k: np.zeros((2, 1)) for k in ("br", "bz", "bnx", "bna")})
    >>> a, y, cache = gru_cell(np.ones((3, 7)), np.ones((2, 7)), p)
    >>> float(a[0, 0])    # z = 0.5, n = 0: half the previous state survives
    0.5
    """
    who = "gru_cell"
    p, n_x, n_a, _ = _check_gru_parameters(who, parameters)
    xt, a_prev, _ = _check_step_inputs(who, n_x, n_a, xt, a_prev)
    return _gru_step(xt, a_prev, p)


gru_cell_forward = gru_cell


def gru_forward(x: np.ndarray, a0: np.ndarray, parameters: Mapping) -> tuple:
    """Run a GRU (:func:`gru_cell`) over a whole sequence.

    For t = 0 .. T_x-1: ``a<t>, y<t>, cache<t> = gru_cell(x<t>, a<t-1>, parameters)``,
    with ``a<-1> = a0``.

    Returns:
        ``(a, y, caches)``: ``a (n_a, m, T_x)``, ``y (n_y, m, T_x)`` and
        ``caches = (list_of_caches, x)`` with one :class:`GRUCache` per step.

    With every weight zero, the update gate is 1/2 and the candidate 0, so each step halves
    the state (``a<t> = a<t-1> / 2``):

    >>> p = {k: np.zeros((2, 5)) for k in ("Wr", "Wz")}
    >>> p.update(Wnx=np.zeros((2, 3)), Wna=np.zeros((2, 2)), Wy=np.zeros((4, 2)))
    >>> p.update({k: np.zeros((2, 1)) for k in ("br", "bz", "bnx", "bna")}, by=np.zeros((4, 1)))
    >>> a, y, caches = gru_forward(np.ones((3, 1, 4)), np.array([[8.0], [-8.0]]), p)
    >>> a[:, 0, :]
    array([[ 4. ,  2. ,  1. ,  0.5],
           [-4. , -2. , -1. , -0.5]])
    """
    who = "gru_forward"
    p, n_x, n_a, n_y = _check_gru_parameters(who, parameters)
    x, a0, m = _check_sequence_inputs(who, n_x, n_a, x, a0)
    T_x = x.shape[2]

    a = np.zeros((n_a, m, T_x))            # filled one time slice per step
    y = np.zeros((n_y, m, T_x))
    step_caches = []
    h = a0                                 # the running hidden state
    for t in range(T_x):
        h, probs, step_cache = _gru_step(x[:, :, t], h, p)
        a[..., t], y[..., t] = h, probs
        step_caches.append(step_cache)
    return a, y, (step_caches, x)


def _gru_step_backward(da_next, cache):
    a_next, _, a_prev, rt, zt, nt, hn, xt, p = cache
    n_a = a_next.shape[0]
    dzt = da_next * (a_prev - nt) * zt * (1.0 - zt)              # (n_a, m) pre-sigmoid
    dnt = da_next * (1.0 - zt) * (1.0 - nt ** 2)                 # (n_a, m) pre-tanh
    dhn = dnt * rt                                               # (n_a, m) on Wna@a_prev+bna
    drt = dnt * hn * rt * (1.0 - rt)                             # (n_a, m) pre-sigmoid
    concat = np.concatenate([a_prev, xt], axis=0)                # (n_a + n_x, m)
    dconcat = p["Wr"].T @ drt + p["Wz"].T @ dzt                  # (n_a + n_x, m)
    return {
        "dxt": p["Wnx"].T @ dnt + dconcat[n_a:],                 # (n_x, m)
        "da_prev": da_next * zt + p["Wna"].T @ dhn + dconcat[:n_a],  # (n_a, m)
        "dWr": drt @ concat.T, "dbr": drt.sum(axis=1, keepdims=True),
        "dWz": dzt @ concat.T, "dbz": dzt.sum(axis=1, keepdims=True),
        "dWnx": dnt @ xt.T, "dbnx": dnt.sum(axis=1, keepdims=True),
        "dWna": dhn @ a_prev.T, "dbna": dhn.sum(axis=1, keepdims=True),
    }


def gru_cell_backward(da_next: np.ndarray, cache: GRUCache) -> dict:
    """Backward pass of one :func:`gru_cell` step.

    ``da_next`` is dL/da_next; the output softmax is **not** backpropagated (``Wy``/``by``
    get no gradient). With ``concat = [a_prev; xt]`` and ``hn = Wna @ a_prev + bna``::

        dzt   = da_next * (a_prev - nt) * zt * (1 - zt)     # update gate, pre-sigmoid
        dnt   = da_next * (1 - zt) * (1 - nt**2)            # candidate, pre-tanh
        dhn   = dnt * rt                                    # hidden part of the candidate
        drt   = dnt * hn * rt * (1 - rt)                    # reset gate, pre-sigmoid
        dWr   = drt @ concat.T;   dbr  = sum_over_m(drt)
        dWz   = dzt @ concat.T;   dbz  = sum_over_m(dzt)
        dWnx  = dnt @ xt.T;       dbnx = sum_over_m(dnt)
        dWna  = dhn @ a_prev.T;   dbna = sum_over_m(dhn)
        dconcat = Wr.T @ drt + Wz.T @ dzt
        da_prev = da_next * zt + Wna.T @ dhn + dconcat[:n_a]
        dxt     = Wnx.T @ dnt + dconcat[n_a:]

    Returns:
        dict with keys ``dxt, da_prev, dWr, dbr, dWz, dbz, dWnx, dbnx, dWna, dbna``.
    """
    who = "gru_cell_backward"
    cache = _as_cache(who, cache, GRUCache)
    da_next = _array(who, "da_next", da_next, (("n_a", cache.a_next.shape[0]), ("m", cache.a_next.shape[1])))
    return _gru_step_backward(da_next, cache)


def gru_backward(da: np.ndarray, caches: tuple) -> dict:
    """Backpropagation through time for :func:`gru_forward`.

    ``da (n_a, m, T_x)`` is the upstream gradient on every hidden state; the output softmax is
    **not** backpropagated. The gradient reaching step t is ``da[:, :, t]`` plus ``da_prev``
    from step t+1 (as in :func:`rnn_backward`); ``da0`` is what reaches ``a0``.

    Returns:
        dict with keys ``dx (n_x, m, T_x), da0 (n_a, m), dWr, dbr, dWz, dbz, dWnx, dbnx,
        dWna, dbna``.

    >>> rng = np.random.default_rng(2)
    >>> p = {k: rng.normal(size=(4, 7)) / 2 for k in ("Wr", "Wz")}
    >>> p.update(Wnx=rng.normal(size=(4, 3)), Wna=rng.normal(size=(4, 4)) / 2)
    >>> p.update({k: rng.normal(size=(4, 1)) for k in ("br", "bz", "bnx", "bna")})
    >>> p.update(Wy=rng.normal(size=(2, 4)), by=np.zeros((2, 1)))
    >>> x, a0 = rng.normal(size=(3, 5, 6)), rng.normal(size=(4, 5))
    >>> a, y, caches = gru_forward(x, a0, p)
    >>> da = rng.normal(size=a.shape)
    >>> g = gru_backward(da, caches)
    >>> E = np.zeros((4, 4)); E[3, 1] = 1e-6
    >>> L = lambda W: float(np.sum(gru_forward(x, a0, dict(p, Wna=W))[0] * da))
    >>> fd = (L(p["Wna"] + E) - L(p["Wna"] - E)) / 2e-6
    >>> bool(abs(fd - g["dWna"][3, 1]) < 1e-6 * max(1.0, abs(fd)))
    True
    """
    who = "gru_backward"
    steps, x = _unpack_caches(who, caches, GRUCache)
    n_x, m, T_x = x.shape
    n_a = steps[0].a_next.shape[0]
    da = _array(who, "da", da, (("n_a", n_a), ("m", m), ("T_x", T_x)))

    p = steps[0].parameters
    grads = {"dx": np.zeros((n_x, m, T_x)), "da0": None}
    for k in _GRU_KEYS:
        grads["d" + k] = np.zeros_like(p[k])
    da_prevt = np.zeros((n_a, m))
    for t in reversed(range(T_x)):
        g = _gru_step_backward(da[:, :, t] + da_prevt, steps[t])
        grads["dx"][:, :, t] = g["dxt"]
        da_prevt = g["da_prev"]
        for k in _GRU_KEYS:
            grads["d" + k] += g["d" + k]
    grads["da0"] = da_prevt
    return grads


# ----------------------------------------------------------------------------------------
# Argument checks (each public function above checks its arguments once, here, and then runs
# the plain _step code; they come last so that the equations come first)
# ----------------------------------------------------------------------------------------

def _fetch(who, parameters, keys):
    """Return ``dict(parameters)`` with ``keys`` present and converted to float64 arrays."""
    require_keys(who, "parameters", parameters, keys)
    p = dict(parameters)
    for k in keys:
        p[k] = as_float_array(who, f"parameters['{k}']", parameters[k], dtype=np.float64)
    return p


def _check_bias(who, key, b, n):
    """A bias must be a column vector (n, 1), as in the notebook."""
    if b.shape != (n, 1):
        want = f"(n_a={n}, 1)" if key != "by" else f"(n_y={n}, 1)"
        raise ShapeError(f"{who}: expected parameters['{key}'] of shape {want}, got shape "
                         f"{fmt_shape(b.shape)}. {_BIAS_HINT}")


def _array(who, name, value, expected, hint=""):
    arr = as_float_array(who, name, value, dtype=np.float64)
    check_shape(who, name, arr, expected, hint)
    return arr


def _check_rnn_parameters(who, parameters, with_output=True):
    """Validate an RNN dict; return ``(p, n_x, n_a, n_y)`` (n_y is None without output)."""
    keys = ["Wax", "Waa", "ba"] + (["Wya", "by"] if with_output else [])
    p = _fetch(who, parameters, keys)
    check_shape(who, "parameters['Wax']", p["Wax"], (("n_a", None), ("n_x", None)))
    n_a, n_x = p["Wax"].shape
    check_shape(who, "parameters['Waa']", p["Waa"], (("n_a", n_a), ("n_a", n_a)))
    _check_bias(who, "ba", p["ba"], n_a)
    n_y = None
    if with_output:
        check_shape(who, "parameters['Wya']", p["Wya"], (("n_y", None), ("n_a", n_a)))
        n_y = p["Wya"].shape[0]
        _check_bias(who, "by", p["by"], n_y)
    return p, n_x, n_a, n_y


def _check_concat_weights(who, p, weight_keys, bias_keys):
    """Check gate weights (n_a, n_a + n_x) on [a; x] and their (n_a, 1) biases."""
    first = weight_keys[0]
    check_shape(who, f"parameters['{first}']", p[first], (("n_a", None), ("n_a+n_x", None)))
    n_a, n_ax = p[first].shape
    n_x = n_ax - n_a
    if n_x < 1:
        raise ShapeError(f"{who}: expected parameters['{first}'] of shape (n_a, n_a+n_x) with "
                         f"n_x >= 1 (it acts on concat = [a_prev; xt]), got shape "
                         f"{fmt_shape(p[first].shape)}.")
    for k in weight_keys[1:]:
        check_shape(who, f"parameters['{k}']", p[k], (("n_a", n_a), ("n_a+n_x", n_ax)))
    for k in bias_keys:
        _check_bias(who, k, p[k], n_a)
    return n_x, n_a


def _check_output(who, p, n_a):
    check_shape(who, "parameters['Wy']", p["Wy"], (("n_y", None), ("n_a", n_a)))
    n_y = p["Wy"].shape[0]
    _check_bias(who, "by", p["by"], n_y)
    return n_y


_LSTM_WEIGHTS = ("Wf", "Wi", "Wc", "Wo")
_LSTM_BIASES = ("bf", "bi", "bc", "bo")


def _check_lstm_parameters(who, parameters, with_output=True):
    keys = list(_LSTM_WEIGHTS + _LSTM_BIASES) + (["Wy", "by"] if with_output else [])
    p = _fetch(who, parameters, keys)
    n_x, n_a = _check_concat_weights(who, p, _LSTM_WEIGHTS, _LSTM_BIASES)
    n_y = _check_output(who, p, n_a) if with_output else None
    return p, n_x, n_a, n_y


def _check_gru_parameters(who, parameters, with_output=True):
    keys = ["Wr", "br", "Wz", "bz", "Wnx", "bnx", "Wna", "bna"] + (["Wy", "by"] if with_output else [])
    p = _fetch(who, parameters, keys)
    n_x, n_a = _check_concat_weights(who, p, ("Wr", "Wz"), ("br", "bz"))
    check_shape(who, "parameters['Wnx']", p["Wnx"], (("n_a", n_a), ("n_x", n_x)))
    check_shape(who, "parameters['Wna']", p["Wna"], (("n_a", n_a), ("n_a", n_a)))
    for k in ("bnx", "bna"):
        _check_bias(who, k, p[k], n_a)
    n_y = _check_output(who, p, n_a) if with_output else None
    return p, n_x, n_a, n_y


def _check_step_inputs(who, n_x, n_a, xt, a_prev):
    xt = _array(who, "xt", xt, (("n_x", n_x), ("m", None)))
    m = xt.shape[1]
    a_prev = _array(who, "a_prev", a_prev, (("n_a", n_a), ("m", m)))
    return xt, a_prev, m


def _check_sequence_inputs(who, n_x, n_a, x, a0):
    x = _array(who, "x", x, (("n_x", n_x), ("m", None), ("T_x", None)),
               "The notebook layout is features first: x[:, :, t] is the input at step t.")
    m = x.shape[1]
    a0 = _array(who, "a0", a0, (("n_a", n_a), ("m", m)))
    return x, a0, m


def _as_cache(who, cache, cls, hint=""):
    if isinstance(cache, cls):
        return cache
    if isinstance(cache, tuple) and len(cache) == len(cls._fields):
        return cls(*cache)
    got = f"a tuple of length {len(cache)}" if isinstance(cache, tuple) else type(cache).__name__
    raise ConfigError(f"{who}: expected cache to be the {cls.__name__} {cls._fields} as returned by "
                      f"the matching forward function, got {got}. {hint}".rstrip())


def _unpack_caches(who, caches, cls):
    """Check ``caches = (list_of_caches, x)``; return the list as ``cls`` tuples and x."""
    if not (isinstance(caches, tuple) and len(caches) == 2 and isinstance(caches[0], (list, tuple))):
        raise ConfigError(f"{who}: expected caches = (list_of_caches, x) as returned by the "
                          f"matching *_forward function, got {type(caches).__name__}.")
    steps, x = caches
    steps = [_as_cache(who, c, cls) for c in steps]
    if not steps or np.ndim(x) != 3 or len(steps) != np.shape(x)[2]:
        raise ConfigError(f"{who}: expected caches to hold one cache per time step of x "
                          f"(T_x = x.shape[2]), got {len(steps)} caches and x of shape "
                          f"{fmt_shape(np.shape(x))}. Pass the caches returned by *_forward unchanged.")
    return steps, x



_PARAMETER_CHECKS = {"rnn": _check_rnn_parameters, "lstm": _check_lstm_parameters,
                     "gru": _check_gru_parameters}


def check_parameters(kind, parameters, with_output=True, who="check_parameters"):
    """Check a notebook parameter dict of ``kind`` ('rnn', 'lstm', 'gru'): every key present,
    shapes consistent (biases as column vectors). Returns ``(float64 dict, n_x, n_a, n_y)``
    (``n_y`` None without the output layer); raises a clear error, from ``who``, naming the
    key otherwise."""
    check_choice(who, "kind", kind, tuple(_PARAMETER_CHECKS))
    return _PARAMETER_CHECKS[kind](who, parameters, with_output)
