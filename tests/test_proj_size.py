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
    with pytest.raises(ConfigError, match="only an LSTM"):
        nn.CharLMConfig(vocab_size=5, cell="gru", hidden_size=6, proj_size=2).validate()
    with pytest.raises(ConfigError, match="proj_size < hidden_size"):
        nn.SequenceClassifierConfig(input_size=3, hidden_size=6, proj_size=6).validate()
    require("onnx")
    from rnnkit.interop.onnx import export
    with pytest.raises(ConfigError, match="no native ONNX operator"):
        export(nn.LSTM(3, 6, proj_size=2))
    with pytest.raises(ConfigError, match="no native ONNX"):
        export(nn.CharLM(nn.CharLMConfig(vocab_size=5, hidden_size=6, proj_size=2)))


# ------------------------------------------------------------------------------ in the models
def test_a_projected_stack_steps_as_it_unrolls():
    """LayerStepper (generation) of an LSTM with proj_size: step by step, the same outputs and
    states as the whole-sequence forward."""
    m = make(2, False)
    x = np.random.default_rng(3).standard_normal((T, N, D))
    with rnnkit.no_grad():
        out, (h, c) = m(x)
    stepper, state = m.stepper(), m.initial_state(N)
    for t in range(T):
        top, state = stepper.step(x[t], state)
        assert np.abs(top - out[t]).max() < 1e-12
    assert np.abs(state[0] - h).max() < 1e-12 and np.abs(state[1] - c).max() < 1e-12


def _torch_charlm(cfg, m):
    """A CharLM written here in torch.nn (embedding -> LSTM(proj_size) -> linear), holding m's weights."""
    import torch
    emb = torch.nn.Embedding(cfg.vocab_size, cfg.embedding_size, dtype=torch.float64)
    lstm = torch.nn.LSTM(cfg.embedding_size, cfg.hidden_size, cfg.num_layers, proj_size=cfg.proj_size,
                         dtype=torch.float64)
    head = torch.nn.Linear(cfg.proj_size, cfg.vocab_size, dtype=torch.float64)
    w = m.parameters()
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(w["embedding.weight"]))
        for name, t in lstm.named_parameters():
            t.copy_(torch.from_numpy(w["rnn." + name]))
        head.weight.copy_(torch.from_numpy(w["head.weight"]))
        head.bias.copy_(torch.from_numpy(w["head.bias"]))
    return emb, lstm, head


def test_charlm_with_proj_size_matches_torch_in_logits_gradients_and_sampling_steps():
    require("torch")
    import torch
    cfg = nn.CharLMConfig(vocab_size=9, hidden_size=H, num_layers=2, embedding_size=D, proj_size=P,
                          dtype="float64")
    m = nn.CharLM(cfg, seed=5)
    assert cfg.parameter_shapes()["head.weight"] == (9, P) and m.num_parameters() == cfg.num_parameters()
    tokens = np.random.default_rng(4).integers(0, 9, (T, N))
    emb, lstm, head = _torch_charlm(cfg, m)
    tl = head(lstm(emb(torch.from_numpy(tokens)))[0])
    logits, _ = m(tokens)
    assert np.abs(logits - tl.detach().numpy()).max() < 1e-12
    g = np.random.default_rng(5).standard_normal(logits.shape)
    m.zero_grad()
    m.backward(g)
    tl.backward(torch.from_numpy(g))
    grads = m.gradients()
    for name, t in lstm.named_parameters():
        assert np.abs(grads["rnn." + name] - t.grad.numpy()).max() < 1e-10, name
    assert np.abs(grads["head.weight"] - head.weight.grad.numpy()).max() < 1e-10
    stepper, state = m.stepper(), None                    # what `rnnkit sample` steps through
    for t in range(T):
        step_logits, state = stepper.step(tokens[t], state)
        assert np.abs(step_logits - tl[t].detach().numpy()).max() < 1e-12
    from rnnkit.interop.torch import from_torch, to_torch  # the twin, both ways
    twin = to_torch(m)
    assert twin.rnn.proj_size == P
    assert np.abs(twin(torch.from_numpy(tokens))[0].detach().numpy() - logits).max() < 1e-12
    assert np.abs(from_torch(twin)(tokens)[0] - logits).max() < 1e-12


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_bidirectional_classifier_with_proj_size_matches_torch(pooling):
    require("torch")
    import torch
    cfg = nn.SequenceClassifierConfig(num_classes=3, input_size=D, hidden_size=H, num_layers=2,
                                      bidirectional=True, pooling=pooling, proj_size=P, dtype="float64")
    m = nn.SequenceClassifier(cfg, seed=6)
    x = np.random.default_rng(6).standard_normal((T, N, D))
    lengths = np.array([5, 2, 4, 1])
    lstm = torch.nn.LSTM(D, H, 2, bidirectional=True, proj_size=P, dtype=torch.float64)
    w = m.parameters()
    with torch.no_grad():
        for name, t in lstm.named_parameters():
            t.copy_(torch.from_numpy(w["rnn." + name]))
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(lengths),
                                                     enforce_sorted=False)
    out, (h, _) = lstm(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)
    pooled = (torch.cat([h[-2], h[-1]], dim=-1) if pooling == "last"
              else out.sum(0) / torch.from_numpy(lengths)[:, None])           # (N, 2P)
    ref = pooled @ torch.from_numpy(w["head.weight"]).T + torch.from_numpy(w["head.bias"])
    logits = m(x, lengths)
    assert logits.shape == (N, 3) and np.abs(logits - ref.detach().numpy()).max() < 1e-12
    m.zero_grad()
    m.backward(np.ones_like(logits))
    ref.sum().backward()
    for name, t in lstm.named_parameters():
        assert np.abs(m.gradients()["rnn." + name] - t.grad.numpy()).max() < 1e-10, name


def test_the_torch_twins_regularised_training_path_projects_like_the_plain_one():
    """TorchCharLM trains with input/output dropout one step at a time from the equations;
    with a projection and masks that keep everything (p = 1e-15) it computes torch.nn.LSTM's
    numbers."""
    require("torch")
    import torch

    from rnnkit.interop.torch import to_torch
    cfg = nn.CharLMConfig(vocab_size=7, hidden_size=H, num_layers=2, embedding_size=D, proj_size=P,
                          input_dropout=1e-15, output_dropout=1e-15, dtype="float64")
    tm = to_torch(nn.CharLM(cfg, seed=0))
    tokens = torch.tensor(np.random.default_rng(0).integers(0, 7, (T, N)))
    lengths = [5, 3, 1, 4]
    plain = tm.eval()(tokens, None, lengths)
    trained = tm.train()(tokens, None, lengths)
    for a, b in zip((plain[0], *plain[1]), (trained[0], *trained[1])):
        assert a.shape == b.shape and (a - b).abs().max().item() < 1e-12
