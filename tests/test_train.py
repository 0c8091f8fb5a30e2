"""Tests of rnnkit.train: the Trainer, its sources, validation, early stopping, best weights,
the divergence guard, truncated-BPTT carry and exact resume.

References are independent of the trainer: losses recomputed from the model's forward pass
with a NumPy log-softmax, weights captured by callbacks at known steps, and straight runs
compared bit for bit with interrupted-and-resumed ones.
"""


import numpy as np
import pytest

from rnnkit import datasets, nn
from rnnkit._mode import no_grad
from rnnkit.checkpoint import load_checkpoint, read_metrics
from rnnkit.data import BOUNDARY, ArraySource, LinesDataset, LinesSource, StreamDataset, StreamSource, Vocab
from rnnkit.nn.models import LossResult
from rnnkit.train import TrainConfig, Trainer, _rng_owners

NAMES = datasets.names()[:400]
TRAIN_LINES, VAL_LINES = NAMES[:340], NAMES[340:]
VOCAB = Vocab.build(NAMES, specials=(BOUNDARY,))

STREAM_TEXT = ("the quick brown fox jumps over the lazy dog; pack my box with five dozen "
               "liquor jugs. how vexingly quick daft zebras jump! ") * 12
STREAM_VOCAB = Vocab.build(STREAM_TEXT)


# ------------------------------------------------------------------------------ helpers
pytestmark = pytest.mark.usefixtures("fast_io")


def make_lm(vocab=VOCAB, hidden=16, layers=1, dropout=0.0, cell="lstm", dtype="float64", seed=0):
    cfg = nn.CharLMConfig(vocab_size=len(vocab), cell=cell, hidden_size=hidden, num_layers=layers,
                          embedding_size=8, dropout=dropout, dtype=dtype)
    return nn.CharLM(cfg, seed=seed)


def lines_sources(batch_size=32, seed=0):
    return (LinesSource(LinesDataset(TRAIN_LINES, VOCAB), batch_size, seed=seed),
            LinesSource(LinesDataset(VAL_LINES, VOCAB), batch_size, seed=seed))


def stream_sources(seq_len=12, batch_size=16):
    ids = STREAM_VOCAB.encode(STREAM_TEXT)
    cut = int(len(ids) * 0.85)
    return (StreamSource(StreamDataset(ids[:cut], seq_len, batch_size)),
            StreamSource(StreamDataset(ids[cut:], seq_len, 1)))


def np_log_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def ref_lines_loss(model, lines, vocab=VOCAB):
    """Mean nats per predicted character: one forward per line (no padding, no batching)."""
    was = model.training
    model.eval()
    total, count = 0.0, 0
    with no_grad():
        for s in lines:
            ids = [vocab.bos_id] + list(vocab.encode(s)) + [vocab.bos_id]
            logits, _ = model(np.array(ids[:-1])[:, None])
            lp = np_log_softmax(logits[:, 0])
            total -= lp[np.arange(len(ids) - 1), ids[1:]].sum()
            count += len(ids) - 1
    model.train(was)
    return total / count


def quiet(cfg_kw):
    return TrainConfig(progress=False, **cfg_kw)


def snapshot(model):
    return {k: v.copy() for k, v in model.parameters().items()}


def assert_params_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


# ------------------------------------------------------------------------------ learning
@pytest.mark.slow
def test_training_loss_falls_well_below_start():
    model = make_lm(hidden=24)
    train, val = lines_sources()
    before = ref_lines_loss(model, TRAIN_LINES)
    assert abs(before - np.log(len(VOCAB))) < 0.5          # an untrained model is near uniform
    res = Trainer(model, train, val, quiet(dict(steps=100, lr=1e-2, eval_every=50,
                                                restore_best=False))).fit()
    after = ref_lines_loss(model, TRAIN_LINES)
    assert res.stopped == "completed" and res.steps == 100
    assert after < before - 0.7, (before, after)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]


