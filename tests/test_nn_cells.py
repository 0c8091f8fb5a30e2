"""rnnkit.nn.RNNCell / LSTMCell / GRUCell: hand-written loops with feedback against
torch.nn's cells (float64, outputs and every gradient to 1e-9), finite differences, the tape."""

import itertools

import numpy as np
import pytest

import rnnkit
import rnnkit.nn as nn
from rnnkit.errors import NoForwardError, ShapeError
from rnnkit.gradcheck import gradcheck
from rnnkit.nn.module import Module
from tests.needs import require

TOL = 1e-9
T, N, H = 20, 3, 4
KINDS = [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}), ("LSTMCell", {}), ("GRUCell", {})]
KIND_IDS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
MATRIX = list(itertools.product(range(len(KINDS)), [True, False], [True, False]))
MATRIX_IDS = [f"{KIND_IDS[k]}-{'batched' if b else 'unbatched'}-{'bias' if bias else 'nobias'}"
              for k, b, bias in MATRIX]


def make(kind, D=H, bias=True, seed=3):
    name, kw = KINDS[kind]
    return getattr(nn, name)(D, H, bias=bias, dtype=np.float64, seed=seed, **kw)


def lstm(cell):
    return cell.spec.cell_state


def start(cell, batched, rng, D=H):
    """x0 and a random initial state (unbatched: no batch axis)."""
    lead = (N,) if batched else ()
    x0 = rng.standard_normal(lead + (D,))
    h0 = rng.standard_normal(lead + (H,)) * 0.5
    return x0, ((h0, rng.standard_normal(lead + (H,)) * 0.5) if lstm(cell) else h0)


def loss_weights(cell, batched, rng):
    """One random weight per step for h (and c): L = sum_t <Wh_t, h_t> + <Wc_t, c_t>."""
    lead = (N,) if batched else ()
    wh = rng.standard_normal((T,) + lead + (H,))
    wc = rng.standard_normal((T,) + lead + (H,)) if lstm(cell) else None
    return wh, wc


def torch_reference(cell, x0, state0, wh, wc, P=None):
    """The same loop in PyTorch with autograd: outputs per step and every gradient."""
    import torch

    from rnnkit.interop.torch import to_torch
    tc = to_torch(cell)
    x = torch.tensor(x0, requires_grad=True)
    if lstm(cell):
        st = tuple(torch.tensor(s, requires_grad=True) for s in state0)
        leaves = [x, *st]
    else:
        st = torch.tensor(state0, requires_grad=True)
        leaves = [x, st]
    inp, hs, cs, loss = x, [], [], 0
    for t in range(T):
        st = tc(inp, st)
        h = st[0] if lstm(cell) else st
        hs.append(h)
        loss = loss + (h * torch.tensor(wh[t])).sum()
        if lstm(cell):
            cs.append(st[1])
            loss = loss + (st[1] * torch.tensor(wc[t])).sum()
        inp = h if P is None else h @ torch.tensor(P)
    loss.backward()
    grads = {k: v.grad.numpy() for k, v in tc.named_parameters()}
    return ([h.detach().numpy() for h in hs], [c.detach().numpy() for c in cs], grads,
            [a.grad.numpy() for a in leaves])


def run_loop(cell, x0, state0, P=None):
    """The hand-written rnnkit loop: each output fed back as the next input (through P)."""
    x, st, hs, cs = x0, state0, [], []
    for _ in range(T):
        st = cell(x, st)
        h = st[0] if lstm(cell) else st
        hs.append(h)
        if lstm(cell):
            cs.append(st[1])
        x = h if P is None else h @ P
    return hs, cs


def diff(a, b):
    return max(float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in zip(a, b))


def check_against_torch(cell, ref, hs, cs, dx0, dstate0):
    r_hs, r_cs, r_grads, r_leaves = ref
    assert diff(hs, r_hs) < TOL
    if lstm(cell):
        assert diff(cs, r_cs) < TOL
    assert set(r_grads) == set(cell.gradients())
    for k, g in cell.gradients().items():
        assert np.abs(g - r_grads[k]).max() < TOL, k
    assert np.abs(dx0 - r_leaves[0]).max() < TOL
    states = dstate0 if lstm(cell) else (dstate0,)
    for got, want in zip(states, r_leaves[1:]):
        assert got.shape == want.shape
        assert np.abs(got - want).max() < TOL


@pytest.fixture(scope="module", autouse=True)
def _torch():
    require("torch")


