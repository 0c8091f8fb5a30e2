"""The mistake model: the notebook's ten functions once more, each with a switch ``mis`` that
makes one catalogued mistake (:data:`CATALOGUE`), so that a diagnosis is a tested hypothesis:
recompute with that mistake and compare with what the learner's function returned.

With ``mis=None`` every function here computes what :mod:`rnnkit.scratch` computes (tested:
``tests/test_check.py``); the *reference* the checker judges against is always
:mod:`rnnkit.scratch` itself, never this module. Caches come back as scratch's
:class:`~rnnkit.scratch.RNNCache` / :class:`~rnnkit.scratch.LSTMCache`, whose field names let
the checker lay them out in whichever layout the learner uses (:data:`RNN_LAYOUTS`).

The sequence functions take an optional ``cell`` (``*_forward``) or ``cell_backward``
(``*_backward``) callable: the checker passes the learner's own cell there to test the
hypothesis "this loop is right, the cell it calls is wrong".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import scratch
from ..scratch import LSTMCache, RNNCache

# ----------------------------------------------------------------------------------------
# Cache layouts (field names, in the order of the learner's tuple)
# ----------------------------------------------------------------------------------------

#: The RNN cache layouts the checker recognises: layout name -> field names, in the order of
#: the learner's tuple.
RNN_LAYOUTS = {
    "course": ("a_next", "a_prev", "xt", "parameters"),
    "notebook": ("a_next", "yt_pred", "xt", "parameters"),
    "rnnkit": RNNCache._fields,
}
LSTM_LAYOUTS = {"course": LSTMCache._fields}      # the notebook's and the course's are the same
#: Cache layouts by cell kind (``"rnn"``, ``"lstm"``).
LAYOUTS = {"rnn": RNN_LAYOUTS, "lstm": LSTM_LAYOUTS}
# layouts a backward function can work from (the notebook's RNN cache has no a_prev)
BACKWARD_LAYOUTS = {"rnn": ("course", "rnnkit"), "lstm": ("course",)}


def cache_layout(kind, cache, n_a, n_y):
    """Name of the layout of a learner's one-step ``cache`` (``None`` if none fits)."""
    if not isinstance(cache, (tuple, list)):
        return None
    if kind == "lstm":
        return "course" if len(cache) == len(LSTMCache._fields) else None
    if len(cache) == 5:
        return "rnnkit"
    if len(cache) == 4:
        shape = np.shape(cache[1]) if isinstance(cache[1], np.ndarray) else None
        if shape is not None and len(shape) == 2:
            if shape[0] == n_y and n_y != n_a:
                return "notebook"
            if shape[0] == n_a:
                return "course"
        return "course"
    return None


def in_layout(kind, cache, layout):
    """A scratch cache (NamedTuple) as the tuple the learner's layout ``layout`` holds."""
    if layout == "rnnkit":
        return cache
    return tuple(getattr(cache, name) for name in LAYOUTS[kind][layout])


# ----------------------------------------------------------------------------------------
# The catalogue
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mistake:
    """One catalogued mistake: ``id`` (stable), the functions it can explain, and the hint
    shown to the learner."""
    id: str
    functions: tuple
    hint: str


_GATE = {"f": "ft (forget gate)", "i": "it (update gate)", "c": "cct (candidate)",
         "o": "ot (output gate)"}
_CELL, _SEQ = ("rnn_cell", "rnn_forward"), ("rnn_forward", "lstm_forward")
_L = ("lstm_cell", "lstm_forward")
_RB, _LB = ("rnn_cell_backward", "rnn_backward"), ("lstm_cell_backward", "lstm_backward")

