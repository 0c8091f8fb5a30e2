"""Tests of rnnkit.scratch against independent references.

References used (never rnnkit.scratch's own output):
* the seed notebook's functions, copied verbatim below (prefixed ``seed_``), run on the
  notebook's own cells (same ``np.random.seed(42)`` draws);
* per-column softmax from scipy (or a float64 log-sum-exp written here);
* central finite differences of ``loss = sum(a * da)`` (+ ``sum(c * dc)``);
* torch.nn.RNN / LSTM / GRU in float64 (optional).
"""

import contextlib
import io
import math
import warnings

import numpy as np
import pytest

from rnnkit import scratch
from rnnkit.errors import ParameterKeyError, ShapeError
from rnnkit.scratch import (
    gru_backward, gru_cell, gru_cell_backward, gru_forward,
    lstm_backward, lstm_cell, lstm_cell_backward, lstm_forward,
    rnn_backward, rnn_cell, rnn_cell_backward, rnn_forward,
    sigmoid, softmax,
)

# ---------------------------------------------------------------------------------------
# The seed notebook's functions, verbatim except for the ``seed_`` prefix.
# ---------------------------------------------------------------------------------------


def seed_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def seed_softmax(x):
    e_x = np.exp(x - np.max(x))
    return e_x / e_x.sum(axis=0)


def seed_rnn_cell(x, a, parameters):
    Waa = parameters['Waa']
    Wax = parameters['Wax']
    Wya = parameters['Wya']
    ba = parameters['ba']
    by = parameters['by']

    a_next = np.tanh(np.dot(Waa, a) + np.dot(Wax, x) + ba)
    y_pred = seed_softmax(np.dot(Wya, a_next) + by)
    cache = (a_next, y_pred, x, parameters)
    return a_next, y_pred, cache


def seed_rnn_forward(x, a0, parameters):
    caches = []
    n_x, m, T_x = x.shape
    n_y, n_a = parameters['Wya'].shape

    a = np.zeros([n_a, m, T_x])
    y_pred = np.zeros([n_y, m, T_x])

    a_next = a0

    for t in range(T_x):
        a_next, yt_pred, cache = seed_rnn_cell(x[:, :, t], a_next, parameters)
        a[:, :, t] = a_next
        y_pred[:, :, t] = yt_pred
        caches.append(cache)

    caches = (caches, x)
    return a, y_pred, caches


def seed_lstm_cell(xt, a_prev, c_prev, parameters):
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
    ft = seed_sigmoid(np.dot(Wf, concat) + bf)
    it = seed_sigmoid(np.dot(Wi, concat) + bi)
    cct = np.tanh(np.dot(Wc, concat) + bc)
    c_next = ft * c_prev + it * cct
    ot = seed_sigmoid(np.dot(Wo, concat) + bo)
    a_next = ot * np.tanh(c_next)

    yt_pred = seed_softmax(np.dot(Wy, a_next) + by)

    cache = (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters)

    return a_next, c_next, yt_pred, cache


def seed_lstm_forward(x, a0, parameters):
    """The notebook's unfinished lstm_forward, completed as a plain loop of seed_lstm_cell."""
    n_x, m, T_x = x.shape
    n_y, n_a = parameters['Wy'].shape
    a = np.zeros([n_a, m, T_x])
    c = np.zeros([n_a, m, T_x])
    y = np.zeros([n_y, m, T_x])
    a_next, c_next, caches = a0, np.zeros([n_a, m]), []
    for t in range(T_x):
        a_next, c_next, yt, cache = seed_lstm_cell(x[:, :, t], a_next, c_next, parameters)
        a[:, :, t], c[:, :, t], y[:, :, t] = a_next, c_next, yt
        caches.append(cache)
    return a, y, c, (caches, x)


# The notebook's cells, unchanged (In [10], [12], [14], [17] and the last one).
CELL_10 = """
np.random.seed(42)

x_input = np.random.randn(3, 10)
a_prev = np.random.randn(5, 10)

parameters = {}
parameters['Waa'] = np.random.randn(5, 5)
parameters['Wax'] = np.random.randn(5, 3)
parameters['ba'] = np.random.randn(5, 1)
parameters['Wya'] = np.random.randn(2, 5)
parameters['by'] = np.random.randn(2, 1)
"""

CELL_12 = """
a_next, yt_pred, cache = rnn_cell(x_input, a_prev, parameters)
print(a_next.shape)
"""

CELL_14 = """
np.random.seed(42)

a = np.random.randn(3, 10, 5)
x = np.random.randn(5, 10)

parameters = {}
parameters['Waa'] = np.random.randn(5, 5)
parameters['Wax'] = np.random.randn(5, 3)
parameters['Wya'] = np.random.randn(2, 5)
parameters['ba'] = np.random.randn(5, 1)
parameters['by'] = np.random.randn(2, 1)

a, y, cache = rnn_forward(a, x, parameters)

print(a.shape)
"""

