"""Tests of rnnkit.scratch against independent references.

References used (never rnnkit.scratch's own output):
* ``ref_*`` below: rnnkit's own scalar model of the practice notebook's API (the notebook
  rnnkit.scratch started from), written here from the equations. It walks one example at a
  time through the whole sequence, one hidden unit at a time, in plain Python floats, and only
  then assembles the notebook-shaped arrays and per-step caches - so it shares neither code nor
  formulation with the vectorised, step-major rnnkit.scratch. It keeps the notebook's
  behaviour, including a softmax that shifts by ONE maximum over the whole array instead of
  one per column. It runs on the notebook's worked examples (same seed, shapes and draw order,
  see ``NOTEBOOK_EXAMPLES``) and on random cases;
* per-column softmax from scipy (or a float64 log-sum-exp written here);
* central finite differences of ``loss = sum(a * da)`` (+ ``sum(c * dc)``);
* torch.nn.RNN / LSTM / GRU in float64 (optional).
"""

import io
import math
import warnings
from typing import NamedTuple

import numpy as np
import pytest

from rnnkit import scratch
from rnnkit.errors import ParameterKeyError, ShapeError
from rnnkit.interop import notebook
from rnnkit.scratch import (
    gru_backward,
    gru_cell,
    gru_cell_backward,
    gru_forward,
    lstm_backward,
    lstm_cell,
    lstm_cell_backward,
    lstm_forward,
    rnn_backward,
    rnn_cell,
    rnn_cell_backward,
    rnn_forward,
    sigmoid,
    softmax,
)

from needs import require

# ---------------------------------------------------------------------------------------
# Scalar reference of the notebook's API
# ---------------------------------------------------------------------------------------
#
# What is taken from the notebook is its contract, not its code: features-first arrays (one
# column per example: a step is (n_x, m), a sequence (n_x, m, T_x)); parameters in a dict
# (Waa, Wax, ba, Wya, by for the RNN; Wf, Wi, Wc, Wo of shape (n_a, n_a + n_x) acting on the
# hidden state stacked above the input, bf, bi, bc, bo, Wy, by for the LSTM); the cache field
# order; the LSTM cell state starting at zero; sequence caches returned as (per-step list, x).


def _logistic(v):
    """1 / (1 + e**-v) for one float. Where e**-v exceeds float64 the quotient is 0, as in NumPy."""
    try:
        return 1.0 / (1.0 + math.exp(-v))
    except OverflowError:
        return 0.0


def _dot(row, values):
    """sum_k row[k] * values[k], left to right, in Python floats."""
    return sum(w * v for w, v in zip(row, values))


def ref_sigmoid(x):
    x = np.asarray(x, dtype=np.float64)
    out = np.empty(x.shape)
    for idx in np.ndindex(x.shape):
        out[idx] = _logistic(float(x[idx]))
    return out


def ref_softmax(z):
    """exp(z - M) normalised down axis 0, where M is the largest entry of the WHOLE array.

    One common shift, not one per column (the notebook's choice): a column lying ~750 below M
    underflows to 0 / 0 = NaN (NumPy's scalar division, so it warns like the notebook does).
    """
    z = np.asarray(z, dtype=np.float64)
    top = max(float(v) for v in z.flat)
    expd = np.empty(z.shape)
    for idx in np.ndindex(z.shape):
        expd[idx] = math.exp(float(z[idx]) - top)
    out = np.empty(z.shape)
    for col in np.ndindex(z.shape[1:]):                  # () once for a 1-D input
        rows = [(k,) + col for k in range(z.shape[0])]
        total = np.float64(0.0)
        for r in rows:
            total += expd[r]
        for r in rows:
            out[r] = expd[r] / total
    return out


def _per_step_softmax(W, b, states):
    """softmax(W @ a<t> + b) for every step t of states (n_a, m, T_x), one unit at a time."""
    n_y, (_, m, T_x) = W.shape[0], states.shape
    rows, bias = W.tolist(), b[:, 0].tolist()
    logits = np.empty((n_y, m, T_x))
    for t in range(T_x):
        for j in range(m):
            col = states[:, j, t].tolist()
            for k in range(n_y):
                logits[k, j, t] = bias[k] + _dot(rows[k], col)
    probs = np.empty_like(logits)
    for t in range(T_x):                                 # one shift per step's (n_y, m) block
        probs[:, :, t] = ref_softmax(logits[:, :, t])
    return probs


