"""rnnkit.interop.torch: conversions both ways, output parity, checkpoint loading, training parity.

The references are PyTorch's own layers, losses and optimizers (float64, tolerance 1e-10 on
outputs, 1e-8 on weights after training).
"""

import itertools
import json
from types import SimpleNamespace

import numpy as np
import pytest

from needs import require

torch = require("torch")
safetensors_torch = require("safetensors.torch")

import rnnkit.nn as nn  # noqa: E402
from rnnkit import optim  # noqa: E402
from rnnkit.errors import ConfigError  # noqa: E402
from rnnkit.interop.torch import (  # noqa: E402
    TorchCharLM,
    TorchSequenceClassifier,
    TorchSequenceRegressor,
    charlm_torch_module,
    from_torch,
    to_torch,
    torch_model_from_config,
)
from rnnkit.io import save_safetensors  # noqa: E402

TOL = 1e-10
T, N, D, H = 6, 3, 4, 5
LENGTHS = np.array([6, 2, 4])


def _np(t):
    return t.detach().cpu().numpy()


def _max_diff(a, b):
    """max |a - b| over (possibly nested tuples of) arrays / tensors."""
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        return max(_max_diff(x, y) for x, y in zip(a, b))
    a = _np(a) if torch.is_tensor(a) else np.asarray(a)
    b = _np(b) if torch.is_tensor(b) else np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).max())


def _torch_state(state):
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(torch.tensor(s) for s in state)
    return torch.tensor(state)


def _torch_rnn_run(tm, x, state, lengths):
    """Independent reference run of a torch recurrent layer (packed sequences for lengths)."""
    xt = torch.tensor(x)
    st = _torch_state(state)
    if lengths is None:
        return tm(xt, st)
    packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths), batch_first=tm.batch_first,
                                                     enforce_sorted=False)
    po, sn = tm(packed, st)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(po, batch_first=tm.batch_first,
                                                    total_length=x.shape[1 if tm.batch_first else 0])
    return out, sn


# ============================================================================== layers
CELLS = [("RNN", "tanh"), ("RNN", "relu"), ("LSTM", None), ("GRU", None)]
LAYER_MATRIX = [(c, nl, L, bi, ln) for (c, nl), L, bi, ln in
                itertools.product(CELLS, [1, 2], [False, True], [False, True])]
LAYER_IDS = [f"{c}{'-' + nl if nl else ''}-L{L}-{'bi' if bi else 'uni'}-{'len' if ln else 'full'}"
             for c, nl, L, bi, ln in LAYER_MATRIX]
# (batch_first, bias, dropout) variants, each run over the whole matrix would be 3x the tests;
# they are cycled through the matrix instead so that every variant meets every cell kind.
VARIANTS = [(False, True, 0.0), (True, True, 0.0), (False, False, 0.0), (True, False, 0.3)]


def _rnnkit_layer(cell, nl, L, bi, bf, bias, dropout, seed=3):
    kw = dict(num_layers=L, bidirectional=bi, batch_first=bf, bias=bias, dropout=dropout,
              dtype=np.float64, seed=seed)
    if cell == "RNN":
        kw["nonlinearity"] = nl
    return getattr(nn, cell)(D, H, **kw)


def _torch_layer(cell, nl, L, bi, bf, bias, dropout):
    kw = dict(num_layers=L, bidirectional=bi, batch_first=bf, bias=bias, dropout=dropout,
              dtype=torch.float64)
    if cell == "RNN":
        kw["nonlinearity"] = nl
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return getattr(torch.nn, cell)(D, H, **kw)


def _layer_inputs(cell, L, bi, bf, rng):
    x = rng.standard_normal((N, T, D) if bf else (T, N, D))
    shape = (L * (2 if bi else 1), N, H)
    h0 = rng.standard_normal(shape)
    state = (h0, rng.standard_normal(shape)) if cell == "LSTM" else h0
    return x, state