_ENTRIES = [
    Mistake("sigmoid.sign", ("sigmoid",), "a sign error: 1 / (1 + exp(x)) instead of 1 / (1 + exp(-x))."),
    Mistake("sigmoid.precedence", ("sigmoid",),
            "a missing pair of brackets: 1 / 1 + exp(-x) is 1 + exp(-x); write 1 / (1 + np.exp(-x))."),
    Mistake("sigmoid.tanh", ("sigmoid",), "tanh instead of the logistic function 1 / (1 + exp(-x))."),
    Mistake("sigmoid.overflow", ("sigmoid",), "exp overflows for large |x| (inf / inf = NaN): write "
                                              "1 / (1 + np.exp(-x)), which gives 0 and 1 at the extremes."),
    Mistake("softmax.axis1", ("softmax",) + _CELL + _L,
            "softmax normalises over axis 1 (the examples); the classes are axis 0: sum(axis=0)."),
    Mistake("softmax.whole", ("softmax",) + _CELL + _L,
            "softmax divides by the sum of the whole array; each column must sum to 1: sum(axis=0)."),
    Mistake("softmax.no_max", ("softmax",),
            "softmax does not subtract the maximum, so exp overflows on large logits (inf / inf = "
            "NaN); subtract np.max(x, axis=0, keepdims=True) first."),
    Mistake("softmax.row_max", ("softmax",) + _CELL + _L,
            "softmax subtracts the maximum of each row (axis=1); subtract each column's maximum "
            "(axis=0) or the global one."),
    Mistake("softmax.no_norm", ("softmax",) + _CELL + _L,
            "softmax returns the exponentials without dividing by each column's sum."),
    Mistake("rnn.sigmoid", _CELL, "a_next uses sigmoid where the notebook uses tanh."),
    Mistake("rnn.no_ba", _CELL, "the bias ba is missing from a_next = tanh(Waa a_prev + Wax xt + ba)."),
    Mistake("rnn.no_by", _CELL, "the bias by is missing from yt_pred = softmax(Wya a_next + by)."),
    Mistake("rnn.y_from_a_prev", _CELL, "yt_pred is computed from a_prev; it uses the new state a_next."),
    Mistake("rnn.no_tanh", _CELL, "tanh is missing: a_next = tanh(Waa a_prev + Wax xt + ba)."),
]
for _g in "fico":
    _other = "tanh" if _g != "c" else "sigmoid"
    _right = "sigmoid" if _g != "c" else "tanh"
    _ENTRIES.append(Mistake(f"lstm.act_{_g}", _L, f"{_GATE[_g]} uses {_other} where {_right} belongs "
                                                  f"(sigmoid and tanh swapped on a gate)."))
    _ENTRIES.append(Mistake(f"lstm.no_b{_g}", _L, f"the bias b{_g} is missing from {_GATE[_g]}."))
    for _h in "fico":
        if _h != _g:
            _ENTRIES.append(Mistake(f"lstm.{_g}_W{_h}", _L,
                                    f"{_GATE[_g]} uses W{_h}, the weights of another gate; it has its own W{_g}."))
            _ENTRIES.append(Mistake(f"lstm.{_g}_b{_h}", _L,
                                    f"{_GATE[_g]} uses b{_h}, the bias of another gate; it has its own b{_g}."))
for _g, _h in (("f", "i"), ("f", "o"), ("i", "o")):
    _ENTRIES.append(Mistake(f"lstm.swap_{_g}{_h}", _L,
                            f"{_GATE[_g]} and {_GATE[_h]} are swapped: each is computed with the other's "
                            f"weights and bias (in a fused gate matrix: the blocks are in another "
                            f"order; the notebook's is f, i, c, o)."))