def ref_rnn_forward(x, a0, parameters):
    """a<t> = tanh(Waa a<t-1> + Wax x<t> + ba), y<t> = softmax(Wya a<t> + by), a<-1> = a0."""
    Waa, Wax = parameters["Waa"].tolist(), parameters["Wax"].tolist()
    ba = parameters["ba"][:, 0].tolist()
    n_a, (_, m, T_x) = len(ba), x.shape
    a = np.empty((n_a, m, T_x))
    for j in range(m):                                   # one example through all its steps
        h = a0[:, j].tolist()
        for t in range(T_x):
            xt = x[:, j, t].tolist()
            h = [math.tanh(ba[u] + _dot(Waa[u], h) + _dot(Wax[u], xt)) for u in range(n_a)]
            a[:, j, t] = h
    y = _per_step_softmax(parameters["Wya"], parameters["by"], a)
    caches = [(a[:, :, t], y[:, :, t], x[:, :, t], parameters) for t in range(T_x)]
    return a, y, (caches, x)


def ref_rnn_cell(xt, a_prev, parameters):
    a, y, (caches, _) = ref_rnn_forward(xt[:, :, None], a_prev, parameters)
    return a[:, :, 0], y[:, :, 0], caches[0]


GATE_FIELDS = ("ft", "it", "cct", "ot")


def _ref_lstm_run(x, a0, c0, parameters):
    """The LSTM equations with s = [a<t-1>; x<t>] (hidden state on top):

    ft = sig(Wf s + bf), it = sig(Wi s + bi), cct = tanh(Wc s + bc), ot = sig(Wo s + bo),
    c<t> = ft c<t-1> + it cct, a<t> = ot tanh(c<t>), y<t> = softmax(Wy a<t> + by).
    """
    W = {g: parameters["W" + g].tolist() for g in "fico"}
    b = {g: parameters["b" + g][:, 0].tolist() for g in "fico"}
    n_a, (_, m, T_x) = a0.shape[0], x.shape
    rec = {k: np.empty((n_a, m, T_x)) for k in ("a", "c") + GATE_FIELDS}
    for j in range(m):
        h, cell = a0[:, j].tolist(), c0[:, j].tolist()
        for t in range(T_x):
            s = h + x[:, j, t].tolist()
            pre = {g: [b[g][u] + _dot(W[g][u], s) for u in range(n_a)] for g in "fico"}
            f, i, o = ([_logistic(v) for v in pre[g]] for g in "fio")
            g_ = [math.tanh(v) for v in pre["c"]]
            cell = [f[u] * cell[u] + i[u] * g_[u] for u in range(n_a)]
            h = [o[u] * math.tanh(cell[u]) for u in range(n_a)]
            for key, vals in zip(("a", "c", "ft", "it", "cct", "ot"), (h, cell, f, i, g_, o)):
                rec[key][:, j, t] = vals
    a, c = rec["a"], rec["c"]
    y = _per_step_softmax(parameters["Wy"], parameters["by"], a)
    caches = []
    for t in range(T_x):
        before = (a0, c0) if t == 0 else (a[:, :, t - 1], c[:, :, t - 1])
        gates = tuple(rec[k][:, :, t] for k in GATE_FIELDS)
        caches.append((a[:, :, t], c[:, :, t]) + before + gates + (x[:, :, t], parameters))
    return a, y, c, (caches, x)


def ref_lstm_forward(x, a0, parameters):
    return _ref_lstm_run(x, a0, np.zeros_like(a0), parameters)


def ref_lstm_cell(xt, a_prev, c_prev, parameters):
    a, y, c, (caches, _) = _ref_lstm_run(xt[:, :, None], a_prev, c_prev, parameters)
    return a[:, :, 0], c[:, :, 0], y[:, :, 0], caches[0]


# The notebook's worked examples, as data. Each one restarts NumPy's legacy generator at seed
# 42 and draws standard normals (randn) with these shapes in this order - the call's inputs,
# then the parameter dict - which gives exactly the notebook's arrays. (Two quirks of the
# notebook are facts of the values: its rnn_forward example draws the parameters in a
# different order from the rnn_cell one, and names the (3, 10, 5) input `a` and the initial
# state `x`; here they are simply the 1st and 2nd input.)
class Example(NamedTuple):
    fn: str
    inputs: tuple          # (name, shape) in draw order
    params: tuple          # (key, shape) in draw order


LSTM_DRAWS = tuple((k, (5, 8)) for k in ("Wf", "Wi", "Wo", "Wc")) + (("Wy", (2, 5)),) + \
    tuple((k, (5, 1)) for k in ("bf", "bi", "bo", "bc")) + (("by", (2, 1)),)

