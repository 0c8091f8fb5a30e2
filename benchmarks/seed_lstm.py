"""The seed notebook's LSTM, completed in the notebook's own style (the naive NumPy baseline).

Copied from ``shared/seed/notebook.txt`` (cells ``sigmoid``, ``softmax``, ``lstm_cell``); the
notebook stops inside ``lstm_forward`` right after ``a_next = a0``, and the obvious completion
(a loop over t calling ``lstm_cell``, storing a, c, y and the caches) is added below. Layout is
the notebook's: features first, ``x`` (n_x, m, T_x), ``a0`` (n_a, m), weights (n_a, n_a + n_x)
acting on ``concat = [a_prev; x_t]``. Used by ``rnnkit bench`` only; do not import it from the
library (``rnnkit.scratch`` is the library's version of this API).
"""

import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softmax(x):
    e_x = np.exp(x - np.max(x))
    return e_x / e_x.sum(axis=0)


def lstm_cell(xt, a_prev, c_prev, parameters):
    Wf = parameters['Wf']
    bf = parameters['bf']
    Wi = parameters['Wi']
    bi = parameters['bi']
    Wo = parameters['Wo']
    bo = parameters['bo']
    Wc = parameters['Wc']
    bc = parameters['bc']
    Wy = parameters['Wy']
    by = parameters['by']

    n_x, m = xt.shape
    n_y, n_a = Wy.shape

    concat = np.zeros([n_x + n_a, m])
    concat[: n_a, :] = a_prev
    concat[n_a :, :] = xt

    # ft = sigmoid(Wf*concatenate(a<t-1>, x<t>) + bf)
    ft = sigmoid(np.dot(Wf, concat) + bf)
    it = sigmoid(np.dot(Wi, concat) + bi)
    cct = np.tanh(np.dot(Wc, concat) + bc)
    c_next = ft * c_prev + it * cct
    ot = sigmoid(np.dot(Wo, concat) + bo)
    a_next = ot * np.tanh(c_next)

    yt_pred = softmax(np.dot(Wy, a_next) + by)

    cache = (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters)

    return a_next, c_next, yt_pred, cache


def lstm_forward(x, a0, parameters):
    caches = []

    Wy = parameters['Wy']

    n_x, m, T_x = x.shape
    n_y, n_a = Wy.shape

    a = np.zeros([n_a, m, T_x])
    c = np.zeros([n_a, m, T_x])
    y = np.zeros([n_y, m, T_x])

    a_next = a0
    # --- completion: the notebook stops here ---
    c_next = np.zeros([n_a, m])

    for t in range(T_x):
        a_next, c_next, yt, cache = lstm_cell(x[:, :, t], a_next, c_next, parameters)
        a[:, :, t] = a_next
        c[:, :, t] = c_next
        y[:, :, t] = yt
        caches.append(cache)

    caches = (caches, x)
    return a, y, c, caches


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