CELL_17 = """
np.random.seed(42)

xt_tmp = np.random.randn(3, 10)
a_prev_tmp = np.random.randn(5, 10)
c_prev_tmp = np.random.randn(5, 10)

parameters_tmp = {}
parameters_tmp['Wf'] = np.random.randn(5, 5+3)
parameters_tmp['Wi'] = np.random.randn(5, 5+3)
parameters_tmp['Wo'] = np.random.randn(5, 5+3)
parameters_tmp['Wc'] = np.random.randn(5, 5+3)
parameters_tmp['Wy'] = np.random.randn(2, 5)
parameters_tmp['bf'] = np.random.randn(5, 1)
parameters_tmp['bi'] = np.random.randn(5, 1)
parameters_tmp['bo'] = np.random.randn(5, 1)
parameters_tmp['bc'] = np.random.randn(5, 1)
parameters_tmp['by'] = np.random.randn(2, 1)


a_next_tmp, c_next_tmp, yt_tmp, cache_tmp = lstm_cell(xt_tmp, a_prev_tmp, c_prev_tmp, parameters_tmp)

print(a_next.shape)
"""

CELL_LAST = """
np.random.seed(42)

x_tmp = np.random.randn(3, 10, 7)
a0_tmp = np.random.randn(5, 10)

parameters_tmp = {}
parameters_tmp['Wf'] = np.random.randn(5, 5+3)
parameters_tmp['Wi'] = np.random.randn(5, 5+3)
parameters_tmp['Wo'] = np.random.randn(5, 5+3)
parameters_tmp['Wc'] = np.random.randn(5, 5+3)
parameters_tmp['Wy'] = np.random.randn(2, 5)
parameters_tmp['bf'] = np.random.randn(5, 1)
parameters_tmp['bi'] = np.random.randn(5, 1)
parameters_tmp['bo'] = np.random.randn(5, 1)
parameters_tmp['bc'] = np.random.randn(5, 1)
parameters_tmp['by'] = np.random.randn(2, 1)

a_tmp, y_tmp, c_tmp, caches_tmp = lstm_forward(x_tmp, a0_tmp, parameters_tmp)
print(a_tmp.shape)
"""

NOTEBOOK_CELLS = [CELL_10, CELL_12, CELL_14, CELL_17, CELL_LAST]
NOTEBOOK_PRINTS = "(5, 10)\n(5, 10, 5)\n(5, 10)\n(5, 10, 7)\n"

SEED_API = {"sigmoid": seed_sigmoid, "softmax": seed_softmax, "rnn_cell": seed_rnn_cell,
            "rnn_forward": seed_rnn_forward, "lstm_cell": seed_lstm_cell,
            "lstm_forward": seed_lstm_forward}
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


def run_notebook(api):
    ns = {"np": np, **api}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        snapshots = []
        for cell in NOTEBOOK_CELLS:
            exec(cell, ns)
            snapshots.append({k: v for k, v in ns.items() if k not in api and k not in ("np", "__builtins__")})
    return out.getvalue(), snapshots


def test_notebook_cells_print_the_notebook_shapes():
    printed, _ = run_notebook(OUR_API)
    assert printed == NOTEBOOK_PRINTS
    seed_printed, _ = run_notebook(SEED_API)   # the seed itself prints the same (sanity)
    assert seed_printed == NOTEBOOK_PRINTS


def test_notebook_cells_match_seed_values():
    _, ours = run_notebook(OUR_API)
    _, seed = run_notebook(SEED_API)
    for i, (o, s) in enumerate(zip(ours, seed)):
        assert set(o) == set(s)
        for name in s:
            assert_close(o[name], s[name], f"cell {i}: {name}")
    # the caches carry the notebook's fields first, then rnnkit's extras
    last_rnn_cell, last = ours[1], ours[4]
    assert isinstance(last_rnn_cell["cache"], scratch.RNNCache)
    np.testing.assert_array_equal(last_rnn_cell["cache"].a_prev, seed[1]["a_prev"])
    assert len(last["caches_tmp"][0]) == 7
    assert scratch.LSTMCache._fields == ("a_next", "c_next", "a_prev", "c_prev", "ft", "it",
                                         "cct", "ot", "xt", "parameters")


def test_rnn_forward_caches_match_seed_and_hold_a_prev():
    rng = np.random.default_rng(1)
    p = {"Waa": rng.standard_normal((4, 4)), "Wax": rng.standard_normal((4, 3)),
         "ba": rng.standard_normal((4, 1)), "Wya": rng.standard_normal((2, 4)),
         "by": rng.standard_normal((2, 1))}
    x, a0 = rng.standard_normal((3, 5, 6)), rng.standard_normal((4, 5))
    a, y, caches = rnn_forward(x, a0, p)
    sa, sy, scaches = seed_rnn_forward(x, a0, p)
    assert_close((a, y, caches), (sa, sy, scaches), "rnn_forward")
    a_prevs = [a0] + [a[:, :, t] for t in range(5)]
    for t, c in enumerate(caches[0]):
        np.testing.assert_array_equal(c.a_prev, a_prevs[t])


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


