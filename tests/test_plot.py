"""rnnkit.plot: the data behind every picture (against rnnkit.scratch and finite differences)
and the pictures themselves (rendered with Agg: PNG, non-trivial, titled, labelled)."""

import numpy as np
import pytest

import rnnkit.nn as nn
from rnnkit import analysis, plot, scratch
from rnnkit.checkpoint import append_metrics, save_checkpoint
from rnnkit.data import BOUNDARY, Vocab
from rnnkit.errors import ConfigError, DataError, ShapeError
from rnnkit.interop import notebook

from needs import require

matplotlib = require("matplotlib")
from matplotlib.image import imread  # noqa: E402

RNG = np.random.default_rng(0)


# ------------------------------------------------------------------------------ helpers
def _scratch_params(kind, layer, sfx=""):
    """Notebook dict of one direction of layer 0 of an rnnkit layer, plus a dummy output layer."""
    sd = {k.replace(sfx, ""): v for k, v in layer.state_dict().items() if k.endswith("_l0" + sfx)}
    p = notebook.from_torch_state_dict(kind, sd)
    H = layer.hidden_size
    key = "Wya" if kind == "rnn" else "Wy"
    p[key], p["by"] = np.zeros((2, H)), np.zeros((2, 1))
    return p


def _scratch_run(kind, p, x_tnd, a0=None, c0=None):
    """Run the scratch forward on time-major x (T, N, D); return (a (T, N, H), caches)."""
    x = x_tnd.transpose(2, 1, 0)                                     # (n_x, m, T_x)
    H = p["Wy" if kind != "rnn" else "Wya"].shape[1]
    a0 = np.zeros((H, x.shape[1])) if a0 is None else a0
    if kind == "lstm":
        a, _, _, caches = scratch.lstm_forward(x, a0, p, c0=c0)
    elif kind == "gru":
        a, _, caches = scratch.gru_forward(x, a0, p)
    else:
        a, _, caches = scratch.rnn_forward(x, a0, p)
    return a.transpose(2, 1, 0), caches[0]


def _png_ok(path, min_side=200):
    img = imread(path)
    assert img.ndim == 3 and min(img.shape[:2]) >= min_side
    assert img[..., :3].std() > 0.05                     # not a blank canvas
    assert len(np.unique(img[..., :3].reshape(-1, 3), axis=0)) > 50
    return img


def _labels_ok(fig):
    ax = fig.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel()
    title = fig.get_suptitle() if hasattr(fig, "get_suptitle") else ""
    assert ax.get_title() or ax.get_title(loc="left") or title or fig._suptitle


# ------------------------------------------------------------------------------ gate activations
SCRATCH_GATES = {"lstm": {"input": "it", "forget": "ft", "candidate": "cct", "output": "ot"},
                 "gru": {"reset": "rt", "update": "zt", "candidate": "nt"}}


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("direction", [0, 1])
def test_gate_activations_match_scratch(kind, direction):
    layer = nn.recurrent_layer(kind, 3, 5, bidirectional=bool(direction), dtype=np.float64, seed=1)
    x = RNG.standard_normal((7, 2, 3))
    acts = analysis.gate_activations(layer, x, direction=direction, index=1)
    p = _scratch_params(kind, layer, "_reverse" if direction else "")
    xs = x[::-1] if direction else x
    a, caches = _scratch_run(kind, p, xs)
    order = slice(None, None, -1) if direction else slice(None)
    np.testing.assert_allclose(acts["hidden"], a[order, 1], atol=1e-12)
    for name, field in SCRATCH_GATES.get(kind, {}).items():
        ref = np.stack([getattr(c, field)[:, 1] for c in caches])[order]       # (T, H)
        np.testing.assert_allclose(acts[name], ref, atol=1e-12, err_msg=name)
    if kind == "lstm":
        ref_c = np.stack([c.c_next[:, 1] for c in caches])[order]
        np.testing.assert_allclose(acts["cell"], ref_c, atol=1e-12)
    assert set(acts) == set(SCRATCH_GATES.get(kind, {})) | {"hidden"} | ({"cell"} if kind == "lstm" else set())


