"""Learner programs for the tests of ``rnnkit check``, and the diagnosis-accuracy figure.

* ``CORRECT``: all ten functions written the way the course teaches them (``np.dot``, the
  course's caches: ``(a_next, a_prev, xt, parameters)`` for the RNN), independent of
  rnnkit.scratch;
* ``EINSUM``: a second correct implementation in another style (einsum, one fused gate matrix,
  in-place-free buffers), which must pass too;
* ``MUTANTS``: one mistake each, made by editing ``CORRECT``, with what the checker must say:
  the first wrong quantity, its time step (for the sequence functions), and the likely cause
  (an id of ``rnnkit.check.CATALOGUE``). The expected values are worked out by hand from the
  order the equations compute the quantities (see docs/check.md), not taken from the checker.

Run ``python tests/check_programs.py`` for the figures (mutants, first-wrong accuracy,
likely-cause accuracy; ``tests/test_check_mutants.py`` asserts them), and
``python tests/check_programs.py --time`` for the time ``rnnkit check`` takes on a file with all
ten functions.
"""

from __future__ import annotations

from typing import NamedTuple

CORRECT = '''
import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softmax(x):
    e_x = np.exp(x - np.max(x, axis=0, keepdims=True))
    return e_x / np.sum(e_x, axis=0, keepdims=True)


def rnn_cell(xt, a_prev, parameters):
    Wax = parameters["Wax"]
    Waa = parameters["Waa"]
    Wya = parameters["Wya"]
    ba = parameters["ba"]
    by = parameters["by"]
    a_next = np.tanh(np.dot(Waa, a_prev) + np.dot(Wax, xt) + ba)
    yt_pred = softmax(np.dot(Wya, a_next) + by)
    cache = (a_next, a_prev, xt, parameters)
    return a_next, yt_pred, cache


def rnn_forward(x, a0, parameters):
    caches = []
    n_x, m, T_x = x.shape
    n_y, n_a = parameters["Wya"].shape
    a = np.zeros((n_a, m, T_x))
    y_pred = np.zeros((n_y, m, T_x))
    a_next = a0
    for t in range(T_x):
        xt = x[:, :, t]
        a_next, yt_pred, cache = rnn_cell(xt, a_next, parameters)
        a[:, :, t] = a_next
        y_pred[:, :, t] = yt_pred
        caches.append(cache)
    caches = (caches, x)
    return a, y_pred, caches


def lstm_cell(xt, a_prev, c_prev, parameters):
    Wf = parameters["Wf"]
    bf = parameters["bf"]
    Wi = parameters["Wi"]
    bi = parameters["bi"]
    Wc = parameters["Wc"]
    bc = parameters["bc"]
    Wo = parameters["Wo"]
    bo = parameters["bo"]
    Wy = parameters["Wy"]
    by = parameters["by"]
    concat = np.concatenate((a_prev, xt), axis=0)
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
    n_x, m, T_x = x.shape
    n_y, n_a = parameters["Wy"].shape
    a = np.zeros((n_a, m, T_x))
    c = np.zeros((n_a, m, T_x))
    y = np.zeros((n_y, m, T_x))
    a_next = a0
    c_next = np.zeros((n_a, m))
    for t in range(T_x):
        xt = x[:, :, t]
        a_next, c_next, yt, cache = lstm_cell(xt, a_next, c_next, parameters)
        a[:, :, t] = a_next
        c[:, :, t] = c_next
        y[:, :, t] = yt
        caches.append(cache)
    caches = (caches, x)
    return a, y, c, caches


def rnn_cell_backward(da_next, cache):
    (a_next, a_prev, xt, parameters) = cache
    Wax = parameters["Wax"]
    Waa = parameters["Waa"]
    dtanh = (1 - a_next ** 2) * da_next
    dxt = np.dot(Wax.T, dtanh)
    dWax = np.dot(dtanh, xt.T)
    da_prev = np.dot(Waa.T, dtanh)
    dWaa = np.dot(dtanh, a_prev.T)
    dba = np.sum(dtanh, axis=1, keepdims=True)
    return {"dxt": dxt, "da_prev": da_prev, "dWax": dWax, "dWaa": dWaa, "dba": dba}


def rnn_backward(da, caches):
    (caches, x) = caches
    (a1, a0, x1, parameters) = caches[0]
    n_a, m, T_x = da.shape
    n_x, m = x1.shape
    dx = np.zeros((n_x, m, T_x))
    dWax = np.zeros((n_a, n_x))
    dWaa = np.zeros((n_a, n_a))
    dba = np.zeros((n_a, 1))
    da_prevt = np.zeros((n_a, m))
    for t in reversed(range(T_x)):
        gradients = rnn_cell_backward(da[:, :, t] + da_prevt, caches[t])
        dxt, da_prevt = gradients["dxt"], gradients["da_prev"]
        dx[:, :, t] = dxt
        dWax += gradients["dWax"]
        dWaa += gradients["dWaa"]
        dba += gradients["dba"]
    da0 = da_prevt
    return {"dx": dx, "da0": da0, "dWax": dWax, "dWaa": dWaa, "dba": dba}


def lstm_cell_backward(da_next, dc_next, cache):
    (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters) = cache
    n_a, m = a_next.shape
    n_x = xt.shape[0]
    dot = da_next * np.tanh(c_next) * ot * (1 - ot)
    dc = dc_next + ot * (1 - np.tanh(c_next) ** 2) * da_next
    dcct = dc * it * (1 - cct ** 2)
    dit = dc * cct * it * (1 - it)
    dft = dc * c_prev * ft * (1 - ft)
    concat = np.concatenate((a_prev, xt), axis=0)
    dWf = np.dot(dft, concat.T)
    dWi = np.dot(dit, concat.T)
    dWc = np.dot(dcct, concat.T)
    dWo = np.dot(dot, concat.T)
    dbf = np.sum(dft, axis=1, keepdims=True)
    dbi = np.sum(dit, axis=1, keepdims=True)
    dbc = np.sum(dcct, axis=1, keepdims=True)
    dbo = np.sum(dot, axis=1, keepdims=True)
    dconcat = (np.dot(parameters["Wf"].T, dft) + np.dot(parameters["Wi"].T, dit)
               + np.dot(parameters["Wc"].T, dcct) + np.dot(parameters["Wo"].T, dot))
    da_prev = dconcat[:n_a]
    dxt = dconcat[n_a:]
    dc_prev = dc * ft
    return {"dxt": dxt, "da_prev": da_prev, "dc_prev": dc_prev, "dWf": dWf, "dbf": dbf,
            "dWi": dWi, "dbi": dbi, "dWc": dWc, "dbc": dbc, "dWo": dWo, "dbo": dbo}


def lstm_backward(da, caches):
    (caches, x) = caches
    (a1, c1, a0, c0, f1, i1, cc1, o1, x1, parameters) = caches[0]
    n_a, m, T_x = da.shape
    n_x, m = x1.shape
    dx = np.zeros((n_x, m, T_x))
    da_prevt = np.zeros((n_a, m))
    dc_prevt = np.zeros((n_a, m))
    dWf = np.zeros((n_a, n_a + n_x))
    dWi = np.zeros((n_a, n_a + n_x))
    dWc = np.zeros((n_a, n_a + n_x))
    dWo = np.zeros((n_a, n_a + n_x))
    dbf = np.zeros((n_a, 1))
    dbi = np.zeros((n_a, 1))
    dbc = np.zeros((n_a, 1))
    dbo = np.zeros((n_a, 1))
    for t in reversed(range(T_x)):
        gradients = lstm_cell_backward(da[:, :, t] + da_prevt, dc_prevt, caches[t])
        da_prevt = gradients["da_prev"]
        dc_prevt = gradients["dc_prev"]
        dx[:, :, t] = gradients["dxt"]
        dWf += gradients["dWf"]
        dWi += gradients["dWi"]
        dWc += gradients["dWc"]
        dWo += gradients["dWo"]
        dbf += gradients["dbf"]
        dbi += gradients["dbi"]
        dbc += gradients["dbc"]
        dbo += gradients["dbo"]
    da0 = da_prevt
    return {"dx": dx, "da0": da0, "dWf": dWf, "dbf": dbf, "dWi": dWi, "dbi": dbi,
            "dWc": dWc, "dbc": dbc, "dWo": dWo, "dbo": dbo}
'''

