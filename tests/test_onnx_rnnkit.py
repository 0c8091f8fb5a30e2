"""ONNX Runtime against rnnkit itself (not only against torch): exported rnnkit layers and a
trained CharLM checkpoint give rnnkit's numbers within 1e-5 (float32)."""

import itertools

import numpy as np
import pytest

from needs import require

onnx = require("onnx")
ort = require("onnxruntime")

import rnnkit.nn as nn  # noqa: E402
from rnnkit.interop.onnx import export  # noqa: E402
from rnnkit.interop.onnx_runtime import OnnxCharLM  # noqa: E402

MODES = ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"]
MATRIX = list(itertools.product(MODES, [1, 2], [False, True]))


def _layer(mode, L, bi, batch_first=False):
    D, H = 5, 6
    if mode.startswith("RNN"):
        return nn.RNN(D, H, num_layers=L, bidirectional=bi, batch_first=batch_first,
                      nonlinearity="tanh" if mode == "RNN_TANH" else "relu", seed=3)
    return getattr(nn, mode)(D, H, num_layers=L, bidirectional=bi, batch_first=batch_first, seed=3)


@pytest.mark.parametrize("mode,L,bi", MATRIX, ids=[f"{m}-L{L}-{'bi' if b else 'uni'}" for m, L, b in MATRIX])
def test_exported_rnnkit_layer_matches_rnnkit(mode, L, bi, tmp_path):
    layer = _layer(mode, L, bi)
    path = tmp_path / "layer.onnx"
    export(layer, str(path))
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    rng = np.random.default_rng(0)
    dirs = 2 if bi else 1
    for T, N in [(1, 1), (7, 3), (4, 5)]:                  # several lengths and batch sizes
        x = rng.standard_normal((T, N, 5)).astype(np.float32)
        h0 = rng.standard_normal((L * dirs, N, 6)).astype(np.float32)
        c0 = rng.standard_normal((L * dirs, N, 6)).astype(np.float32)
        feeds = {"input": x, "h0": h0}
        if "c0" in names:
            feeds["c0"] = c0
        got = sess.run(None, feeds)
        out, st = layer(x, (h0, c0) if mode == "LSTM" else h0)
        want = [out] + (list(st) if mode == "LSTM" else [st])
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_exported_batch_first_layer_matches_rnnkit(tmp_path):
    layer = _layer("GRU", 2, True, batch_first=True)
    path = tmp_path / "bf.onnx"
    export(layer, str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((3, 6, 5)).astype(np.float32)   # (N, T, D)
    h0 = np.zeros((4, 3, 6), np.float32)
    got = sess.run(None, {"input": x, "h0": h0})
    out, h = layer(x, h0)
    np.testing.assert_allclose(got[0], out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[1], h, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("cell,mode", [("lstm", "lines"), ("gru", "stream")])
def test_trained_charlm_checkpoint_exports_to_rnnkit_numbers(cell, mode, tmp_path, capsys):
    from rnnkit.cli import main
    from rnnkit.load import load_model
    text = tmp_path / "t.txt"
    text.write_text("\n".join(["anna", "bob", "carla", "dave", "emma", "fred"] * 30) + "\n")
    out = tmp_path / "run"
    assert main(["train", str(text), "--out", str(out), "--steps", "20", "--eval-every", "10",
                 "--cell", cell, "--hidden-size", "16", "--num-layers", "2", "--mode", mode,
                 "--seq-len", "8", "--batch-size", "4", "--quiet", "--num-samples", "0"]) == 0
    f = tmp_path / "lm.onnx"
    assert main(["export", str(out), "--onnx", str(f)]) == 0
    capsys.readouterr()
    model, vocab, _, _ = load_model(out)
    lm = OnnxCharLM(str(f))
    tokens = vocab.encode("anna\nbob\nemma"[: 12] if mode == "stream" else "annabobemma")[:, None]
    tokens = np.concatenate([tokens, tokens[::-1]], axis=1)                     # (T, 2)
    want_logits, want_state = model(tokens)
    got_logits, got_state = lm.step(tokens, None)
    np.testing.assert_allclose(got_logits, want_logits, rtol=1e-5, atol=1e-5)
    for g, w in zip(got_state if cell == "lstm" else (got_state,),
                    want_state if cell == "lstm" else (want_state,)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    # step by step through the runtime equals the whole sequence in rnnkit
    state = None
    for t in range(tokens.shape[0]):
        logits_t, state = lm.step(tokens[t: t + 1], state)
        np.testing.assert_allclose(logits_t[0], want_logits[t], rtol=1e-5, atol=1e-5)
