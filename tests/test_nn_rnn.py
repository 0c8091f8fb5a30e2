"""rnnkit.nn.RNN/LSTM/GRU: finite differences, PyTorch parity, contract details."""

import itertools

import numpy as np
import pytest

import rnnkit
import rnnkit.nn as nn
from rnnkit.gradcheck import gradcheck
from rnnkit.interop import notebook

from needs import require

CELLS = ["RNN", "LSTM", "GRU"]
MATRIX = list(itertools.product(CELLS, [1, 2], [False, True], [False, True]))
IDS = [f"{c}-L{L}-{'bi' if b else 'uni'}-{'len' if ln else 'full'}" for c, L, b, ln in MATRIX]
# finite differences of the bidirectional and 2-layer LSTM cases take seconds: CI runs them
GRADCHECK_MATRIX = [pytest.param(*case, id=name,
                                 marks=pytest.mark.slow if case[2] or (case[1] == 2 and case[0] == "LSTM") else ())
                    for case, name in zip(MATRIX, IDS)]

T, N, D, H = 5, 3, 3, 4
LENGTHS = np.array([5, 2, 4])


def make(cell, L, bi, **kw):
    return getattr(nn, cell)(D, H, num_layers=L, bidirectional=bi, dtype=np.float64, seed=7, **kw)


def make_state(cell, L, bi, rng, n=N):
    shape = (L * (2 if bi else 1), n, H)
    h0 = rng.standard_normal(shape)
    return (h0, rng.standard_normal(shape)) if cell == "LSTM" else h0


@pytest.mark.parametrize("cell,L,bi,use_len", GRADCHECK_MATRIX)
def test_gradcheck_matrix(cell, L, bi, use_len):
    rng = np.random.default_rng(0)
    m = make(cell, L, bi)
    x = rng.standard_normal((T, N, D))
    rep = gradcheck(m, x, make_state(cell, L, bi, rng), lengths=LENGTHS if use_len else None)
    rep.assert_ok(1e-7)
    # every parameter and the input / initial states were checked
    assert set(m.parameters()) <= set(rep.errors)
    assert "input[0]" in rep.errors and any(k.startswith("input[1]") for k in rep.errors)


def test_gradcheck_relu_and_no_bias():
    rng = np.random.default_rng(1)
    m = nn.RNN(D, H, nonlinearity="relu", bias=False, num_layers=2, dtype=np.float64, seed=3)
    assert not any(k.startswith("bias") for k in m.parameters())
    gradcheck(m, rng.standard_normal((T, N, D)), None).assert_ok(1e-7)


def _torch_run(torch, tm, cell, x, state, lengths, batch_first=False):
    xt = torch.tensor(x, requires_grad=True)
    if cell == "LSTM":
        st = tuple(torch.tensor(s, requires_grad=True) for s in state)
    else:
        st = torch.tensor(state, requires_grad=True)
    if lengths is not None:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
        po, sn = tm(packed, st)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(
            po, batch_first=batch_first, total_length=x.shape[1 if batch_first else 0])
    else:
        out, sn = tm(xt, st)
    return xt, st, out, sn


def rel(a, b):
    a = np.asarray(a)
    b = np.asarray(b)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


def _backward_both(torch, m, cell, out, hs, tout, ths, rng):
    """Random output and final-state gradients through rnnkit's backward and torch's autograd;
    returns rnnkit's ``(dx, dstate0)`` (torch's are in the leaves' ``.grad``)."""
    dout = rng.standard_normal(out.shape)
    dsn = tuple(rng.standard_normal(h.shape) for h in hs)
    loss = (tout * torch.tensor(dout)).sum() + sum((t * torch.tensor(d)).sum() for t, d in zip(ths, dsn))
    loss.backward()
    return m.backward(dout, dsn if cell == "LSTM" else dsn[0])