def test_gate_activations_of_a_charlm_top_layer_in_eval_mode():
    cfg = nn.CharLMConfig(vocab_size=6, cell="gru", hidden_size=4, num_layers=2, embedding_size=3,
                          dropout=0.5, dtype="float64")
    model = nn.CharLM(cfg, seed=0)
    ids = np.array([0, 3, 1, 5, 2, 0])
    acts = analysis.gate_activations(model, ids)                 # top layer by default
    assert model.training                                    # the mode is restored
    # independent reference: layer 0 then layer 1 with scratch (no dropout in eval mode)
    emb = model.parameters()["embedding.weight"][ids][:, None]          # (T, 1, E)
    sd = model.rnn.state_dict()
    outs = emb
    for k in range(2):
        p = notebook.from_torch_state_dict("gru", {n.replace(f"_l{k}", "_l0"): v for n, v in sd.items()
                                                  if n.endswith(f"_l{k}")})
        p["Wy"], p["by"] = np.zeros((2, 4)), np.zeros((2, 1))
        outs, caches = _scratch_run("gru", p, outs)
    np.testing.assert_allclose(acts["hidden"], outs[:, 0], atol=1e-12)
    np.testing.assert_allclose(acts["update"], np.stack([c.zt[:, 0] for c in caches]), atol=1e-12)


def test_gate_activations_errors():
    with pytest.raises(ConfigError):
        analysis.gate_activations(object(), np.zeros((3, 2)))
    with pytest.raises(ConfigError):
        analysis.gate_activations(nn.LSTM(2, 3), np.zeros((3, 2)), layer=1)


def test_most_active_units():
    h = np.zeros((5, 6))
    h[:, 4] = -0.9                 # most active, negative
    h[:, 1] = 0.5
    h[::2, 2] = 0.7                # mean |h| = 0.42
    np.testing.assert_array_equal(analysis.most_active_units(h, 3), [4, 1, 2])
    assert analysis.most_active_units(h, 50).size == 6
    with pytest.raises(ShapeError):
        analysis.most_active_units(np.zeros(4))


# ------------------------------------------------------------------------------ gradient norms
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_gradient_norm_matches_finite_differences(kind):
    """norms[k] against central differences of <g, a_T> with respect to the state k steps back,
    computed with the notebook code from states of its own full run."""
    T, H, B, k, seed = 9, 4, 3, 5, 3
    layer = nn.recurrent_layer(kind, H, H, dtype=np.float64, seed=seed)
    x = np.random.default_rng(7).standard_normal((T, B, H))
    norms = analysis.gradient_norms_through_time(layer, x=x, seed=seed)
    assert norms.shape == (T + 1,) and norms[0] == 1.0
    # the same g as the function draws: rng(seed) is used for g only when x is given
    g = np.random.default_rng(seed).standard_normal((B, H))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    p = _scratch_params(kind, layer)
    a, caches = _scratch_run(kind, p, x)                           # a (T, N, H)
    a_start = a[T - k - 1].T.copy()                                # state after step T-k  (H, B)
    c_start = caches[T - k - 1].c_next.copy() if kind == "lstm" else None
    xs = x[T - k:]

    def loss():
        a2, _ = _scratch_run(kind, p, xs, a_start, c_start)
        return float(np.sum(a2[-1] * g))

    def fd(arr, eps=1e-6):
        out = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            old = arr[i]
            arr[i] = old + eps
            up = loss()
            arr[i] = old - eps
            down = loss()
            arr[i] = old
            out[i] = (up - down) / (2 * eps)
        return out                                                 # (H, B)

    sq = (fd(a_start) ** 2).sum(axis=0)
    if kind == "lstm":
        sq = sq + (fd(c_start) ** 2).sum(axis=0)
    expected = np.sqrt(sq).mean()
    np.testing.assert_allclose(norms[k], expected, rtol=1e-6)


