"""ONNX export with a ``sequence_lens`` input: ONNX Runtime against rnnkit with ``lengths`` on
right-padded batches (every cell, one and two layers, both directions, both layouts), to 1e-5."""

import itertools

import numpy as np
import pytest

import rnnkit
import rnnkit.nn as nn
from tests.needs import require

TOL = 1e-5


@pytest.fixture(scope="module", autouse=True)
def _needs():
    require("onnx", "onnxruntime")


def _session(model):
    import onnxruntime as ort
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("cell,L,bi,batch_first", list(itertools.product(
    ["RNN", "LSTM", "GRU"], [1, 2], [False, True], [False, True])))
def test_exported_layer_with_sequence_lens_matches_rnnkit_lengths(cell, L, bi, batch_first):
    from rnnkit.interop.onnx import export
    rng = np.random.default_rng(L)
    m = getattr(nn, cell)(3, 5, num_layers=L, bidirectional=bi, batch_first=batch_first, seed=1)
    lengths = np.array([7, 2, 5, 1])
    x = rng.standard_normal((4, 7, 3) if batch_first else (7, 4, 3)).astype(np.float32)
    h0 = rng.standard_normal((L * (2 if bi else 1), 4, 5)).astype(np.float32)
    state = (h0, h0 * 0.5) if cell == "LSTM" else h0
    with rnnkit.no_grad():
        out, state_n = m(x, state, lengths=lengths)
    sess = _session(export(m, sequence_lens=True))
    assert [i.name for i in sess.get_inputs()][-1] == "sequence_lens"
    feed = {"input": x, "h0": h0, "sequence_lens": lengths.astype(np.int32)}
    if cell == "LSTM":
        feed["c0"] = h0 * 0.5
    got = sess.run(None, feed)
    assert np.abs(got[0] - out).max() < TOL
    for a, b in zip(got[1:], state_n if cell == "LSTM" else (state_n,)):
        assert np.abs(a - b).max() < TOL
    padded = (got[0][1, 2:] if batch_first else got[0][2:, 1])
    assert np.all(padded == 0)                       # outputs past a sequence's end are 0


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_exported_charlm_with_sequence_lens_matches_rnnkit(cell):
    from rnnkit.interop.onnx import export
    model = nn.CharLM(nn.CharLMConfig(vocab_size=7, hidden_size=6, num_layers=2, embedding_size=4,
                                      cell=cell), seed=0)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 7, (6, 3))
    lengths = np.array([6, 3, 1])
    with rnnkit.no_grad():
        logits, state_n = model(tokens, None, lengths=lengths)
    sess = _session(export(model, sequence_lens=True, initial_state=False))
    got = sess.run(None, {"tokens": tokens.astype(np.int64), "sequence_lens": lengths.astype(np.int32)})
    assert np.abs(got[0] - logits).max() < TOL
    for a, b in zip(got[1:], state_n if cell == "lstm" else (state_n,)):
        assert np.abs(a - b).max() < TOL


def test_sequence_lens_option_must_be_a_bool():
    from rnnkit.interop.onnx import export
    with pytest.raises(rnnkit.errors.ConfigError, match="sequence_lens to be True or False"):
        export(nn.GRU(2, 3), sequence_lens="yes")
