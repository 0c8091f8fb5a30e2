"""learn_initial_state: h0 (c0) parameters that start every sequence, trained with the rest and
saved in checkpoints; against torch (the same parameters as leaf tensors expanded over the
batch), finite differences, the checkpoint round trip and the torch twins."""

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

import rnnkit
import rnnkit.nn as nn
from rnnkit.errors import ConfigError
from rnnkit.gradcheck import gradcheck
from tests.needs import require

CELLS = ["RNN", "LSTM", "GRU"]
T, N, D, H = 5, 3, 3, 4


def make(cell, L=2, bi=False, **kw):
    m = getattr(nn, cell)(D, H, num_layers=L, bidirectional=bi, dtype=np.float64, seed=2,
                          learn_initial_state=True, **kw)
    rng = np.random.default_rng(9)
    for k in ("h0", "c0"):
        if k in m.parameters():
            m.parameters()[k][...] = rng.standard_normal(m.parameters()[k].shape)
    return m


@pytest.mark.parametrize("cell,bi,use_len", list(itertools.product(CELLS, [False, True], [False, True])))
def test_learned_initial_state_matches_torch_with_leaf_states(cell, bi, use_len):
    require("torch")
    import torch
    m = make(cell, bi=bi)
    names = ("h0", "c0") if cell == "LSTM" else ("h0",)
    assert m.parameters()["h0"].shape == (2 * (2 if bi else 1), H)
    tm = getattr(torch.nn, cell)(D, H, num_layers=2, bidirectional=bi).double()
    tm.load_state_dict({k: torch.tensor(v) for k, v in m.state_dict().items() if k not in names})
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, N, D))
    lengths = np.array([5, 2, 4]) if use_len else None
    out, sn = m(x, lengths=lengths)
    leaves = [torch.tensor(m.parameters()[n], requires_grad=True) for n in names]
    st = [a[:, None, :].expand(-1, N, -1) for a in leaves]
    xt = torch.tensor(x)
    st = tuple(st) if cell == "LSTM" else st[0]
    if use_len:
        packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths), enforce_sorted=False)
        po, tsn = tm(packed, st)
        tout, _ = torch.nn.utils.rnn.pad_packed_sequence(po, total_length=T)
    else:
        tout, tsn = tm(xt, st)
    assert np.abs(out - tout.detach().numpy()).max() < 1e-10
    dout = rng.standard_normal(out.shape)
    (tout * torch.tensor(dout)).sum().backward()
    m.backward(dout)
    for n, leaf in zip(names, leaves):
        assert np.abs(m.gradients()[n] - leaf.grad.numpy()).max() < 1e-10, n
    for k, p in tm.named_parameters():
        assert np.abs(m.gradients()[k] - p.grad.numpy()).max() < 1e-10, k


@pytest.mark.slow
@pytest.mark.parametrize("cell,bi", list(itertools.product(CELLS, [False, True])))
def test_gradcheck_learned_initial_state(cell, bi):
    m = make(cell, bi=bi)
    rep = gradcheck(m, np.random.default_rng(0).standard_normal((T, N, D)), lengths=np.array([5, 2, 4]),
                    max_entries=30)
    rep.assert_ok(1e-7)
    assert "h0" in rep.errors and ("c0" in rep.errors) == (cell == "LSTM")


def test_a_given_state_leaves_the_learned_one_alone_and_unbatched_input_uses_it():
    m = make("LSTM", L=1)
    state = (np.zeros((1, N, H)), np.zeros((1, N, H)))
    out, _ = m(np.ones((T, N, D)), state)
    m.backward(np.ones_like(out))
    assert not m.gradients()["h0"].any() and not m.gradients()["c0"].any()
    with rnnkit.no_grad():
        batched, _ = m(np.ones((T, 1, D)))
    alone, _ = m(np.ones((T, D)))                          # unbatched: starts from h0, c0
    assert np.abs(alone - batched[:, 0]).max() == 0
    m.backward(np.ones_like(alone))
    assert m.gradients()["h0"].any()
    h, c = m.initial_state(2)
    assert np.array_equal(h[:, 1], m.parameters()["h0"]) and np.array_equal(c[:, 0], m.parameters()["c0"])