@pytest.mark.parametrize("i", range(len(LAYER_MATRIX)), ids=LAYER_IDS)
def test_layer_to_torch(i):
    cell, nl, L, bi, ln = LAYER_MATRIX[i]
    bf, bias, dropout = VARIANTS[i % len(VARIANTS)]
    rng = np.random.default_rng(i)
    m = _rnnkit_layer(cell, nl, L, bi, bf, bias, dropout).eval()
    tm = to_torch(m)
    assert type(tm) is getattr(torch.nn, cell)
    assert (tm.num_layers, tm.bidirectional, tm.batch_first, tm.bias, tm.dropout) == (L, bi, bf, bias, dropout)
    if cell == "RNN":
        assert tm.nonlinearity == nl
    assert not tm.training
    sd = tm.state_dict()
    assert list(sd) == list(m.state_dict())
    assert all(v.dtype == torch.float64 for v in sd.values())
    x, state = _layer_inputs(cell, L, bi, bf, rng)
    lengths = LENGTHS if ln else None
    out, sn = m(x, state, lengths)
    with torch.no_grad():
        tout, tsn = _torch_rnn_run(tm, x, state, lengths)
    assert _max_diff(out, tout) < TOL
    assert _max_diff(sn, tsn) < TOL


@pytest.mark.parametrize("i", range(len(LAYER_MATRIX)), ids=LAYER_IDS)
def test_layer_from_torch(i):
    cell, nl, L, bi, ln = LAYER_MATRIX[i]
    bf, bias, dropout = VARIANTS[(i + 1) % len(VARIANTS)]
    torch.manual_seed(i)
    tm = _torch_layer(cell, nl, L, bi, bf, bias, dropout).eval()
    m = from_torch(tm)
    assert type(m) is getattr(nn, cell)
    assert (m.num_layers, m.bidirectional, m.batch_first, m.bias, m.dropout) == (L, bi, bf, bias, dropout)
    assert m.dtype == np.float64 and not m.training
    rng = np.random.default_rng(100 + i)
    x, state = _layer_inputs(cell, L, bi, bf, rng)
    lengths = LENGTHS if ln else None
    with torch.no_grad():
        tout, tsn = _torch_rnn_run(tm, x, state, lengths)
    out, sn = m(x, state, lengths)
    assert _max_diff(out, tout) < TOL
    assert _max_diff(sn, tsn) < TOL


def test_layer_float32_and_mode_round_trip():
    m = nn.GRU(D, H, num_layers=2, seed=0)                      # float32, training mode
    tm = to_torch(m)
    assert tm.weight_ih_l0.dtype == torch.float32 and tm.training
    back = from_torch(tm)
    assert back.dtype == np.float32 and back.training
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[k], v)
    # a float64 copy of a float32 torch module on request
    assert from_torch(tm, dtype=np.float64).dtype == np.float64


def test_from_torch_refuses_what_rnnkit_cannot_do():
    with pytest.raises(ConfigError, match="max_norm"):
        from_torch(torch.nn.Embedding(5, 3, max_norm=1.0))
    with pytest.raises(TypeError, match="Conv1d"):
        from_torch(torch.nn.Conv1d(2, 2, 3))
    with pytest.raises(TypeError, match="expected an rnnkit"):
        to_torch(nn.Dropout(0.1))
    with pytest.raises(TypeError, match="float32 or float64"):
        from_torch(torch.nn.Linear(3, 2).half())


@pytest.mark.parametrize("bias", [True, False])
def test_linear_both_ways(bias):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, N, D))                          # 3-D input: per-step projection
    lin = nn.Linear(D, 3, bias=bias, dtype=np.float64, seed=1)
    tl = to_torch(lin)
    assert isinstance(tl, torch.nn.Linear) and (tl.bias is not None) == bias
    assert _max_diff(lin(x), tl(torch.tensor(x))) < TOL
    torch.manual_seed(0)
    tl2 = torch.nn.Linear(D, 3, bias=bias, dtype=torch.float64)
    lin2 = from_torch(tl2)
    assert _max_diff(lin2(x), tl2(torch.tensor(x))) < TOL


