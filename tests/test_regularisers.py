"""Regularisers and initialisations of the recurrent layers and CharLM (issue 25): finite
differences with the masks fixed by seed, a PyTorch reference written here (the seed
equations, masks injected), train/eval behaviour, initialisations, refusals."""

import itertools
from pathlib import Path

import numpy as np
import pytest

import rnnkit.nn as nn
from rnnkit.errors import ConfigError
from rnnkit.gradcheck import gradcheck

from needs import require

T, N, D, H = 5, 3, 3, 4
LENGTHS = np.array([5, 2, 4])
OPTIONS = {"input_dropout": 0.4, "output_dropout": 0.3, "recurrent_dropout": 0.5, "weight_drop": 0.5}
ALL = dict(OPTIONS)


class FixedMasks:
    """The module called with its generators reset before every call: the same masks each
    time (what finite differences need)."""

    def __init__(self, module, *rngs):
        self.module = module
        self.rngs = rngs
        self.states = [r.bit_generator.state for r in rngs]

    def __call__(self, *a, **k):
        for r, s in zip(self.rngs, self.states):
            r.bit_generator.state = s
        return self.module(*a, **k)

    def __getattr__(self, name):
        return getattr(self.module, name)


def make(cell, L=2, bi=False, **kw):
    return getattr(nn, cell)(D, H, num_layers=L, bidirectional=bi, dtype=np.float64, seed=7, **kw)


def state_for(cell, L, bi, rng, n=N):
    shape = (L * (2 if bi else 1), n, H)
    h0 = rng.standard_normal(shape)
    return (h0, rng.standard_normal(shape)) if cell == "LSTM" else h0


GRAD_CASES = [(c, o) for c in ("LSTM", "GRU", "RNN") for o in (*OPTIONS, "all")]


@pytest.mark.slow                      # ~0.7-3 s each; the fast tier keeps the CharLM gradcheck
@pytest.mark.parametrize("cell,option", GRAD_CASES, ids=[f"{c}-{o}" for c, o in GRAD_CASES])
def test_gradcheck_each_regulariser_with_lengths(cell, option):
    rng = np.random.default_rng(0)
    kw = ALL if option == "all" else {option: OPTIONS[option]}
    m = make(cell, **kw)
    x = rng.standard_normal((T, N, D))
    rep = gradcheck(FixedMasks(m, m.rng), x, state_for(cell, 2, False, rng), lengths=LENGTHS)
    rep.assert_ok(1e-7)
    assert set(m.parameters()) <= set(rep.errors)
    assert m.last_masks                      # the masks were drawn (and so were checked)


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_gradcheck_all_regularisers_bidirectional(cell):
    rng = np.random.default_rng(1)
    m = make(cell, bi=True, dropout=0.3, **ALL)
    x = rng.standard_normal((T, N, D))
    gradcheck(FixedMasks(m, m.rng), x, state_for(cell, 2, True, rng), lengths=LENGTHS).assert_ok(1e-7)