EINSUM = '''
import numpy as np


def sigmoid(x):
    x = np.asarray(x, dtype=float)
    return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))


def softmax(x):
    shifted = x - x.max(axis=0)
    log_z = np.log(np.einsum("k...->...", np.exp(shifted)))
    return np.exp(shifted - log_z)


def rnn_cell(xt, a_prev, parameters):
    p = parameters
    a_next = np.tanh(np.einsum("ij,jm->im", p["Waa"], a_prev) + np.einsum("ij,jm->im", p["Wax"], xt) + p["ba"])
    yt_pred = softmax(np.einsum("ij,jm->im", p["Wya"], a_next) + p["by"])
    return a_next, yt_pred, (a_next, a_prev, xt, parameters)


def rnn_forward(x, a0, parameters):
    T_x = x.shape[-1]
    states, preds, caches = [], [], []
    a_t = a0
    for t in range(T_x):
        a_t, y_t, cache = rnn_cell(x[..., t], a_t, parameters)
        states.append(a_t)
        preds.append(y_t)
        caches.append(cache)
    return np.stack(states, axis=-1), np.stack(preds, axis=-1), (caches, x)


def lstm_cell(xt, a_prev, c_prev, parameters):
    p = parameters
    n_a = a_prev.shape[0]
    W = np.concatenate([p["Wf"], p["Wi"], p["Wc"], p["Wo"]], axis=0)       # (4 n_a, n_a + n_x)
    b = np.concatenate([p["bf"], p["bi"], p["bc"], p["bo"]], axis=0)
    z = np.einsum("gk,km->gm", W[:, :n_a], a_prev) + np.einsum("gk,km->gm", W[:, n_a:], xt) + b
    ft, it, ot = (sigmoid(z[k * n_a:(k + 1) * n_a]) for k in (0, 1, 3))
    cct = np.tanh(z[2 * n_a:3 * n_a])
    c_next = np.einsum("im,im->im", ft, c_prev) + it * cct
    a_next = ot * np.tanh(c_next)
    yt_pred = softmax(np.einsum("ij,jm->im", p["Wy"], a_next) + p["by"])
    return a_next, c_next, yt_pred, (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters)


def lstm_forward(x, a0, parameters):
    steps = [None] * x.shape[2]
    a_t, c_t = a0, np.zeros_like(a0)
    for t in range(x.shape[2]):
        a_t, c_t, y_t, cache = lstm_cell(x[:, :, t], a_t, c_t, parameters)
        steps[t] = (a_t, y_t, c_t, cache)
    a, y, c = (np.stack([s[k] for s in steps], axis=2) for k in range(3))
    return a, y, c, ([s[3] for s in steps], x)


def rnn_cell_backward(da_next, cache):
    a_next, a_prev, xt, p = cache
    dz = da_next - da_next * a_next * a_next
    return {"dxt": np.einsum("ji,jm->im", p["Wax"], dz), "da_prev": np.einsum("ji,jm->im", p["Waa"], dz),
            "dWax": np.einsum("im,jm->ij", dz, xt), "dWaa": np.einsum("im,jm->ij", dz, a_prev),
            "dba": np.einsum("im->i", dz)[:, None]}


def rnn_backward(da, caches):
    steps, x = caches
    grads = {"dx": np.empty_like(x)}
    carry = np.zeros_like(da[:, :, 0])
    for t in range(x.shape[2] - 1, -1, -1):
        g = rnn_cell_backward(da[:, :, t] + carry, steps[t])
        grads["dx"][:, :, t] = g["dxt"]
        carry = g["da_prev"]
        for k in ("dWax", "dWaa", "dba"):
            grads[k] = grads.get(k, 0) + g[k]
    grads["da0"] = carry
    return grads


def lstm_cell_backward(da_next, dc_next, cache):
    a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, p = cache
    n_a = a_prev.shape[0]
    th = np.tanh(c_next)
    dc = dc_next + da_next * ot * (1 - th * th)
    dz = {"f": dc * c_prev * ft * (1 - ft), "i": dc * cct * it * (1 - it),
          "c": dc * it * (1 - cct * cct), "o": da_next * th * ot * (1 - ot)}
    concat = np.concatenate([a_prev, xt])
    out = {"dc_prev": dc * ft}
    dconcat = 0
    for g, d in dz.items():
        out["dW" + g] = np.einsum("im,jm->ij", d, concat)
        out["db" + g] = d.sum(axis=1, keepdims=True)
        dconcat = dconcat + np.einsum("ij,im->jm", p["W" + g], d)
    out["da_prev"], out["dxt"] = dconcat[:n_a], dconcat[n_a:]
    return out


def lstm_backward(da, caches):
    steps, x = caches
    n_a = da.shape[0]
    keys = [k + g for g in "fico" for k in ("dW", "db")]
    total = {k: 0 for k in keys}
    dx = np.zeros(x.shape)
    d_a = d_c = np.zeros((n_a, x.shape[1]))
    for t in reversed(range(x.shape[2])):
        g = lstm_cell_backward(da[:, :, t] + d_a, d_c, steps[t])
        dx[:, :, t], d_a, d_c = g["dxt"], g["da_prev"], g["dc_prev"]
        total = {k: total[k] + g[k] for k in keys}
    return {"dx": dx, "da0": d_a, "dc0": d_c, **total}
'''