@pytest.mark.slow
def test_vanishing_gradients_rnn_decays_much_faster_than_gated_cells():
    n = {c: analysis.gradient_norms_through_time(c, T=40, hidden_size=16, batch_size=8, seed=0)
         for c in ("rnn", "lstm", "gru")}
    assert n["rnn"][40] < 1e-3 * n["lstm"][40]
    assert n["rnn"][40] < 1e-3 * n["gru"][40]
    for v in n.values():
        assert v[0] == 1.0 and v[40] < 1e-4 and np.all(np.isfinite(v))
    assert np.all(np.diff(np.log(n["rnn"][5:])) < 0)             # geometric decay


def test_gradient_norms_keep_the_callers_gradients():
    layer = nn.LSTM(3, 4, dtype=np.float64, seed=0)
    for g in layer.gradients().values():
        g[...] = 7.0
    analysis.gradient_norms_through_time(layer, T=5, batch_size=2)
    assert all(np.all(g == 7.0) for g in layer.gradients().values())
    with pytest.raises(ConfigError):
        analysis.gradient_norms_through_time(nn.GRU(3, 4, bidirectional=True))
    with pytest.raises(ConfigError):
        analysis.gradient_norms_through_time("transformer")


# ------------------------------------------------------------------------------ loss curves
def test_loss_curves_from_records_and_directory(tmp_path):
    recs = [{"step": 20, "train_loss": 2.0, "val_loss": 2.5}, {"step": 10, "train_loss": 3.0},
            {"step": "x", "train_loss": 1.0}, {"train_loss": 1.0}, {"step": 30, "val_loss": float("nan")},
            {"step": 40, "val_loss": 1.5, "val_bpc": 2.1}, "junk"]
    c = analysis.loss_curves(recs)
    np.testing.assert_array_equal(c["train_loss"][0], [10, 20])
    np.testing.assert_array_equal(c["train_loss"][1], [3.0, 2.0])
    np.testing.assert_array_equal(c["val_loss"][0], [20, 40])
    np.testing.assert_array_equal(c["val_loss"][1], [2.5, 1.5])
    for r in recs[:2]:
        append_metrics(tmp_path, r)
    c2 = analysis.loss_curves(str(tmp_path))
    np.testing.assert_array_equal(c2["train_loss"][1], [3.0, 2.0])
    assert analysis.loss_curves([]) == {}


# ------------------------------------------------------------------------------ pictures
TEXT = "hello world\nhi"


@pytest.mark.slow
def test_plot_losses(tmp_path):
    recs = [{"step": s, "train_loss": 3.0 / (1 + s / 50), "val_loss": 3.2 / (1 + s / 50)}
            for s in range(0, 500, 25)]
    fig = plot.losses_figure(recs)
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    np.testing.assert_allclose(lines["training"].get_ydata(), [r["train_loss"] for r in recs])
    np.testing.assert_allclose(lines["validation"].get_xdata(), [r["step"] for r in recs])
    assert ax.get_title() and "step" in ax.get_xlabel() and "loss" in ax.get_ylabel()
    path = plot.plot_losses(recs, tmp_path / "sub" / "loss.png")
    _png_ok(path)
    with pytest.raises(DataError):
        plot.plot_losses([{"step": 1}], tmp_path / "x.png")
    with pytest.raises(ConfigError):
        plot.plot_losses(recs, tmp_path / "loss.jpg")


@pytest.mark.slow
def test_plot_gates_shows_the_arrays(tmp_path):
    T, H = len(TEXT), 5
    gates = {"input": RNG.random((T, H)), "forget": RNG.random((T, H)), "output": RNG.random((T, H)),
             "candidate": RNG.uniform(-1, 1, (T, H)), "hidden": RNG.uniform(-1, 1, (T, H))}
    fig = plot.gates_figure(TEXT, gates, units=[4, 0, 2])
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.images]
    assert titles == ["input gate", "forget gate", "output gate"]      # sigmoid gates by default
    ax0 = [ax for ax in fig.axes if ax.images][0]
    np.testing.assert_allclose(ax0.images[0].get_array(), gates["input"][:, [4, 0, 2]].T)
    ticks = [t.get_text() for t in ax0.get_xticklabels()]
    assert ticks == ["h", "e", "l", "l", "o", "\u2423", "w", "o", "r", "l", "d", "\u21b5", "h", "i"]
    assert fig._suptitle.get_text() and ax0.get_ylabel() == "hidden unit"
    _png_ok(plot.plot_gates(TEXT, gates, tmp_path / "g.png"))
    with pytest.raises(ShapeError):
        plot.plot_gates(TEXT + "!", gates, tmp_path / "g2.png")
    with pytest.raises(DataError):
        plot.plot_gates(TEXT, {"hidden": gates["hidden"]}, tmp_path / "g3.png")