@pytest.mark.parametrize("kind,batched,bias", MATRIX, ids=MATRIX_IDS)
def test_loop_with_feedback_matches_torch_whole_loop_backward(kind, batched, bias):
    rng = np.random.default_rng(kind)
    cell = make(kind, bias=bias)
    x0, state0 = start(cell, batched, rng)
    wh, wc = loss_weights(cell, batched, rng)
    ref = torch_reference(cell, x0, state0, wh, wc)
    hs, cs = run_loop(cell, x0, state0)
    assert cell.recorded_steps == T
    douts = [(wh[t], wc[t]) for t in range(T)] if lstm(cell) else list(wh)
    dxs, dstate0 = cell.backward(douts)
    assert cell.recorded_steps == 0
    assert dxs.shape == (T,) + x0.shape
    check_against_torch(cell, ref, hs, cs, dxs[0], dstate0)


@pytest.mark.parametrize("kind,batched,bias", MATRIX, ids=MATRIX_IDS)
def test_loop_through_a_projection_matches_torch_step_by_step_backward(kind, batched, bias):
    """input_size != hidden_size, x_{t+1} = h_t P: the caller routes every gradient with
    backward_step (as a decoder with input feeding does)."""
    rng = np.random.default_rng(10 + kind)
    D = 6
    cell = make(kind, D=D, bias=bias)
    P = rng.standard_normal((H, D)) * 0.5
    x0, state0 = start(cell, batched, rng, D=D)
    wh, wc = loss_weights(cell, batched, rng)
    ref = torch_reference(cell, x0, state0, wh, wc, P=P)
    hs, cs = run_loop(cell, x0, state0, P=P)
    dx_next = None                                   # gradient on x_{t+1} = h_t P
    dstate = None                                    # gradient on the state step t returned
    for t in range(T - 1, -1, -1):
        dh = wh[t] + (dx_next @ P.T if dx_next is not None else 0)
        if dstate is not None:
            dh = dh + (dstate[0] if lstm(cell) else dstate)
        if lstm(cell):
            dc = wc[t] + (dstate[1] if dstate is not None else 0)
            dx_next, dstate = cell.backward_step((dh, dc))
        else:
            dx_next, dstate = cell.backward_step(dh)
    assert cell.recorded_steps == 0
    check_against_torch(cell, ref, hs, cs, dx_next, dstate)


class _Loop(Module):
    """A T-step loop with feedback as one module, for gradcheck: inputs (x0, state0), output
    the stacked h_t; backward through the cell's whole-loop ``backward`` or, with
    ``steps=True``, through ``backward_step`` routed by hand."""

    def __init__(self, cell, steps=False, T=6):
        super().__init__()
        self._add_child("cell", cell)
        self.steps, self.T = steps, T

    def forward(self, x0, state0):
        self.cell.clear_tape()
        x, st, hs = x0, state0, []
        for _ in range(self.T):
            st = self.cell(x, st)
            hs.append(st[0] if isinstance(st, tuple) else st)
            x = hs[-1]
        return np.stack(hs)

    def backward(self, dout):
        if not self.steps:
            dxs, dstate0 = self.cell.backward(list(dout))
            return dxs[0], dstate0
        dx, dstate = None, None
        for t in range(self.T - 1, -1, -1):
            dh = dout[t] + (dx if dx is not None else 0)
            if isinstance(dstate, tuple):
                dx, dstate = self.cell.backward_step((dh + dstate[0], dstate[1]))
            elif self.cell.spec.cell_state:
                dx, dstate = self.cell.backward_step((dh, None))
            else:
                dx, dstate = self.cell.backward_step(dh + (dstate if dstate is not None else 0))
        return dx, dstate


@pytest.mark.parametrize("kind,batched,steps", list(itertools.product(range(len(KINDS)), [True, False],
                                                                        [False, True])))
def test_gradcheck_loop_with_feedback(kind, batched, steps):
    rng = np.random.default_rng(20 + kind)
    cell = make(kind, bias=bool(kind % 2) or batched)
    x0, state0 = start(cell, batched, rng)
    rep = gradcheck(_Loop(cell, steps), x0, state0)
    rep.assert_ok(1e-7)
    assert {f"cell.{k}" for k in cell.parameters()} <= set(rep.errors)
    assert "input[0]" in rep.errors and any(k.startswith("input[1]") for k in rep.errors)


@pytest.mark.parametrize("kind", range(len(KINDS)), ids=KIND_IDS)
def test_cell_loop_equals_the_layer_on_the_same_weights(kind):
    """A cell stepped over x_t is the one-layer RNN/LSTM/GRU over x (one registry cell)."""
    rng = np.random.default_rng(30 + kind)
    cell = make(kind, D=5)
    name, kw = KINDS[kind]
    layer = getattr(nn, name[: -len("Cell")])(5, H, dtype=np.float64, **kw)
    layer.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
    x = rng.standard_normal((7, N, 5))
    out, state_n = layer(x)
    st = None
    for t in range(7):
        st = cell(x[t], st)
        h = st[0] if lstm(cell) else st
        assert np.abs(h - out[t]).max() < 1e-12
    dout = rng.standard_normal(out.shape)
    dx, _ = layer.backward(dout)
    dxs, _ = cell.backward(list(dout))
    assert np.abs(dxs - dx).max() < 1e-12
    for k, g in cell.gradients().items():
        assert np.abs(g - layer.gradients()[k + "_l0"]).max() < 1e-12


