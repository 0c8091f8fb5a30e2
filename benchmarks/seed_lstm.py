"""Naive NumPy LSTM baseline for ``rnnkit bench``: the practice-notebook style, float64.

rnnkit grew out of a small practice notebook ("Recurrent Neural Network from Scratch") that
defines ``sigmoid``, ``softmax``, ``rnn_cell``, ``rnn_forward``, ``lstm_cell`` and an
``lstm_forward`` it never finishes. This module is rnnkit's own rewrite of that notebook's
LSTM forward pass, kept as the "what you would write first" baseline the benchmark compares
the library against. It does the same work per time step as the notebook's loop:

* features-first arrays: ``x`` is ``(n_x, m, T_x)``, states are ``(n_a, m)``;
* a parameter dict with the notebook's keys: gate weights ``Wf, Wi, Wc, Wo`` of shape
  ``(n_a, n_a + n_x)`` acting on the hidden state stacked above the input, ``[a_prev; x_t]``
  (written into one buffer by slices, no ``np.concatenate`` call), biases ``bf, bi, bc, bo``
  ``(n_a, 1)``, output ``Wy (n_y, n_a)``, ``by (n_y, 1)``;
* per step: four separate gate products with that stacked buffer, the logistic function as
  ``1 / (1 + exp(-z))``, the cell and hidden updates, a softmax output per step that shifts
  by ONE maximum over the whole ``(n_y, m)`` block (the notebook's choice, not one per
  column), and a 10-field cache tuple per step;
* ``lstm_forward`` starts the cell state at zero and returns ``(a, y, c, (caches, x))``.

Used by ``rnnkit bench`` only (``rnnkit.bench`` loads it by path); do not import it from the
library - ``rnnkit.scratch`` is the library's version of this API.
"""

import numpy as np


def sigmoid(z):
    """Elementwise logistic function, in the plain form 1 / (1 + e^-z) (no overflow guard)."""
    return 1.0 / (1.0 + np.exp(-z))


def softmax(z):
    """Normalise exp over axis 0 after subtracting the single largest entry of ``z``."""
    weights = np.exp(z - z.max())
    return weights / weights.sum(axis=0)


def lstm_cell(xt, a_prev, c_prev, parameters):
    """One LSTM step; returns ``(a_next, c_next, yt_pred, cache)``.

    ``cache`` is ``(a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters)``.
    """
    n_a = a_prev.shape[0]
    stacked = np.empty((n_a + xt.shape[0], xt.shape[1]))     # [a_prev; xt], hidden state first
    stacked[:n_a] = a_prev
    stacked[n_a:] = xt

    def gate(name):                                           # W<name> @ [a_prev; xt] + b<name>
        return parameters["W" + name] @ stacked + parameters["b" + name]

    forget = sigmoid(gate("f"))
    update = sigmoid(gate("i"))
    candidate = np.tanh(gate("c"))
    c_next = forget * c_prev + update * candidate
    out_gate = sigmoid(gate("o"))
    a_next = out_gate * np.tanh(c_next)
    yt_pred = softmax(parameters["Wy"] @ a_next + parameters["by"])
    cache = (a_next, c_next, a_prev, c_prev, forget, update, candidate, out_gate, xt, parameters)
    return a_next, c_next, yt_pred, cache


def lstm_forward(x, a0, parameters):
    """Run :func:`lstm_cell` over the last axis of ``x``; the cell state starts at zero.

    Returns ``(a, y, c, (caches, x))`` with ``a, c`` of shape ``(n_a, m, T_x)``,
    ``y`` of shape ``(n_y, m, T_x)`` and one cache per step.
    """
    m, steps = x.shape[1], x.shape[2]
    n_y, n_a = parameters["Wy"].shape
    hidden = np.zeros((n_a, m, steps))
    cells = np.zeros((n_a, m, steps))
    probs = np.zeros((n_y, m, steps))
    history = []
    state = (a0, np.zeros((n_a, m)))
    for t in range(steps):
        h, cell, probs[..., t], step_cache = lstm_cell(x[..., t], state[0], state[1], parameters)
        hidden[..., t] = h
        cells[..., t] = cell
        history.append(step_cache)
        state = (h, cell)
    return hidden, probs, cells, (history, x)


def init_parameters(n_x, n_a, n_y, seed=42):
    """Random parameters with the notebook's names and shapes (float64, like the notebook)."""
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(n_a)
    p = {}
    for name in ('Wf', 'Wi', 'Wo', 'Wc'):
        p[name] = rng.uniform(-k, k, (n_a, n_a + n_x))
    for name in ('bf', 'bi', 'bo', 'bc'):
        p[name] = rng.uniform(-k, k, (n_a, 1))
    p['Wy'] = rng.uniform(-k, k, (n_y, n_a))
    p['by'] = np.zeros((n_y, 1))
    return p