# -------------------------------------------------------------------- the PyTorch reference
def _torch_stack(torch, cell, p, x, state, masks, lengths, L, bi, ln=False):
    """The regularised stack from the seed equations, in torch (autograd gives the gradients):
    locked masks on every layer's input and on the top output, h_{t-1} * m entering the
    recurrent product, weight_hh * M. Right padding freezes the state; the reverse direction
    reads each sequence backwards within its length. ``ln``: the layer-normalised cells (Ba et
    al.), ``torch.nn.functional.layer_norm`` on each projection (and on LSTM's c) times its
    gain, the biases after it."""
    def norm(z, w):
        return torch.nn.functional.layer_norm(z, (z.shape[-1],), eps=1e-5) * w
    Tn, Nn, _ = x.shape
    Dn = 2 if bi else 1
    lengths = lengths if lengths is not None else np.full(Nn, Tn)
    valid = torch.tensor((np.arange(Tn)[:, None] < lengths[None, :]).astype(np.float64))[:, :, None]
    rev = np.array([[(lengths[n] - 1 - t) if t < lengths[n] else t for n in range(Nn)]
                    for t in range(Tn)])
    cols = np.arange(Nn)[None, :]
    h0s, c0s = state if cell == "LSTM" else (state, None)
    inp, hs, cs = x, [], []
    for layer in range(L):
        if f"input_l{layer}" in masks:
            inp = inp * torch.tensor(masks[f"input_l{layer}"])
        outs = []
        for d in range(Dn):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            W_ih, b_ih, b_hh = p["weight_ih" + sfx], p["bias_ih" + sfx], p["bias_hh" + sfx]
            W_hh = p["weight_hh" + sfx]
            if "weight_hh" + sfx in masks:
                W_hh = W_hh * torch.tensor(masks["weight_hh" + sfx])
            rm = torch.tensor(masks.get("recurrent" + sfx, np.ones((Nn, H))))
            xin = inp[rev, cols] if d else inp
            h, c = h0s[layer * Dn + d], (c0s[layer * Dn + d] if c0s is not None else None)
            ys = []
            for t in range(Tn):
                gx, gh = xin[t] @ W_ih.T, (h * rm) @ W_hh.T
                if ln:
                    gx, gh = norm(gx, p["ln_weight_ih" + sfx]), norm(gh, p["ln_weight_hh" + sfx])
                gx, gh = gx + b_ih, gh + b_hh
                if cell == "LSTM":
                    i, f, g, o = (gx + gh).chunk(4, 1)
                    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                    cn = norm(c_new, p["ln_weight_c" + sfx]) + p["ln_bias_c" + sfx] if ln else c_new
                    h_new = torch.sigmoid(o) * torch.tanh(cn)
                elif cell == "GRU":
                    xr, xz, xn = gx.chunk(3, 1)
                    hr, hz, hn = gh.chunk(3, 1)
                    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
                    n_ = torch.tanh(xn + r * hn)
                    h_new = (1 - z) * n_ + z * h
                else:
                    h_new = torch.tanh(gx + gh)
                m = valid[t]
                h = m * h_new + (1 - m) * h
                if c is not None:
                    c = m * c_new + (1 - m) * c
                ys.append(h * m)
            y = torch.stack(ys)
            outs.append(y[rev, cols] if d else y)
            hs.append(h)
            cs.append(c)
        inp = torch.cat(outs, dim=2)
    if "output" in masks:
        inp = inp * torch.tensor(masks["output"])
    return inp, torch.stack(hs), (torch.stack(cs) if cell == "LSTM" else None)


PARITY = [pytest.param(c, b, u, ln, id=f"{c}{'-ln' if ln else ''}-{'bi' if b else 'uni'}-"
                                       f"{'len' if u else 'full'}",
                       marks=pytest.mark.slow if b else ())
          for c, b, u, ln in itertools.product(["LSTM", "GRU", "RNN"], [False, True], [False, True],
                                               [False, True]) if not (ln and c == "RNN")]


def _random_gains(m, rng):
    for k, v in m.parameters().items():
        if k.startswith("ln_"):
            v[...] = rng.uniform(0.5, 1.5, v.shape)


@pytest.mark.parametrize("cell,bi,use_len,ln", PARITY)
def test_torch_reference_parity_with_the_masks_injected(cell, bi, use_len, ln):
    torch = require("torch")
    rng = np.random.default_rng(2)
    m = make(cell, bi=bi, layer_norm=ln, **ALL)
    _random_gains(m, rng)
    x = rng.standard_normal((T, N, D))
    state = state_for(cell, 2, bi, rng)
    lengths = LENGTHS if use_len else None
    out, sn = m(x, state, lengths=lengths)
    masks = m.last_masks
    p = {k: torch.tensor(v, requires_grad=True) for k, v in m.parameters().items()}
    xt = torch.tensor(x, requires_grad=True)
    st = tuple(torch.tensor(s, requires_grad=True) for s in (state if cell == "LSTM" else (state,)))
    tout, th, tc = _torch_stack(torch, cell, p, xt, st if cell == "LSTM" else st[0], masks,
                                lengths, 2, bi, ln)
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=0, atol=1e-12)
    hs = sn if cell == "LSTM" else (sn,)
    ths = (th, tc) if cell == "LSTM" else (th,)
    for a, b in zip(hs, ths):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=0, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    dsn = tuple(rng.standard_normal(a.shape) for a in hs)
    loss = (tout * torch.tensor(dout)).sum() + sum((t * torch.tensor(d)).sum() for t, d in zip(ths, dsn))
    loss.backward()
    dx, ds0 = m.backward(dout, dsn if cell == "LSTM" else dsn[0])
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=1e-11)
    for a, b in zip(ds0 if cell == "LSTM" else (ds0,), st):
        np.testing.assert_allclose(a, b.grad.numpy(), rtol=0, atol=1e-11)
    for k, g in m.gradients().items():
        np.testing.assert_allclose(g, p[k].grad.numpy(), rtol=0, atol=1e-11, err_msg=k)


