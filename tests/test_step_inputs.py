"""The step functions of generation refuse what would give silent wrong numbers: token ids
outside the vocabulary (a negative id used to return the last token's logits) and, for
ONNX Runtime, states holding NaN/inf or complex numbers."""

import warnings

import numpy as np
import pytest

import rnnkit.nn as nn
from rnnkit.errors import DataError, DTypeError, NonFiniteError, RnnkitError, ShapeError
from tests.needs import require


def _model(cell="lstm"):
    cfg = nn.CharLMConfig(vocab_size=6, cell=cell, hidden_size=4, num_layers=2, embedding_size=3)
    return nn.CharLM(cfg, seed=0)


@pytest.mark.parametrize("tokens", [[-1], [6], [0, 7], [2, -3]])
def test_stepper_refuses_ids_outside_the_vocabulary(tokens):
    step = _model().stepper().step
    with pytest.raises(DataError, match=r"\[0, 5\]"):
        step(np.array(tokens))


@pytest.mark.parametrize("tokens,error", [(np.array([1.0]), DTypeError), (np.zeros((1, 2), np.int64), ShapeError),
                                          (np.zeros(0, np.int64), ShapeError)])
def test_stepper_refuses_malformed_tokens(tokens, error):
    with pytest.raises(error):
        _model().stepper().step(tokens)


def test_stepper_still_matches_the_forward_pass():
    m = _model()
    ids = np.array([1, 4, 2, 5, 0])
    ref, _ = m(ids[:, None])
    step, state, out = m.stepper().step, None, []
    for t in ids:
        logits, state = step(np.array([t]), state)
        out.append(logits[0])
    np.testing.assert_allclose(np.array(out), ref[:, 0], rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def onnx_lm(tmp_path_factory):
    require("onnx", "onnxruntime")
    from rnnkit.interop.onnx import export
    from rnnkit.interop.onnx_runtime import OnnxCharLM
    path = tmp_path_factory.mktemp("onnx") / "lm.onnx"
    export(_model(), str(path))
    return OnnxCharLM(str(path))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("part", [0, 1])
def test_onnx_step_refuses_a_non_finite_state(onnx_lm, bad, part):
    h, c = onnx_lm.initial_state(1)
    state = [np.array(h), np.array(c)]
    state[part][0, 0, 1] = bad
    with pytest.raises(NonFiniteError, match="state " + "hc"[part]):
        onnx_lm.step(np.array([1]), tuple(state))


def test_onnx_step_refuses_a_complex_state_without_a_warning(onnx_lm):
    h, c = onnx_lm.initial_state(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DTypeError, match="complex"):
            onnx_lm.step(np.array([1]), (np.asarray(h) + 1j, c))


def test_onnx_step_accepts_its_own_state(onnx_lm):
    logits, state = onnx_lm.step(np.array([1]))
    logits2, _ = onnx_lm.step(np.array([2]), state)
    assert np.isfinite(logits2).all()
    assert not isinstance(logits2, RnnkitError)
