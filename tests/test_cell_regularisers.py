"""Regularisers of the trainable single-step cells (issue 25): the layer-normalised cells
(nn.LayerNormLSTMCell / nn.LayerNormGRUCell) against a PyTorch reference written here
(torch.nn.functional.layer_norm and the gate equations, autograd) and finite differences, the
same numbers as the layers with layer_norm=True, and nn.LockedDropout (one mask per sequence)
in a hand-written loop against torch.nn.LSTMCell with the mask injected."""

import itertools

import numpy as np
import pytest

import rnnkit
import rnnkit.nn as nn
from rnnkit.errors import ConfigError, ShapeError
from rnnkit.gradcheck import gradcheck
from rnnkit.nn.module import Module

from needs import require

TOL = 1e-9
T, N, D, H = 8, 3, 5, 4
KINDS = ("LayerNormLSTMCell", "LayerNormGRUCell")
MATRIX = list(itertools.product(KINDS, [True, False], [True, False]))
MATRIX_IDS = [f"{k}-{'batched' if b else 'unbatched'}-{'bias' if bias else 'nobias'}"
              for k, b, bias in MATRIX]


def make(kind, bias=True, seed=3, input_size=D):
    """A float64 layer-normalised cell with gains and shifts moved off 1 and 0 (so that a
    wrong use of them shows)."""
    cell = getattr(nn, kind)(input_size, H, bias=bias, dtype=np.float64, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for k, v in cell.parameters().items():
        if k.startswith("ln_"):
            v[...] = v + 0.3 * rng.standard_normal(v.shape)
    return cell


def is_lstm(cell):
    return cell.spec.cell_state


def start(cell, batched, rng, input_size=D):
    lead = (N,) if batched else ()
    x0 = rng.standard_normal(lead + (input_size,))
    h0 = rng.standard_normal(lead + (H,)) * 0.5
    return x0, ((h0, rng.standard_normal(lead + (H,)) * 0.5) if is_lstm(cell) else h0)


def torch_step(p, x, state, lstm):
    """One step of the layer-normalised LSTM / GRU (Ba et al. 2016), written here in torch."""
    import torch
    F = torch.nn.functional

    def ln(z, w):
        return F.layer_norm(z, (z.shape[-1],), eps=1e-5) * w

    gx = ln(x @ p["weight_ih"].T, p["ln_weight_ih"])
    if lstm:
        h, c = state
        a = gx + ln(h @ p["weight_hh"].T, p["ln_weight_hh"])
        if "bias_ih" in p:
            a = a + p["bias_ih"] + p["bias_hh"]
        i, f, g, o = a.chunk(4, dim=-1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * torch.tanh(ln(c_new, p["ln_weight_c"]) + p["ln_bias_c"])
        return h_new, c_new
    h = state
    gh = ln(h @ p["weight_hh"].T, p["ln_weight_hh"])
    if "bias_ih" in p:
        gx, gh = gx + p["bias_ih"], gh + p["bias_hh"]
    xr, xz, xn = gx.chunk(3, dim=-1)
    hr, hz, hn = gh.chunk(3, dim=-1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (1 - z) * n + z * h


def torch_loop(cell, x0, state0, wh, wc, P=None, masks=None):
    """T steps with the output fed back (through P), loss sum_t <wh_t, h_t> (+ <wc_t, c_t>),
    in torch with autograd. Returns (hs, cs, parameter grads, [dx0, dstate0...])."""
    import torch
    p = {k: torch.tensor(v, requires_grad=True) for k, v in cell.parameters().items()}
    x = torch.tensor(x0, requires_grad=True)
    lstm = is_lstm(cell)
    st0 = tuple(torch.tensor(s, requires_grad=True) for s in (state0 if lstm else (state0,)))
    st = st0 if lstm else st0[0]
    inp, hs, cs, loss = x, [], [], 0
    for t in range(T):
        st = torch_step(p, inp, st, lstm)
        h = st[0] if lstm else st
        hs.append(h)
        loss = loss + (h * torch.tensor(wh[t])).sum()
        if lstm:
            cs.append(st[1])
            loss = loss + (st[1] * torch.tensor(wc[t])).sum()
        inp = h if P is None else h @ torch.tensor(P)
    loss.backward()
    return ([h.detach().numpy() for h in hs], [c.detach().numpy() for c in cs],
            {k: v.grad.numpy() for k, v in p.items()}, [x.grad.numpy()] + [s.grad.numpy() for s in st0])


def run_loop(cell, x0, state0, P=None):
    x, st, hs, cs = x0, state0, [], []
    for _ in range(T):
        st = cell(x, st)
        hs.append(st[0] if is_lstm(cell) else st)
        if is_lstm(cell):
            cs.append(st[1])
        x = hs[-1] if P is None else hs[-1] @ P
    return hs, cs


def diff(a, b):
    return max(float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in zip(a, b))


def check(cell, ref, hs, cs, dx0, dstate0):
    r_hs, r_cs, r_grads, r_leaves = ref
    assert diff(hs, r_hs) < TOL
    if is_lstm(cell):
        assert diff(cs, r_cs) < TOL
    assert set(r_grads) == set(cell.gradients())
    for k, g in cell.gradients().items():
        assert np.abs(g - r_grads[k]).max() < TOL, k
    assert np.abs(dx0 - r_leaves[0]).max() < TOL
    for got, want in zip(dstate0 if is_lstm(cell) else (dstate0,), r_leaves[1:]):
        assert got.shape == want.shape
        assert np.abs(got - want).max() < TOL


@pytest.fixture
def torch():
    return require("torch")


@pytest.mark.parametrize("kind,batched,bias", MATRIX, ids=MATRIX_IDS)
def test_layer_norm_cell_loop_with_feedback_matches_the_torch_reference(torch, kind, batched, bias):
    rng = np.random.default_rng(1)
    cell = make(kind, bias=bias, input_size=H)
    x0, state0 = start(cell, batched, rng, input_size=H)
    lead = (N,) if batched else ()
    wh = rng.standard_normal((T,) + lead + (H,))
    wc = rng.standard_normal((T,) + lead + (H,))
    ref = torch_loop(cell, x0, state0, wh, wc)
    hs, cs = run_loop(cell, x0, state0)
    douts = [(wh[t], wc[t]) for t in range(T)] if is_lstm(cell) else list(wh)
    dxs, dstate0 = cell.backward(douts)
    assert cell.recorded_steps == 0 and dxs.shape == (T,) + x0.shape
    check(cell, ref, hs, cs, dxs[0], dstate0)


@pytest.mark.parametrize("kind", KINDS)
def test_layer_norm_cell_step_by_step_backward_through_a_projection_matches_torch(torch, kind):
    """input_size != hidden_size, x_{t+1} = h_t P, gradients routed with backward_step."""
    rng = np.random.default_rng(2)
    cell = make(kind)
    P = rng.standard_normal((H, D)) * 0.5
    x0, state0 = start(cell, True, rng)
    wh, wc = rng.standard_normal((T, N, H)), rng.standard_normal((T, N, H))
    ref = torch_loop(cell, x0, state0, wh, wc, P=P)
    hs, cs = run_loop(cell, x0, state0, P=P)
    dx_next = dstate = None
    for t in range(T - 1, -1, -1):
        dh = wh[t] + (dx_next @ P.T if dx_next is not None else 0)
        if is_lstm(cell):
            dh = dh + (dstate[0] if dstate is not None else 0)
            dx_next, dstate = cell.backward_step((dh, wc[t] + (dstate[1] if dstate is not None else 0)))
        else:
            dx_next, dstate = cell.backward_step(dh + (dstate if dstate is not None else 0))
    check(cell, ref, hs, cs, dx_next, dstate)


class _Loop(Module):
    """T steps with feedback as one module for gradcheck: (x0, state0) -> stacked h_t. With a
    LockedDropout ``drop``, one mask per call on the h entering each next step (routed by
    backward_step) and one on the first input."""

    def __init__(self, cell, drop=None, steps=4):
        super().__init__()
        self._add_child("cell", cell)
        self.drop, self.steps = drop, steps

    def forward(self, x0, state0):
        self.cell.clear_tape()
        lstm = is_lstm(self.cell)
        N_ = x0.shape[0]
        self.mh = self.drop.new_mask((N_, H), np.float64) if self.drop else None
        self.mx = self.drop.new_mask(x0.shape, np.float64) if self.drop else None
        x, st, hs = (x0 * self.mx if self.drop else x0), state0, []
        for t in range(self.steps):
            if t and self.drop:
                st = (st[0] * self.mh, st[1]) if lstm else st * self.mh
            st = self.cell(x, st)
            hs.append(st[0] if lstm else st)
            x = hs[-1]
        return np.stack(hs)

    def backward(self, dout):
        if self.drop is None:
            dxs, dstate0 = self.cell.backward(list(dout))
            return dxs[0], dstate0
        lstm = is_lstm(self.cell)
        dx = dstate = None
        for t in range(self.steps - 1, -1, -1):
            dh = dout[t] + (dx if dx is not None else 0)
            if lstm:
                dh = dh + (dstate[0] * self.mh if dstate is not None else 0)
                dx, dstate = self.cell.backward_step((dh, None if dstate is None else dstate[1]))
            else:
                dx, dstate = self.cell.backward_step(dh + (dstate * self.mh if dstate is not None else 0))
        return dx * self.mx, dstate


class FixedMasks:
    """The module called with its generator reset before every call (the same masks)."""

    def __init__(self, module, rng):
        self.module, self.rng, self.state = module, rng, rng.bit_generator.state

    def __call__(self, *a):
        self.rng.bit_generator.state = self.state
        return self.module(*a)

    def __getattr__(self, name):
        return getattr(self.module, name)


@pytest.mark.parametrize("kind,batched", [pytest.param(k, b, marks=() if b else pytest.mark.slow)
                                          for k, b in itertools.product(KINDS, [True, False])])
def test_gradcheck_layer_norm_cell_loop(kind, batched):
    rng = np.random.default_rng(3)
    cell = make(kind, bias=batched, input_size=H)
    x0, state0 = start(cell, batched, rng, input_size=H)
    rep = gradcheck(_Loop(cell), x0, state0)
    rep.assert_ok(1e-7)
    assert {f"cell.{k}" for k in cell.parameters()} <= set(rep.errors)
    assert any(k.startswith("cell.ln_") for k in rep.errors)


@pytest.mark.parametrize("kind", ["GRUCell", *(pytest.param(k, marks=pytest.mark.slow) for k in
                                              ("LSTMCell", "RNNCell", "LayerNormLSTMCell"))])
def test_gradcheck_locked_dropout_in_a_cell_loop(kind):
    rng = np.random.default_rng(4)
    cell = make(kind, input_size=H) if kind.startswith("LayerNorm") else \
        getattr(nn, kind)(H, H, dtype=np.float64, seed=3)
    drop = nn.LockedDropout(0.4, seed=5)
    loop = _Loop(cell, drop)
    x0, state0 = start(cell, True, rng, input_size=H)
    rep = gradcheck(FixedMasks(loop, drop.rng), x0, state0)
    rep.assert_ok(1e-7)
    assert (loop.mh == 0).any() and (loop.mh != 0).any()        # a mask was drawn and checked
    assert {f"cell.{k}" for k in cell.parameters()} <= set(rep.errors)


def test_locked_dropout_in_a_cell_loop_matches_torch_with_the_mask_injected(torch):
    """Gal's recurrent dropout written by hand: h_{t-1} * m enters each step of an LSTMCell;
    the same loop in torch.nn.LSTMCell with the same mask."""
    rng = np.random.default_rng(6)
    cell = nn.LSTMCell(D, H, dtype=np.float64, seed=3)
    drop = nn.LockedDropout(0.3, seed=9)
    x = rng.standard_normal((T, N, D))
    xd = drop(x)                                                   # one input mask (N, D)
    m = drop.new_mask((N, H), np.float64)                          # one recurrent mask (N, H)
    wh = rng.standard_normal((T, N, H))
    st, hs = None, []
    for t in range(T):
        st = cell(xd[t], None if st is None else (st[0] * m, st[1]))
        hs.append(st[0])
    dstate, dxs = None, [None] * T
    for t in range(T - 1, -1, -1):
        dh = wh[t] + (dstate[0] * m if dstate is not None else 0)
        dxs[t], dstate = cell.backward_step((dh, None if dstate is None else dstate[1]))
    dx = drop.backward(np.stack(dxs))

    from rnnkit.interop.torch import to_torch
    tc = to_torch(cell)
    tx = torch.tensor(x, requires_grad=True)
    txd = tx * torch.tensor(drop.mask)[None]
    tm = torch.tensor(m)
    tst, loss, ths = None, 0, []
    for t in range(T):
        tst = tc(txd[t], None if tst is None else (tst[0] * tm, tst[1]))
        ths.append(tst[0])
        loss = loss + (tst[0] * torch.tensor(wh[t])).sum()
    loss.backward()
    assert diff(hs, [h.detach().numpy() for h in ths]) < TOL
    assert np.abs(dx - tx.grad.numpy()).max() < TOL
    for k, p in tc.named_parameters():
        assert np.abs(cell.gradients()[k] - p.grad.numpy()).max() < TOL, k


def test_locked_dropout_uses_one_mask_for_every_step_and_is_identity_in_eval():
    drop = nn.LockedDropout(0.5, seed=0)
    x = np.ones((20, 6, 7))
    y = drop(x)
    assert drop.mask.shape == (6, 7)
    assert set(np.unique(drop.mask)) == {0.0, 2.0}
    assert all(np.array_equal(y[t], drop.mask) for t in range(20))      # the same at every step
    assert np.array_equal(drop.backward(np.full_like(x, 3.0)), 3.0 * y)
    bf = nn.LockedDropout(0.5, batch_first=True, seed=0)
    yb = bf(np.ones((6, 20, 7)))
    assert np.array_equal(yb, y.transpose(1, 0, 2))                     # same draw, other layout
    first = nn.LockedDropout(0.5, seed=0).new_mask((6, 7), np.float64)
    assert np.array_equal(first, drop.mask)                             # the same generator draw
    un = nn.LockedDropout(0.5, seed=0)(np.ones((20, 7)))                # unbatched (T, D)
    assert all(np.array_equal(un[t], un[0]) for t in range(20))
    drop.eval()
    assert drop(x) is not None and np.array_equal(drop(x), x) and drop.mask is None
    assert np.array_equal(drop.new_mask((6, 7)), np.ones((6, 7), np.float32))
    assert np.array_equal(drop.backward(x), x)
    assert np.array_equal(nn.LockedDropout(0.0).new_mask((2, 3)), np.ones((2, 3)))
    assert 0.27 < (nn.LockedDropout(0.3, seed=1).new_mask((400, 50)) == 0).mean() < 0.33


def test_layer_norm_cell_stepped_is_the_layer_norm_layer_on_the_same_weights():
    """One definition of the math: the cell stepped over x_t gives nn.LSTM/GRU(layer_norm=True)."""
    rng = np.random.default_rng(7)
    for kind, layer_cls in (("LayerNormLSTMCell", nn.LSTM), ("LayerNormGRUCell", nn.GRU)):
        cell = make(kind)
        layer = layer_cls(D, H, dtype=np.float64, layer_norm=True)
        layer.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
        x = rng.standard_normal((T, N, D))
        out, _ = layer(x)
        st = None
        for t in range(T):
            st = cell(x[t], st)
            assert np.abs((st[0] if is_lstm(cell) else st) - out[t]).max() < 1e-12
        dout = rng.standard_normal(out.shape)
        dx, _ = layer.backward(dout)
        dxs, _ = cell.backward(list(dout))
        assert np.abs(dxs - dx).max() < 1e-12
        for k, g in cell.gradients().items():
            assert np.abs(g - layer.gradients()[k + "_l0"]).max() < 1e-12, k
        with rnnkit.no_grad():                                    # the tape-less path
            st = None
            for t in range(T):
                st = cell(x[t], st)
        assert np.abs((st[0] if is_lstm(cell) else st) - out[-1]).max() < 1e-12


def test_layer_norm_cells_are_built_by_name_and_refused_where_they_do_not_exist(torch):
    for name, cls in (("lstm_ln", nn.LayerNormLSTMCell), ("layernorm_gru", nn.LayerNormGRUCell)):
        cell = nn.recurrent_cell(name, 3, 5)
        assert type(cell) is cls and cell.layer_norm and cell.spec.layer_norm
    c = nn.LSTMCell(3, 5, layer_norm=True)
    assert c.spec.name == "lstm_ln" and "layer_norm=True" in repr(c)
    assert set(c.parameters()) == {k[: -len("_l0")] for k in nn.LSTM(3, 5, layer_norm=True).parameters()}
    assert {k: v.shape for k, v in nn.LayerNormGRUCell(3, 5).parameters().items()} == {
        "weight_ih": (15, 3), "weight_hh": (15, 5), "bias_ih": (15,), "bias_hh": (15,),
        "ln_weight_ih": (15,), "ln_weight_hh": (15,)}
    fresh = nn.LayerNormLSTMCell(3, 5).parameters()
    assert np.all(fresh["ln_weight_c"] == 1) and np.all(fresh["ln_bias_c"] == 0)
    with pytest.raises(ConfigError, match="layer-normalised variant"):
        nn.RNNCell(3, 5, layer_norm=True)
    from rnnkit.interop.torch import to_torch
    with pytest.raises(ConfigError, match="no layer-normalised cell"):
        to_torch(nn.LayerNormLSTMCell(3, 5))
    with pytest.raises(ShapeError, match="new_mask"):
        nn.LockedDropout(0.2)(np.ones(4))
    with pytest.raises(ConfigError, match="p"):
        nn.LockedDropout(1.0)