NOTEBOOK_EXAMPLES = (
    Example("rnn_cell", (("xt", (3, 10)), ("a_prev", (5, 10))),
            (("Waa", (5, 5)), ("Wax", (5, 3)), ("ba", (5, 1)), ("Wya", (2, 5)), ("by", (2, 1)))),
    Example("rnn_forward", (("x", (3, 10, 5)), ("a0", (5, 10))),
            (("Waa", (5, 5)), ("Wax", (5, 3)), ("Wya", (2, 5)), ("ba", (5, 1)), ("by", (2, 1)))),
    Example("lstm_cell", (("xt", (3, 10)), ("a_prev", (5, 10)), ("c_prev", (5, 10))), LSTM_DRAWS),
    Example("lstm_forward", (("x", (3, 10, 7)), ("a0", (5, 10))), LSTM_DRAWS),
)
# What the notebook prints after each example: the shape of the new hidden state(s). (Its
# lstm_cell example prints the rnn_cell example's a_next by mistake; the shape is the same.)
NOTEBOOK_PRINTS = "(5, 10)\n(5, 10, 5)\n(5, 10)\n(5, 10, 7)\n"

REF_API = {"sigmoid": ref_sigmoid, "softmax": ref_softmax, "rnn_cell": ref_rnn_cell,
           "rnn_forward": ref_rnn_forward, "lstm_cell": ref_lstm_cell,
           "lstm_forward": ref_lstm_forward}
OUR_API = {"sigmoid": sigmoid, "softmax": softmax, "rnn_cell": rnn_cell,
           "rnn_forward": rnn_forward, "lstm_cell": lstm_cell, "lstm_forward": lstm_forward}

TOL = dict(rtol=1e-12, atol=1e-13)


def assert_close(ours, ref, what):
    """Compare nested tuples / lists / dicts of arrays; ``ours`` may have extra trailing fields."""
    if isinstance(ref, dict):
        assert set(ours) == set(ref), what
        for k in ref:
            assert_close(ours[k], ref[k], f"{what}[{k!r}]")
    elif isinstance(ref, (tuple, list)):
        assert len(ours) >= len(ref), what
        for i, r in enumerate(ref):
            assert_close(ours[i], r, f"{what}[{i}]")
    else:
        ours = np.asarray(ours)
        assert ours.dtype == np.float64, what
        np.testing.assert_allclose(ours, ref, **TOL, err_msg=what)


def run_examples(api):
    """Run NOTEBOOK_EXAMPLES through ``api``; return (printed text, one record per example)."""
    printed, records = io.StringIO(), []
    for ex in NOTEBOOK_EXAMPLES:
        draw = np.random.RandomState(42).randn
        inputs = {name: draw(*shape) for name, shape in ex.inputs}
        params = {key: draw(*shape) for key, shape in ex.params}
        outputs = api[ex.fn](*inputs.values(), params)
        print(outputs[0].shape, file=printed)
        records.append({"inputs": inputs, "parameters": params, "outputs": outputs})
    return printed.getvalue(), records


def test_notebook_examples_print_the_notebook_shapes():
    printed, _ = run_examples(OUR_API)
    assert printed == NOTEBOOK_PRINTS
    ref_printed, _ = run_examples(REF_API)     # the reference prints the same (sanity)
    assert ref_printed == NOTEBOOK_PRINTS


def test_notebook_examples_match_reference_values():
    _, ours = run_examples(OUR_API)
    _, ref = run_examples(REF_API)
    for ex, o, r in zip(NOTEBOOK_EXAMPLES, ours, ref):
        assert_close(o, r, ex.fn)
    # the caches carry the notebook's fields first, then rnnkit's extras
    rnn_cell_cache, lstm_caches = ours[0]["outputs"][2], ours[3]["outputs"][3]
    assert isinstance(rnn_cell_cache, scratch.RNNCache)
    np.testing.assert_array_equal(rnn_cell_cache.a_prev, ref[0]["inputs"]["a_prev"])
    assert len(lstm_caches[0]) == 7
    assert scratch.LSTMCache._fields == ("a_next", "c_next", "a_prev", "c_prev", "ft", "it",
                                         "cct", "ot", "xt", "parameters")


def test_rnn_forward_caches_match_reference_and_hold_a_prev():
    rng = np.random.default_rng(1)
    p = {"Waa": rng.standard_normal((4, 4)), "Wax": rng.standard_normal((4, 3)),
         "ba": rng.standard_normal((4, 1)), "Wya": rng.standard_normal((2, 4)),
         "by": rng.standard_normal((2, 1))}
    x, a0 = rng.standard_normal((3, 5, 6)), rng.standard_normal((4, 5))
    a, y, caches = rnn_forward(x, a0, p)
    ra, ry, rcaches = ref_rnn_forward(x, a0, p)
    assert_close((a, y, caches), (ra, ry, rcaches), "rnn_forward")
    a_prevs = [a0] + [a[:, :, t] for t in range(5)]
    for t, c in enumerate(caches[0]):
        np.testing.assert_array_equal(c.a_prev, a_prevs[t])


