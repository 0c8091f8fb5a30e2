"""Seq2Seq: finite differences on every parameter, PyTorch parity (the interop twin and a second
reference written here from the equations of rnnkit/nn/seq2seq.py), masking, config, checkpoints."""

import numpy as np
import pytest

from rnnkit.data import IGNORE_INDEX, PairsDataset, pair_vocabs
from rnnkit.errors import ConfigError
from rnnkit.gradcheck import gradcheck
from rnnkit.nn import Seq2Seq, Seq2SeqConfig
from rnnkit.nn.registry import model_from_state

from needs import require

CONFIGS = [pytest.param(dict(attention="additive", cell="lstm", num_layers=2), marks=pytest.mark.slow,
                        id="additive-lstm-2layers"),
           pytest.param(dict(attention="general", cell="gru", decoder_cell="lstm"), marks=pytest.mark.slow,
                        id="general-gru-lstm"),
           pytest.param(dict(attention="dot", cell="rnn", decoder_cell="gru", bidirectional=False),
                        id="dot-rnn-gru-unidirectional"),
           pytest.param(dict(attention="none", cell="lstm", decoder_cell="rnn_relu"), id="none-lstm-relu")]


def _model(seed=0, scale=3.0, **kw):
    cfg = Seq2SeqConfig(src_vocab_size=6, tgt_vocab_size=5, hidden_size=3, embedding_size=2,
                        attention_size=4, dtype="float64", **kw)
    m = Seq2Seq(cfg, seed=seed)
    for p in m.parameters().values():
        p *= scale                  # gradients well above finite-difference noise
    return m


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 6, (5, 3)), rng.integers(0, 5, (4, 3)), np.array([5, 2, 3])


class _Logits:
    """The model as a one-output layer for gradcheck."""

    def __init__(self, m):
        self.m = m
        self.parameters, self.gradients, self.zero_grad = m.parameters, m.gradients, m.zero_grad

    def __call__(self, src, x, src_lengths=None):
        return self.m(src, x, src_lengths)[0]

    def backward(self, d):
        return self.m.backward(d)


@pytest.mark.slow
@pytest.mark.parametrize("kw", CONFIGS)
def test_backward_matches_finite_differences_on_every_parameter(kw):
    m = _model(**kw)
    src, x, sl = _inputs()
    report = gradcheck(_Logits(m), src, x, src_lengths=sl, eps=1e-5)
    assert set(report.errors) == set(m.parameters())
    report.assert_ok(1e-6)


@pytest.mark.slow
def test_layer_norm_decoder_matches_finite_differences_and_the_torch_twin_refuses_it():
    m = _model(scale=1.5, attention="dot", cell="gru", decoder_cell="lstm_ln", bidirectional=False)
    assert type(m.decoder).__name__ == "LayerNormLSTMCell"
    src, x, sl = _inputs()
    report = gradcheck(_Logits(m), src, x, src_lengths=sl, eps=1e-5)
    assert set(report.errors) == set(m.parameters())
    report.assert_ok(1e-6)
    require("torch")
    from rnnkit.interop.torch import to_torch
    with pytest.raises(ConfigError, match="no layer-normalised cell"):
        to_torch(m)


@pytest.mark.slow
def test_alignment_gradient_matches_finite_differences():
    m = _model(attention="general", cell="gru")
    src, x, sl = _inputs(1)

    class Align(_Logits):
        def __call__(self, src, x, src_lengths=None):
            return self.m(src, x, src_lengths)[1]

        def backward(self, d):
            T, N, _ = d.shape
            return self.m.backward(np.zeros((T, N, 5)), d)

    gradcheck(Align(m), src, x, src_lengths=sl, eps=1e-5).assert_ok(1e-6)


def _forward_backward(m, src, x, sl, seed):
    """rnnkit's logits and alignments, and its gradients (in m.gradients()) for random dlogits."""
    logits, align = m(src, x, sl)
    dlogits = np.random.default_rng(seed).standard_normal(logits.shape)
    m.zero_grad()
    m(src, x, sl)
    m.backward(dlogits)
    return logits, align, dlogits


def _torch_grads(tm, src, x, sl, dlogits):
    import torch
    logits, align = tm(src, x, sl)
    (logits * torch.as_tensor(dlogits)).sum().backward()
    return logits.detach().numpy(), align, {k: p.grad.numpy() for k, p in tm.named_parameters()}


@pytest.mark.parametrize("kw", [p.values[0] for p in CONFIGS],
                         ids=[p.id for p in CONFIGS])
def test_outputs_and_every_gradient_match_the_torch_twin(kw):
    require("torch")
    from rnnkit.interop.torch import to_torch
    m = _model(scale=1.0, **kw)
    src, x, sl = _inputs(2)
    logits, align, dlogits = _forward_backward(m, src, x, sl, seed=3)
    tlogits, talign, tgrads = _torch_grads(to_torch(m), src, x, sl, dlogits)
    np.testing.assert_allclose(logits, tlogits, rtol=0, atol=1e-9)
    if align is not None:
        np.testing.assert_allclose(align, talign.detach().numpy(), rtol=0, atol=1e-9)
    assert set(tgrads) == set(m.gradients())
    for k, g in m.gradients().items():
        np.testing.assert_allclose(g, tgrads[k], rtol=0, atol=1e-9, err_msg=k)


