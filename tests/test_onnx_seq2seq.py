"""ONNX export of a Seq2Seq (an encoder graph + a decoder-step graph), run in ONNX Runtime.

References: the NumPy model's teacher-forced forward pass (a different code path from its
decoding step) for every step's logits and attention weights on padded batches, and the NumPy
model's own translations (greedy and beam) for :class:`OnnxSeq2Seq` under the same
:class:`Translator`; the command line round trip on a trained run."""

import io
import itertools
import sys

import numpy as np
import pytest

from rnnkit.data import pair_vocabs
from rnnkit.errors import CheckpointError, ConfigError, ParameterKeyError
from rnnkit.nn import CharLM, CharLMConfig, Seq2Seq, Seq2SeqConfig
from rnnkit.translate import Translator
from tests.needs import require

TOL = dict(rtol=1e-4, atol=2e-5)            # float32 graphs against the float32 NumPy model
PAIRS = [("abc", "xy"), ("ca", "y"), ("bbb", "yxx"), ("cabbage", "xyyx")]
# (encoder cell, decoder cell, bidirectional, layers): every cell kind on both sides
STACKS = [("lstm", "", True, 1), ("gru", "rnn", False, 2), ("rnn_relu", "lstm", True, 2),
          ("rnn", "gru", True, 1)]


@pytest.fixture(scope="module", autouse=True)
def _needs():
    require("onnx", "onnxruntime")


def _model(attention, stack, seed=1, scale=2.0):
    cell, dec, bi, layers = stack
    sv, tv = pair_vocabs(PAIRS)
    m = Seq2Seq(Seq2SeqConfig(src_vocab_size=len(sv), tgt_vocab_size=len(tv), hidden_size=5,
                              embedding_size=3, attention=attention, cell=cell, decoder_cell=dec,
                              bidirectional=bi, num_layers=layers), seed=seed)
    for p in m.parameters().values():
        p *= scale                                   # sharper distributions than at init
    return m, sv, tv


def _onnx(model, tmp_path):
    from rnnkit.interop.onnx import export
    from rnnkit.interop.onnx_runtime import OnnxSeq2Seq
    path = tmp_path / "s2s.onnx"
    export(model, path)
    return OnnxSeq2Seq(path)


@pytest.mark.parametrize("attention,stack", list(itertools.product(
    ["additive", "general", "dot", "none"], STACKS)))
def test_onnx_steps_match_the_teacher_forced_numpy_model_on_a_padded_batch(attention, stack, tmp_path):
    m, sv, tv = _model(attention, stack)
    onnx = _onnx(m, tmp_path)
    rng = np.random.default_rng(3)
    S, T, N = 6, 5, 4
    lengths = np.array([6, 2, 4, 1])
    src = rng.integers(1, len(sv), (S, N))
    for n, k in enumerate(lengths):
        src[k:, n] = 0                                   # right padding
    x = np.concatenate([np.zeros((1, N), np.int64), rng.integers(1, len(tv), (T - 1, N))])
    want_logits, want_align = m(src, x, lengths)        # (T, N, V), (T, N, S)
    enc = onnx.encode(src, lengths)
    state, feed = enc.state, None
    for t in range(T):
        logits, state, feed, weights = onnx.decode_step(x[t], state, feed, enc.memory)
        np.testing.assert_allclose(logits, want_logits[t], **TOL)
        if attention == "none":
            assert weights is None and want_align is None
        else:
            np.testing.assert_allclose(weights, want_align[t], **TOL)
            assert np.all(weights[np.arange(S)[None, :] >= lengths[:, None]] == 0)


@pytest.mark.parametrize("attention,stack", [("additive", STACKS[0]), ("general", STACKS[1]),
                                             ("dot", STACKS[2]), ("none", STACKS[3])])
def test_onnx_runtime_gives_the_numpy_models_translations_greedy_and_beam(attention, stack, tmp_path):
    m, sv, tv = _model(attention, stack)
    numpy_tr, onnx_tr = Translator(m, sv, tv), Translator(_onnx(m, tmp_path), sv, tv)
    sources = ["abc", "cabbage", "b", "ccc", "bacab"]
    for beam in (1, 3):
        want, got = numpy_tr.translate(sources, beam=beam), onnx_tr.translate(sources, beam=beam)
        assert [g.text for g in got] == [w.text for w in want]
        assert [g.finished for g in got] == [w.finished for w in want]
        np.testing.assert_allclose([g.logprob for g in got], [w.logprob for w in want], rtol=1e-4)
        for g, w in zip(got, want):
            if attention == "none":
                assert g.alignment is None and w.alignment is None
            else:
                np.testing.assert_allclose(g.alignment, w.alignment, **TOL)