# -------------------------------------------------------------------- behaviour
def test_masks_are_locked_per_sequence_and_weight_masks_per_call():
    m = make("LSTM", bi=True, **ALL)
    m(np.ones((T, N, D)))
    shapes = {k: v.shape for k, v in m.last_masks.items()}
    assert shapes["input_l0"] == (N, D) and shapes["input_l1"] == (N, 2 * H)
    assert shapes["recurrent_l1_reverse"] == (N, H) and shapes["output"] == (N, 2 * H)
    assert shapes["weight_hh_l0"] == m.parameters()["weight_hh_l0"].shape
    for v, p in ((m.last_masks["input_l0"], 0.4), (m.last_masks["weight_hh_l1"], 0.5)):
        assert set(np.unique(v)) <= {0.0, 1 / (1 - p)}
    first = {k: v.copy() for k, v in m.last_masks.items()}
    m(np.ones((T, N, D)))
    assert not np.array_equal(first["weight_hh_l0"], m.last_masks["weight_hh_l0"])   # fresh per call


def test_locked_input_mask_drops_the_same_features_at_every_step():
    # A one-layer RNN with W_hh = 0 and b = 0: h_t = tanh(W_ih (x_t * m)). With W_ih = I, a
    # dropped feature of a sequence is 0 at every step.
    m = nn.RNN(3, 3, input_dropout=0.5, dtype=np.float64, seed=3)
    for k, v in m.parameters().items():
        v[...] = np.eye(3) if k == "weight_ih_l0" else 0
    out, _ = m(np.ones((6, 8, 3)))
    mask = m.last_masks["input_l0"]                                    # (N, 3)
    np.testing.assert_allclose(out, np.tanh(np.broadcast_to(mask, (6, 8, 3))), atol=1e-15)


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_eval_mode_and_zero_options_compute_the_plain_layer(cell):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((T, N, D))
    plain = make(cell)
    reg = make(cell, **ALL)
    reg.load_state_dict(plain.state_dict())
    reg.eval()
    np.testing.assert_array_equal(reg(x)[0], plain(x)[0])
    reg.train()
    assert not np.allclose(reg(x)[0], plain(x)[0])
    assert not plain.regularised and reg.regularised


@pytest.mark.parametrize("cell,gate", [("LSTM", 1), ("GRU", 1)])
def test_orthogonal_init_and_forget_bias(cell, gate):
    m = make(cell, bi=True, init="orthogonal", forget_bias=1.5)
    G = m.spec.num_gates
    for k, W in m.parameters().items():
        if k.startswith("weight_hh"):
            for g in range(G):
                B = W[g * H:(g + 1) * H]
                np.testing.assert_allclose(B.T @ B, np.eye(H), atol=1e-12)
        if k.startswith("bias_ih"):
            np.testing.assert_array_equal(W[gate * H:(gate + 1) * H], 1.5)
        if k.startswith("bias_hh"):
            np.testing.assert_array_equal(W[gate * H:(gate + 1) * H], 0)
    plain = make(cell, bi=True)                           # the other weights: PyTorch's uniform
    k = 1 / np.sqrt(H)
    assert np.abs(m.parameters()["weight_ih_l0"]).max() <= k
    assert np.abs(plain.parameters()["weight_hh_l0"]).max() <= k


@pytest.mark.parametrize("kw,match", [
    (dict(cell="RNN", forget_bias=1.0), "only LSTM"),
    (dict(cell="LSTM", forget_bias=1.0, bias=False), "bias=True"),
    (dict(cell="LSTM", recurrent_dropout=0.2, proj_size=2), "proj_size"),
    (dict(cell="LSTM", weight_drop=0.2, proj_size=2), "proj_size"),
    (dict(cell="GRU", init="xavier"), "init"),
    (dict(cell="GRU", recurrent_dropout=1.0), "recurrent_dropout"),
    (dict(cell="GRU", input_dropout=-0.1), "input_dropout"),
])
def test_bad_regulariser_arguments_are_refused_clearly(kw, match):
    cell = kw.pop("cell")
    with pytest.raises(ConfigError, match=match):
        getattr(nn, cell)(D, H, **kw)