def test_lstm_cell_and_forward_match_reference_on_random_cases():
    rng = np.random.default_rng(2)
    n_x, n_a, n_y, m, T_x = 4, 3, 3, 2, 5
    p = {k: rng.standard_normal((n_a, n_a + n_x)) for k in ("Wf", "Wi", "Wc", "Wo")}
    p |= {k: rng.standard_normal((n_a, 1)) for k in ("bf", "bi", "bc", "bo")}
    p |= {"Wy": rng.standard_normal((n_y, n_a)), "by": rng.standard_normal((n_y, 1))}
    x, a0, c0 = (rng.standard_normal(s) for s in ((n_x, m, T_x), (n_a, m), (n_a, m)))
    assert_close(lstm_forward(x, a0, p), ref_lstm_forward(x, a0, p), "lstm_forward")
    assert_close(lstm_cell(x[:, :, 0], a0, c0, p), ref_lstm_cell(x[:, :, 0], a0, c0, p), "lstm_cell")
    assert_close(lstm_forward(x, a0, p, c0=c0), _ref_lstm_run(x, a0, c0, p), "lstm_forward c0")


def test_reference_softmax_shifts_by_one_global_maximum():
    # columns on the same scale: same numbers as a per-column softmax; 1-D input: one column
    z = np.array([[0.5, -1.0], [2.0, 0.25], [-0.5, 1.5]])
    np.testing.assert_allclose(ref_softmax(z), reference_softmax_axis0(z), rtol=1e-14)
    np.testing.assert_allclose(ref_softmax(z[:, 1]), reference_softmax_axis0(z[:, 1:])[:, 0],
                               rtol=1e-14)
    # a column 800 below the global maximum underflows to exact zeros, hence 0 / 0
    with np.errstate(all="ignore"):
        far = ref_softmax(np.array([[0.0, -800.0], [1.0, -801.0]]))
    assert np.isfinite(far[:, 0]).all() and np.isnan(far[:, 1]).all()


# ---------------------------------------------------------------------------------------
# sigmoid / softmax
# ---------------------------------------------------------------------------------------

def reference_softmax_axis0(x):
    try:
        from scipy.special import softmax as sp_softmax
        return sp_softmax(x, axis=0)
    except ImportError:  # float64 log-sum-exp, column by column
        out = np.empty_like(x)
        for j in range(x.shape[1]):
            col = [float(v) for v in x[:, j]]
            mx = max(col)
            lse = mx + math.log(sum(math.exp(v - mx) for v in col))
            out[:, j] = [math.exp(v - lse) for v in col]
        return out


def test_softmax_is_stable_per_column_where_the_reference_gives_nan():
    x = np.array([[1000.0, -1000.0, 3.0], [1001.0, -1001.0, 1.0], [999.0, -1003.0, 2.0]])
    with np.errstate(all="ignore"):
        ref = ref_softmax(x)
    assert np.isnan(ref[:, 1]).all()             # the notebook's global max fails here
    ours = softmax(x)
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, reference_softmax_axis0(x), rtol=1e-14, atol=0)
    np.testing.assert_allclose(ours.sum(axis=0), 1.0, rtol=1e-15)


def test_softmax_matches_reference_on_ordinary_inputs():
    x = np.random.default_rng(3).standard_normal((4, 6))
    np.testing.assert_allclose(softmax(x), ref_softmax(x), rtol=1e-14)
    np.testing.assert_allclose(softmax(x[:, 0]), ref_softmax(x[:, 0]), rtol=1e-14)


def test_sigmoid_large_inputs_no_warnings_and_exact():
    x = np.array([-1000.0, -740.0, -700.0, -50.0, -1.5, 0.0, 2.0, 50.0, 1000.0])
    expected = np.array([0.0, math.exp(-740.0), math.exp(-700.0), 1 / (1 + math.exp(50.0)),
                         1 / (1 + math.exp(1.5)), 0.5, 1 / (1 + math.exp(-2.0)),
                         1 / (1 + math.exp(-50.0)), 1.0])
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        got = sigmoid(x)
        scalar = sigmoid(-1000.0)
    np.testing.assert_allclose(got, expected, rtol=4e-16, atol=0)
    assert scalar == 0.0
    mid = np.linspace(-30, 30, 61)
    np.testing.assert_allclose(sigmoid(mid), ref_sigmoid(mid), rtol=1e-15)