def test_embedding_both_ways():
    ids = np.random.default_rng(0).integers(0, 7, (T, N))
    emb = nn.Embedding(7, 3, dtype=np.float64, seed=1)
    te = to_torch(emb)
    assert isinstance(te, torch.nn.Embedding)
    assert _max_diff(emb(ids), te(torch.tensor(ids))) < TOL
    torch.manual_seed(0)
    te2 = torch.nn.Embedding(7, 3, dtype=torch.float64)
    assert _max_diff(from_torch(te2)(ids), te2(torch.tensor(ids))) < TOL


# ============================================================================== models
def _charlm_cfg(cell, E, L=2):
    return nn.CharLMConfig(vocab_size=7, cell=cell, hidden_size=H, num_layers=L, embedding_size=E,
                           dtype="float64")


def _clf_cfg(cell, tokens, bi, pooling, L=2):
    return nn.SequenceClassifierConfig(num_classes=3, vocab_size=9 if tokens else 0,
                                       input_size=0 if tokens else D, embedding_size=4, cell=cell,
                                       hidden_size=H, num_layers=L, bidirectional=bi, pooling=pooling,
                                       dtype="float64")


def _reg_cfg(cell, m2m, bi, pooling, L=2):
    return nn.SequenceRegressorConfig(input_size=D, output_size=2, cell=cell, hidden_size=H, num_layers=L,
                                      bidirectional=bi, many_to_many=m2m, pooling=pooling, dtype="float64")


MODEL_CELLS = ["lstm", "gru", "rnn", "rnn_relu"]
CHARLM_CASES = [(c, E, ln) for c, E, ln in itertools.product(MODEL_CELLS, [4, 0], [False, True])]
CLF_CASES = [(MODEL_CELLS[i % 4], tok, bi, pool, ln) for i, (tok, bi, pool, ln) in
             enumerate(itertools.product([True, False], [False, True], ["last", "mean"], [False, True]))]
REG_CASES = [(MODEL_CELLS[i % 4], m2m, bi, pool, ln) for i, (m2m, bi, pool, ln) in
             enumerate(itertools.product([False, True], [False, True], ["last", "mean"], [False, True]))
             if not (m2m and pool == "mean")]


def _check_model_twin(m, tm, cls):
    assert type(tm) is cls
    assert list(tm.state_dict()) == list(m.state_dict())
    assert all(v.dtype == torch.float64 for v in tm.state_dict().values())
    assert tm.rnnkit_config == m.config.to_dict()
    assert (getattr(tm, "embedding", None) is None) == (getattr(m, "embedding", None) is None)


@pytest.mark.parametrize("cell,E,ln", CHARLM_CASES)
def test_charlm_both_ways(cell, E, ln):
    rng = np.random.default_rng(0)
    m = nn.CharLM(_charlm_cfg(cell, E), seed=1)
    tm = to_torch(m)
    _check_model_twin(m, tm, TorchCharLM)
    tokens = rng.integers(0, 7, (T, N))
    shape = (2, N, H)
    state = (rng.standard_normal(shape), rng.standard_normal(shape)) if cell == "lstm" else rng.standard_normal(shape)
    lengths = LENGTHS if ln else None
    logits, sn = m(tokens, state, lengths)
    with torch.no_grad():
        tlogits, tsn = tm(torch.tensor(tokens), _torch_state(state), lengths)
    assert _max_diff(logits, tlogits) < TOL
    assert _max_diff(sn, tsn) < TOL
    # back: a freshly initialised torch twin -> rnnkit
    torch.manual_seed(1)
    tm2 = TorchCharLM(_charlm_cfg(cell, E).to_dict())
    m2 = from_torch(tm2)
    assert type(m2) is nn.CharLM and m2.config == _charlm_cfg(cell, E)
    with torch.no_grad():
        tlogits2, tsn2 = tm2(torch.tensor(tokens), _torch_state(state), lengths)
    logits2, sn2 = m2(tokens, state, lengths)
    assert _max_diff(logits2, tlogits2) < TOL
    assert _max_diff(sn2, tsn2) < TOL
    assert _max_diff(logits, logits2) > 1e-3             # the two starts really differ