def test_outputs_and_gradients_match_a_torch_reference_from_the_equations():
    """Bidirectional GRU encoder over padded sources, LSTM decoder, general attention, each
    equation written out in torch (no torch.nn recurrent modules, no rnnkit converter)."""
    require("torch")
    import torch
    m = _model(scale=1.0, attention="general", cell="gru", decoder_cell="lstm")
    src, x, sl = _inputs(4)
    logits, align, dlogits = _forward_backward(m, src, x, sl, seed=5)
    P = {k: torch.tensor(v, requires_grad=True) for k, v in m.parameters().items()}
    S, N = src.shape
    valid = torch.as_tensor(np.arange(S)[:, None] < sl[None, :], dtype=torch.float64)[..., None]

    def gru(xt, h, sfx):
        gi = xt @ P["encoder.weight_ih" + sfx].T + P["encoder.bias_ih" + sfx]
        gh = h @ P["encoder.weight_hh" + sfx].T + P["encoder.bias_hh" + sfx]
        r, z, _ = (torch.sigmoid(a + b) for a, b in zip(gi.chunk(3, -1), gh.chunk(3, -1)))
        n = torch.tanh(gi.chunk(3, -1)[2] + r * gh.chunk(3, -1)[2])
        return (1 - z) * n + z * h

    emb = P["src_embedding.weight"][torch.as_tensor(src)]
    outs = {}
    for sfx, order in (("_l0", range(S)), ("_l0_reverse", range(S - 1, -1, -1))):
        h = torch.zeros(N, 3, dtype=torch.float64)
        o = [None] * S
        for t in order:                              # padded steps keep the state
            h = valid[t] * gru(emb[t], h, sfx) + (1 - valid[t]) * h
            o[t] = h * valid[t]
        outs[sfx] = (torch.stack(o), h)
    H = torch.cat([outs["_l0"][0], outs["_l0_reverse"][0]], -1)               # (S, N, 6)
    s = torch.tanh(torch.cat([outs["_l0"][1], outs["_l0_reverse"][1]], -1) @ P["bridge.weight"].T
                   + P["bridge.bias"])
    c = torch.zeros_like(s)
    f = torch.zeros_like(s)
    temb = P["tgt_embedding.weight"][torch.as_tensor(x)]
    ys, aligns = [], []
    for t in range(x.shape[0]):
        g = (torch.cat([temb[t], f], -1) @ P["decoder.weight_ih"].T + P["decoder.bias_ih"]
             + s @ P["decoder.weight_hh"].T + P["decoder.bias_hh"])
        i, fg, gg, o = g.chunk(4, -1)
        c = torch.sigmoid(fg) * c + torch.sigmoid(i) * torch.tanh(gg)
        s = torch.sigmoid(o) * torch.tanh(c)
        score = torch.einsum("snh,nh->ns", H @ P["attention.key_proj.weight"].T, s)
        a = torch.softmax(score.masked_fill(valid[..., 0].T == 0, float("-inf")), -1)
        context = torch.einsum("ns,snk->nk", a, H)
        f = torch.tanh(torch.cat([context, s], -1) @ P["combine.weight"].T)
        ys.append(f @ P["head.weight"].T + P["head.bias"])
        aligns.append(a)
    tlogits = torch.stack(ys)
    (tlogits * torch.as_tensor(dlogits)).sum().backward()
    np.testing.assert_allclose(logits, tlogits.detach().numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(align, torch.stack(aligns).detach().numpy(), rtol=0, atol=1e-10)
    for k, g in m.gradients().items():
        np.testing.assert_allclose(g, P[k].grad.numpy(), rtol=0, atol=1e-10, err_msg=k)


def _batch():
    pairs = [("abcab", "dde"), ("b", "d"), ("cca", "ed")]
    sv, tv = pair_vocabs(pairs)
    return sv, tv, PairsDataset(pairs, sv, tv).get_batch([0, 1, 2])


def test_padded_targets_and_sources_do_not_change_loss_or_gradients():
    sv, tv, b = _batch()
    m = Seq2Seq(Seq2SeqConfig(src_vocab_size=len(sv), tgt_vocab_size=len(tv), hidden_size=4,
                              embedding_size=3, dtype="float64"), seed=0)
    loss = m.loss(b).loss
    m.backward_loss()
    grads = {k: v.copy() for k, v in m.gradients().items()}
    m.zero_grad()
    src, x = b.src.copy(), b.x.copy()
    src[1:, 1] = 3                                   # other characters in the padding
    x[2:, 1] = 2
    res = m.loss(b._replace(src=src, x=x))
    m.backward_loss()
    assert res.loss == pytest.approx(loss, abs=1e-14)
    assert res.count == int((b.y != IGNORE_INDEX).sum()) == 3 + 1 + 1 + 1 + 2 + 1
    for k, g in m.gradients().items():
        np.testing.assert_allclose(g, grads[k], rtol=0, atol=1e-14, err_msg=k)


def test_config_validates_and_describes_the_parameters():
    cfg = Seq2SeqConfig(src_vocab_size=7, tgt_vocab_size=4, num_layers=2, attention="dot")
    m = Seq2Seq(cfg, seed=0)
    assert {k: v.shape for k, v in m.parameters().items()} == cfg.parameter_shapes()
    assert Seq2SeqConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="attention"):
        Seq2SeqConfig(src_vocab_size=7, tgt_vocab_size=4, attention="luong").validate()
    with pytest.raises(ConfigError, match="decoder_cell"):
        Seq2SeqConfig(src_vocab_size=7, tgt_vocab_size=4, decoder_cell="transformer").validate()
    with pytest.raises(ConfigError, match="GiB"):
        Seq2SeqConfig(src_vocab_size=7, tgt_vocab_size=4, hidden_size=60000, num_layers=8).validate()


def test_weights_round_trip_through_model_from_state():
    m = _model(attention="additive")
    src, x, sl = _inputs()
    m2 = model_from_state(m.config.to_dict(), m.state_dict())
    np.testing.assert_array_equal(m(src, x, sl)[0], m2(src, x, sl)[0])