def test_export_refuses_what_it_cannot_write_with_one_clear_error(tmp_path):
    from rnnkit.interop.onnx import export
    from rnnkit.interop.onnx_runtime import OnnxCharLM, OnnxSeq2Seq
    m, _, _ = _model("additive", STACKS[0])
    with pytest.raises(ConfigError, match="sequence_lens"):
        export(m, sequence_lens=True)
    sd = m.state_dict()
    with pytest.raises(ParameterKeyError, match="combine.weight"):
        export({k: v for k, v in sd.items() if k != "combine.weight"}, config=m.config)
    with pytest.raises(ConfigError, match="config="):
        export(sd)
    # the two runtimes each refuse the other's file
    export(m, tmp_path / "s2s.onnx")
    lm = CharLM(CharLMConfig(vocab_size=5, hidden_size=3, num_layers=1, embedding_size=2), seed=0)
    export(lm, tmp_path / "lm.onnx")
    with pytest.raises(ConfigError, match="kind='charlm'"):
        OnnxCharLM(tmp_path / "s2s.onnx")
    with pytest.raises(ConfigError, match="kind='seq2seq'"):
        OnnxSeq2Seq(tmp_path / "lm.onnx")
    with pytest.raises(ConfigError, match="kind='seq2seq'"):
        OnnxSeq2Seq(tmp_path / "s2s.decoder.onnx")     # the decoder file given as the model
    (tmp_path / "s2s.decoder.onnx").unlink()
    with pytest.raises(CheckpointError, match="decoder step .*s2s.decoder.onnx.* is missing"):
        OnnxSeq2Seq(tmp_path / "s2s.onnx")


def test_export_one_entry_point_refuses_models_without_an_onnx_graph():
    from rnnkit.interop.onnx import export
    from rnnkit.nn import SequenceClassifier, SequenceClassifierConfig
    clf = SequenceClassifier(SequenceClassifierConfig(input_size=3, hidden_size=4, num_classes=2), seed=0)
    with pytest.raises(ConfigError, match="no ONNX export for a SequenceClassifier"):
        export(clf)


@pytest.mark.slow
def test_export_and_translate_onnx_on_a_trained_run_print_the_same_lines(tmp_path, capsys, monkeypatch):
    from rnnkit.cli import main
    words = ["abc", "ba", "cab", "aab", "bca", "ccb", "acb", "bb", "cba", "abca"] * 3
    pairs = tmp_path / "rev.tsv"
    pairs.write_text("".join(f"{w}\t{w[::-1]}\n" for w in words))
    run, onnx = tmp_path / "run", tmp_path / "out" / "rev.onnx"
    assert main(["train", str(pairs), "--out", str(run), "--hidden-size", "8", "--embedding-size", "4",
                 "--batch-size", "8", "--steps", "40", "--eval-every", "20", "--quiet"]) == 0
    assert main(["export", str(run), "--onnx", str(onnx)]) == 0
    out = capsys.readouterr().out
    assert "rev.decoder.onnx" in out and (tmp_path / "out" / "rev.decoder.onnx").is_file()
    texts = ["abc", "cab", "bb", "abca", "c"]
    for beam in ("1", "3"):
        assert main(["translate", str(run), *texts, "--beam", beam]) == 0
        want = capsys.readouterr().out
        assert main(["translate", str(run), *texts, "--beam", beam, "--onnx", str(onnx)]) == 0
        assert capsys.readouterr().out == want and len(want.splitlines()) == len(texts)
    monkeypatch.setattr(sys, "stdin", io.StringIO("abc\n"))
    other = tmp_path / "other.tsv"
    other.write_text("".join(f"{w}\t{w.upper()}\n" for w in words))
    assert main(["train", str(other), "--out", str(tmp_path / "other"), "--hidden-size", "8",
                 "--embedding-size", "4", "--batch-size", "8", "--steps", "2", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["translate", str(tmp_path / "other"), "abc", "--onnx", str(onnx)]) != 0
    assert "exported from another run" in capsys.readouterr().err