class Mutant(NamedTuple):
    """One mistake: ``edits`` (old, new) applied to CORRECT (each old text must occur; every
    occurrence is replaced), the function it is in, and what the checker must report."""
    function: str
    edits: tuple
    first_wrong: str | None
    time_step: int | None
    cause: str


def _m(function, edits, first_wrong, time_step, cause):
    return Mutant(function, tuple(edits), first_wrong, time_step, cause)


# The notebook's example has T_x = 5 (RNN) and 7 (LSTM): the example is the first case, so a
# wrong last step shows as t = 4 / 6, and a backward error at the second-to-last step as 3 / 5.
MUTANTS = {
    "sigmoid sign error": _m("sigmoid", [("np.exp(-x)", "np.exp(x)")], "output", None, "sigmoid.sign"),
    "sigmoid brackets": _m("sigmoid", [("1 / (1 + np.exp(-x))", "1 / 1 + np.exp(-x)")], "output", None,
                           "sigmoid.precedence"),
    "sigmoid is tanh": _m("sigmoid", [("1 / (1 + np.exp(-x))", "np.tanh(x)")], "output", None, "sigmoid.tanh"),
    "sigmoid overflows": _m("sigmoid", [("1 / (1 + np.exp(-x))", "np.exp(x) / (1 + np.exp(x))")], "output", None,
                            "sigmoid.overflow"),
    "softmax over axis 1": _m("softmax", [("axis=0", "axis=1")], "output", None, "softmax.axis1"),
    "softmax over the whole array": _m("softmax", [("np.max(x, axis=0, keepdims=True)", "np.max(x)"),
                                                   ("np.sum(e_x, axis=0, keepdims=True)", "np.sum(e_x)")],
                                       "output", None, "softmax.whole"),
    "softmax without the maximum": _m("softmax", [("np.exp(x - np.max(x, axis=0, keepdims=True))", "np.exp(x)")],
                                      "output", None, "softmax.no_max"),
    "softmax subtracts row maxima": _m("softmax", [("np.max(x, axis=0, keepdims=True)", "np.max(x, axis=1, keepdims=True)")],
                                       "output", None, "softmax.row_max"),
    "softmax not normalised": _m("softmax", [("return e_x / np.sum(e_x, axis=0, keepdims=True)", "return e_x")],
                                 "output", None, "softmax.no_norm"),
    "softmax changes x in place": _m("softmax", [("    e_x = np.exp(x - np.max(x, axis=0, keepdims=True))",
                                                  "    x -= np.max(x, axis=0, keepdims=True)\n    e_x = np.exp(x)")],
                                     "x", None, "inplace"),
    "rnn_cell sigmoid for tanh": _m("rnn_cell", [("a_next = np.tanh(", "a_next = sigmoid(")], "a_next", None, "rnn.sigmoid"),
    "rnn_cell without ba": _m("rnn_cell", [("np.dot(Wax, xt) + ba)", "np.dot(Wax, xt))")], "a_next", None, "rnn.no_ba"),
    "rnn_cell without by": _m("rnn_cell", [("np.dot(Wya, a_next) + by)", "np.dot(Wya, a_next))")],
                              "yt_pred", None, "rnn.no_by"),
    "rnn_cell y from a_prev": _m("rnn_cell", [("np.dot(Wya, a_next)", "np.dot(Wya, a_prev)")],
                                 "yt_pred", None, "rnn.y_from_a_prev"),
    "rnn_cell overwrites a_prev": _m("rnn_cell", [("    a_next = np.tanh(np.dot(Waa, a_prev) + np.dot(Wax, xt) + ba)",
                                                   "    a_prev[:] = np.tanh(np.dot(Waa, a_prev) + np.dot(Wax, xt) + ba)\n"
                                                   "    a_next = a_prev")],
                                     "cache[1] (a_prev)", None, "inplace"),
    "rnn_forward a0 at every step": _m("rnn_forward", [("rnn_cell(xt, a_next, parameters)", "rnn_cell(xt, a0, parameters)")],
                                       "a", 1, "seq.a0_every_step"),
    "rnn_forward loop one short": _m("rnn_forward", [("    for t in range(T_x):\n        xt = x[:, :, t]\n        a_next, yt_pred",
                                                      "    for t in range(T_x - 1):\n        xt = x[:, :, t]\n        a_next, yt_pred")],
                                     "a", 4, "seq.skip_last"),
    "rnn_forward loop from 1": _m("rnn_forward", [("    for t in range(T_x):\n        xt = x[:, :, t]\n        a_next, yt_pred",
                                                   "    for t in range(1, T_x):\n        xt = x[:, :, t]\n        a_next, yt_pred")],
                                  "a", 0, "seq.skip_first"),
    "rnn_forward reversed time": _m("rnn_forward", [("    for t in range(T_x):\n        xt = x[:, :, t]\n        a_next, yt_pred",
                                                     "    for t in reversed(range(T_x)):\n        xt = x[:, :, t]\n        a_next, yt_pred")],
                                    "a", 0, "seq.reversed"),
    "rnn_forward a never stored": _m("rnn_forward", [("        a[:, :, t] = a_next\n        y_pred", "        y_pred")],
                                     "a", 0, "seq.a_not_stored"),
    "rnn_forward y never stored": _m("rnn_forward", [("        y_pred[:, :, t] = yt_pred\n", "")],
                                     "y_pred", 0, "seq.y_not_stored"),
    "rnn_forward sizes hard-coded": _m("rnn_forward", [('n_y, n_a = parameters["Wya"].shape', "n_y, n_a = 2, 5")],
                                       None, None, "hardcoded"),
    "lstm_cell tanh on the forget gate": _m("lstm_cell", [("ft = sigmoid(", "ft = np.tanh(")], "ft", None, "lstm.act_f"),
    "lstm_cell sigmoid on the candidate": _m("lstm_cell", [("cct = np.tanh(", "cct = sigmoid(")], "cct", None, "lstm.act_c"),
    "lstm_cell tanh on the output gate": _m("lstm_cell", [("ot = sigmoid(", "ot = np.tanh(")], "ot", None, "lstm.act_o"),
    "lstm_cell without bi": _m("lstm_cell", [("np.dot(Wi, concat) + bi)", "np.dot(Wi, concat))")], "it", None, "lstm.no_bi"),
    "lstm_cell ot with Wf": _m("lstm_cell", [("np.dot(Wo, concat)", "np.dot(Wf, concat)")], "ot", None, "lstm.o_Wf"),
    "lstm_cell it with bf": _m("lstm_cell", [("np.dot(Wi, concat) + bi", "np.dot(Wi, concat) + bf")], "it", None, "lstm.i_bf"),
    "lstm_cell [xt; a_prev]": _m("lstm_cell", [("np.concatenate((a_prev, xt), axis=0)", "np.concatenate((xt, a_prev), axis=0)")],
                                 "ft", None, "lstm.concat_x_first"),
    "lstm_cell c_prev for c_next": _m("lstm_cell", [("a_next = ot * np.tanh(c_next)", "a_next = ot * np.tanh(c_prev)")],
                                      "a_next", None, "lstm.a_from_c_prev"),
    "lstm_cell no tanh on c_next": _m("lstm_cell", [("a_next = ot * np.tanh(c_next)", "a_next = ot * c_next")],
                                      "a_next", None, "lstm.no_tanh_c"),
    "lstm_cell ft and it swapped": _m("lstm_cell", [("c_next = ft * c_prev + it * cct", "c_next = it * c_prev + ft * cct")],
                                      "c_next", None, "lstm.f_i_swapped"),
    "lstm_cell changes c_prev": _m("lstm_cell", [("    c_next = ft * c_prev + it * cct",
                                                  "    c_prev *= ft\n    c_next = c_prev + it * cct")],
                                   "cache[3] (c_prev)", None, "inplace"),
    "lstm_forward a0 at every step": _m("lstm_forward", [("lstm_cell(xt, a_next, c_next, parameters)",
                                                          "lstm_cell(xt, a0, c_next, parameters)")], "ft", 1, "seq.a0_every_step"),
    "lstm_forward c from zero every step": _m("lstm_forward", [("lstm_cell(xt, a_next, c_next, parameters)",
                                                                "lstm_cell(xt, a_next, np.zeros((n_a, m)), parameters)")],
                                              "c", 1, "seq.c_reset"),
    "lstm_forward c never stored": _m("lstm_forward", [("        c[:, :, t] = c_next\n", "")], "c", 0, "seq.c_not_stored"),
    "lstm_forward returns c and y swapped": _m("lstm_forward", [("return a, y, c, caches", "return a, c, y, caches")],
                                               "y", None, "seq.y_c_swapped"),
    "lstm_forward reads x backwards": _m("lstm_forward", [("        xt = x[:, :, t]\n        a_next, c_next",
                                                           "        xt = x[:, :, T_x - 1 - t]\n        a_next, c_next")],
                                         "ft", 0, "seq.x_reversed"),
    "lstm_forward loop one short": _m("lstm_forward", [("    for t in range(T_x):\n        xt = x[:, :, t]\n        a_next, c_next",
                                                        "    for t in range(T_x - 1):\n        xt = x[:, :, t]\n        a_next, c_next")],
                                      "ft", 6, "seq.skip_last"),
    "lstm_forward batch size hard-coded": _m("lstm_forward", [("    c_next = np.zeros((n_a, m))", "    c_next = np.zeros((n_a, 10))")],
                                             None, None, "hardcoded"),
    "rnn_cell_backward without (1 - a**2)": _m("rnn_cell_backward", [("dtanh = (1 - a_next ** 2) * da_next", "dtanh = da_next")],
                                               "dxt", None, "rnnb.no_tanh_grad"),
    "rnn_cell_backward 1 - a": _m("rnn_cell_backward", [("(1 - a_next ** 2)", "(1 - a_next)")], "dxt", None,
                                  "rnnb.tanh_grad_not_squared"),
    "rnn_cell_backward Waa not transposed": _m("rnn_cell_backward", [("np.dot(Waa.T, dtanh)", "np.dot(Waa, dtanh)")],
                                               "da_prev", None, "rnnb.Waa_not_transposed"),
    "rnn_cell_backward dba over axis 0": _m("rnn_cell_backward", [("np.sum(dtanh, axis=1, keepdims=True)",
                                                                   "np.sum(dtanh, axis=0, keepdims=True)")],
                                            "dba", None, "rnnb.dba_axis0"),
    "rnn_cell_backward dWaa with a_next": _m("rnn_cell_backward", [("np.dot(dtanh, a_prev.T)", "np.dot(dtanh, a_next.T)")],
                                             "dWaa", None, "rnnb.dWaa_a_next"),
    "rnn_backward carry not added": _m("rnn_backward", [("da[:, :, t] + da_prevt", "da[:, :, t]")], "dx", 3, "seqb.no_carry"),
    "rnn_backward not summed over time": _m("rnn_backward", [("dWax += ", "dWax = "), ("dWaa += ", "dWaa = "),
                                                             ("dba += ", "dba = ")], "dWax", None, "seqb.not_summed"),
    "rnn_backward forwards in time": _m("rnn_backward", [("for t in reversed(range(T_x)):\n        gradients = rnn_cell_backward",
                                                          "for t in range(T_x):\n        gradients = rnn_cell_backward")],
                                        "dx", 4, "seqb.forward_order"),
    "rnn_backward own gradient dropped": _m("rnn_backward", [("rnn_cell_backward(da[:, :, t] + da_prevt,", "rnn_cell_backward(da_prevt,")],
                                            "dx", 4, "seqb.carry_only"),
    "lstm_cell_backward without 1 - tanh(c)**2": _m("lstm_cell_backward", [("dc = dc_next + ot * (1 - np.tanh(c_next) ** 2) * da_next",
                                                                            "dc = dc_next + ot * da_next")],
                                                    "dWc", None, "lstmb.no_tanh_grad"),
    "lstm_cell_backward without dc_next": _m("lstm_cell_backward", [("dc = dc_next + ot", "dc = ot")], "dWc", None,
                                             "lstmb.no_dc_next"),
    "lstm_cell_backward dc_prev without ft": _m("lstm_cell_backward", [("dc_prev = dc * ft", "dc_prev = dc")], "dc_prev", None,
                                                "lstmb.dc_prev_no_ft"),
    "lstm_cell_backward dft with c_next": _m("lstm_cell_backward", [("dft = dc * c_prev", "dft = dc * c_next")], "dWf", None,
                                             "lstmb.dft_c_next"),
    "lstm_cell_backward no sigmoid derivative on ot": _m("lstm_cell_backward", [("np.tanh(c_next) * ot * (1 - ot)", "np.tanh(c_next)")],
                                                         "dWo", None, "lstmb.no_sig_grad_o"),
    "lstm_cell_backward 1 - cct": _m("lstm_cell_backward", [("(1 - cct ** 2)", "(1 - cct)")], "dWc", None,
                                     "lstmb.cct_grad_not_squared"),
    "lstm_cell_backward split as [xt; a_prev]": _m("lstm_cell_backward", [("da_prev = dconcat[:n_a]", "da_prev = dconcat[n_x:]"),
                                                                          ("dxt = dconcat[n_a:]", "dxt = dconcat[:n_x]")],
                                                   "da_prev", None, "lstmb.split_x_first"),
    "lstm_cell_backward dconcat without Wo": _m("lstm_cell_backward", [("\n               + np.dot(parameters[\"Wc\"].T, dcct) + np.dot(parameters[\"Wo\"].T, dot))",
                                                                        "\n               + np.dot(parameters[\"Wc\"].T, dcct))")],
                                                "da_prev", None, "lstmb.dconcat_no_o"),
    "lstm_backward carry not added": _m("lstm_backward", [("da[:, :, t] + da_prevt", "da[:, :, t]")], "dx", 5, "seqb.no_carry"),
    "lstm_backward dc not carried": _m("lstm_backward", [('        dc_prevt = gradients["dc_prev"]\n', "")], "dx", 5,
                                       "seqb.no_carry_c"),
    "lstm_backward not summed over time": _m("lstm_backward", [(f"d{w}{g} += ", f"d{w}{g} = ") for g in "fico" for w in "Wb"],
                                             "dWo", None, "seqb.not_summed"),
    "lstm_backward forwards in time": _m("lstm_backward", [("for t in reversed(range(T_x)):", "for t in range(T_x):")],
                                         "dx", 6, "seqb.forward_order"),
    "lstm_backward own gradient dropped": _m("lstm_backward", [("lstm_cell_backward(da[:, :, t] + da_prevt,", "lstm_cell_backward(da_prevt,")],
                                             "dx", 6, "seqb.carry_only"),
}