def test_validation_every_k_steps_records_val_loss(tmp_path):
    model = make_lm()
    train, val = lines_sources()
    tr = Trainer(model, train, val, quiet(dict(steps=35, lr=1e-2, eval_every=10, restore_best=False)),
                 checkpoint=tmp_path / "run")
    res = tr.fit()
    assert [r["step"] for r in res.history] == [10, 20, 30, 35]
    for r in res.history:
        assert np.isfinite(r["val_loss"]) and np.isfinite(r["train_loss"])
    # the last record's val_loss is the model's loss on the validation lines, recomputed here
    assert res.history[-1]["val_loss"] == pytest.approx(ref_lines_loss(model, VAL_LINES), abs=1e-9)
    assert res.best_val_loss == min(r["val_loss"] for r in res.history)
    assert [m["step"] for m in read_metrics(tmp_path / "run")] == [10, 20, 30, 35]
    ck = load_checkpoint(tmp_path / "run")
    assert ck.trainer_state["step"] == 35
    assert_params_equal(ck.model_state, model.state_dict())


def test_trainer_evaluate_is_weighted_mean_over_all_tokens():
    model = make_lm()
    _, val = lines_sources()
    tr = Trainer(model, lines_sources()[0], val, quiet(dict(steps=1)))
    assert tr.evaluate() == pytest.approx(ref_lines_loss(model, VAL_LINES), abs=1e-10)


# ------------------------------------------------------------------------------ early stopping / best
@pytest.mark.parametrize("restore_best", [True, False])
def test_early_stopping_and_best_weights(tmp_path, monkeypatch, restore_best):
    model = make_lm()
    train, val = lines_sources()
    seen = {}

    def on_eval(trainer, record):
        seen[record["step"]] = snapshot(trainer.model)

    tr = Trainer(model, train, val, quiet(dict(steps=60, lr=1e-2, eval_every=3, patience=2,
                                               restore_best=restore_best)),
                 checkpoint=tmp_path / "run", on_eval=on_eval)
    vals = iter([3.0, 2.0, 2.5, 2.6, 1.0, 0.5])
    monkeypatch.setattr(tr, "evaluate", lambda source=None: next(vals))
    res = tr.fit()
    assert res.stopped == "early_stopping"
    assert res.steps == 12 and sorted(seen) == [3, 6, 9, 12]
    assert res.best_step == 6 and res.best_val_loss == 2.0
    assert [r["val_loss"] for r in res.history] == [3.0, 2.0, 2.5, 2.6]
    best = load_checkpoint(tmp_path / "run" / "best")
    assert best.trainer_state["step"] == 6
    assert_params_equal(best.model_state, seen[6])
    assert any(not np.array_equal(seen[6][k], seen[12][k]) for k in seen[6])   # it did move on
    assert_params_equal(model.parameters(), seen[6] if restore_best else seen[12])
    latest = load_checkpoint(tmp_path / "run")
    assert latest.trainer_state["step"] == 12
    assert_params_equal(latest.model_state, seen[12])