# -------------------------------------------------------------------- CharLM
def _lm(**kw):
    cfg = nn.CharLMConfig(vocab_size=7, hidden_size=H, num_layers=2, embedding_size=kw.pop("E", 4),
                          dtype="float64", **kw)
    return nn.CharLM(cfg, seed=0)


@pytest.mark.parametrize("E", [4, pytest.param(0, marks=pytest.mark.slow)], ids=["embedding", "one-hot"])
def test_charlm_gradcheck_with_every_regulariser(E):
    m = _lm(E=E, embedding_dropout=0.3, init="orthogonal", forget_bias=1.0, **ALL)
    rng = np.random.default_rng(5)
    tokens = rng.integers(0, 7, (6, N))
    rep = gradcheck(FixedMasks(m, m.rnn.rng), tokens, None, lengths=np.array([6, 2, 4]))
    rep.assert_ok(1e-7)
    assert set(m.parameters()) <= set(rep.errors)


def test_embedding_dropout_drops_whole_characters():
    m = _lm(embedding_dropout=0.5)
    tokens = np.tile(np.arange(7), (4, 1)).T.copy()               # (7, 4): every id, 4 columns
    x = m._embed(tokens)                                           # training mode
    W = m.embedding.parameters()["weight"]
    factor = x[:, :, 0] / W[tokens, 0]                             # one factor per character ...
    assert np.allclose(factor, factor[:, :1])                      # ... the same in every column
    assert set(np.round(np.unique(factor), 12)) <= {0.0, 2.0}
    m.eval()
    np.testing.assert_array_equal(m._embed(tokens), W[tokens])


def test_charlm_config_round_trip_and_old_configs_load_with_the_options_off():
    cfg = nn.CharLMConfig(vocab_size=9, recurrent_dropout=0.25, weight_drop=0.3, init="orthogonal",
                          forget_bias=1.0, embedding_dropout=0.1, input_dropout=0.2,
                          output_dropout=0.2)
    assert nn.CharLMConfig.from_dict(cfg.to_dict()) == cfg
    old = {k: v for k, v in nn.CharLMConfig(vocab_size=9).to_dict().items()
           if k not in ("input_dropout", "output_dropout", "recurrent_dropout", "weight_drop",
                        "embedding_dropout", "init", "forget_bias")}
    loaded = nn.CharLMConfig.from_dict(old)
    assert loaded.recurrent_dropout == 0 and loaded.init == "uniform" and loaded.forget_bias is None
    with pytest.raises(ConfigError, match="forget_bias"):
        nn.CharLMConfig.from_dict({**old, "cell": "rnn", "forget_bias": 1.0})
    with pytest.raises(ConfigError, match="weight_drop"):
        nn.CharLMConfig.from_dict({**old, "weight_drop": "0.5"})


# -------------------------------------------------------------------- the torch twin and engines
@pytest.mark.parametrize("cell", ["lstm", "gru_ln", "lstm_ln"])
def test_torch_twin_trains_the_same_regularised_charlm_with_the_masks_injected(monkeypatch, cell):
    torch = require("torch")
    from rnnkit.interop import torch as interop
    m = _lm(cell=cell, embedding_dropout=0.3, init="orthogonal", forget_bias=1.0, **ALL)
    rng = np.random.default_rng(6)
    _random_gains(m, rng)
    tokens = rng.integers(0, 7, (6, N))
    lengths = np.array([6, 2, 4])
    logits, _ = m(tokens, None, lengths)
    masks = m.last_masks
    order = ["embedding"] + [f"{kind}_l{k}" for k in range(2)
                             for kind in ("input", "weight_hh", "recurrent")] + ["output"]
    assert set(order) == set(masks)
    drawn = iter(order)
    monkeypatch.setattr(interop, "_mask", lambda shape, p, like: torch.tensor(masks[next(drawn)]))
    tm = interop.to_torch(m)
    assert tm.training
    tlogits, _ = tm(torch.tensor(tokens), None, lengths)
    np.testing.assert_allclose(logits, tlogits.detach().numpy(), rtol=0, atol=1e-12)
    dlogits = rng.standard_normal(logits.shape)
    (tlogits * torch.tensor(dlogits)).sum().backward()
    m.backward(dlogits)
    tgrads = {k: p.grad.numpy() for k, p in tm.named_parameters()}
    for k, g in m.gradients().items():
        np.testing.assert_allclose(g, tgrads[k], rtol=0, atol=1e-11, err_msg=k)
    tm.eval()                                       # eval: no masks, the plain stack
    m.eval()
    np.testing.assert_allclose(m(tokens, None, lengths)[0],
                               tm(torch.tensor(tokens), None, lengths)[0].detach().numpy(),
                               rtol=0, atol=1e-12)


