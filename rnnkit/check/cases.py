"""The inputs every function is checked on, and the facts about the ten functions.

Each function runs on the seed notebook's own example (NumPy's legacy generator at seed 42,
the notebook's sizes and draw order: ``n_x=3, n_a=5, n_y=2, m=10``, ``T_x=5`` for the RNN
and 7 for the LSTM), on two random cases whose sizes ``n_x, n_a, n_y, m, T_x`` all differ from
each other and from the example's (so a hard-coded or swapped size shows), and, for sigmoid and
softmax, on extreme values. Cases are rebuilt from their seeds on both sides of the process
boundary, so only the learner's results travel between the processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np

from .. import scratch

#: The scratch functions the checker knows, in the order it checks them: a function after the
#: functions it usually calls.
FUNCTION_NAMES = ("sigmoid", "softmax", "rnn_cell", "rnn_forward", "lstm_cell", "lstm_forward",
                  "rnn_cell_backward", "rnn_backward", "lstm_cell_backward", "lstm_backward")
# other names the course uses for the same function
ALIASES = {"rnn_cell": ("rnn_cell_forward",), "lstm_cell": ("lstm_cell_forward",)}


@dataclass(frozen=True)
class FunctionInfo:
    """What the checker knows about one of the notebook's functions."""
    name: str
    kind: str                 # "act", "cell", "seq", "cellb", "seqb"
    cell: str | None          # "rnn", "lstm" (None for sigmoid / softmax)
    signature: str
    returns: str
    forward: str | None = None        # the forward function whose cache a backward one takes
    calls: tuple = field(default=())  # functions it usually calls (hypothesis: "that one is wrong")


INFO = {i.name: i for i in (
    FunctionInfo("sigmoid", "act", None, "sigmoid(x)", "an array like x"),
    FunctionInfo("softmax", "act", None, "softmax(x)", "an array like x, each column summing to 1"),
    FunctionInfo("rnn_cell", "cell", "rnn", "rnn_cell(xt, a_prev, parameters)",
                 "(a_next, yt_pred, cache)", calls=("softmax",)),
    FunctionInfo("rnn_forward", "seq", "rnn", "rnn_forward(x, a0, parameters)",
                 "(a, y_pred, caches)", calls=("rnn_cell",)),
    FunctionInfo("lstm_cell", "cell", "lstm", "lstm_cell(xt, a_prev, c_prev, parameters)",
                 "(a_next, c_next, yt_pred, cache)", calls=("sigmoid", "softmax")),
    FunctionInfo("lstm_forward", "seq", "lstm", "lstm_forward(x, a0, parameters)",
                 "(a, y, c, caches)", calls=("lstm_cell",)),
    FunctionInfo("rnn_cell_backward", "cellb", "rnn", "rnn_cell_backward(da_next, cache)",
                 "a dict with dxt, da_prev, dWax, dWaa, dba", forward="rnn_cell"),
    FunctionInfo("rnn_backward", "seqb", "rnn", "rnn_backward(da, caches)",
                 "a dict with dx, da0, dWax, dWaa, dba", forward="rnn_forward",
                 calls=("rnn_cell_backward",)),
    FunctionInfo("lstm_cell_backward", "cellb", "lstm", "lstm_cell_backward(da_next, dc_next, cache)",
                 "a dict with dxt, da_prev, dc_prev, dWf, dbf, dWi, dbi, dWc, dbc, dWo, dbo",
                 forward="lstm_cell"),
    FunctionInfo("lstm_backward", "seqb", "lstm", "lstm_backward(da, caches)",
                 "a dict with dx, da0, dWf, dbf, dWi, dbi, dWc, dbc, dWo, dbo (dc0 optional)",
                 forward="lstm_forward", calls=("lstm_cell_backward",)),
)}

# Sizes: the notebook's, then two sets where all five differ (from each other and from 3/5/2/10).
NOTEBOOK_SIZES = {"rnn": dict(n_x=3, n_a=5, n_y=2, m=10, T_x=5),
                  "lstm": dict(n_x=3, n_a=5, n_y=2, m=10, T_x=7)}
OTHER_SIZES = (dict(n_x=4, n_a=7, n_y=3, m=2, T_x=6), dict(n_x=2, n_a=6, n_y=4, m=3, T_x=8))

RNN_DRAWS = (("Waa", "n_a", "n_a"), ("Wax", "n_a", "n_x"), ("Wya", "n_y", "n_a"),
             ("ba", "n_a", 1), ("by", "n_y", 1))
# the rnn_cell example draws ba before Wya (the notebook's order)
RNN_CELL_DRAWS = (("Waa", "n_a", "n_a"), ("Wax", "n_a", "n_x"), ("ba", "n_a", 1),
                  ("Wya", "n_y", "n_a"), ("by", "n_y", 1))
LSTM_DRAWS = tuple((k, "n_a", "n_ax") for k in ("Wf", "Wi", "Wo", "Wc")) + (("Wy", "n_y", "n_a"),) + \
    tuple((k, "n_a", 1) for k in ("bf", "bi", "bo", "bc")) + (("by", "n_y", 1),)