# ---------------------------------------------------------------------------------------
# Central-difference gradient checks
# ---------------------------------------------------------------------------------------
#
# relative error = max|num - ana| / max(max|num| + max|ana|, 1e-12), per gradient array.
# With eps = 1e-6 in float64 the truncation error is ~eps**2 and the rounding error is
# ~1e-16 * |loss| / eps, both far below the 1e-7 threshold.

N_X, N_A, N_Y, M, T = 3, 4, 2, 3, 4
EPS, MAX_REL = 1e-6, 1e-7


def make_params(kind, rng, n_x=N_X, n_a=N_A, n_y=N_Y):
    def w(*shape):
        return 0.6 * rng.standard_normal(shape)
    if kind == "rnn":
        p = {"Wax": w(n_a, n_x), "Waa": w(n_a, n_a), "ba": w(n_a, 1), "Wya": w(n_y, n_a)}
    elif kind == "lstm":
        p = {f"W{g}": w(n_a, n_a + n_x) for g in "fico"} | {f"b{g}": w(n_a, 1) for g in "fico"}
        p["Wy"] = w(n_y, n_a)
    else:
        p = {"Wr": w(n_a, n_a + n_x), "br": w(n_a, 1), "Wz": w(n_a, n_a + n_x), "bz": w(n_a, 1),
             "Wnx": w(n_a, n_x), "bnx": w(n_a, 1), "Wna": w(n_a, n_a), "bna": w(n_a, 1),
             "Wy": w(n_y, n_a)}
    p["by"] = w(n_y, 1)
    return p


def _rnn_cell_case(inp, p):
    a, _, cache = rnn_cell(inp["xt"], inp["a_prev"], p)
    return {"a": a}, cache


def _lstm_cell_case(inp, p):
    a, c, _, cache = lstm_cell(inp["xt"], inp["a_prev"], inp["c_prev"], p)
    return {"a": a, "c": c}, cache


def _gru_cell_case(inp, p):
    a, _, cache = gru_cell(inp["xt"], inp["a_prev"], p)
    return {"a": a}, cache


def _rnn_forward_case(inp, p):
    a, _, caches = rnn_forward(inp["x"], inp["a0"], p)
    return {"a": a}, caches


def _gru_forward_case(inp, p):
    a, _, caches = gru_forward(inp["x"], inp["a0"], p)
    return {"a": a}, caches


def _lstm_forward_case(inp, p):
    a, _, _, caches = lstm_forward(inp["x"], inp["a0"], p, c0=inp["c0"])
    return {"a": a}, caches


STEP = {"xt": (N_X, M), "a_prev": (N_A, M), "c_prev": (N_A, M)}
SEQ = {"x": (N_X, M, T), "a0": (N_A, M), "c0": (N_A, M)}

# name -> (kind, inputs, forward(inp, p) -> (outputs, cache), backward(weights, cache), keys)
GRAD_CASES = {
    "rnn_cell": ("rnn", ["xt", "a_prev"], _rnn_cell_case,
                 lambda w, c: rnn_cell_backward(w["a"], c),
                 {"dxt", "da_prev", "dWax", "dWaa", "dba"}),
    "rnn_forward": ("rnn", ["x", "a0"], _rnn_forward_case,
                    lambda w, c: rnn_backward(w["a"], c),
                    {"dx", "da0", "dWax", "dWaa", "dba"}),
    "lstm_cell": ("lstm", ["xt", "a_prev", "c_prev"], _lstm_cell_case,
                  lambda w, c: lstm_cell_backward(w["a"], w["c"], c),
                  {"dxt", "da_prev", "dc_prev", "dWf", "dbf", "dWi", "dbi", "dWc", "dbc",
                   "dWo", "dbo"}),
    "lstm_forward": ("lstm", ["x", "a0", "c0"], _lstm_forward_case,
                     lambda w, c: lstm_backward(w["a"], c),
                     {"dx", "da0", "dc0", "dWf", "dbf", "dWi", "dbi", "dWc", "dbc", "dWo", "dbo"}),
    "gru_cell": ("gru", ["xt", "a_prev"], _gru_cell_case,
                 lambda w, c: gru_cell_backward(w["a"], c),
                 {"dxt", "da_prev", "dWr", "dbr", "dWz", "dbz", "dWnx", "dbnx", "dWna", "dbna"}),
    "gru_forward": ("gru", ["x", "a0"], _gru_forward_case,
                    lambda w, c: gru_backward(w["a"], c),
                    {"dx", "da0", "dWr", "dbr", "dWz", "dbz", "dWnx", "dbnx", "dWna", "dbna"}),
}