# The same kind of mistakes made in the einsum-style implementation: the hypotheses are tested
# on the numbers a function returns, so the style it is written in must not matter.
EINSUM_MUTANTS = {
    "sigmoid branches swapped (a sign error)": _m("sigmoid", [("np.where(x >= 0,", "np.where(x < 0,")],
                                                  "output", None, "sigmoid.sign"),
    "softmax without the shift": _m("softmax", [("shifted = x - x.max(axis=0)", "shifted = x")], "output", None,
                                    "softmax.no_max"),
    "rnn_cell without ba": _m("rnn_cell", [(' + p["ba"])', ")")], "a_next", None, "rnn.no_ba"),
    "rnn_forward a0 at every step": _m("rnn_forward", [("rnn_cell(x[..., t], a_t, parameters)",
                                                        "rnn_cell(x[..., t], a0, parameters)")], "a", 1, "seq.a0_every_step"),
    "lstm_cell gate blocks f and i swapped": _m("lstm_cell", [("for k in (0, 1, 3))", "for k in (1, 0, 3))")],
                                                "ft", None, "lstm.swap_fi"),
    "lstm_cell no tanh on c_next": _m("lstm_cell", [("a_next = ot * np.tanh(c_next)", "a_next = ot * c_next")],
                                      "a_next", None, "lstm.no_tanh_c"),
    "lstm_forward y and c swapped": _m("lstm_forward", [("steps[t] = (a_t, y_t, c_t, cache)", "steps[t] = (a_t, c_t, y_t, cache)")],
                                       "y", None, "seq.y_c_swapped"),
    "rnn_cell_backward without the tanh derivative": _m("rnn_cell_backward", [("dz = da_next - da_next * a_next * a_next", "dz = da_next")],
                                                        "dxt", None, "rnnb.no_tanh_grad"),
    "rnn_backward not summed": _m("rnn_backward", [("grads[k] = grads.get(k, 0) + g[k]", "grads[k] = g[k]")],
                                  "dWax", None, "seqb.not_summed"),
    "lstm_cell_backward dc_prev without ft": _m("lstm_cell_backward", [('out = {"dc_prev": dc * ft}', 'out = {"dc_prev": dc}')],
                                                "dc_prev", None, "lstmb.dc_prev_no_ft"),
    "lstm_cell_backward no sigmoid derivative on ot": _m("lstm_cell_backward", [('"o": da_next * th * ot * (1 - ot)', '"o": da_next * th')],
                                                         "dWo", None, "lstmb.no_sig_grad_o"),
    "lstm_backward carry not added": _m("lstm_backward", [("da[:, :, t] + d_a", "da[:, :, t]")], "dx", 5, "seqb.no_carry"),
    "lstm_backward forwards in time": _m("lstm_backward", [("for t in reversed(range(x.shape[2])):", "for t in range(x.shape[2]):")],
                                         "dx", 6, "seqb.forward_order"),
}


