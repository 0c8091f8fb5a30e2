"""rnnkit.nn layers, losses and models: finite differences, configs, small end-to-end training.

References: central differences (rnnkit.gradcheck, float64, rel. error < 1e-7), closed-form
NumPy formulas, torch.nn.functional.cross_entropy, and the training loss at step 0.
"""

import itertools
import json
from types import SimpleNamespace

import numpy as np
import pytest

import rnnkit.nn as nn
from rnnkit import optim
from rnnkit.errors import ConfigError
from rnnkit.gradcheck import gradcheck
from rnnkit.nn.module import Module

from needs import require

TOL = 1e-7
# Central-difference step for the models. With L = sum(out * W) = O(1), the round-off of a
# difference quotient is ~1e-16 / eps, which at the default eps=1e-6 is already ~1e-8 of the
# small first-layer recurrent-weight gradients of 2-layer LSTMs; the models are smooth
# (relu kinks are measure-zero and not hit here), so eps=1e-5 trades that for a ~1e-10
# truncation error and leaves a 30x margin below TOL.
EPS_MODEL = 1e-5
T, N, D, H = 5, 3, 3, 4
LENGTHS = np.array([5, 2, 4])


def _assert_all_checked(rep, module, inputs=()):
    """Every parameter (and the named inputs) took part, and every error is below TOL."""
    rep.assert_ok(TOL)
    assert set(module.parameters()) <= set(rep.errors)
    for name in inputs:
        assert name in rep.errors, (name, sorted(rep.errors))


# ============================================================================== layers
@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_linear_3d(bias):
    rng = np.random.default_rng(0)
    lin = nn.Linear(D, 2, bias=bias, dtype=np.float64, seed=1)
    x = rng.standard_normal((T, N, D))                      # (T, N, D): per-step projection
    np.testing.assert_allclose(lin(x), np.einsum("tnd,od->tno", x, lin.parameters()["weight"])
                               + (lin.parameters()["bias"] if bias else 0), rtol=1e-14, atol=1e-14)
    _assert_all_checked(gradcheck(lin, x), lin, ["input[0]"])


def test_gradcheck_embedding_weight():
    emb = nn.Embedding(6, 3, dtype=np.float64, seed=2)
    ids = np.array([[0, 5, 5], [2, 0, 5]])                 # repeated ids: the scatter must add up

    class Wrap(Module):                                   # ids in, vectors out, no input grad
        def __init__(self):
            super().__init__()
            self._add_child("emb", emb)

        def forward(self, i):
            return self.emb(i)

        def backward(self, dy):
            return self.emb.backward(dy)

    w = Wrap()
    rep = gradcheck(w, ids)
    _assert_all_checked(rep, w)
    assert "emb.weight" in rep.errors and not any(k.startswith("input") for k in rep.errors)
    # rows never looked up (1, 3, 4) get exactly no gradient
    w.zero_grad()
    w(ids)
    w.backward(np.ones((2, 3, 3)))
    g = w.gradients()["emb.weight"]
    np.testing.assert_array_equal(g[[1, 3, 4]], 0)
    np.testing.assert_array_equal(g[5], 3.0)             # id 5 used three times


class FixedDropout(Module):
    """Dropout whose mask is the same at every call (its rng state is reset before each)."""

    def __init__(self, p, seed):
        super().__init__()
        self._add_child("drop", nn.Dropout(p, seed=seed))
        self._rng_state = self.drop.rng.bit_generator.state

    def forward(self, x):
        self.drop.rng.bit_generator.state = self._rng_state
        return self.drop(x)

    def backward(self, dy):
        return self.drop.backward(dy)


def test_gradcheck_dropout_fixed_mask():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((T, N, D))
    fd = FixedDropout(0.4, seed=5)
    y = fd(x)
    kept = y != 0
    assert 0 < kept.mean() < 1                              # some dropped, some kept
    np.testing.assert_allclose(y[kept], x[kept] / 0.6, rtol=1e-15)
    _assert_all_checked(gradcheck(fd, x), fd, ["input[0]"])
    fd.eval()
    np.testing.assert_array_equal(fd(x), x)                 # identity in eval mode