def relative_error(num, ana):
    return np.max(np.abs(num - ana)) / max(np.max(np.abs(num)) + np.max(np.abs(ana)), 1e-12)


@pytest.mark.parametrize("case", list(GRAD_CASES))
def test_backward_matches_central_differences(case):
    kind, input_names, forward, backward, keys = GRAD_CASES[case]
    rng = np.random.default_rng(list(GRAD_CASES).index(case))
    p = make_params(kind, rng)
    inp = {n: rng.standard_normal({**STEP, **SEQ}[n]) for n in input_names}
    outs, cache = forward(inp, p)
    weights = {k: rng.standard_normal(v.shape) for k, v in outs.items()}   # random da (, dc)

    def loss():
        o, _ = forward(inp, p)
        return sum(float(np.sum(o[k] * weights[k])) for k in o)

    grads = backward(weights, cache)
    assert set(grads) == keys
    for gname, ana in grads.items():
        name = gname[1:]                          # dWax -> Wax, da_prev -> a_prev, dx -> x
        target = inp[name] if name in inp else p[name]
        assert ana.shape == target.shape and ana.dtype == np.float64, gname
        num = np.zeros_like(target)
        for i in range(target.size):
            old = target.flat[i]
            target.flat[i] = old + EPS
            up = loss()
            target.flat[i] = old - EPS
            down = loss()
            target.flat[i] = old
            num.flat[i] = (up - down) / (2 * EPS)
        err = relative_error(num, ana)
        assert err < MAX_REL, f"{case}: {gname} relative error {err:.2e}"


