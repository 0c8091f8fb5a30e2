"""ONNX export (rnnkit.interop.onnx) checked against PyTorch through ONNX Runtime.

Every exported model is validated with ``onnx.checker.check_model(full_check=True)`` and run
with ONNX Runtime; outputs and final states are compared with the torch module the weights
came from (float32, 1e-5 absolute + relative). Each model is built once and run for several
(seq_len, batch) pairs on the same session, which also proves the dynamic axes.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys

import numpy as np
import pytest

from needs import require

onnx = require("onnx")
ort = require("onnxruntime")
torch = require("torch")

from rnnkit.errors import ConfigError, DataError, ParameterKeyError, ShapeError  # noqa: E402
from rnnkit.interop import onnx as rx  # noqa: E402
from rnnkit.interop.onnx_runtime import OnnxCharLM  # noqa: E402

TOL = dict(rtol=1e-5, atol=1e-5)
SIZES = [(1, 1), (1, 3), (5, 1), (5, 3)]  # (T, N) run on one session
MODES = ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"]
ONNX_OP = {"RNN_TANH": "RNN", "RNN_RELU": "RNN", "LSTM": "LSTM", "GRU": "GRU"}


def torch_layer(mode, input_size, hidden_size, seed=0, **kw):
    torch.manual_seed(seed)
    if mode == "LSTM":
        return torch.nn.LSTM(input_size, hidden_size, **kw)
    if mode == "GRU":
        return torch.nn.GRU(input_size, hidden_size, **kw)
    return torch.nn.RNN(input_size, hidden_size,
                        nonlinearity="tanh" if mode == "RNN_TANH" else "relu", **kw)


def session(model, tmp_path, name="m.onnx"):
    """Save, reload, check (full) and open a session: the file on disk is what gets tested."""
    path = tmp_path / name
    onnx.save(model, str(path))
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), loaded


def run_torch(m, x, h0, c0):
    with torch.no_grad():
        if isinstance(m, torch.nn.LSTM):
            y, (h, c) = m(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
            return y.numpy(), h.numpy(), c.numpy()
        y, h = m(torch.from_numpy(x), torch.from_numpy(h0))
        return y.numpy(), h.numpy(), None


def check_layer_against_torch(m, sess, rng, sizes=SIZES, initial_state=True):
    dirs = 2 if m.bidirectional else 1
    for T, N in sizes:
        shape = (N, T, m.input_size) if m.batch_first else (T, N, m.input_size)
        x = rng.standard_normal(shape).astype(np.float32)
        sshape = (m.num_layers * dirs, N, m.hidden_size)
        h0 = rng.standard_normal(sshape).astype(np.float32) if initial_state \
            else np.zeros(sshape, np.float32)
        c0 = rng.standard_normal(sshape).astype(np.float32) if initial_state \
            else np.zeros(sshape, np.float32)
        feeds = {"input": x}
        if initial_state:
            feeds["h0"] = h0
            if m.mode == "LSTM":
                feeds["c0"] = c0
        got = sess.run(None, feeds)
        ref = run_torch(m, x, h0, c0)
        assert got[0].shape == ref[0].shape
        np.testing.assert_allclose(got[0], ref[0], **TOL)
        np.testing.assert_allclose(got[1], ref[1], **TOL)
        if m.mode == "LSTM":
            assert len(got) == 3
            np.testing.assert_allclose(got[2], ref[2], **TOL)
        else:
            assert len(got) == 2


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("mode", MODES)
def test_layer_matches_torch(mode, num_layers, bidirectional, tmp_path):
    m = torch_layer(mode, 3, 4, seed=num_layers + 2 * bidirectional,
                    num_layers=num_layers, bidirectional=bidirectional)
    sess, model = session(rx.export(m), tmp_path)
    nodes = [n for n in model.graph.node if n.op_type == ONNX_OP[mode]]
    assert len(nodes) == num_layers  # one native node per layer, no unrolled loop
    assert model.opset_import[0].version == rx.DEFAULT_OPSET
    check_layer_against_torch(m, sess, np.random.default_rng(0))


@pytest.mark.parametrize("mode,num_layers,bidirectional,bias", [
    ("LSTM", 2, True, True), ("GRU", 1, False, True), ("RNN_RELU", 2, False, False),
    ("GRU", 2, True, False)])
def test_batch_first_and_no_bias(mode, num_layers, bidirectional, bias, tmp_path):
    m = torch_layer(mode, 2, 5, seed=7, num_layers=num_layers, bidirectional=bidirectional,
                    bias=bias, batch_first=True)
    sess, model = session(rx.export(m), tmp_path)
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "seq_len", 2]
    check_layer_against_torch(m, sess, np.random.default_rng(1))


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_without_initial_state_starts_from_zero(mode, tmp_path):
    m = torch_layer(mode, 3, 4, seed=3, num_layers=2, bidirectional=True)
    sess, model = session(rx.export(m, initial_state=False), tmp_path)
    assert [i.name for i in model.graph.input] == ["input"]
    check_layer_against_torch(m, sess, np.random.default_rng(2), initial_state=False)


class NumpyLayer:
    """A duck-typed layer holding float64 NumPy arrays (as an rnnkit layer would)."""

    def __init__(self, torch_module):
        for a in ("mode", "input_size", "hidden_size", "num_layers", "bidirectional", "bias",
                  "batch_first"):
            setattr(self, a, getattr(torch_module, a))
        self._sd = {k: v.detach().double().numpy().copy()
                    for k, v in torch_module.state_dict().items()}

    def state_dict(self):
        return dict(self._sd)


def test_duck_typed_numpy_layer(tmp_path):
    m = torch_layer("LSTM", 3, 4, seed=11, num_layers=2, bidirectional=True)
    sess, model = session(rx.export(NumpyLayer(m)), tmp_path)
    assert all(t.data_type == onnx.TensorProto.FLOAT for t in model.graph.initializer
               if t.name.startswith(("W_", "R_", "B_")))
    check_layer_against_torch(m, sess, np.random.default_rng(3), sizes=[(4, 2)])


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_unreordered_gates_would_be_caught(mode, tmp_path, monkeypatch):
    m = torch_layer(mode, 3, 4, seed=5)
    monkeypatch.setattr(rx, "_reorder_gates", lambda mat, cell, hidden_size: mat)   # PyTorch order kept
    sess, _ = session(rx.export(m), tmp_path)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    h0 = rng.standard_normal((1, 2, 4)).astype(np.float32)
    feeds = {"input": x, "h0": h0}
    if mode == "LSTM":
        feeds["c0"] = h0.copy()
    got = sess.run(None, feeds)[0]
    ref = run_torch(m, x, h0, h0.copy())[0]
    assert np.abs(got - ref).max() > 1e-2


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_float64_export_matches_torch_in_onnx_reference(mode):
    # ONNX Runtime's CPU provider has no double RNN/LSTM/GRU kernels; the ONNX reference
    # evaluator runs the double model instead (it knows Tanh but not Relu for RNN).
    from onnx.reference import ReferenceEvaluator

    m = torch_layer(mode, 3, 4, seed=9, num_layers=2, bidirectional=True).double()
    model = rx.export(m, dtype=np.float64)
    onnx.checker.check_model(model, full_check=True)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 2, 3))
    h0, c0 = rng.standard_normal((2, 4, 2, 4))
    feeds = {"input": x, "h0": h0}
    if mode == "LSTM":
        feeds["c0"] = c0
    got = ReferenceEvaluator(model).run(None, feeds)
    ref = run_torch(m, x, h0, c0)
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------
# char LM
# ------------------------------------------------------------------------------------------

class TorchCharLM(torch.nn.Module):
    """Independent reference: [Embedding | one-hot] -> torch RNN/LSTM/GRU -> Linear."""

    def __init__(self, cell, V, H, L, E, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.V, self.E = V, E
        if E > 0:
            self.embedding = torch.nn.Embedding(V, E)
        self.rnn = torch_layer(cell, E if E > 0 else V, H, seed=seed, num_layers=L)
        self.head = torch.nn.Linear(H, V)
        self.config = {"cell": cell.lower() if cell != "RNN_TANH" else "rnn", "vocab_size": V,
                       "hidden_size": H, "num_layers": L, "embedding_size": E}

    def forward(self, tokens, state):
        t = torch.from_numpy(tokens)
        x = (self.embedding(t) if self.E > 0
             else torch.nn.functional.one_hot(t, self.V).to(torch.float32))
        if isinstance(state, tuple):
            state = tuple(torch.from_numpy(s) for s in state)
        else:
            state = torch.from_numpy(state)
        with torch.no_grad():
            y, st = self.rnn(x, state)
            logits = self.head(y)
        st = tuple(s.numpy() for s in st) if isinstance(st, tuple) else st.numpy()
        return logits.detach().numpy(), st


def random_state(cell, L, N, H, rng):
    h = rng.standard_normal((L, N, H)).astype(np.float32)
    return (h, rng.standard_normal((L, N, H)).astype(np.float32)) if cell == "LSTM" else h


def assert_state_close(got, ref):
    if isinstance(ref, tuple):
        assert isinstance(got, tuple) and len(got) == 2
        for g, r in zip(got, ref):
            np.testing.assert_allclose(g, r, **TOL)
    else:
        np.testing.assert_allclose(got, ref, **TOL)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("embedding_size", [0, 6], ids=["onehot", "embedding"])
@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"])
def test_charlm_matches_torch(cell, embedding_size, num_layers, tmp_path):
    V, H = 11, 5
    ref = TorchCharLM(cell, V, H, num_layers, embedding_size, seed=num_layers)
    model = rx.export(ref, tmp_path / "lm.onnx")
    onnx.checker.check_model(str(tmp_path / "lm.onnx"), full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["kind"] == "charlm" and meta["cell"] == cell
    assert meta["vocab_size"] == str(V) and meta["embedding_size"] == str(embedding_size)
    assert model.doc_string
    sess = ort.InferenceSession(str(tmp_path / "lm.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(6)
    for T, N in SIZES:
        tokens = rng.integers(0, V, size=(T, N), dtype=np.int64)
        state = random_state(cell, num_layers, N, H, rng)
        feeds = {"tokens": tokens}
        if cell == "LSTM":
            feeds["h0"], feeds["c0"] = state
        else:
            feeds["h0"] = state
        got = sess.run(None, feeds)
        want_logits, want_state = ref(tokens, state)
        assert got[0].shape == (T, N, V) and got[0].dtype == np.float32
        np.testing.assert_allclose(got[0], want_logits, **TOL)
        assert_state_close(tuple(got[1:]) if cell == "LSTM" else got[1], want_state)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_onnx_charlm_steps_like_full_sequence(cell, tmp_path):
    V, H, L, T, N = 9, 6, 2, 6, 3
    ref = TorchCharLM(cell, V, H, L, 4, seed=3)
    path = tmp_path / "lm.onnx"
    rx.export(ref.state_dict(), path, config=dict(cell=cell, vocab_size=V, hidden_size=H, num_layers=L,
                                                  embedding_size=4), metadata={"vocab": "abcdefghi"})
    lm = OnnxCharLM(path)
    assert (lm.cell, lm.vocab_size, lm.hidden_size, lm.num_layers) == (cell, V, H, L)
    assert lm.metadata["vocab"] == "abcdefghi"
    rng = np.random.default_rng(7)
    tokens = rng.integers(0, V, size=(T, N), dtype=np.int64)
    zeros = random_state(cell, L, N, H, rng)
    zeros = tuple(np.zeros_like(z) for z in zeros) if cell == "LSTM" else np.zeros_like(zeros)
    want_logits, want_state = ref(tokens, zeros)
    # step by step, 1-D tokens for the first step and (2, N) chunks after it
    logits0, state = lm.step(tokens[0], None)
    chunks = [logits0]
    for t in range(1, T, 2):
        lg, state = lm.step(tokens[t:t + 2], state)
        chunks.append(lg)
    got = np.concatenate(chunks, axis=0)
    assert got.shape == (T, N, V)
    np.testing.assert_allclose(got, want_logits, **TOL)
    assert_state_close(state, want_state)


@dataclasses.dataclass
class LMConfig:
    cell: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    embedding_size: int
    dropout: float = 0.0


def test_export_of_an_object_with_a_dataclass_config(tmp_path):
    ref = TorchCharLM("GRU", 7, 4, 1, 0, seed=8)

    class Model:
        config = LMConfig("gru", 7, 4, 1, 0)

        def state_dict(self):
            return {k: v.detach().numpy() for k, v in ref.state_dict().items()}

    path = tmp_path / "lm.onnx"
    rx.export(Model(), path)
    lm = OnnxCharLM(path)
    tokens = np.array([[1, 6], [0, 3], [5, 5]], dtype=np.int64)
    got, h = lm.step(tokens)
    want, want_h = ref(tokens, np.zeros((1, 2, 4), np.float32))
    np.testing.assert_allclose(got, want, **TOL)
    np.testing.assert_allclose(h, want_h, **TOL)


# ------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------

def test_errors():
    lstm = torch.nn.LSTM(3, 4)
    with pytest.raises(ConfigError, match="proj_size"):
        rx.export(torch.nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(ConfigError, match="opset"):
        rx.export(lstm, opset=11)
    with pytest.raises(ConfigError, match="dtype"):
        rx.export(lstm, dtype=np.int32)
    bad = NumpyLayer(lstm)
    del bad._sd["bias_hh_l0"]
    with pytest.raises(ParameterKeyError, match="bias_hh_l0"):
        rx.export(bad)
    bad = NumpyLayer(lstm)
    bad.hidden_size = 5
    with pytest.raises(ShapeError, match="weight_ih_l0"):
        rx.export(bad)
    ref = TorchCharLM("LSTM", 5, 3, 1, 2)
    with pytest.raises(ParameterKeyError, match="embedding.weight"):
        rx.export(ref.state_dict(), config=dict(cell="lstm", vocab_size=5, hidden_size=3,
                                                num_layers=1, embedding_size=0))
    with pytest.raises(ConfigError, match="cell"):
        rx.export(ref.state_dict(), config=dict(cell="transformer", vocab_size=5, hidden_size=3,
                                                num_layers=1, embedding_size=2))
    with pytest.raises(ConfigError, match="unknown option"):
        rx.export(lstm, opset_version=17)
    with pytest.raises(ConfigError, match="export"):
        rx.export(object())


def test_onnx_charlm_input_errors(tmp_path):
    ref = TorchCharLM("LSTM", 5, 3, 1, 2)
    rx.export(ref, tmp_path / "lm.onnx")
    lm = OnnxCharLM(tmp_path / "lm.onnx")
    with pytest.raises(DataError, match=r"\[0, 5\)"):
        lm.step(np.array([[5]]))
    with pytest.raises(ShapeError, match="state h"):
        lm.step(np.array([[1, 2]]), (np.zeros((1, 3, 3)), np.zeros((1, 3, 3))))
    rx.export(torch.nn.GRU(2, 3), tmp_path / "layer.onnx")
    with pytest.raises(ConfigError, match="charlm"):
        OnnxCharLM(tmp_path / "layer.onnx")


def test_missing_onnx_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    monkeypatch.delitem(sys.modules, "rnnkit.interop.onnx")
    with pytest.raises(ImportError, match=r"pip install 'rnnkit\[onnx\]'"):
        importlib.import_module("rnnkit.interop.onnx")


def test_the_runtime_needs_onnxruntime_only(monkeypatch):
    """Export and runtime are separate modules: running an exported model does not import the
    onnx package (the runtime reads the graph's metadata from the session)."""
    monkeypatch.setitem(sys.modules, "onnx", None)
    monkeypatch.delitem(sys.modules, "rnnkit.interop.onnx_runtime", raising=False)
    runtime = importlib.import_module("rnnkit.interop.onnx_runtime")
    assert runtime.OnnxCharLM.__name__ == "OnnxCharLM"
