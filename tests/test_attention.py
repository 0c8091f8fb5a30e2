"""Attention: finite differences on every parameter and input, and a PyTorch reference written
here from the equations in rnnkit/nn/attention.py's docstring (autograd for the gradients)."""

import numpy as np
import pytest

from rnnkit.errors import ConfigError, ShapeError
from rnnkit.gradcheck import gradcheck
from rnnkit.nn.attention import Attention

from needs import require

KINDS = ("additive", "general", "dot")


def _case(kind, N=3, S=5, seed=0):
    rng = np.random.default_rng(seed)
    Hq, Hk = (4, 4) if kind == "dot" else (3, 4)
    att = Attention(Hq, Hk, kind, attention_size=6, dtype=np.float64, seed=seed)
    return att, rng.standard_normal((N, Hq)), rng.standard_normal((S, N, Hk)), np.array([5, 2, 1])


@pytest.mark.parametrize("kind", KINDS)
def test_backward_matches_finite_differences_with_padding(kind):
    att, q, keys, lengths = _case(kind)
    report = gradcheck(att, q, keys, lengths=lengths)
    report.assert_ok(1e-7)
    assert "input[1]" in report.errors and "input[0]" in report.errors


@pytest.mark.parametrize("kind", KINDS)
def test_padded_positions_get_zero_weight_and_no_influence(kind):
    att, q, keys, lengths = _case(kind)
    ctx, w = att(q, keys, lengths=lengths)
    assert np.all(w[1, 2:] == 0) and np.all(w[2, 1:] == 0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-12)
    changed = keys.copy()
    changed[2:, 1] = 1e3                          # garbage in the padding of sequence 1
    ctx2, w2 = att(q, changed, lengths=lengths)
    np.testing.assert_array_equal(ctx2[1], ctx[1])
    np.testing.assert_array_equal(w2[1], w[1])


def _torch_reference(torch, kind, params, q, keys, lengths):
    """The docstring's equations, written out in torch."""
    S = keys.shape[0]
    if kind == "additive":
        e = torch.tanh(keys @ params["key_proj.weight"].T + (q @ params["query_proj.weight"].T)[None])
        score = (e @ params["v.weight"][0]).T                                # (N, S)
    elif kind == "general":
        score = torch.einsum("snh,nh->ns", keys @ params["key_proj.weight"].T, q)
    else:
        score = torch.einsum("snh,nh->ns", keys, q)
    real = torch.arange(S)[None, :] < torch.as_tensor(lengths)[:, None]
    a = torch.softmax(score.masked_fill(~real, float("-inf")), dim=-1)
    return torch.einsum("ns,snk->nk", a, keys), a


@pytest.mark.parametrize("kind", KINDS)
def test_outputs_and_gradients_match_a_torch_reference(kind):
    require("torch")
    import torch
    att, q, keys, lengths = _case(kind, seed=1)
    rng = np.random.default_rng(2)
    ctx, w = att(q, keys, lengths=lengths)
    dctx, dw = rng.standard_normal(ctx.shape), rng.standard_normal(w.shape)
    att.zero_grad()
    dq, dkeys = att.backward(dctx, dw)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in att.parameters().items()}
    tq, tk = torch.tensor(q, requires_grad=True), torch.tensor(keys, requires_grad=True)
    tctx, tw = _torch_reference(torch, kind, tp, tq, tk, lengths)
    np.testing.assert_allclose(ctx, tctx.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(w, tw.detach().numpy(), rtol=0, atol=1e-12)
    ((tctx * torch.tensor(dctx)).sum() + (tw * torch.tensor(dw)).sum()).backward()
    np.testing.assert_allclose(dq, tq.grad.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(dkeys, tk.grad.numpy(), rtol=0, atol=1e-12)
    for k, g in att.gradients().items():
        np.testing.assert_allclose(g, tp[k].grad.numpy(), rtol=0, atol=1e-12, err_msg=k)


def test_dot_attention_with_different_sizes_is_refused():
    with pytest.raises(ConfigError, match="query_size == key_size"):
        Attention(3, 4, "dot")


def test_zero_length_source_is_refused():
    att, q, keys, _ = _case("general")
    with pytest.raises(ShapeError, match=r"\[1, S=5\]"):
        att(q, keys, lengths=np.array([5, 0, 1]))