_ENTRIES += [
    Mistake("lstm.concat_x_first", _L,
            "concat is [xt; a_prev]; the notebook stacks the hidden state first: [a_prev; xt]."),
    Mistake("lstm.a_from_c_prev", _L, "a_next uses c_prev where c_next belongs: a_next = ot * tanh(c_next)."),
    Mistake("lstm.no_tanh_c", _L, "tanh is missing on c_next: a_next = ot * tanh(c_next)."),
    Mistake("lstm.f_i_swapped", _L, "ft and it are swapped in c_next = ft * c_prev + it * cct."),
    Mistake("lstm.no_by", _L, "the bias by is missing from yt_pred = softmax(Wy a_next + by)."),
    Mistake("lstm.y_from_c", _L, "yt_pred is computed from c_next; it uses a_next: softmax(Wy a_next + by)."),
    Mistake("seq.a0_every_step", _SEQ,
            "a0 is used at every step instead of the state carried from the step before."),
    Mistake("seq.c_reset", ("lstm_forward",),
            "the cell state starts from zero at every step instead of the carried c_next."),
    Mistake("seq.skip_last", _SEQ, "an off-by-one loop: the last time step is never computed "
                                   "(range(T_x - 1) instead of range(T_x))."),
    Mistake("seq.skip_first", _SEQ, "an off-by-one loop: the loop starts at t = 1, so step 0 is "
                                    "never computed (range(1, T_x) instead of range(T_x))."),
    Mistake("seq.reversed", _SEQ, "the time axis is reversed: the loop runs from the last step to "
                                  "the first."),
    Mistake("seq.x_reversed", _SEQ, "the time axis is reversed: step t reads x[:, :, T_x - 1 - t]."),
    Mistake("seq.a_not_stored", _SEQ, "the hidden states are never stored: a[:, :, t] = a_next is missing."),
    Mistake("seq.y_not_stored", _SEQ, "the predictions are never stored: y[:, :, t] = yt_pred is missing."),
    Mistake("seq.c_not_stored", ("lstm_forward",), "the cell states are never stored: c[:, :, t] = c_next is missing."),
    Mistake("seq.y_c_swapped", ("lstm_forward",), "y and c are returned in the wrong order; the "
                                                  "notebook returns a, y, c, caches."),
    Mistake("rnnb.no_tanh_grad", _RB, "the (1 - a_next**2) factor (the derivative of tanh) is missing from dz."),
    Mistake("rnnb.tanh_grad_not_squared", _RB, "the derivative of tanh is written 1 - a_next; it is 1 - a_next**2."),
    Mistake("rnnb.tanh_grad_a_prev", _RB, "the derivative of tanh uses a_prev; it is 1 - a_next**2."),
    Mistake("rnnb.Waa_not_transposed", _RB, "da_prev = Waa @ dz; it needs the transpose: Waa.T @ dz."),
    Mistake("rnnb.dba_axis0", _RB, "dba sums over axis 0; sum over the examples: np.sum(dz, axis=1, keepdims=True)."),
    Mistake("rnnb.dba_not_summed", _RB, "dba is not summed over the examples: np.sum(dz, axis=1, keepdims=True)."),
    Mistake("rnnb.dWaa_a_next", _RB, "dWaa uses a_next; it is dz @ a_prev.T."),
    Mistake("lstmb.no_tanh_grad", _LB, "the (1 - tanh(c_next)**2) factor is missing from the gradient "
                                       "reaching c_next: dc = dc_next + da_next * ot * (1 - tanh(c_next)**2)."),
    Mistake("lstmb.no_dc_next", _LB, "dc_next is not added to the gradient reaching c_next."),
    Mistake("lstmb.dc_prev_no_ft", _LB, "dc_prev misses the forget gate: dc_prev = dc * ft."),
    Mistake("lstmb.dft_c_next", _LB, "dft uses c_next; the forget gate multiplies c_prev."),
    Mistake("lstmb.cct_grad_not_squared", _LB, "the derivative of tanh in dcct is 1 - cct; it is 1 - cct**2."),
    Mistake("lstmb.split_x_first", _LB, "dconcat is split as if concat were [xt; a_prev] (dxt = "
                                        "dconcat[:n_x]); concat is [a_prev; xt]: da_prev = "
                                        "dconcat[:n_a], dxt = dconcat[n_a:]."),
]
for _g in "fio":
    _ENTRIES.append(Mistake(f"lstmb.no_sig_grad_{_g}", _LB,
                            f"the sigmoid derivative {_g}t * (1 - {_g}t) is missing from d{_g}t."))
for _g in "fico":
    _ENTRIES.append(Mistake(f"lstmb.dconcat_no_{_g}", _LB,
                            f"dconcat misses the term W{_g}.T @ d{_g if _g != 'c' else 'cc'}t."))