def test_gradcheck_sequential():
    rng = np.random.default_rng(4)
    seq = nn.Sequential(nn.Linear(D, 6, dtype=np.float64, seed=1), FixedDropout(0.3, seed=2),
                        nn.Linear(6, 2, dtype=np.float64, seed=3))
    assert sorted(seq.parameters()) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    x = rng.standard_normal((T, N, D))
    _assert_all_checked(gradcheck(seq, x), seq, ["input[0]"])


# ============================================================================== losses
class LossWrap(Module):
    """Turns a loss into a module: pred -> scalar loss; backward(w) = w * dloss/dpred."""

    def __init__(self, crit, target, mask=None):
        super().__init__()
        self.crit, self.target, self.mask = crit, target, mask

    def forward(self, pred):
        return np.asarray(self.crit(pred, self.target, self.mask))

    def backward(self, w):
        return self.crit.backward(float(w))


def _ce_case(rng, reduction="mean"):
    logits = rng.standard_normal((T, N, 6))
    target = rng.integers(0, 6, (T, N))
    target[0, 1] = target[3, 2] = -100                     # ignored positions
    mask = np.ones((T, N))
    mask[4, 0] = mask[1, 1] = 0                             # masked positions
    return logits, target, mask


@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_gradcheck_and_torch(use_mask, reduction):
    rng = np.random.default_rng(5)
    logits, target, mask = _ce_case(rng)
    mask = mask if use_mask else None
    crit = nn.CrossEntropyLoss(ignore_index=-100, reduction=reduction)
    w = LossWrap(crit, target, mask)
    _assert_all_checked(gradcheck(w, logits), w, ["input[0]"])
    # independent reference: torch (mask expressed as ignore_index)
    torch = require("torch")
    t_target = target.copy()
    if mask is not None:
        t_target[mask == 0] = -100
    lt = torch.tensor(logits, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(lt.reshape(-1, 6), torch.tensor(t_target).reshape(-1),
                                            ignore_index=-100, reduction=reduction)
    ref.backward()
    loss = crit(logits, target, mask)
    assert abs(loss - ref.item()) < 1e-12
    np.testing.assert_allclose(crit.backward(), lt.grad.numpy(), rtol=0, atol=1e-14)
    assert crit.last_count == int((t_target != -100).sum())


def test_cross_entropy_extreme_logits_finite():
    crit = nn.CrossEntropyLoss()
    logits = np.array([[1000.0, -1000.0, 0.0]])
    assert crit(logits, np.array([0])) == pytest.approx(0.0, abs=1e-12)
    assert crit(logits, np.array([1])) == pytest.approx(2000.0, rel=1e-12)
    assert np.isfinite(crit.backward()).all()


@pytest.mark.parametrize("use_mask", [False, True])
def test_mse_gradcheck_and_formula(use_mask):
    rng = np.random.default_rng(6)
    pred, target = rng.standard_normal((T, N, 2)), rng.standard_normal((T, N, 2))
    mask = (np.arange(T)[:, None] < LENGTHS[None, :])[:, :, None] if use_mask else None
    crit = nn.MSELoss()
    w = LossWrap(crit, target, mask)
    _assert_all_checked(gradcheck(w, pred), w, ["input[0]"])
    m = np.ones_like(pred) if mask is None else np.broadcast_to(mask, pred.shape).astype(float)
    expected = (m * (pred - target) ** 2).sum() / m.sum()
    assert crit(pred, target, mask) == pytest.approx(expected, rel=1e-13)


# ============================================================================== models
CELLS = ["lstm", "gru", "rnn", "rnn_relu"]


def _state(cell, L, rng, scale=0.5):
    shape = (L, N, H)
    h = scale * rng.standard_normal(shape)
    return (h, scale * rng.standard_normal(shape)) if cell == "lstm" else h


@pytest.mark.slow
@pytest.mark.parametrize("cell,E,use_len", list(itertools.product(CELLS, [3, 0], [False, True])))
def test_gradcheck_charlm(cell, E, use_len):
    rng = np.random.default_rng(7)
    cfg = nn.CharLMConfig(vocab_size=5, cell=cell, hidden_size=H, num_layers=2, embedding_size=E,
                          dtype="float64")
    m = nn.CharLM(cfg, seed=1)
    tokens = rng.integers(0, 5, (T, N))
    rep = gradcheck(m, tokens, _state(cell, 2, rng), lengths=LENGTHS if use_len else None, eps=EPS_MODEL)
    state_names = ["input[1][0]", "input[1][1]"] if cell == "lstm" else ["input[1]"]
    _assert_all_checked(rep, m, state_names)
    assert ("embedding.weight" in rep.errors) == (E > 0)


CLF_CASES = [(CELLS[i % 4], pool, bi, ln, tok) for i, (pool, bi, ln, tok) in
             enumerate(itertools.product(["last", "mean"], [False, True], [False, True], [True, False]))]


@pytest.mark.parametrize("cell,pooling,bi,use_len,tokens", [        # bidirectional: slow
    pytest.param(*c, marks=pytest.mark.slow if c[2] else ()) for c in CLF_CASES])
def test_gradcheck_classifier(cell, pooling, bi, use_len, tokens):
    rng = np.random.default_rng(8)
    cfg = nn.SequenceClassifierConfig(num_classes=3, vocab_size=6 if tokens else 0,
                                      input_size=0 if tokens else D, embedding_size=3, cell=cell,
                                      hidden_size=H, num_layers=2, bidirectional=bi, pooling=pooling,
                                      dtype="float64")
    m = nn.SequenceClassifier(cfg, seed=2)
    x = rng.integers(0, 6, (T, N)) if tokens else rng.standard_normal((T, N, D))
    rep = gradcheck(m, x, lengths=LENGTHS if use_len else None, eps=EPS_MODEL)
    _assert_all_checked(rep, m, [] if tokens else ["input[0]"])


REG_CASES = [(CELLS[i % 4], m2m, bi, ln, pool) for i, (m2m, bi, ln, pool) in
             enumerate(itertools.product([False, True], [False, True], [False, True], ["last", "mean"]))
             if not (m2m and pool == "mean")]


@pytest.mark.parametrize("cell,m2m,bi,use_len,pooling", [           # bidirectional: slow
    pytest.param(*c, marks=pytest.mark.slow if c[2] else ()) for c in REG_CASES])
def test_gradcheck_regressor(cell, m2m, bi, use_len, pooling):
    rng = np.random.default_rng(9)
    cfg = nn.SequenceRegressorConfig(input_size=D, output_size=2, cell=cell, hidden_size=H, num_layers=2,
                                     bidirectional=bi, many_to_many=m2m, pooling=pooling, dtype="float64")
    m = nn.SequenceRegressor(cfg, seed=3)
    x = rng.standard_normal((T, N, D))
    lengths = LENGTHS if use_len else None
    pred = m(x, lengths)
    assert pred.shape == ((T, N, 2) if m2m else (N, 2))
    if m2m and use_len:                                   # padded steps see a zero rnn output
        pad = np.arange(T)[:, None] >= LENGTHS[None, :]
        np.testing.assert_allclose(pred[pad], np.broadcast_to(m.head.parameters()["bias"], (pad.sum(), 2)))
    _assert_all_checked(gradcheck(m, x, lengths=lengths, eps=EPS_MODEL), m, ["input[0]"])


def test_pooling_semantics_against_the_layer():
    """'last' is the top layer's final state (both directions), 'mean' the mean over valid steps,
    both computed here from the recurrent layer's own outputs."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((T, N, D))
    for pooling in ("last", "mean"):
        cfg = nn.SequenceRegressorConfig(input_size=D, output_size=2, cell="gru", hidden_size=H, num_layers=2,
                                         bidirectional=True, pooling=pooling, dtype="float64")
        m = nn.SequenceRegressor(cfg, seed=3)
        out, h = m.rnn(x, None, LENGTHS)
        if pooling == "last":
            idx = LENGTHS - 1
            fwd = out[idx, np.arange(N), :H]                 # forward direction at its last step
            bwd = out[0, :, H:]                              # backward direction ends at t = 0
            pooled = np.concatenate([fwd, bwd], axis=-1)
        else:
            valid = (np.arange(T)[:, None] < LENGTHS[None, :])[:, :, None]
            pooled = (out * valid).sum(0) / LENGTHS[:, None]
        W, b = m.head.parameters()["weight"], m.head.parameters()["bias"]
        np.testing.assert_allclose(m(x, LENGTHS), pooled @ W.T + b, rtol=1e-12, atol=1e-13)


# ============================================================================== configs
CONFIGS = [
    nn.CharLMConfig(vocab_size=11, cell="gru", hidden_size=7, num_layers=3, embedding_size=0, dropout=0.1),
    nn.SequenceClassifierConfig(num_classes=4, vocab_size=20, bidirectional=True, pooling="mean"),
    nn.SequenceClassifierConfig(num_classes=2, input_size=5, cell="rnn_relu", dtype="float64"),
    nn.SequenceRegressorConfig(input_size=2, output_size=3, many_to_many=True, cell="rnn"),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.model)
def test_config_json_round_trip(cfg):
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["model"] == cfg.model
    back = type(cfg).from_dict(d)
    assert back == cfg
    m1 = nn.model_from_config(d, seed=0)
    m2 = nn.model_from_config(back.to_dict(), seed=0)
    assert type(m1).__name__ == cfg.model and m1.config == cfg
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert list(s1) == list(s2)
    for k in s1:
        assert s1[k].dtype == np.dtype(cfg.dtype)
        np.testing.assert_array_equal(s1[k], s2[k])          # same seed, same weights


GOOD = nn.CharLMConfig(vocab_size=11, hidden_size=8, num_layers=1).to_dict()
HOSTILE = {
    "hidden_str": dict(GOOD, hidden_size="128"),
    "hidden_float": dict(GOOD, hidden_size=128.0),
    "hidden_bool": dict(GOOD, hidden_size=True),
    "layers_null": dict(GOOD, num_layers=None),
    "dropout_str": dict(GOOD, dropout="0.1"),
    "dropout_one": dict(GOOD, dropout=1.0),
    "dropout_nan": dict(GOOD, dropout=float("nan")),
    "cell_list": dict(GOOD, cell=["lstm"]),
    "cell_unknown": dict(GOOD, cell="transformer"),
    "dtype_f16": dict(GOOD, dtype="float16"),
    "dtype_obj": dict(GOOD, dtype="object"),
    "unknown_key": dict(GOOD, activation="relu"),
    "dunder_key": dict(GOOD, __class__="x"),
    "hidden_huge": dict(GOOD, hidden_size=10**9),
    "vocab_huge": dict(GOOD, vocab_size=10**12),
    "layers_huge": dict(GOOD, num_layers=1000),
    "hidden_zero": dict(GOOD, hidden_size=0),
    "vocab_negative": dict(GOOD, vocab_size=-3),
    "wrong_model": dict(GOOD, model="SequenceRegressor"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_configs_raise_config_error(name):
    with pytest.raises(ConfigError):
        nn.CharLMConfig.from_dict(HOSTILE[name])
    if HOSTILE[name].get("model") == "CharLM":
        with pytest.raises(ConfigError):
            nn.model_from_config(HOSTILE[name])


@pytest.mark.parametrize("bad", [[1, 2], "CharLM", None, {"model": "Transformer"}, {"model": 3},
                                 {"hidden_size": 4}], ids=repr)
def test_model_from_config_refuses_non_configs(bad):
    with pytest.raises(ConfigError):
        nn.model_from_config(bad)


@pytest.mark.parametrize("d", [
    dict(model="SequenceClassifier", num_classes=2),                         # neither input kind
    dict(model="SequenceClassifier", num_classes=2, vocab_size=5, input_size=3),  # both
    dict(model="SequenceClassifier", num_classes=1, input_size=3),           # one class
    dict(model="SequenceClassifier", num_classes=2, input_size=3, pooling="max"),
    dict(model="SequenceRegressor", input_size=0),
    dict(model="SequenceRegressor", output_size=10**8),
    dict(model="SequenceRegressor", bidirectional="yes"),
])
def test_hostile_model_configs(d):
    with pytest.raises(ConfigError):
        nn.model_from_config(d)


# ============================================================================== end to end
def _train(model, batches, steps, lr):
    opt = optim.Adam(model.parameters(), lr=lr)
    losses = []
    for s in range(steps):
        model.zero_grad()
        res = model.loss(batches(s))
        model.backward_loss()
        opt.step(model.gradients())
        losses.append(res.loss)
    return losses


@pytest.mark.slow
def test_charlm_learns_repetitive_text():
    text = "hello world. " * 40
    chars = sorted(set(text))
    ids = np.array([chars.index(c) for c in text])
    cfg = nn.CharLMConfig(vocab_size=len(chars), cell="lstm", hidden_size=24, num_layers=1, embedding_size=8)
    m = nn.CharLM(cfg, seed=0)
    Tb, Nb = 16, 8
    rng = np.random.default_rng(0)

    def batch(_):
        starts = rng.integers(0, len(ids) - Tb - 1, Nb)
        x = np.stack([ids[s:s + Tb] for s in starts], axis=1)             # (T, N)
        y = np.stack([ids[s + 1:s + Tb + 1] for s in starts], axis=1)
        return SimpleNamespace(x=x, y=y)

    losses = _train(m, batch, 150, 0.02)
    assert losses[0] == pytest.approx(np.log(len(chars)), rel=0.1)       # starts near uniform
    assert np.mean(losses[-10:]) < 0.3 * losses[0], (losses[0], losses[-10:])


def test_classifier_learns_separable_task():
    cfg = nn.SequenceClassifierConfig(num_classes=2, input_size=2, cell="gru", hidden_size=8, pooling="mean")
    m = nn.SequenceClassifier(cfg, seed=0)
    rng = np.random.default_rng(1)

    def batch(_):
        y = rng.integers(0, 2, 16)
        x = rng.standard_normal((8, 16, 2)).astype(np.float32) * 0.5
        x[:, :, 0] += np.where(y == 1, 1.0, -1.0)                        # class = sign of feature 0
        lengths = rng.integers(3, 9, 16)
        return SimpleNamespace(x=x, y=y, lengths=lengths)

    losses = _train(m, batch, 100, 0.03)
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:3]), (losses[:3], losses[-10:])
    test = batch(0)
    acc = (m.predict(test.x, test.lengths) == test.y).mean()
    assert acc > 0.9


@pytest.mark.slow
def test_regressor_learns_sine():
    cfg = nn.SequenceRegressorConfig(input_size=1, output_size=1, cell="lstm", hidden_size=16, many_to_many=True)
    m = nn.SequenceRegressor(cfg, seed=0)
    rng = np.random.default_rng(2)
    t = np.arange(21) * 0.3

    def batch(_):
        phase = rng.uniform(0, 2 * np.pi, 16)
        s = np.sin(t[:, None] + phase[None, :]).astype(np.float32)[:, :, None]   # (21, 16, 1)
        return SimpleNamespace(x=s[:-1], y=s[1:])                          # predict the next value

    losses = _train(m, batch, 150, 0.02)
    assert np.mean(losses[-10:]) < 0.1 * np.mean(losses[:3]), (losses[:3], losses[-10:])


def test_classifier_predict_proba_and_predict():
    clf = nn.SequenceClassifier(nn.SequenceClassifierConfig(num_classes=3, input_size=2, hidden_size=5,
                                                           dtype="float64"), seed=0)
    x = np.random.default_rng(0).standard_normal((6, 4, 2))
    lengths = np.array([6, 2, 5, 1])
    logits = clf(x, lengths)
    z = logits - logits.max(axis=1, keepdims=True)
    ref = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(clf.predict_proba(x, lengths), ref, rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(x, lengths), logits.argmax(axis=1))