REG_ARGS = ["--input-dropout", "0.1", "--output-dropout", "0.2", "--recurrent-dropout", "0.25",
            "--weight-drop", "0.3", "--embedding-dropout", "0.1", "--init", "orthogonal",
            "--forget-bias", "1"]


@pytest.mark.slow
@pytest.mark.parametrize("engine,layer_norm", [("numpy", False), ("torch", False), ("torch", True)])
def test_each_engine_with_regularisers_is_exact_with_itself_across_resume(tmp_path, capsys, engine,
                                                                          layer_norm):
    from test_engines import MODEL, NAMES

    from rnnkit.checkpoint import load_checkpoint

    from test_cli import cli as run_cli
    if engine == "torch":
        require("torch")
    text = tmp_path / "names.txt"
    text.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    common = [str(text), "--eval-every", "3", *MODEL, "--dtype", "float64", *REG_ARGS,
              "--engine", engine] + (["--device", "cpu"] if engine == "torch" else []) + (
              ["--layer-norm"] if layer_norm else [])

    def train(*argv):
        code, _, err = run_cli(capsys, "train", *map(str, argv))
        assert code == 0, err
        return err

    train(*common, "--steps", 8, "--out", tmp_path / "straight")
    train(*common, "--steps", 4, "--out", tmp_path / "split")
    train("--resume", tmp_path / "split", "--steps", 8)
    train(*[a for a in common if a not in REG_ARGS[1::2] and a not in REG_ARGS[::2]],
          "--steps", 8, "--out", tmp_path / "plain")
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "split")
    plain = load_checkpoint(tmp_path / "plain")
    for k in a.model_state:
        assert np.array_equal(a.model_state[k], b.model_state[k]), k
    assert a.config["recurrent_dropout"] == 0.25 and a.config["init"] == "orthogonal"
    assert a.config["cell"] == ("lstm_ln" if layer_norm else "lstm")
    assert plain.config["recurrent_dropout"] == 0 and plain.config["weight_drop"] == 0
    assert plain.config["forget_bias"] == 1.0 and plain.config["init"] == "orthogonal"  # defaults
    assert max(float(np.abs(a.model_state[k] - plain.model_state[k]).max()) for k in a.model_state) > 1e-3
    code, out, err = run_cli(capsys, "info", str(tmp_path / "straight"))
    assert code == 0 and "recurrent_dropout: 0.25" in out and "weight_drop: 0.3" in out


@pytest.mark.slow
def test_resume_refuses_a_changed_regulariser_and_keeps_old_runs_off(tmp_path, capsys):
    from test_engines import MODEL, NAMES

    from rnnkit.checkpoint import load_checkpoint

    from test_cli import cli as run_cli
    text = tmp_path / "names.txt"
    text.write_text("\n".join(NAMES[:100]) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", str(text), *MODEL, "--steps", "2", "--eval-every", "2",
                           "--recurrent-dropout", "0.2", "--out", str(run))
    assert code == 0, err
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--steps", "4",
                           "--recurrent-dropout", "0.3")
    assert code == 1 and "--recurrent-dropout 0.3 differs" in err
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--steps", "4")
    assert code == 0, err
    assert load_checkpoint(run).config["recurrent_dropout"] == 0.2


@pytest.mark.slow
def test_a_run_saved_before_the_regularisers_resumes_with_them_off(tmp_path, capsys):
    import json

    from run_edits import rehash_manifest
    from test_engines import MODEL, NAMES

    from rnnkit.checkpoint import list_versions, load_checkpoint
    from rnnkit.train_setup import REGULARISERS_OFF

    from test_cli import cli as run_cli
    text = tmp_path / "names.txt"
    text.write_text("\n".join(NAMES[:100]) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", str(text), *MODEL, "--steps", "2", "--eval-every", "2",
                           "--out", str(run))
    assert code == 0, err
    version = Path(list_versions(run)[-1])
    for name, path in (("config.json", ()), ("trainer.json", ("extra", "cli"))):
        d = json.loads((version / name).read_text())
        inner = d
        for k in path:
            inner = inner[k]
        for k in REGULARISERS_OFF:
            inner.pop(k, None)                       # config.json has no layer_norm key
        (version / name).write_text(json.dumps(d))
    rehash_manifest(version)
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--steps", "4")
    assert code == 0, err
    cfg = load_checkpoint(run).config
    assert all(cfg.get(k, v) == v for k, v in REGULARISERS_OFF.items())