@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
@pytest.mark.parametrize("cell,L,bi,use_len", MATRIX, ids=IDS)
def test_torch_parity(cell, L, bi, use_len, batch_first):
    torch = require("torch")
    rng = np.random.default_rng(2)
    m = make(cell, L, bi, batch_first=batch_first)
    tm = getattr(torch.nn, cell)(D, H, num_layers=L, bidirectional=bi, batch_first=batch_first).double()
    tm.load_state_dict({k: torch.tensor(v) for k, v in m.state_dict().items()})
    n = 4
    lengths = np.array([5, 1, 3, 4]) if use_len else None
    x = rng.standard_normal((n, T, D) if batch_first else (T, n, D))
    state = make_state(cell, L, bi, rng, n)
    out, sn = m(x, state, lengths=lengths)
    xt, st, tout, tsn = _torch_run(torch, tm, cell, x, state, lengths, batch_first)
    assert rel(out, tout.detach().numpy()) < 1e-9
    hs = sn if cell == "LSTM" else (sn,)
    ths = tsn if cell == "LSTM" else (tsn,)
    for a, b in zip(hs, ths):
        assert rel(a, b.detach().numpy()) < 1e-9
    dx, ds0 = _backward_both(torch, m, cell, out, hs, tout, ths, rng)
    assert rel(dx, xt.grad.numpy()) < 1e-9
    ds0 = ds0 if cell == "LSTM" else (ds0,)
    tst = st if cell == "LSTM" else (st,)
    for a, b in zip(ds0, tst):
        assert rel(a, b.grad.numpy()) < 1e-9
    grads = m.gradients()
    for k, p in tm.named_parameters():
        assert rel(grads[k], p.grad.numpy()) < 1e-9, k


@pytest.mark.parametrize("cell", CELLS)
def test_state_dict_roundtrip_with_torch(cell):
    torch = require("torch")
    tm = getattr(torch.nn, cell)(D, H, num_layers=2, bidirectional=True)
    m = getattr(nn, cell)(D, H, num_layers=2, bidirectional=True, seed=0)
    m.load_state_dict(tm.state_dict())                       # torch tensors accepted
    sd = m.state_dict()
    assert list(sd) == list(tm.state_dict())                  # same keys, same order
    for k, v in tm.state_dict().items():
        assert sd[k].shape == tuple(v.shape)
        np.testing.assert_array_equal(sd[k], v.numpy())
    tm2 = getattr(torch.nn, cell)(D, H, num_layers=2, bidirectional=True)
    tm2.load_state_dict({k: torch.tensor(v) for k, v in sd.items()})  # and back
    x = np.random.default_rng(0).standard_normal((T, N, D)).astype(np.float32)
    out, _ = m(x)
    np.testing.assert_allclose(out, tm2(torch.tensor(x))[0].detach().numpy(), atol=2e-6)


def test_load_state_dict_errors_name_the_key():
    m = nn.LSTM(D, H)
    sd = m.state_dict()
    bad = dict(sd)
    del bad["weight_hh_l0"]
    with pytest.raises(rnnkit.ParameterKeyError, match="weight_hh_l0"):
        m.load_state_dict(bad)
    bad = dict(sd, extra=np.zeros(3))
    with pytest.raises(KeyError, match="extra"):
        m.load_state_dict(bad)
    bad = dict(sd, weight_ih_l0=np.zeros((4 * H, D + 1)))
    with pytest.raises(ValueError, match=r"weight_ih_l0.*\(16, 3\).*\(16, 4\)"):
        m.load_state_dict(bad)
    # nothing changed by the failed loads
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, sd[k])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", CELLS)
def test_dtype_preserved_end_to_end(cell, dtype):
    m = getattr(nn, cell)(D, H, num_layers=2, dtype=dtype, seed=0)
    x = np.random.default_rng(0).standard_normal((T, N, D))      # float64 in, cast to layer dtype
    out, sn = m(x)
    dx, ds = m.backward(np.ones_like(out))
    assert out.dtype == dtype and dx.dtype == dtype
    for a in (sn if cell == "LSTM" else (sn,)) + (ds if cell == "LSTM" else (ds,)):
        assert a.dtype == dtype
    assert all(g.dtype == dtype for g in m.gradients().values())
    # float32 forward agrees with float64 forward on the same weights
    m64 = getattr(nn, cell)(D, H, num_layers=2, dtype=np.float64, seed=0)
    m64.load_state_dict(m.state_dict())
    np.testing.assert_allclose(out, m64(x)[0], atol=1e-5 if dtype == np.float32 else 1e-14)