@pytest.mark.slow
def test_plot_top_units_shows_the_most_active(tmp_path):
    T, H = len(TEXT), 12
    h = RNG.uniform(-0.2, 0.2, (T, H))
    h[:, 7] = np.linspace(-1, 1, T)           # mean |h| ~ 0.54
    h[:, 3] = 0.95                            # the most active
    fig = plot.top_units_figure(TEXT, h, k=2)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), h[:, [3, 7]].T)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["unit 3", "unit 7"]
    assert len(ax.texts) == 2 * T and ax.texts[0].get_text() == "h"
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    _png_ok(plot.plot_top_units(TEXT, h, tmp_path / "u.png", k=4), min_side=150)


@pytest.mark.slow
def test_plot_gradient_norms(tmp_path):
    norms = {"rnn": 0.5 ** np.arange(30), "lstm": 0.8 ** np.arange(30)}
    norms["rnn"][-1] = 0.0                    # underflow: not drawn on a log axis
    fig = plot.gradient_norms_figure(norms)
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    np.testing.assert_allclose(lines["lstm"].get_ydata(), norms["lstm"])
    assert len(lines["rnn"].get_ydata()) == 29
    assert ax.get_yscale() == "log" and ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    _png_ok(plot.plot_gradient_norms(norms, tmp_path / "n.png"))
    with pytest.raises(DataError):
        plot.plot_gradient_norms({}, tmp_path / "n2.png")


# ------------------------------------------------------------------------------ checkpoint
@pytest.mark.slow
@pytest.mark.parametrize("cell,expected", [("lstm", ["loss.png", "gates.png", "units.png"]),
                                           ("rnn", ["loss.png", "units.png"])])
def test_plot_checkpoint(tmp_path, cell, expected):
    names = ["emma", "olivia", "ava", "mia"]
    vocab = Vocab.build(names, specials=(BOUNDARY,))
    model = nn.CharLM(nn.CharLMConfig(vocab_size=len(vocab), cell=cell, hidden_size=8, num_layers=1,
                                      embedding_size=4), seed=0)
    save_checkpoint(tmp_path, model_state=model.state_dict(), config=model.config.to_dict(),
                    vocab=vocab.to_json())
    for s in (10, 20):
        append_metrics(tmp_path, {"step": s, "train_loss": 3.0 - s / 20, "val_loss": 3.1 - s / 20})
    out = tmp_path / "pics"
    paths = plot.plot_checkpoint(tmp_path, out_dir=out, text="emma\nmia")
    assert [p.split("/")[-1] for p in paths] == expected
    for p in paths:
        _png_ok(p, min_side=150)
    # the pictures are drawn from the model over the text: '↵emma↵mia↵' is 10 steps
    acts = analysis.gate_activations(model, np.array([0] + list(vocab.encode("emma")) + [0]
                                                 + list(vocab.encode("mia")) + [0]))
    assert acts["hidden"].shape == (10, 8)
    # without a text the model's own sample is used; default out_dir is the checkpoint
    paths2 = plot.plot_checkpoint(tmp_path, max_chars=12)
    assert [p.split("/")[-1] for p in paths2] == expected
    assert all(str(tmp_path) in p for p in paths2)


def test_plot_checkpoint_without_anything(tmp_path):
    with pytest.raises(DataError):
        plot.plot_checkpoint(tmp_path)
