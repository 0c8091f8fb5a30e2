"""LSTM with proj_size (LSTMP, h_t = W_hr (o * tanh(c_t))): torch parity of outputs, states
and every gradient (layers x directions x lengths x layouts), conversions both ways,
finite differences, checkpoints through state_dict, and what refuses it."""

import itertools

import numpy as np
import pytest

import rnnkit
import rnnkit.nn as nn
from rnnkit.errors import ConfigError
from rnnkit.gradcheck import gradcheck
from tests.needs import require

T, N, D, H, P = 5, 4, 3, 6, 4
MATRIX = list(itertools.product([1, 2], [False, True], [False, True], [False, True]))
IDS = [f"L{L}-{'bi' if b else 'uni'}-{'len' if ln else 'full'}-{'bf' if bf else 'tm'}"
       for L, b, ln, bf in MATRIX]


def make(L, bi, **kw):
    return nn.LSTM(D, H, num_layers=L, bidirectional=bi, dtype=np.float64, seed=0, proj_size=P, **kw)


@pytest.mark.parametrize("L,bi,use_len,batch_first", MATRIX, ids=IDS)
def test_proj_size_matches_torch(L, bi, use_len, batch_first):
    require("torch")
    import torch

    from rnnkit.interop.torch import from_torch, to_torch
    m = make(L, bi, batch_first=batch_first)
    tm = to_torch(m)
    assert tm.proj_size == P and set(tm.state_dict()) == set(m.state_dict())
    assert m.parameters()["weight_hr_l0"].shape == (P, H) and m.parameters()["weight_hh_l0"].shape == (4 * H, P)
    rng = np.random.default_rng(L)
    x = rng.standard_normal((N, T, D) if batch_first else (T, N, D))
    dirs = 2 if bi else 1
    h0, c0 = rng.standard_normal((L * dirs, N, P)), rng.standard_normal((L * dirs, N, H))
    lengths = np.array([5, 2, 4, 1]) if use_len else None
    out, (h, c) = m(x, (h0, c0), lengths=lengths)
    assert out.shape[-1] == dirs * P and h.shape == (L * dirs, N, P) and c.shape == (L * dirs, N, H)
    xt, ht, ct = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    if use_len:
        packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths), batch_first=batch_first,
                                                         enforce_sorted=False)
        po, (th, tc) = tm(packed, (ht, ct))
        tout, _ = torch.nn.utils.rnn.pad_packed_sequence(po, batch_first=batch_first, total_length=T)
    else:
        tout, (th, tc) = tm(xt, (ht, ct))
    for a, b in ((out, tout), (h, th), (c, tc)):
        assert np.abs(a - b.detach().numpy()).max() < 1e-10
    dout, dh, dc = (rng.standard_normal(a.shape) for a in (out, h, c))
    ((tout * torch.tensor(dout)).sum() + (th * torch.tensor(dh)).sum() + (tc * torch.tensor(dc)).sum()).backward()
    dx, (dh0, dc0) = m.backward(dout, (dh, dc))
    for a, b in ((dx, xt), (dh0, ht), (dc0, ct)):
        assert np.abs(a - b.grad.numpy()).max() < 1e-10
    for k, p in tm.named_parameters():
        assert np.abs(m.gradients()[k] - p.grad.numpy()).max() < 1e-10, k
    back = from_torch(tm)                                 # from_torch accepts a projection
    assert back.proj_size == P
    for k, v in m.state_dict().items():
        assert np.array_equal(back.state_dict()[k], v)


@pytest.mark.slow
@pytest.mark.parametrize("bi", [False, True])
def test_gradcheck_proj_size(bi):
    m = make(2, bi)
    rng = np.random.default_rng(0)
    dirs = 2 if bi else 1
    state = (rng.standard_normal((2 * dirs, 3, P)), rng.standard_normal((2 * dirs, 3, H)))
    rep = gradcheck(m, rng.standard_normal((T, 3, D)), state, lengths=np.array([5, 2, 4]), max_entries=30)
    rep.assert_ok(1e-7)
    assert "weight_hr_l1" in rep.errors


def test_proj_size_streams_unbatched_learns_its_state_and_reloads():
    m = make(2, False, learn_initial_state=True)
    assert m.parameters()["h0"].shape == (2, P) and m.parameters()["c0"].shape == (2, H)
    x = np.random.default_rng(1).standard_normal((T, 2, D))
    out, _ = m(x)
    m.backward(np.ones_like(out))
    assert np.abs(m.gradients()["h0"]).max() > 0
    with rnnkit.no_grad():                                # the bounded-memory forward
        same, _ = m(x)
        alone, (h, c) = m(x[:, 1])
    assert np.abs(same - out).max() < 1e-12 and np.abs(alone - out[:, 1]).max() < 1e-12
    assert h.shape == (2, P) and c.shape == (2, H)
    copy = make(2, False, learn_initial_state=True)
    copy.load_state_dict(m.state_dict())
    with rnnkit.no_grad():
        assert np.array_equal(copy(x)[0], same)


def test_what_has_no_projection_refuses_proj_size():
    with pytest.raises(ConfigError, match="only an LSTM"):
        nn.RNNBase("gru", 3, 6, proj_size=2)
    with pytest.raises(ConfigError, match="proj_size < hidden_size"):
        nn.LSTM(3, 6, proj_size=6)
    with pytest.raises(ConfigError, match="one-step path"):
        nn.LSTM(3, 6, proj_size=2).stepper()
    require("onnx")
    from rnnkit.interop.onnx import export
    with pytest.raises(ConfigError, match="no native ONNX operator"):
        export(nn.LSTM(3, 6, proj_size=2))