@pytest.mark.parametrize("cell", CELLS)
def test_lengths_padding_semantics(cell):
    """Outputs at padding are 0 and a padded batch equals running each sequence alone."""
    rng = np.random.default_rng(5)
    m = getattr(nn, cell)(D, H, bidirectional=True, num_layers=2, dtype=np.float64, seed=1)
    x = rng.standard_normal((T, N, D))
    out, sn = m(x, lengths=LENGTHS)
    h_n = sn[0] if cell == "LSTM" else sn
    for n, ln in enumerate(LENGTHS):
        o1, s1 = m(x[:ln, n: n + 1])
        np.testing.assert_allclose(out[:ln, n], o1[:, 0], atol=1e-13)
        assert np.all(out[ln:, n] == 0)
        h1 = s1[0] if cell == "LSTM" else s1
        np.testing.assert_allclose(h_n[:, n], h1[:, 0], atol=1e-13)


def test_gradients_accumulate_until_zero_grad():
    rng = np.random.default_rng(0)
    m = nn.GRU(D, H, dtype=np.float64, seed=0)
    x = rng.standard_normal((T, N, D))
    out, _ = m(x)
    m.backward(np.ones_like(out))
    g1 = {k: v.copy() for k, v in m.gradients().items()}
    out, _ = m(x)
    m.backward(np.ones_like(out))
    for k, v in m.gradients().items():
        np.testing.assert_allclose(v, 2 * g1[k], rtol=1e-12)
    m.zero_grad()
    assert all(not v.any() for v in m.gradients().values())


@pytest.mark.slow
def test_dropout_train_eval_and_gradient():
    rng = np.random.default_rng(0)
    m = nn.LSTM(D, H, num_layers=3, dropout=0.5, dtype=np.float64, seed=4)
    ref = nn.LSTM(D, H, num_layers=3, dropout=0.0, dtype=np.float64, seed=4)
    x = rng.standard_normal((T, N, D))
    m.eval()
    np.testing.assert_array_equal(m(x)[0], ref(x)[0])            # eval: no dropout
    m.train()
    assert not np.allclose(m(x)[0], ref(x)[0])                     # train: dropout active

    class FixedMask:                                               # same mask on every call
        def __init__(self, layer):
            self.layer = layer
            self.state = layer.rng.bit_generator.state

        def __call__(self, *a, **k):
            self.layer.rng.bit_generator.state = self.state
            return self.layer(*a, **k)

        def __getattr__(self, name):
            return getattr(self.layer, name)

    gradcheck(FixedMask(m), x, None).assert_ok(1e-7)


@pytest.mark.parametrize("cell", CELLS)
def test_no_grad_streams_same_numbers(cell):
    rng = np.random.default_rng(3)
    m = getattr(nn, cell)(D, H, num_layers=2, dtype=np.float64, seed=2)
    x = rng.standard_normal((600, 2, D))                     # longer than one stream chunk
    out, sn = m(x)
    with rnnkit.no_grad():
        out2, sn2 = m(x)
    np.testing.assert_allclose(out2, out, atol=1e-13)
    with pytest.raises(RuntimeError, match="no forward pass"):
        m.backward(np.ones_like(out))


def test_returned_output_cannot_corrupt_backward_cache():
    m = nn.RNN(D, H, dtype=np.float64)
    out, _ = m(np.ones((T, N, D)))
    with pytest.raises(ValueError):
        out += 1


@pytest.mark.parametrize("bad,match", [
    (np.ones((T,)), r"\(T, N, input_size=3\).*or unbatched \(T, input_size\).*1-D"),
    (np.ones((T, N + 1)), r"\(T, input_size=3\)"),
    (np.ones((T, N, D + 1)), r"input_size should be 3, not 4"),
    (np.ones((T, N, D), dtype=complex), "complex"),
    (np.full((T, N, D), np.nan), "NaN"),
    (np.ones((0, N, D)), "T >= 1"),
    (np.ones((T, 0, D)), "N >= 1"),
])
def test_bad_inputs_raise_clear_errors(bad, match):
    m = nn.GRU(D, H)
    with pytest.raises(rnnkit.RnnkitError, match=match):
        m(bad)