def mutant_source(mutant: Mutant, base: str = CORRECT) -> str:
    """``base`` (CORRECT) with the mutant's edits (each old text must be there)."""
    src = base
    for old, new in mutant.edits:
        assert old in src, f"edit not applicable: {old!r}"
        src = src.replace(old, new)
    assert src != base
    return src


def namespace(source: str) -> dict:
    """The learner's namespace after running ``source``."""
    ns: dict = {"__name__": "learner"}
    exec(compile(source, "<learner>", "exec"), ns)
    return ns


def measure(mutants=None, base=CORRECT):
    """Check every mutant (default: MUTANTS of CORRECT) in-process; return (rows, figures)."""
    from rnnkit.check import check_namespace
    rows = []
    for label, mut in (MUTANTS if mutants is None else mutants).items():
        res = check_namespace(namespace(mutant_source(mut, base)), [mut.function])[mut.function]
        rows.append({"mutant": label, "function": mut.function, "status": res.status,
                     "first_wrong": res.first_wrong, "time_step": res.time_step, "cause": res.cause,
                     "where_ok": (res.first_wrong, res.time_step) == (mut.first_wrong, mut.time_step),
                     "cause_ok": res.cause == mut.cause, "expected": mut, "message": res.message})
    n = len(rows)
    figures = {"mutants": n,
               "functions": len({r["function"] for r in rows}),
               "detected": sum(r["status"] in ("fail", "error") for r in rows) / n,
               "first_wrong_accuracy": sum(r["where_ok"] for r in rows) / n,
               "cause_accuracy": sum(r["cause_ok"] for r in rows) / n}
    return rows, figures