_ENTRIES += [
    Mistake("seqb.no_carry", ("rnn_backward", "lstm_backward"),
            "the carried gradient is not added back: step t gets da[:, :, t] + da_prevt."),
    Mistake("seqb.no_carry_c", ("lstm_backward",),
            "the carried cell-state gradient dc_prevt is not passed to the step before."),
    Mistake("seqb.carry_only", ("rnn_backward", "lstm_backward"),
            "step t gets only the carried da_prevt; add its own da[:, :, t]."),
    Mistake("seqb.not_summed", ("rnn_backward", "lstm_backward"),
            "the weight gradients are not summed over time (each step overwrites them: use +=)."),
    Mistake("seqb.forward_order", ("rnn_backward", "lstm_backward"),
            "the backward loop runs forwards in time; it must go from T_x - 1 down to 0."),
    # found from behaviour, not recomputed (see judge.py)
    Mistake("inplace", (), "an input is modified in place (e.g. c_prev *= ft or a += ...): a "
                           "function must leave its inputs unchanged; write new arrays instead."),
    Mistake("hardcoded", (), "a size is hard-coded to the notebook's example: read n_x, m, T_x from "
                             "x.shape and n_a, n_y from the weights."),
    Mistake("shape", (), "a size is read from the wrong array or dimension."),
    Mistake("returns_none", (), "the function returns None: it is unfinished, or a return "
                                "statement is missing."),
    Mistake("dependency", (), "this function is right, but a function it calls is wrong: fix that one first."),
]
CATALOGUE = {m.id: m for m in _ENTRIES}
"""Every catalogued mistake by id (see docs/check.md for the table)."""


def mistakes_for(function):
    """The ids of the recomputable mistakes that can explain ``function``'s results: the
    function's own first (a loop's mistakes before the cell's, lifted to every step), so that
    a tie goes to the more specific one."""
    own = [m.id for m in _ENTRIES if function in m.functions and m.id.startswith(("seq.", "seqb."))]
    return own + [m.id for m in _ENTRIES if function in m.functions and m.id not in own]


# ----------------------------------------------------------------------------------------
# Activations
# ----------------------------------------------------------------------------------------