def test_bad_state_and_lengths():
    m = nn.LSTM(D, H, num_layers=2)
    x = np.ones((T, N, D))
    with pytest.raises(rnnkit.ShapeError, match="tuple"):
        m(x, np.zeros((2, N, H)))
    with pytest.raises(rnnkit.ShapeError, match=r"num_layers\*num_directions=2.*should be 2, not 1"):
        m(x, (np.zeros((1, N, H)), np.zeros((1, N, H))))
    with pytest.raises(rnnkit.ShapeError, match=r"lengths"):
        m(x, lengths=[1, 2])
    with pytest.raises(rnnkit.ShapeError, match=r"\[1, T=5\]"):
        m(x, lengths=[0, 2, 3])
    with pytest.raises(rnnkit.ShapeError, match=r"\[1, T=5\]"):
        m(x, lengths=[6, 2, 3])
    with pytest.raises(rnnkit.DTypeError, match="integers"):
        m(x, lengths=[1.5, 2, 3])


def test_integer_input_is_converted():
    m = nn.RNN(D, H, dtype=np.float64, seed=0)
    xi = np.arange(T * N * D).reshape(T, N, D) % 3
    np.testing.assert_array_equal(m(xi)[0], m(xi.astype(np.float64))[0])


@pytest.mark.parametrize("kw,match", [
    (dict(hidden_size=0), "hidden_size >= 1"),
    (dict(dropout=1.0), "dropout < 1"),
    (dict(dtype=np.int32), "float32 or float64"),
    (dict(num_layers=1.5), "integer"),
])
def test_bad_constructor_args(kw, match):
    args = dict(input_size=3, hidden_size=4)
    args.update(kw)
    with pytest.raises(rnnkit.ConfigError, match=match):
        nn.LSTM(**args)


@pytest.mark.parametrize("cell", CELLS)
def test_scratch_and_nn_agree_on_converted_weights(cell):
    """Notebook dict -> PyTorch-named state_dict -> rnnkit.nn gives the scratch hidden states,
    and nn -> notebook dict -> scratch gives the nn hidden states (float64, both ways)."""
    from rnnkit import scratch
    rng = np.random.default_rng(11)
    kind = cell.lower()
    n_x, n_a, m, T_x = 3, 5, 4, 6
    if kind == "rnn":
        p = {"Wax": rng.standard_normal((n_a, n_x)), "Waa": rng.standard_normal((n_a, n_a)) * 0.5,
             "ba": rng.standard_normal((n_a, 1))}
    elif kind == "lstm":
        p = {k: rng.standard_normal((n_a, n_a + n_x)) * 0.5 for k in ("Wf", "Wi", "Wc", "Wo")}
        p.update({k: rng.standard_normal((n_a, 1)) for k in ("bf", "bi", "bc", "bo")})
    else:
        p = {k: rng.standard_normal((n_a, n_a + n_x)) * 0.5 for k in ("Wr", "Wz")}
        p.update(Wnx=rng.standard_normal((n_a, n_x)), Wna=rng.standard_normal((n_a, n_a)) * 0.5)
        p.update({k: rng.standard_normal((n_a, 1)) for k in ("br", "bz", "bnx", "bna")})
    p.update(Wya=rng.standard_normal((2, n_a)), Wy=rng.standard_normal((2, n_a)),
             by=rng.standard_normal((2, 1)))
    x = rng.standard_normal((n_x, m, T_x))
    a0 = rng.standard_normal((n_a, m))
    fwd = getattr(scratch, f"{kind}_forward")
    a_ref = fwd(x, a0, p)[0]                                     # (n_a, m, T_x)
    layer = getattr(nn, cell)(n_x, n_a, dtype=np.float64)
    layer.load_state_dict(notebook.to_torch_state_dict(kind, p))
    h0 = a0.T[None]                                              # (1, m, n_a)
    state = (h0, np.zeros_like(h0)) if cell == "LSTM" else h0
    out, _ = layer(x.transpose(2, 1, 0), state)                  # (T, m, n_x) -> (T, m, n_a)
    np.testing.assert_allclose(out.transpose(2, 1, 0), a_ref, rtol=1e-12, atol=1e-13)
    # and back: random nn weights (separate b_ih / b_hh) -> notebook dict
    layer2 = getattr(nn, cell)(n_x, n_a, dtype=np.float64, seed=5)
    p2 = notebook.from_torch_state_dict(kind, layer2.state_dict())
    p2.update(Wya=p["Wya"], Wy=p["Wy"], by=p["by"])
    out2, _ = layer2(x.transpose(2, 1, 0), state)
    np.testing.assert_allclose(fwd(x, a0, p2)[0], out2.transpose(2, 1, 0), rtol=1e-12, atol=1e-13)