@pytest.mark.parametrize("cell,ln", [("lstm", True), ("gru", False)])
def test_charlm_twin_in_training_draws_dropout_between_layers_like_a_stack_of_torch_layers(cell, ln):
    """In training mode with dropout, TorchCharLM (what the torch engine trains) runs its layers
    one at a time on the stack's own parameters; the reference here is separate one-layer
    torch modules with copies of the weights and F.dropout between them, drawn from the same
    seed."""
    L, p = 3, 0.4
    cfg = nn.CharLMConfig(vocab_size=7, cell=cell, hidden_size=H, num_layers=L, embedding_size=3,
                          dropout=p, dtype="float64")
    tm = to_torch(nn.CharLM(cfg, seed=4)).train()
    tokens = torch.tensor(np.random.default_rng(2).integers(0, 7, (T, N)))
    lengths = LENGTHS if ln else None
    ref = [getattr(torch.nn, tm.rnn.mode)(3 if k == 0 else H, H, dtype=torch.float64)
           for k in range(L)]
    with torch.no_grad():
        for k, layer in enumerate(ref):
            for name, w in layer.named_parameters():
                w.copy_(getattr(tm.rnn, name[:-1] + str(k)))
    torch.manual_seed(11)
    logits, _ = tm(tokens, None, lengths)
    torch.manual_seed(11)
    x = tm.embedding(tokens)
    if ln:
        x = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(LENGTHS), enforce_sorted=False)
    for k, layer in enumerate(ref):
        if k:
            x = x._replace(data=torch.nn.functional.dropout(x.data, p)) if ln else torch.nn.functional.dropout(x, p)
        x, _ = layer(x)
    if ln:
        x, _ = torch.nn.utils.rnn.pad_packed_sequence(x, total_length=T)
    assert _max_diff(logits.detach().numpy(), tm.head(x)) < TOL
    logits.sum().backward()                                 # gradients reach the stack's parameters
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in tm.rnn.parameters())
    tm.eval()
    with torch.no_grad():                                   # no dropout: the fused stack, unchanged
        assert _max_diff(tm(tokens, None, lengths)[0].numpy(), tm.head(_run_stack(tm, tokens, lengths))) < TOL


def _run_stack(tm, tokens, lengths):
    x = tm.embedding(tokens)
    if lengths is None:
        return tm.rnn(x)[0]
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=False)
    return torch.nn.utils.rnn.pad_packed_sequence(tm.rnn(packed)[0], total_length=x.shape[0])[0]


@pytest.mark.parametrize("cell,tokens,bi,pooling,ln", CLF_CASES)
def test_classifier_both_ways(cell, tokens, bi, pooling, ln):
    rng = np.random.default_rng(1)
    cfg = _clf_cfg(cell, tokens, bi, pooling)
    x = rng.integers(0, 9, (T, N)) if tokens else rng.standard_normal((T, N, D))
    lengths = LENGTHS if ln else None
    m = nn.SequenceClassifier(cfg, seed=2)
    tm = to_torch(m)
    _check_model_twin(m, tm, TorchSequenceClassifier)
    with torch.no_grad():
        assert _max_diff(m(x, lengths), tm(torch.tensor(x), lengths)) < TOL
    torch.manual_seed(2)
    tm2 = TorchSequenceClassifier(cfg.to_dict())
    m2 = from_torch(tm2)
    with torch.no_grad():
        assert _max_diff(m2(x, lengths), tm2(torch.tensor(x), lengths)) < TOL