def test_patience_zero_never_stops(monkeypatch):
    model = make_lm()
    train, val = lines_sources()
    tr = Trainer(model, train, val, quiet(dict(steps=12, eval_every=2, patience=0)))
    vals = iter([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    monkeypatch.setattr(tr, "evaluate", lambda source=None: next(vals))
    res = tr.fit()
    assert res.stopped == "completed" and res.steps == 12 and res.best_step == 2


# ------------------------------------------------------------------------------ divergence guard
@pytest.mark.parametrize("eval_every", [1, 1000])
def test_absurd_learning_rate_diverges_and_rolls_back(tmp_path, eval_every):
    model = make_lm(dtype="float32")
    p0 = snapshot(model)
    train, val = lines_sources()
    tr = Trainer(model, train, val, quiet(dict(steps=50, lr=1e3, optimizer="sgd", clip=0.0,
                                               eval_every=eval_every)),
                 checkpoint=tmp_path / "run")
    res = tr.fit()
    assert res.stopped == "diverged"
    msg = res.message.lower()
    assert "learning rate" in msg and "clip" in msg
    # the last good state is the start: no evaluation before the explosion was healthy
    assert res.steps == 0
    assert_params_equal(model.parameters(), p0)
    assert all(np.isfinite(v).all() for v in model.parameters().values())
    ck = load_checkpoint(tmp_path / "run")
    assert ck.trainer_state["step"] == 0
    assert_params_equal(ck.model_state, p0)


@pytest.mark.parametrize("where", ["loss", "gradient"])
def test_nan_rolls_back_to_last_good_evaluation(tmp_path, monkeypatch, where):
    model = make_lm()
    train, val = lines_sources()
    seen = {}

    def on_eval(trainer, record):
        seen[record["step"]] = snapshot(trainer.model)

    calls = {"n": 0}
    real_loss, real_backward = model.loss, model.backward_loss

    def loss(batch, carry=None):
        res = real_loss(batch, carry)
        if model.training:
            calls["n"] += 1
            if where == "loss" and calls["n"] == 6:                 # step 5
                return LossResult(float("nan"), res.count, res.carry)
        return res

    def backward_loss():
        real_backward()
        if where == "gradient" and calls["n"] == 6:
            next(iter(model.gradients().values()))[...] = np.nan

    monkeypatch.setattr(model, "loss", loss)
    monkeypatch.setattr(model, "backward_loss", backward_loss)
    tr = Trainer(model, train, val, quiet(dict(steps=20, lr=1e-2, eval_every=2)),
                 checkpoint=tmp_path / "run", on_eval=on_eval)
    res = tr.fit()
    assert res.stopped == "diverged"
    assert ("loss is not finite" if where == "loss" else "gradient norm is not finite") in res.message
    assert res.steps == 4 and sorted(seen) == [2, 4]
    assert_params_equal(model.parameters(), seen[4])
    ck = load_checkpoint(tmp_path / "run")
    assert ck.trainer_state["step"] == 4
    assert_params_equal(ck.model_state, seen[4])


# ------------------------------------------------------------------------------ stream mode
def _as_tuple(c):
    return c if isinstance(c, tuple) else (c,)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stream_mode_carries_state_across_chunks(monkeypatch, cell):
    train, val = stream_sources()
    nc = train.dataset.num_chunks
    assert 3 <= nc < 12
    steps = 2 * nc + 3
    model = make_lm(vocab=STREAM_VOCAB, cell=cell)
    log = []
    real_loss = model.loss

    def loss(batch, carry=None):
        res = real_loss(batch, carry)
        if model.training:
            log.append((None if carry is None else [np.array(c) for c in _as_tuple(carry)],
                        [np.array(c) for c in _as_tuple(res.carry)]))
        return res

    monkeypatch.setattr(model, "loss", loss)
    Trainer(model, train, None, quiet(dict(steps=steps, eval_every=1000))).fit()
    assert len(log) == steps
    for k, (carry_in, _) in enumerate(log):
        if k % nc == 0:
            assert carry_in is None, k                      # reset at every pass over the text
        else:
            prev_out = log[k - 1][1]
            assert carry_in is not None, k
            assert len(carry_in) == len(prev_out) == (2 if cell == "lstm" else 1)
            for a, b in zip(carry_in, prev_out):
                assert np.array_equal(a, b), k


def test_lines_mode_never_carries_state(monkeypatch):
    model = make_lm()
    carries = []
    real_loss = model.loss

    def loss(batch, carry=None):
        carries.append(carry)
        return real_loss(batch, carry)

    monkeypatch.setattr(model, "loss", loss)
    Trainer(model, lines_sources()[0], None, quiet(dict(steps=5))).fit()
    assert len(carries) == 5 and all(c is None for c in carries)


def test_stream_evaluation_equals_one_long_forward():
    train, val = stream_sources()
    model = make_lm(vocab=STREAM_VOCAB)
    tr = Trainer(model, train, val, quiet(dict(steps=1)))
    ds = val.dataset                                         # one track (batch_size 1)
    T = ds.num_chunks * ds.seq_len
    x, y = ds.ids[:T, None].astype(np.int64), ds.ids[1:T + 1]
    model.eval()
    with no_grad():
        logits, _ = model(x)
    ref = -np_log_softmax(logits[:, 0])[np.arange(T), y].mean()
    assert tr.evaluate() == pytest.approx(ref, abs=1e-10)


# ------------------------------------------------------------------------------ other models
@pytest.mark.slow
def test_array_source_trains_a_classifier_with_lengths():
    rng = np.random.default_rng(0)
    T, N = 8, 256
    x = rng.standard_normal((T, N, 1))
    lengths = rng.integers(3, T + 1, size=N)
    x[np.arange(T)[:, None] >= lengths[None, :]] = 0.0      # padding
    y = (x[..., 0].sum(axis=0) > 0).astype(np.int64)       # sign of the sum of the valid part
    cfg = nn.SequenceClassifierConfig(num_classes=2, input_size=1, hidden_size=16, dtype="float64")
    model = nn.SequenceClassifier(cfg, seed=0)
    src = ArraySource(x, y, batch_size=32, lengths=lengths, seed=0)
    acc0 = (model.predict(x, lengths) == y).mean()
    res = Trainer(model, src, src, quiet(dict(steps=150, lr=2e-2, eval_every=50))).fit()
    acc = (model.predict(x, lengths) == y).mean()
    assert res.stopped == "completed"
    assert acc > 0.9 and acc > acc0 + 0.2, (acc0, acc)


def test_array_source_trains_a_regressor():
    rng = np.random.default_rng(1)
    T, N = 6, 256
    x = rng.standard_normal((T, N, 1))
    y = x.mean(axis=0)                                     # (N, 1)
    cfg = nn.SequenceRegressorConfig(input_size=1, output_size=1, hidden_size=16, dtype="float64")
    model = nn.SequenceRegressor(cfg, seed=0)
    src = ArraySource(x, y, batch_size=32, seed=0)
    res = Trainer(model, src, None, quiet(dict(steps=150, lr=2e-2, eval_every=50))).fit()
    mse = float(((model.predict(x) - y) ** 2).mean())
    assert res.stopped == "completed"
    assert mse < 0.15 * float(y.var()), (mse, y.var())


# ------------------------------------------------------------------------------ exact resume
def _run(mode, out_dir, steps, resume=False, perturb=None):
    if mode == "lines":
        train, val = lines_sources(batch_size=16)
        model = make_lm(hidden=16, layers=2, dropout=0.3, seed=3)
    else:
        train, val = stream_sources()
        model = make_lm(vocab=STREAM_VOCAB, hidden=16, layers=2, dropout=0.3, seed=3)
    cfg = quiet(dict(steps=steps, lr=1e-2, eval_every=4, restore_best=False, seed=3))
    tr = Trainer(model, train, val, cfg, checkpoint=out_dir, log=lambda m: None)
    if resume:
        tr.resume()
    if perturb == "rng":
        for _, m in _rng_owners(model):
            m.rng.random()
    elif perturb == "carry":
        assert tr.carry is not None
        tr.carry = None
    res = tr.fit()
    return model, tr, res


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["lines", "stream"])
def test_resume_equals_straight_bit_for_bit(tmp_path, mode):
    N = 10
    m_straight, tr_straight, res_straight = _run(mode, tmp_path / "a", 2 * N)
    assert list(_rng_owners(m_straight))                 # dropout draws from a checkpointed RNG
    _run(mode, tmp_path / "b", N)
    m_res, tr_res, res_res = _run(mode, tmp_path / "b", 2 * N, resume=True)
    if mode == "stream":
        assert N % tr_res.train_source.dataset.num_chunks != 0   # a carry crosses the cut
    assert res_res.steps == res_straight.steps == 2 * N
    assert_params_equal(m_res.parameters(), m_straight.parameters())
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    assert_params_equal(a.model_state, b.model_state)
    assert_params_equal(a.optimizer_state, b.optimizer_state)
    hist_a = {r["step"]: r for r in res_straight.history}
    hist_b = {r["step"]: r for r in res_res.history}
    common = sorted(set(hist_a) & set(hist_b))
    assert common == [4, 8, 12, 16, 20]
    for s in common:
        for key in ("train_loss", "val_loss", "grad_norm"):
            assert hist_a[s][key] == hist_b[s][key], (s, key)


@pytest.mark.slow
@pytest.mark.parametrize("mode,perturb", [("lines", "rng"), ("stream", "rng"), ("stream", "carry")])
def test_resume_comparison_is_sensitive(tmp_path, mode, perturb):
    """Control for the test above: losing the dropout RNG state or the carry changes the weights."""
    N = 10
    m_straight, _, _ = _run(mode, tmp_path / "a", 2 * N)
    _run(mode, tmp_path / "b", N)
    m_res, _, _ = _run(mode, tmp_path / "b", 2 * N, resume=True, perturb=perturb)
    p, q = m_straight.parameters(), m_res.parameters()
    assert any(not np.array_equal(p[k], q[k]) for k in p)


def test_resume_without_checkpoint_or_with_other_model_fails(tmp_path):
    from rnnkit.errors import CheckpointError, ConfigError
    train, val = lines_sources()
    with pytest.raises(ConfigError):
        Trainer(make_lm(), train, val, quiet(dict(steps=2))).resume()
    Trainer(make_lm(), train, val, quiet(dict(steps=2)), checkpoint=tmp_path / "r").fit()
    with pytest.raises(CheckpointError, match="model config"):
        Trainer(make_lm(hidden=20), train, val, quiet(dict(steps=4)), checkpoint=tmp_path / "r",
                log=lambda m: None).resume()


def test_restore_best_after_resume_uses_the_best_checkpoint(tmp_path, monkeypatch):
    """The best validation happened before the resume and never improves after it: the
    resumed trainer must still end on the best weights (read back from DIR/best)."""
    vals = iter([3.0, 2.0, 2.5, 2.6])            # best at the 2nd evaluation (step 4)
    monkeypatch.setattr(Trainer, "evaluate", lambda self, source=None: next(vals))
    train, val = lines_sources()
    cfg = dict(eval_every=2, progress=False, restore_best=True)
    Trainer(make_lm(), train, val, TrainConfig(steps=4, **cfg), checkpoint=tmp_path,
            log=lambda m: None).fit()
    best = load_checkpoint(tmp_path / "best").model_state
    model = make_lm()
    tr = Trainer(model, train, val, TrainConfig(steps=8, **cfg), checkpoint=tmp_path,
                 log=lambda m: None).resume()
    res = tr.fit()
    assert res.best_step == 4 and res.steps == 8
    last = load_checkpoint(tmp_path).model_state
    assert any(not np.array_equal(last[k], best[k]) for k in best)   # training moved on ...
    for k, v in model.state_dict().items():                          # ... but we end on the best
        np.testing.assert_array_equal(v, best[k])


# ------------------------------------------------------------------------------ the terminal
def _terminal_screen(stream: str) -> list:
    """What a terminal shows after ``stream``: carriage return to column 0, newline to the next
    row, every other character overwrites the cell under the cursor (all tqdm uses for a single
    bar at position 0)."""
    assert "\x1b" not in stream, "expected no cursor movement for a single bar"
    rows, row, col = [[]], 0, 0
    for ch in stream:
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row, col = row + 1, 0
            if row == len(rows):
                rows.append([])
        else:
            line = rows[row]
            line.extend(" " * (col + 1 - len(line)))
            line[col] = ch
            col += 1
    return ["".join(r).rstrip() for r in rows]


def test_the_progress_bar_is_shown_once_when_on_eval_prints_to_the_terminal(capsys):
    """What ``on_eval`` prints (``rnnkit train``'s samples) lands above the bar, not in its
    line: the bar's last state is on the screen once, at the bottom (issue 21, item 18: "the
    final progress line is printed twice")."""
    import sys

    def on_eval(trainer, record):
        print(f"  samples at step {trainer.step}", file=sys.stderr)

    train, val = lines_sources(batch_size=8)
    Trainer(make_lm(hidden=8), train, val, TrainConfig(steps=6, eval_every=3, progress=True),
            on_eval=on_eval).fit()
    screen = [ln for ln in _terminal_screen(capsys.readouterr().err) if ln]
    bars = [ln for ln in screen if "/6 [" in ln]
    assert len(bars) == 1 and screen[-1] == bars[0] and "6/6" in bars[0], screen
    assert [ln.strip() for ln in screen if "samples" in ln] == ["samples at step 3", "samples at step 6"]
    assert [ln.split(":")[0] for ln in screen if ln.startswith("step ")] == ["step 3", "step 6"]