def test_step_refuses_nan_and_backward_without_forward_is_rnnkit_error():
    m = nn.LSTM(D, H, seed=0)
    with pytest.raises(rnnkit.NonFiniteError, match="x_t"):
        m.step(np.array([[np.nan, 0, 0]], np.float32))          # the fast path checks too
    with pytest.raises(rnnkit.NoForwardError, match="no forward pass"):
        m.backward(np.ones((T, N, H)))


@pytest.mark.parametrize("cell,bi,batch_first,given", list(itertools.product(
    CELLS, [False, True], [False, True], [False, True])))
def test_unbatched_input_matches_torch(cell, bi, batch_first, given):
    """x (T, input_size), states (L*D, H): PyTorch's unbatched semantics (batch_first ignored),
    forward and every gradient."""
    from tests.needs import require
    require("torch")
    import torch
    rng = np.random.default_rng(5)
    m = make(cell, 2, bi, batch_first=batch_first)
    tm = getattr(torch.nn, cell)(D, H, num_layers=2, bidirectional=bi, batch_first=batch_first).double()
    tm.load_state_dict({k: torch.tensor(v) for k, v in m.state_dict().items()})
    x = rng.standard_normal((T, D))
    state = None
    if given:
        full = make_state(cell, 2, bi, rng, 1)
        state = tuple(s[:, 0] for s in full) if cell == "LSTM" else full[:, 0]
    out, sn = m(x, state)
    xt = torch.tensor(x, requires_grad=True)
    st = None
    if given:
        st = (tuple(torch.tensor(s, requires_grad=True) for s in state) if cell == "LSTM"
              else torch.tensor(state, requires_grad=True))
    tout, tsn = tm(xt, st)
    assert out.shape == tuple(tout.shape) == (T, (2 if bi else 1) * H)
    hs, ths = (sn, tsn) if cell == "LSTM" else ((sn,), (tsn,))
    for a, b in zip(hs, ths):
        assert a.shape == tuple(b.shape) and rel(a, b.detach().numpy()) < 1e-9
    assert rel(out, tout.detach().numpy()) < 1e-9
    dx, ds0 = _backward_both(torch, m, cell, out, hs, tout, ths, rng)
    assert dx.shape == x.shape and rel(dx, xt.grad.numpy()) < 1e-9
    if given:
        for a, b in zip(ds0 if cell == "LSTM" else (ds0,), st if cell == "LSTM" else (st,)):
            assert a.shape == tuple(b.shape) and rel(a, b.grad.numpy()) < 1e-9
    for k, p in tm.named_parameters():
        assert rel(m.gradients()[k], p.grad.numpy()) < 1e-9, k


def test_unbatched_input_refuses_a_batched_state_and_lengths():
    m = make("LSTM", 1, False)
    with pytest.raises(rnnkit.errors.ShapeError, match=r"\(2-D\) for unbatched input"):
        m(np.ones((T, D)), (np.zeros((1, 1, H)), np.zeros((1, 1, H))))
    with pytest.raises(rnnkit.errors.ShapeError, match="lengths=None for unbatched"):
        m(np.ones((T, D)), lengths=[3])
    out, (h, c) = m(np.ones((T, D)))
    assert out.shape == (T, H) and h.shape == c.shape == (1, H)
    _, acts = m.trace(np.ones((T, D)))[1:]
    assert acts[0][0]["cell"].shape == (T, H)