def _train(model, steps=5):
    from rnnkit.optim import Adam
    opt = Adam(model.parameters(), lr=0.05)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 8, 3))
    batch = SimpleNamespace(x=x, y=(x.sum(axis=(0, 2)) > 0).astype(np.int64), lengths=np.full(8, 6))
    for _ in range(steps):
        model.zero_grad()
        model.loss(batch)
        model.backward_loss()
        opt.step(model.gradients())
    return x


@pytest.mark.parametrize("cell,bi", [("lstm", True), ("gru", False)])
def test_model_trains_its_initial_state_and_the_checkpoint_keeps_it(tmp_path, cell, bi):
    from rnnkit.checkpoint import save_checkpoint
    from rnnkit.load import load_model
    cfg = nn.SequenceClassifierConfig(num_classes=2, input_size=3, hidden_size=5, cell=cell,
                                      bidirectional=bi, learn_initial_state=True, dtype="float64")
    model = nn.SequenceClassifier(cfg, seed=0)
    assert "rnn.h0" in model.parameters() and ("rnn.c0" in model.parameters()) == (cell == "lstm")
    x = _train(model)
    assert np.abs(model.parameters()["rnn.h0"]).max() > 1e-3          # it was trained
    save_checkpoint(tmp_path / "run", model_state=model.state_dict(), config=cfg.to_dict())
    back = load_model(tmp_path / "run", need_charlm=False).model
    assert back.config.learn_initial_state
    for k, v in model.state_dict().items():
        assert np.array_equal(back.state_dict()[k], v), k
    with rnnkit.no_grad():
        assert np.abs(back(x) - model(x)).max() == 0
    old = cfg.to_dict()
    del old["learn_initial_state"]                                  # configs written before
    assert nn.SequenceClassifierConfig.from_dict(old).learn_initial_state is False


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_torch_twin_holds_and_uses_the_learned_state(cell):
    require("torch")
    import torch

    from rnnkit.interop.torch import from_torch, to_torch
    cfg = nn.CharLMConfig(vocab_size=6, hidden_size=5, num_layers=2, embedding_size=3, cell=cell,
                          learn_initial_state=True, dtype="float64")
    model = nn.CharLM(cfg, seed=0)
    model.parameters()["rnn.h0"][...] = np.random.default_rng(0).standard_normal((2, 5))
    twin = to_torch(model)
    assert "rnn.h0" in twin.state_dict()
    tokens = np.random.default_rng(1).integers(0, 6, (4, 3))
    with rnnkit.no_grad():
        logits, _ = model(tokens)
    with torch.no_grad():
        tl, _ = twin(torch.tensor(tokens))
    assert np.abs(tl.numpy() - logits).max() < 1e-10
    back = from_torch(twin)
    assert np.array_equal(back.parameters()["rnn.h0"], model.parameters()["rnn.h0"])


def test_what_cannot_hold_a_learned_state_refuses_it():
    m = nn.GRU(D, H, learn_initial_state=True)
    require("torch")
    from rnnkit.interop.torch import to_torch
    with pytest.raises(ConfigError, match="learned initial state"):
        to_torch(m)
    require("onnx")
    from rnnkit.interop.onnx import export
    with pytest.raises(ConfigError, match="learned initial state"):
        export(m)
    lm = nn.CharLM(nn.CharLMConfig(vocab_size=5, hidden_size=4, num_layers=1, learn_initial_state=True))
    with pytest.raises(ConfigError, match="learned initial state"):
        export(lm)
    from rnnkit.engines.torch import TorchEngine
    from rnnkit.train import TrainConfig
    with pytest.raises(ConfigError, match="numpy engine"):
        TorchEngine(lm, TrainConfig())