@pytest.mark.parametrize("kind", range(len(KINDS)), ids=KIND_IDS)
def test_to_torch_and_from_torch_keep_the_numbers(kind):
    import torch

    from rnnkit.interop.torch import from_torch, to_torch
    cell = make(kind, D=5, bias=kind != 2)
    tc = to_torch(cell)
    assert type(tc).__name__ == type(cell).__name__
    assert getattr(tc, "nonlinearity", "tanh") == KINDS[kind][1].get("nonlinearity", "tanh")
    back = from_torch(tc)
    assert type(back) is type(cell) and back.bias == cell.bias and back.dtype == np.float64
    x = np.random.default_rng(0).standard_normal((N, 5))
    with torch.no_grad():
        want = tc(torch.tensor(x))
    for m in (cell, back):
        with rnnkit.no_grad():
            got = m(x)
        got = got if isinstance(got, tuple) else (got,)
        want_t = want if isinstance(want, tuple) else (want,)
        assert diff(got, [w.numpy() for w in want_t]) < 1e-12
    fresh = getattr(torch.nn, type(cell).__name__)(5, H, **KINDS[kind][1])       # float32 torch
    assert from_torch(fresh).dtype == np.float32


def test_no_grad_records_nothing_and_zero_grad_clears_the_tape():
    cell = make(2)
    x = np.ones((N, H))
    with rnnkit.no_grad():
        h, c = cell(x)
    assert cell.recorded_steps == 0 and h.flags.writeable
    st = cell(x)
    cell(x, st)
    assert cell.recorded_steps == 2
    assert not st[0].flags.writeable                 # held by the tape: read-only
    cell.zero_grad()
    assert cell.recorded_steps == 0
    with pytest.raises(NoForwardError, match="no recorded step"):
        cell.backward_step((None, None))
    with pytest.raises(NoForwardError, match="no recorded step"):
        cell.backward()


def test_whole_loop_backward_refuses_a_tape_that_is_not_one_loop():
    cell = make(3)
    x = np.ones((N, H))
    cell(x, cell(x) * 0.5)                          # the state was changed between the steps
    with pytest.raises(NoForwardError, match="backward_step"):
        cell.backward()
    assert cell.recorded_steps == 2                 # nothing consumed
    cell.backward_step(np.ones((N, H)))
    assert cell.recorded_steps == 1


@pytest.mark.parametrize("call,match", [
    (lambda c: c(np.ones((N, 5))), r"input_size=4"),
    (lambda c: c(np.ones((N, 2, 4))), r"unbatched"),
    (lambda c: c(np.ones(4), (np.ones((1, H)), np.ones((1, H)))), r"expected h of shape \(4,\)"),
    (lambda c: c(np.ones((N, 4)), np.ones((N, H))), r"tuple \(h, c\)"),
    (lambda c: c(np.ones((N, 4)), (np.ones((N, 3)), np.ones((N, H)))), r"hidden_size=4"),
    (lambda c: c(np.full((N, 4), np.nan)), r"NaN"),
])
def test_bad_inputs_raise_one_clear_error(call, match):
    with pytest.raises(rnnkit.errors.RnnkitError, match=match):
        call(make(2))


def test_bad_gradients_raise_one_clear_error_and_consume_nothing():
    cell = make(2)
    cell(np.ones(H))
    with pytest.raises(ShapeError, match=r"tuple \(dh, dc\)"):
        cell.backward_step(np.ones(H))
    with pytest.raises(ShapeError, match=r"shape \(4,\)"):
        cell.backward_step((np.ones((1, H)), None))
    with pytest.raises(ShapeError, match="one gradient per recorded step"):
        cell.backward([None, None])
    assert cell.recorded_steps == 1
    dx, (dh, dc) = cell.backward_step((np.ones(H), None))
    assert dx.shape == (H,) and dh.shape == (H,) and dc.shape == (H,)


def test_constructor_matches_torch_names_and_shapes():
    cell = nn.GRUCell(3, 5)
    assert {k: v.shape for k, v in cell.parameters().items()} == {
        "weight_ih": (15, 3), "weight_hh": (15, 5), "bias_ih": (15,), "bias_hh": (15,)}
    assert set(nn.RNNCell(3, 5, bias=False).parameters()) == {"weight_ih", "weight_hh"}
    assert nn.recurrent_cell("rnn_relu", 3, 5).nonlinearity == "relu"
    with pytest.raises(rnnkit.errors.ConfigError, match="nonlinearity"):
        nn.RNNCell(3, 5, nonlinearity="sigmoid")