# -------------------------------------------------------------------- layer-normalised cells
LN_CASES = [pytest.param(c, o, id=f"{c}-{o}", marks=pytest.mark.slow if o == "all" else ())
            for c in ("LSTM", "GRU") for o in ("none", "all")]


@pytest.mark.slow                      # ~0.7-3 s each; the fast tier keeps the CharLM gradcheck
@pytest.mark.parametrize("cell,option", LN_CASES)
def test_gradcheck_layer_norm_cells(cell, option):
    rng = np.random.default_rng(8)
    m = make(cell, layer_norm=True, **(ALL if option == "all" else {}))
    _random_gains(m, rng)
    assert m.spec.name == cell.lower() + "_ln" and m.layer_norm
    x = rng.standard_normal((T, N, D))
    rep = gradcheck(FixedMasks(m, m.rng), x, state_for(cell, 2, False, rng), lengths=LENGTHS)
    rep.assert_ok(1e-7)
    assert {k for k in m.parameters() if k.startswith("ln_")} <= set(rep.errors)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_layer_norm_stepper_and_no_grad_compute_the_forward(cell):
    rng = np.random.default_rng(9)
    m = make(cell, L=2, layer_norm=True)
    _random_gains(m, rng)
    m.eval()
    x = rng.standard_normal((T, N, D))
    out, _ = m(x)
    import rnnkit
    with rnnkit.no_grad():
        np.testing.assert_allclose(m(x)[0], out, atol=1e-13)
    step, state = m.stepper(), None
    state = m.initial_state(N)
    for t in range(T):
        top, state = step.step(x[t], state)
        np.testing.assert_allclose(top, out[t], atol=1e-12)


def test_layer_norm_charlm_config_and_the_converters_refuse_it_clearly(tmp_path):
    cfg = nn.CharLMConfig(vocab_size=7, cell="lstm_ln", hidden_size=H, num_layers=2,
                          embedding_size=4)
    assert nn.CharLMConfig.from_dict(cfg.to_dict()) == cfg
    m = nn.CharLM(cfg, seed=0)
    assert "rnn.ln_weight_c_l1" in m.parameters()
    assert cfg.parameter_shapes().keys() == m.parameters().keys()
    from rnnkit.interop.onnx import export
    with pytest.raises(ConfigError, match="no normalisation inside the recurrence"):
        export(m, str(tmp_path / "m.onnx"))
    require("torch")
    from rnnkit.interop.torch import to_torch
    with pytest.raises(ConfigError, match="no layer-normalised"):
        to_torch(m.rnn)
    with pytest.raises(ConfigError, match="layer-normalised variant"):
        nn.RNN(3, 4, layer_norm=True)
    assert type(nn.recurrent_cell("lstm_ln", 3, 4)) is nn.LayerNormLSTMCell   # tests/test_cell_regularisers.py


@pytest.mark.slow
def test_a_cell_without_forget_gate_resumes_with_no_forget_bias_saved(tmp_path, capsys):
    """The default forget-gate bias does not apply to tanh RNN cells: the run saves none
    (null in trainer.json), and resuming accepts it instead of calling the file damaged."""
    import json

    from test_engines import NAMES

    from rnnkit.checkpoint import list_versions, load_checkpoint

    from test_cli import cli as run_cli
    text = tmp_path / "names.txt"
    text.write_text("\n".join(NAMES[:100]) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", str(text), "--cell", "rnn", "--hidden-size", "8",
                           "--num-layers", "1", "--embedding-size", "4", "--steps", "2",
                           "--eval-every", "2", "--num-samples", "0", "--out", str(run))
    assert code == 0, err
    saved = json.loads((Path(list_versions(run)[-1]) / "trainer.json").read_text())["extra"]["cli"]
    assert saved["forget_bias"] is None
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--steps", "4")
    assert code == 0, err
    assert load_checkpoint(run).trainer_state["step"] == 4