def test_lstm_backward_equals_manual_bptt_with_cell_backward():
    """The sequence backward is the documented loop of cell backwards (da + carried, dc=0)."""
    rng = np.random.default_rng(7)
    p = make_params("lstm", rng)
    x, a0 = rng.standard_normal((N_X, M, T)), rng.standard_normal((N_A, M))
    da = rng.standard_normal((N_A, M, T))
    a, y, c, caches = lstm_forward(x, a0, p)
    np.testing.assert_array_equal(caches[0][0].c_prev, np.zeros((N_A, M)))
    g = lstm_backward(da, caches)
    da_next, dc_next = np.zeros((N_A, M)), np.zeros((N_A, M))
    for t in reversed(range(T)):
        s = lstm_cell_backward(da[:, :, t] + da_next, dc_next, caches[0][t])
        da_next, dc_next = s["da_prev"], s["dc_prev"]
        np.testing.assert_allclose(g["dx"][:, :, t], s["dxt"], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(g["da0"], da_next, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(g["dc0"], dc_next, rtol=1e-13, atol=1e-15)


# ---------------------------------------------------------------------------------------
# Converters and PyTorch parity
# ---------------------------------------------------------------------------------------

RECURRENT_KEYS = {"rnn": {"Wax", "Waa", "ba"},
                  "lstm": {"Wf", "bf", "Wi", "bi", "Wc", "bc", "Wo", "bo"},
                  "gru": {"Wr", "br", "Wz", "bz", "Wnx", "bnx", "Wna", "bna"}}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
TORCH_KEYS = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_converter_round_trip_is_identity(kind):
    p = make_params(kind, np.random.default_rng(11))
    sd = notebook.to_torch_state_dict(kind, p)
    G = GATES[kind]
    assert list(sd) == TORCH_KEYS
    assert sd["weight_ih_l0"].shape == (G * N_A, N_X) and sd["weight_hh_l0"].shape == (G * N_A, N_A)
    assert sd["bias_ih_l0"].shape == sd["bias_hh_l0"].shape == (G * N_A,)
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float64 for v in sd.values())
    back = notebook.from_torch_state_dict(kind, sd)
    assert set(back) == RECURRENT_KEYS[kind]           # Wy / Wya / by are omitted
    for k in back:
        np.testing.assert_array_equal(back[k], p[k], err_msg=k)
        assert back[k].dtype == np.float64
    specific = getattr(notebook, f"{kind}_params_to_torch")(p)
    for k in TORCH_KEYS:
        np.testing.assert_array_equal(specific[k], sd[k])


def test_lstm_to_torch_block_layout():
    """Spot-check the documented layout: PyTorch rows i, f, g, o; notebook [a | x] columns."""
    p = make_params("lstm", np.random.default_rng(12))
    sd = notebook.lstm_params_to_torch(p)
    H = N_A
    np.testing.assert_array_equal(sd["weight_ih_l0"][H:2 * H], p["Wf"][:, H:])
    np.testing.assert_array_equal(sd["weight_hh_l0"][2 * H:3 * H], p["Wc"][:, :H])
    np.testing.assert_array_equal(sd["bias_ih_l0"][:H], p["bi"][:, 0])
    np.testing.assert_array_equal(sd["bias_hh_l0"], np.zeros(4 * H))


def _torch_module(torch, kind):
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    return cls(N_X, N_A, dtype=torch.float64)


@pytest.mark.parametrize("direction", ["to_torch", "from_torch"])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_forward_and_backward_match_torch(kind, direction):
    torch = require("torch")
    rng = np.random.default_rng(13)
    module = _torch_module(torch, kind)
    if direction == "to_torch":
        p = make_params(kind, rng)
        module.load_state_dict({k: torch.from_numpy(v) for k, v in notebook.to_torch_state_dict(kind, p).items()})
    else:  # torch's own random init, both biases non-zero; tensors go straight in
        torch.manual_seed(0)
        for t in module.parameters():
            torch.nn.init.uniform_(t, -0.8, 0.8)
        p = notebook.from_torch_state_dict(kind, module.state_dict())
        p["Wya" if kind == "rnn" else "Wy"] = rng.standard_normal((N_Y, N_A))
        p["by"] = rng.standard_normal((N_Y, 1))

    x, a0, c0 = rng.standard_normal((N_X, M, T)), rng.standard_normal((N_A, M)), rng.standard_normal((N_A, M))
    da = rng.standard_normal((N_A, M, T))
    xt = torch.from_numpy(x.transpose(2, 1, 0).copy()).requires_grad_()     # (T, N, D)
    h0 = torch.from_numpy(a0.T[None].copy()).requires_grad_()               # (1, N, H)
    if kind == "lstm":
        cc0 = torch.from_numpy(c0.T[None].copy()).requires_grad_()
        out, _ = module(xt, (h0, cc0))
        a, _, _, caches = lstm_forward(x, a0, p, c0=c0)
        grads = lstm_backward(da, caches)
    else:
        out, _ = module(xt, h0)
        fwd, bwd = (rnn_forward, rnn_backward) if kind == "rnn" else (gru_forward, gru_backward)
        a, _, caches = fwd(x, a0, p)
        grads = bwd(da, caches)
    np.testing.assert_allclose(a, out.detach().numpy().transpose(2, 1, 0), rtol=0, atol=1e-12)

    out.backward(torch.from_numpy(da.transpose(2, 1, 0).copy()))
    np.testing.assert_allclose(grads["dx"], xt.grad.numpy().transpose(2, 1, 0), rtol=0, atol=1e-11)
    np.testing.assert_allclose(grads["da0"], h0.grad.numpy()[0].T, rtol=0, atol=1e-11)
    if kind == "lstm":
        np.testing.assert_allclose(grads["dc0"], cc0.grad.numpy()[0].T, rtol=0, atol=1e-11)
    # parameter gradients, mapped to torch's layout with the same converter
    as_params = {k[1:]: v for k, v in grads.items() if k[1:] in RECURRENT_KEYS[kind]}
    expected = notebook.to_torch_state_dict(kind, as_params)
    if kind == "gru":   # torch's bias_hh grad: r, z parts equal bias_ih's; n part is dbna
        expected["bias_hh_l0"] = np.concatenate([expected["bias_ih_l0"][:2 * N_A], grads["dbna"][:, 0]])
    else:
        expected["bias_hh_l0"] = expected["bias_ih_l0"]
    torch_grads = {k: v.grad.numpy() for k, v in module.named_parameters()}
    for k in TORCH_KEYS:
        np.testing.assert_allclose(expected[k], torch_grads[k], rtol=0, atol=1e-11, err_msg=k)


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------

def _nb_rnn():
    return make_params("rnn", np.random.default_rng(0), n_x=3, n_a=5)


def _nb_lstm():
    return make_params("lstm", np.random.default_rng(0), n_x=3, n_a=5)


def _nb_gru():
    return make_params("gru", np.random.default_rng(0), n_x=3, n_a=5)


def _bad_gru():
    p = _nb_gru()
    p["Wna"] = np.zeros((5, 4))
    return p


def _bad_bias():
    p = _nb_rnn()
    p["ba"] = np.zeros(5)
    return p


def _lstm_backward_bad_da():
    _, _, _, caches = lstm_forward(np.zeros((3, 10, 7)), np.zeros((5, 10)), _nb_lstm())
    return lstm_backward(np.zeros((5, 10, 6)), caches)


def _rnn_cell_backward_bad_da():
    _, _, cache = rnn_cell(np.zeros((3, 10)), np.zeros((5, 10)), _nb_rnn())
    return rnn_cell_backward(np.zeros((10, 5)), cache)


def _from_torch_bad():
    sd = notebook.gru_params_to_torch(_nb_gru())
    sd["weight_ih_l0"] = np.zeros((14, 3))
    return notebook.gru_params_from_torch(sd)


SHAPE_ERRORS = {
    "rnn_cell a_prev": (lambda: rnn_cell(np.zeros((3, 10)), np.zeros((5, 9)), _nb_rnn()),
                        "a_prev", "(n_a=5, m=10)", "(5, 9)"),
    "lstm_cell xt": (lambda: lstm_cell(np.zeros((4, 10)), np.zeros((5, 10)), np.zeros((5, 10)), _nb_lstm()),
                     "xt", "(n_x=3, m)", "(4, 10)"),
    "lstm_cell c_prev": (lambda: lstm_cell(np.zeros((3, 10)), np.zeros((5, 10)), np.zeros((5, 1)), _nb_lstm()),
                         "c_prev", "(n_a=5, m=10)", "(5, 1)"),
    "rnn_forward x 2-D": (lambda: rnn_forward(np.zeros((3, 10)), np.zeros((5, 10)), _nb_rnn()),
                          "x", "(n_x=3, m, T_x)", "(3, 10)"),
    "gru_forward a0": (lambda: gru_forward(np.zeros((3, 10, 2)), np.zeros((4, 10)), _nb_gru()),
                       "a0", "(n_a=5, m=10)", "(4, 10)"),
    "gru Wna": (lambda: gru_cell(np.zeros((3, 10)), np.zeros((5, 10)), _bad_gru()),
                "parameters['Wna']", "(n_a=5, n_a=5)", "(5, 4)"),
    "1-D bias": (lambda: rnn_forward(np.zeros((3, 10, 2)), np.zeros((5, 10)), _bad_bias()),
                 "parameters['ba']", "(n_a=5, 1)", "(5,)"),
    "lstm_backward da": (_lstm_backward_bad_da, "da", "(n_a=5, m=10, T_x=7)", "(5, 10, 6)"),
    "rnn_cell_backward da_next": (_rnn_cell_backward_bad_da, "da_next", "(n_a=5, m=10)", "(10, 5)"),
    "from_torch weight_ih": (_from_torch_bad, "state_dict['weight_ih_l0']", "(3*H=15, n_x)", "(14, 3)"),
}


@pytest.mark.parametrize("case", list(SHAPE_ERRORS))
def test_wrong_shape_raises_value_error_naming_argument_and_shapes(case):
    call, name, expected, got = SHAPE_ERRORS[case]
    with pytest.raises(ValueError) as info:
        call()
    assert isinstance(info.value, ShapeError)
    msg = str(info.value)
    assert name in msg and expected in msg and got in msg, msg


def _without(p, key):
    return {k: v for k, v in p.items() if k != key}


KEY_ERRORS = {
    "rnn_cell Waa": (lambda: rnn_cell(np.zeros((3, 10)), np.zeros((5, 10)), _without(_nb_rnn(), "Waa")), "Waa"),
    "lstm_forward bo": (lambda: lstm_forward(np.zeros((3, 10, 2)), np.zeros((5, 10)), _without(_nb_lstm(), "bo")),
                        "bo"),
    "gru_forward Wy": (lambda: gru_forward(np.zeros((3, 10, 2)), np.zeros((5, 10)), _without(_nb_gru(), "Wy")), "Wy"),
    "to_torch bna": (lambda: notebook.gru_params_to_torch(_without(_nb_gru(), "bna")), "bna"),
    "from_torch bias_hh": (lambda: notebook.lstm_params_from_torch(
        _without(notebook.lstm_params_to_torch(_nb_lstm()), "bias_hh_l0")), "bias_hh_l0"),
}


@pytest.mark.parametrize("case", list(KEY_ERRORS))
def test_missing_key_raises_key_error_naming_the_key(case):
    call, key = KEY_ERRORS[case]
    with pytest.raises(KeyError) as info:
        call()
    assert isinstance(info.value, ParameterKeyError)
    assert f"'{key}'" in str(info.value)


def test_converters_refuse_multi_layer_state_dicts_and_unknown_kind():
    sd = notebook.rnn_params_to_torch(_nb_rnn())
    sd["weight_ih_l1"] = np.zeros((5, 5))
    with pytest.raises(KeyError, match="weight_ih_l1"):
        notebook.rnn_params_from_torch(sd)
    with pytest.raises(ValueError, match="'rnn', 'lstm', 'gru'"):
        notebook.to_torch_state_dict("transformer", _nb_rnn())


def test_aliases():
    assert scratch.rnn_cell_forward is rnn_cell
    assert scratch.lstm_cell_forward is lstm_cell
    assert scratch.gru_cell_forward is gru_cell