@pytest.mark.parametrize("cell,m2m,bi,pooling,ln", REG_CASES)
def test_regressor_both_ways(cell, m2m, bi, pooling, ln):
    rng = np.random.default_rng(2)
    cfg = _reg_cfg(cell, m2m, bi, pooling)
    x = rng.standard_normal((T, N, D))
    lengths = LENGTHS if ln else None
    m = nn.SequenceRegressor(cfg, seed=3)
    tm = to_torch(m)
    _check_model_twin(m, tm, TorchSequenceRegressor)
    with torch.no_grad():
        pred = tm(torch.tensor(x), lengths)
    assert tuple(pred.shape) == ((T, N, 2) if m2m else (N, 2))
    assert _max_diff(m(x, lengths), pred) < TOL
    torch.manual_seed(3)
    tm2 = TorchSequenceRegressor(cfg.to_dict())
    m2 = from_torch(tm2)
    with torch.no_grad():
        assert _max_diff(m2(x, lengths), tm2(torch.tensor(x), lengths)) < TOL


def test_model_dtype_follows_rnnkit():
    cfg = nn.CharLMConfig(vocab_size=6, hidden_size=4, num_layers=1, embedding_size=3)   # float32
    m = nn.CharLM(cfg, seed=0)
    tm = to_torch(m)
    assert all(v.dtype == torch.float32 for v in tm.state_dict().values())
    tokens = np.random.default_rng(0).integers(0, 6, (T, N))
    with torch.no_grad():
        assert _max_diff(m(tokens)[0], tm(torch.tensor(tokens))[0]) < 1e-5
    assert from_torch(tm).dtype == np.float32
    assert from_torch(tm.double()).dtype == np.float64


# ============================================================================== checkpoint -> torch
@pytest.mark.parametrize("dtype,tol", [("float64", TOL), ("float32", 1e-5)])
@pytest.mark.parametrize("E", [4, 0])
def test_charlm_checkpoint_loads_in_torch_without_renaming(tmp_path, dtype, tol, E):
    cfg = nn.CharLMConfig(vocab_size=7, cell="gru", hidden_size=H, num_layers=2, embedding_size=E, dtype=dtype)
    model = nn.CharLM(cfg, seed=5)
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    save_safetensors(run / "model.safetensors", model.state_dict())
    (run / "config.json").write_text(json.dumps(model.config.to_dict()))
    # --- the README's three lines ---
    with open(run / "config.json") as f:
        cfg_d = json.load(f)
    m = charlm_torch_module(cfg_d)
    m.load_state_dict(safetensors_torch.load_file(str(run / "model.safetensors")))
    # ---
    loaded = safetensors_torch.load_file(str(run / "model.safetensors"))
    assert set(loaded) == set(model.state_dict())
    tokens = np.random.default_rng(0).integers(0, 7, (T, N))
    with torch.no_grad():
        tl, th = m(torch.tensor(tokens))
    logits, h = model(tokens)
    assert _max_diff(logits, tl) < tol
    assert _max_diff(h, th) < tol


def test_charlm_torch_module_refuses_bad_configs():
    good = nn.CharLMConfig(vocab_size=7, hidden_size=4, num_layers=1).to_dict()
    for bad in [dict(good, hidden_size="64"), dict(good, extra=1), dict(good, hidden_size=10**9),
                dict(good, vocab_size=10**7, embedding_size=65536),    # each size ok, total absurd
                dict(good, model="SequenceClassifier"), [1, 2]]:
        with pytest.raises(ConfigError):
            charlm_torch_module(bad)
    with pytest.raises(ConfigError):
        torch_model_from_config({"model": "Transformer"})
    assert isinstance(torch_model_from_config(_reg_cfg("gru", True, False, "last").to_dict()),
                      TorchSequenceRegressor)


# ============================================================================== training parity
def _torch_params(tm, names):
    sd = dict(tm.named_parameters())
    return [sd[k] for k in names]


def _assert_same_weights(m, tm, tol):
    tsd = tm.state_dict()
    worst = max(float(np.abs(v - _np(tsd[k])).max()) for k, v in m.state_dict().items())
    assert worst < tol, worst