def test_softmax_is_stable_per_column_where_the_seed_gives_nan():
    x = np.array([[1000.0, -1000.0, 3.0], [1001.0, -1001.0, 1.0], [999.0, -1003.0, 2.0]])
    with np.errstate(all="ignore"):
        seed = seed_softmax(x)
    assert np.isnan(seed[:, 1]).all()            # the notebook's global max fails here
    ours = softmax(x)
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, reference_softmax_axis0(x), rtol=1e-14, atol=0)
    np.testing.assert_allclose(ours.sum(axis=0), 1.0, rtol=1e-15)


def test_softmax_matches_seed_on_ordinary_inputs():
    x = np.random.default_rng(3).standard_normal((4, 6))
    np.testing.assert_allclose(softmax(x), seed_softmax(x), rtol=1e-14)
    np.testing.assert_allclose(softmax(x[:, 0]), seed_softmax(x[:, 0]), rtol=1e-14)


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
    np.testing.assert_allclose(sigmoid(mid), seed_sigmoid(mid), rtol=1e-15)


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
    sd = scratch.to_torch_state_dict(kind, p)
    G = GATES[kind]
    assert list(sd) == TORCH_KEYS
    assert sd["weight_ih_l0"].shape == (G * N_A, N_X) and sd["weight_hh_l0"].shape == (G * N_A, N_A)
    assert sd["bias_ih_l0"].shape == sd["bias_hh_l0"].shape == (G * N_A,)
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float64 for v in sd.values())
    back = scratch.from_torch_state_dict(kind, sd)
    assert set(back) == RECURRENT_KEYS[kind]           # Wy / Wya / by are omitted
    for k in back:
        np.testing.assert_array_equal(back[k], p[k], err_msg=k)
        assert back[k].dtype == np.float64
    specific = getattr(scratch, f"{kind}_params_to_torch")(p)
    for k in TORCH_KEYS:
        np.testing.assert_array_equal(specific[k], sd[k])


def test_lstm_to_torch_block_layout():
    """Spot-check the documented layout: PyTorch rows i, f, g, o; notebook [a | x] columns."""
    p = make_params("lstm", np.random.default_rng(12))
    sd = scratch.lstm_params_to_torch(p)
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
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    module = _torch_module(torch, kind)
    if direction == "to_torch":
        p = make_params(kind, rng)
        module.load_state_dict({k: torch.from_numpy(v) for k, v in scratch.to_torch_state_dict(kind, p).items()})
    else:  # torch's own random init, both biases non-zero; tensors go straight in
        torch.manual_seed(0)
        for t in module.parameters():
            torch.nn.init.uniform_(t, -0.8, 0.8)
        p = scratch.from_torch_state_dict(kind, module.state_dict())
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
    expected = scratch.to_torch_state_dict(kind, as_params)
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
    sd = scratch.gru_params_to_torch(_nb_gru())
    sd["weight_ih_l0"] = np.zeros((14, 3))
    return scratch.gru_params_from_torch(sd)


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
    "lstm_forward bo": (lambda: lstm_forward(np.zeros((3, 10, 2)), np.zeros((5, 10)), _without(_nb_lstm(), "bo")), "bo"),
    "gru_forward Wy": (lambda: gru_forward(np.zeros((3, 10, 2)), np.zeros((5, 10)), _without(_nb_gru(), "Wy")), "Wy"),
    "to_torch bna": (lambda: scratch.gru_params_to_torch(_without(_nb_gru(), "bna")), "bna"),
    "from_torch bias_hh": (lambda: scratch.lstm_params_from_torch(
        _without(scratch.lstm_params_to_torch(_nb_lstm()), "bias_hh_l0")), "bias_hh_l0"),
}


@pytest.mark.parametrize("case", list(KEY_ERRORS))
def test_missing_key_raises_key_error_naming_the_key(case):
    call, key = KEY_ERRORS[case]
    with pytest.raises(KeyError) as info:
        call()
    assert isinstance(info.value, ParameterKeyError)
    assert f"'{key}'" in str(info.value)


def test_converters_refuse_multi_layer_state_dicts_and_unknown_kind():
    sd = scratch.rnn_params_to_torch(_nb_rnn())
    sd["weight_ih_l1"] = np.zeros((5, 5))
    with pytest.raises(KeyError, match="weight_ih_l1"):
        scratch.rnn_params_from_torch(sd)
    with pytest.raises(ValueError, match="'rnn', 'lstm', 'gru'"):
        scratch.to_torch_state_dict("transformer", _nb_rnn())


def test_aliases():
    assert scratch.rnn_cell_forward is rnn_cell
    assert scratch.lstm_cell_forward is lstm_cell
    assert scratch.gru_cell_forward is gru_cell