def sigmoid(x, mis=None):
    """``scratch.sigmoid``, or with the sigmoid mistake ``mis``."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):
        if mis == "sigmoid.sign":
            return scratch.sigmoid(-x)
        if mis == "sigmoid.precedence":
            return 1.0 + np.exp(-x)
        if mis == "sigmoid.tanh":
            return np.tanh(x)
        if mis == "sigmoid.overflow":
            with np.errstate(invalid="ignore"):
                return np.exp(x) / (1.0 + np.exp(x))
    return scratch.sigmoid(x)


def softmax(x, mis=None):
    """``scratch.softmax`` (classes on axis 0), or with the softmax mistake ``mis``."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        if mis == "softmax.axis1":
            e = np.exp(x - x.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        if mis == "softmax.whole":
            e = np.exp(x - x.max())
            return e / e.sum()
        if mis == "softmax.no_max":
            e = np.exp(x)
            return e / e.sum(axis=0, keepdims=True)
        if mis == "softmax.row_max":
            e = np.exp(x - x.max(axis=1, keepdims=True))
            return e / e.sum(axis=0, keepdims=True)
        if mis == "softmax.no_norm":
            return np.exp(x - x.max(axis=0, keepdims=True))
        if mis == "softmax.global_max":          # the seed notebook's: right unless scales differ
            e = np.exp(x - x.max())
            return e / e.sum(axis=0, keepdims=True)
    return scratch.softmax(x)


# ----------------------------------------------------------------------------------------
# Cells
# ----------------------------------------------------------------------------------------

def rnn_cell(xt, a_prev, p, mis=None, sig=None, smax=None):
    """One RNN step as ``scratch.rnn_cell`` (``(a_next, yt_pred, RNNCache)``), with mistake
    ``mis``; ``smax`` replaces the softmax (the learner's own, for a hypothesis)."""
    smax = smax or (lambda z: softmax(z, mis if mis and mis.startswith("softmax.") else None))
    z = p["Waa"] @ a_prev + p["Wax"] @ xt + (0.0 if mis == "rnn.no_ba" else p["ba"])
    if mis == "rnn.sigmoid":
        a_next = sigmoid(z)
    elif mis == "rnn.no_tanh":
        a_next = z
    else:
        a_next = np.tanh(z)
    src = a_prev if mis == "rnn.y_from_a_prev" else a_next
    yt = smax(p["Wya"] @ src + (0.0 if mis == "rnn.no_by" else p["by"]))
    return a_next, yt, RNNCache(a_next, yt, xt, p, a_prev)


def _gate_source(g, mis, what):
    """Which gate's W (what='W') or b (what='b') gate ``g`` reads under ``mis``."""
    if mis and mis.startswith(f"lstm.{g}_{what}") and len(mis) == len(f"lstm.{g}_{what}") + 1:
        return mis[-1]
    if mis and mis.startswith("lstm.swap_") and g in mis[-2:]:
        pair = mis[-2:]
        return pair[1] if g == pair[0] else pair[0]
    return g


def lstm_cell(xt, a_prev, c_prev, p, mis=None, sig=None, smax=None):
    """One LSTM step as ``scratch.lstm_cell`` (``(a_next, c_next, yt_pred, LSTMCache)``) with
    mistake ``mis``; ``sig``/``smax`` replace sigmoid/softmax (the learner's own)."""
    sig = sig or sigmoid
    smax = smax or (lambda z: softmax(z, mis if mis and mis.startswith("softmax.") else None))
    concat = np.vstack((xt, a_prev)) if mis == "lstm.concat_x_first" else np.vstack((a_prev, xt))
    gates = {}
    for g in "fico":
        w, b = p["W" + _gate_source(g, mis, "W")], p["b" + _gate_source(g, mis, "b")]
        z = w @ concat + (0.0 if mis == f"lstm.no_b{g}" else b)
        use_sigmoid = (g != "c") != (mis == f"lstm.act_{g}")
        gates[g] = sig(z) if use_sigmoid else np.tanh(z)
    ft, it, cct, ot = gates["f"], gates["i"], gates["c"], gates["o"]
    if mis == "lstm.f_i_swapped":
        c_next = it * c_prev + ft * cct
    else:
        c_next = ft * c_prev + it * cct
    if mis == "lstm.a_from_c_prev":
        a_next = ot * np.tanh(c_prev)
    elif mis == "lstm.no_tanh_c":
        a_next = ot * c_next
    else:
        a_next = ot * np.tanh(c_next)
    src = c_next if mis == "lstm.y_from_c" else a_next
    yt = smax(p["Wy"] @ src + (0.0 if mis == "lstm.no_by" else p["by"]))
    return a_next, c_next, yt, LSTMCache(a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, p)


# ----------------------------------------------------------------------------------------
# Sequences
# ----------------------------------------------------------------------------------------

def _steps(T, mis):
    if mis == "seq.skip_last":
        return range(T - 1)
    if mis == "seq.skip_first":
        return range(1, T)
    if mis == "seq.reversed":
        return reversed(range(T))
    return range(T)


def rnn_forward(x, a0, p, mis=None, cell=None):
    """``scratch.rnn_forward`` with mistake ``mis``; ``cell(xt, a_prev, p)`` replaces the step
    (a cell mistake lifted to every step by default, or the learner's own rnn_cell)."""
    cell = cell or (lambda xt, a, q: rnn_cell(xt, a, q, mis))
    n_x, m, T = x.shape
    n_y, n_a = p["Wya"].shape
    a, y, caches = np.zeros((n_a, m, T)), np.zeros((n_y, m, T)), []
    h = a0
    for t in _steps(T, mis):
        xt = x[:, :, T - 1 - t] if mis == "seq.x_reversed" else x[:, :, t]
        h, yt, cache = cell(xt, a0 if mis == "seq.a0_every_step" else h, p)
        if mis != "seq.a_not_stored":
            a[:, :, t] = h
        if mis != "seq.y_not_stored":
            y[:, :, t] = yt
        caches.append(cache)
    return a, y, (caches, x)


def lstm_forward(x, a0, p, mis=None, cell=None):
    """``scratch.lstm_forward`` (c starts at 0) with mistake ``mis``; ``cell`` as in
    :func:`rnn_forward`."""
    cell = cell or (lambda xt, a_, c_, q: lstm_cell(xt, a_, c_, q, mis))
    n_x, m, T = x.shape
    n_y, n_a = p["Wy"].shape
    a, y, c, caches = np.zeros((n_a, m, T)), np.zeros((n_y, m, T)), np.zeros((n_a, m, T)), []
    h, s = a0, np.zeros((n_a, m))
    for t in _steps(T, mis):
        xt = x[:, :, T - 1 - t] if mis == "seq.x_reversed" else x[:, :, t]
        h_in = a0 if mis == "seq.a0_every_step" else h
        s_in = np.zeros((n_a, m)) if mis == "seq.c_reset" else s
        h, s, yt, cache = cell(xt, h_in, s_in, p)
        if mis != "seq.a_not_stored":
            a[:, :, t] = h
        if mis != "seq.y_not_stored":
            y[:, :, t] = yt
        if mis != "seq.c_not_stored":
            c[:, :, t] = s
        caches.append(cache)
    if mis == "seq.y_c_swapped":
        return a, c, y, (caches, x)
    return a, y, c, (caches, x)


# ----------------------------------------------------------------------------------------
# Backward
# ----------------------------------------------------------------------------------------

def rnn_cell_backward(da_next, cache, mis=None):
    """``scratch.rnn_cell_backward`` on a scratch ``RNNCache``, with mistake ``mis``."""
    a_next, xt, p, a_prev = cache.a_next, cache.xt, cache.parameters, cache.a_prev
    if mis == "rnnb.no_tanh_grad":
        dz = da_next
    elif mis == "rnnb.tanh_grad_not_squared":
        dz = da_next * (1.0 - a_next)
    elif mis == "rnnb.tanh_grad_a_prev":
        dz = da_next * (1.0 - a_prev ** 2)
    else:
        dz = da_next * (1.0 - a_next ** 2)
    if mis == "rnnb.dba_axis0":
        dba = dz.sum(axis=0, keepdims=True)
    elif mis == "rnnb.dba_not_summed":
        dba = dz
    else:
        dba = dz.sum(axis=1, keepdims=True)
    return {"dxt": p["Wax"].T @ dz,
            "da_prev": (p["Waa"] if mis == "rnnb.Waa_not_transposed" else p["Waa"].T) @ dz,
            "dWax": dz @ xt.T,
            "dWaa": dz @ (a_next if mis == "rnnb.dWaa_a_next" else a_prev).T,
            "dba": dba}


def lstm_cell_backward(da_next, dc_next, cache, mis=None):
    """``scratch.lstm_cell_backward`` on a scratch ``LSTMCache``, with mistake ``mis``."""
    ft, it, cct, ot = cache.ft, cache.it, cache.cct, cache.ot
    c_next, c_prev, a_prev, xt, p = cache.c_next, cache.c_prev, cache.a_prev, cache.xt, cache.parameters
    n_a = a_prev.shape[0]
    tanh_c = np.tanh(c_next)
    dsig = {g: v * (1.0 - v) for g, v in (("f", ft), ("i", it), ("o", ot))}
    for g in "fio":
        if mis == f"lstmb.no_sig_grad_{g}":
            dsig[g] = 1.0
    dot = da_next * tanh_c * dsig["o"]
    dc = (0.0 if mis == "lstmb.no_dc_next" else dc_next) + da_next * ot * (
        1.0 if mis == "lstmb.no_tanh_grad" else (1.0 - tanh_c ** 2))
    dcct = dc * it * ((1.0 - cct) if mis == "lstmb.cct_grad_not_squared" else (1.0 - cct ** 2))
    dit = dc * cct * dsig["i"]
    dft = dc * (c_next if mis == "lstmb.dft_c_next" else c_prev) * dsig["f"]
    concat = np.concatenate([a_prev, xt], axis=0)
    d = {"f": dft, "i": dit, "c": dcct, "o": dot}
    dconcat = sum(p["W" + g].T @ d[g] for g in "fico" if mis != f"lstmb.dconcat_no_{g}")
    n_x = xt.shape[0]
    if mis == "lstmb.split_x_first":
        dxt, da_prev = dconcat[:n_x], dconcat[n_x:]
    else:
        dxt, da_prev = dconcat[n_a:], dconcat[:n_a]
    out = {"dxt": dxt, "da_prev": da_prev,
           "dc_prev": dc if mis == "lstmb.dc_prev_no_ft" else dc * ft}
    for g in "fico":
        out["dW" + g] = d[g] @ concat.T
        out["db" + g] = d[g].sum(axis=1, keepdims=True)
    return out


def _backward_steps(T, mis):
    return range(T) if mis == "seqb.forward_order" else reversed(range(T))


def _carry(da_t, da_prevt, mis):
    if mis == "seqb.no_carry":
        return da_t
    if mis == "seqb.carry_only":
        return da_prevt
    return da_t + da_prevt


def _accumulate(total, g, keys, mis):
    for k in keys:
        total[k] = g[k].copy() if mis == "seqb.not_summed" else total[k] + g[k]


def rnn_backward(da, caches, mis=None, cell_backward=None):
    """``scratch.rnn_backward`` with mistake ``mis``; ``cell_backward(da_next, cache)``
    replaces the step (default: the model's, with the cell mistake lifted to every step)."""
    cell_backward = cell_backward or (lambda d, c: rnn_cell_backward(d, c, mis))
    steps, x = caches
    _, m, T = x.shape
    n_a = da.shape[0]
    keys = ("dWax", "dWaa", "dba")
    total = {k: 0.0 for k in keys}
    dx = np.zeros(x.shape)
    da_prevt = np.zeros((n_a, m))
    for t in _backward_steps(T, mis):
        g = cell_backward(_carry(da[:, :, t], da_prevt, mis), steps[t])
        dx[:, :, t] = g["dxt"]
        da_prevt = g["da_prev"]
        _accumulate(total, g, keys, mis)
    return {"dx": dx, "da0": da_prevt, **total}


def lstm_backward(da, caches, mis=None, cell_backward=None):
    """``scratch.lstm_backward`` with mistake ``mis``; ``cell_backward(da_next, dc_next,
    cache)`` as in :func:`rnn_backward`."""
    cell_backward = cell_backward or (lambda d, dc, c: lstm_cell_backward(d, dc, c, mis))
    steps, x = caches
    _, m, T = x.shape
    n_a = da.shape[0]
    keys = tuple(f"{w}{g}" for g in "fico" for w in ("dW", "db"))
    total = {k: 0.0 for k in keys}
    dx = np.zeros(x.shape)
    da_prevt, dc_prevt = np.zeros((n_a, m)), np.zeros((n_a, m))
    for t in _backward_steps(T, mis):
        g = cell_backward(_carry(da[:, :, t], da_prevt, mis), dc_prevt, steps[t])
        dx[:, :, t] = g["dxt"]
        da_prevt = g["da_prev"]
        dc_prevt = np.zeros((n_a, m)) if mis == "seqb.no_carry_c" else g["dc_prev"]
        _accumulate(total, g, keys, mis)
    return {"dx": dx, "da0": da_prevt, "dc0": dc_prevt, **total}


FUNCTIONS = {"sigmoid": sigmoid, "softmax": softmax, "rnn_cell": rnn_cell, "rnn_forward": rnn_forward,
             "lstm_cell": lstm_cell, "lstm_forward": lstm_forward,
             "rnn_cell_backward": rnn_cell_backward, "rnn_backward": rnn_backward,
             "lstm_cell_backward": lstm_cell_backward, "lstm_backward": lstm_backward}
"""The model of each function, by the notebook's name."""