@pytest.mark.slow
def test_training_parity_charlm_adam_clip():
    """CharLM, Adam + grad-norm clipping, 5 steps, same batches: equal weights within 1e-8."""
    V, steps, max_norm = 7, 5, 0.25
    cfg = nn.CharLMConfig(vocab_size=V, cell="lstm", hidden_size=H, num_layers=2, embedding_size=4,
                          dtype="float64")
    m = nn.CharLM(cfg, seed=11)
    tm = to_torch(m)
    names = list(m.parameters())
    opt = optim.Adam(m.parameters(), lr=0.05)
    topt = torch.optim.Adam(_torch_params(tm, names), lr=0.05)
    lossf = torch.nn.CrossEntropyLoss(ignore_index=-100)
    rng = np.random.default_rng(0)
    norms = []
    start = m.state_dict()
    for _ in range(steps):
        x = rng.integers(0, V, (T, N))
        y = rng.integers(0, V, (T, N))
        lengths = np.array([T, 3, 5])
        y[np.arange(T)[:, None] >= lengths[None, :]] = -100          # padding is ignored
        batch = SimpleNamespace(x=x, y=y, lengths=lengths)
        # rnnkit
        m.zero_grad()
        res = m.loss(batch)
        m.backward_loss()
        grads = m.gradients()
        norms.append(optim.clip_grad_norm(grads, max_norm))
        opt.step(grads)
        # torch
        topt.zero_grad()
        logits, _ = tm(torch.tensor(x), None, lengths)
        tloss = lossf(logits.reshape(-1, V), torch.tensor(y).reshape(-1))
        tloss.backward()
        tnorm = torch.nn.utils.clip_grad_norm_(_torch_params(tm, names), max_norm)
        topt.step()
        assert abs(res.loss - tloss.item()) < 1e-8
        assert abs(norms[-1] - tnorm.item()) < 1e-8
    assert min(norms) < max_norm < max(norms)          # both clipped and unclipped steps
    moved = max(float(np.abs(v - start[k]).max()) for k, v in m.state_dict().items())
    assert moved > 0.05                                               # the weights really moved
    _assert_same_weights(m, tm, 1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("tokens", [True, False])
def test_training_parity_classifier_sgd_momentum(tokens):
    """SequenceClassifier (bi-GRU, mean pooling, lengths), SGD momentum, 5 steps: same weights."""
    C, steps = 3, 5
    cfg = nn.SequenceClassifierConfig(num_classes=C, vocab_size=9 if tokens else 0, input_size=0 if tokens else D,
                                      embedding_size=4, cell="gru", hidden_size=H, num_layers=1,
                                      bidirectional=True, pooling="mean", dtype="float64")
    m = nn.SequenceClassifier(cfg, seed=4)
    tm = to_torch(m)
    names = list(m.parameters())
    opt = optim.SGD(m.parameters(), lr=0.3, momentum=0.9)
    topt = torch.optim.SGD(_torch_params(tm, names), lr=0.3, momentum=0.9)
    lossf = torch.nn.CrossEntropyLoss(ignore_index=-100)
    rng = np.random.default_rng(1)
    start = m.state_dict()
    for _ in range(steps):
        x = rng.integers(0, 9, (T, 4)) if tokens else rng.standard_normal((T, 4, D))
        y = rng.integers(0, C, 4)
        lengths = np.array([6, 1, 3, 5])
        batch = SimpleNamespace(x=x, y=y, lengths=lengths)
        m.zero_grad()
        res = m.loss(batch)
        m.backward_loss()
        opt.step(m.gradients())
        topt.zero_grad()
        tloss = lossf(tm(torch.tensor(x), lengths), torch.tensor(y))
        tloss.backward()
        topt.step()
        assert abs(res.loss - tloss.item()) < 1e-8
    moved = max(float(np.abs(v - start[k]).max()) for k, v in m.state_dict().items())
    assert moved > 0.05
    _assert_same_weights(m, tm, 1e-8)