@dataclass
class Case:
    """One set of inputs: ``args`` for the function (forward inputs for a backward function,
    which also gets ``grads``: ``da`` / ``da_next`` (and ``dc_next``))."""
    label: str
    kind: str                     # "example", "sizes", "extreme", "robustness"
    args: tuple
    sizes: dict = field(default_factory=dict)
    grads: tuple = ()


def _dim(sizes, d):
    if d == "n_ax":
        return sizes["n_a"] + sizes["n_x"]
    return d if isinstance(d, int) else sizes[d]


def _params(draw, sizes, draws):
    return {k: draw(_dim(sizes, r), _dim(sizes, c)) for k, r, c in draws}


def _size_label(sizes, seq):
    keys = ("n_x", "n_a", "n_y", "m") + (("T_x",) if seq else ())
    return ", ".join(f"{k}={sizes[k]}" for k in keys)


def _act_cases(name):
    draw = np.random.RandomState(42).randn
    shape = (5, 10) if name == "sigmoid" else (2, 10)
    cases = [Case("the notebook's sizes " + str(shape) + " (seed 42)", "example", (draw(*shape),))]
    for i, sh in enumerate(((4, 7), (6, 3))):
        cases.append(Case(f"an array of shape {sh}", "sizes", (3 * np.random.RandomState(100 + i).randn(*sh),)))
    if name == "sigmoid":
        big = np.array([[-1000.0, -710.0, -50.0, -1.0, 0.0], [1.0, 30.0, 50.0, 710.0, 1000.0]])
        cases.append(Case("extreme values (|x| up to 1000)", "extreme", (big,)))
    else:
        rs = np.random.RandomState(7)
        cases.append(Case("large logits (every column near 1000)", "extreme", (1000.0 + rs.randn(4, 5),)))
        scales = rs.randn(3, 4)
        scales[:, 2] -= 1000.0
        cases.append(Case("a column of logits 1000 below the others", "robustness", (scales,)))
    return cases


def _forward_args(kind, fn_kind, sizes, draw):
    """Inputs of the forward function (cell or sequence) in the notebook's draw order."""
    seq = fn_kind in ("seq", "seqb")
    n_x, n_a, m, T = sizes["n_x"], sizes["n_a"], sizes["m"], sizes["T_x"]
    if kind == "rnn":
        if seq:
            x, a0 = draw(n_x, m, T), draw(n_a, m)
            return (x, a0, _params(draw, sizes, RNN_DRAWS))
        xt, a_prev = draw(n_x, m), draw(n_a, m)
        return (xt, a_prev, _params(draw, sizes, RNN_CELL_DRAWS))
    if seq:
        x, a0 = draw(n_x, m, T), draw(n_a, m)
        return (x, a0, _params(draw, sizes, LSTM_DRAWS))
    xt, a_prev, c_prev = draw(n_x, m), draw(n_a, m), draw(n_a, m)
    return (xt, a_prev, c_prev, _params(draw, sizes, LSTM_DRAWS))


@cache
def cases_for(name):
    """The cases ``name`` is checked on, in order (the notebook's example first). The same
    objects every time: callers must not change them (the runner passes copies on)."""
    info = INFO[name]
    if info.kind == "act":
        return _act_cases(name)
    cases = []
    all_sizes = [("example", NOTEBOOK_SIZES[info.cell])] + [("sizes", s) for s in OTHER_SIZES]
    seq = info.kind in ("seq", "seqb")
    for i, (kind, sizes) in enumerate(all_sizes):
        draw = np.random.RandomState(42 + i).randn
        args = _forward_args(info.cell, info.kind, sizes, draw)
        grads = ()
        if info.kind in ("cellb", "seqb"):
            shape = (sizes["n_a"], sizes["m"]) + ((sizes["T_x"],) if seq else ())
            g = np.random.RandomState(1000 + i).randn
            grads = (g(*shape),) + ((g(*shape),) if info.kind == "cellb" and info.cell == "lstm" else ())
        label = ("the notebook's example (seed 42; " if kind == "example" else "random inputs (") + \
            _size_label(sizes, seq) + ")"
        cases.append(Case(label, kind, args, dict(sizes), grads))
    return cases


# ----------------------------------------------------------------------------------------
# The reference: rnnkit.scratch
# ----------------------------------------------------------------------------------------

def reference_forward(info, args):
    """The forward function's result from :mod:`rnnkit.scratch` on a case's ``args``."""
    fwd = INFO[info.forward] if info.forward else info
    return getattr(scratch, fwd.name)(*args)


def forward_cache(info, fwd_out):
    """The cache (cells) or ``(list_of_caches, x)`` (sequences) in a forward result."""
    return fwd_out[2] if info.cell == "rnn" else fwd_out[3]


def reference(info, case):
    """What :mod:`rnnkit.scratch` returns for ``info`` on ``case`` (backward: on scratch's
    own forward cache)."""
    if info.kind == "act":
        with np.errstate(all="ignore"):
            return getattr(scratch, info.name)(*case.args)
    if info.kind in ("cell", "seq"):
        return getattr(scratch, info.name)(*case.args)
    cache = forward_cache(info, reference_forward(info, case.args))
    return getattr(scratch, info.name)(*case.grads, cache)