def time_cli(repeats=5):
    """Run ``python -m rnnkit check`` on a file with all ten functions (CORRECT) ``repeats``
    times; return (median wall seconds, median CPU seconds of the whole command, load average)."""
    import os
    import resource
    import statistics
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root] + ([os.environ["PYTHONPATH"]]
                                                               if os.environ.get("PYTHONPATH") else [])))
    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "all_ten.py"
        path.write_text(CORRECT)
        for _ in range(repeats):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "rnnkit", "check", str(path)], env=env,
                                  capture_output=True, text=True, check=False)
            walls.append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            assert proc.returncode == 0, proc.stdout + proc.stderr
    return statistics.median(walls), statistics.median(cpus), os.getloadavg()[0]


if __name__ == "__main__":
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if sys.argv[1:] == ["--time"]:
        wall, cpu, load = time_cli()
        print(f"rnnkit check on a file with all ten functions: median {wall:.2f} s wall, {cpu:.2f} s "
              f"CPU (5 runs; load average {load:.1f})")
        sys.exit(0)
    rows, figures = measure()
    rows2, figures2 = measure(EINSUM_MUTANTS, EINSUM)
    for r in rows + rows2:
        flag = "ok " if r["where_ok"] and r["cause_ok"] else "BAD"
        print(f"{flag} {r['mutant']:<45} {r['status']:<5} {r['first_wrong']!s:<18} t={r['time_step']!s:<4} "
              f"cause={r['cause']} (expected {r['expected'].first_wrong}, t={r['expected'].time_step}, "
              f"{r['expected'].cause})")
    print(f"\n{figures['mutants']} mutants over {figures['functions']} functions: detected "
          f"{figures['detected']:.0%}, first wrong quantity and time step right {figures['first_wrong_accuracy']:.0%}, "
          f"likely cause right {figures['cause_accuracy']:.0%}")
    print(f"{figures2['mutants']} mutants of the einsum-style implementation: first wrong quantity and "
          f"time step right {figures2['first_wrong_accuracy']:.0%}, likely cause right {figures2['cause_accuracy']:.0%}")
