"""rnnkit.evaluate.score_text (the algorithm of `rnnkit eval`) against a reference written
here: one whole-sequence forward per line (or over the whole stream) and a NumPy
log-softmax, with no batching, chunking or carried state."""

import math

import numpy as np
import pytest

import rnnkit.evaluate as evaluate
from rnnkit import nn
from rnnkit.data import BOUNDARY, Vocab
from rnnkit.errors import DataError
from rnnkit.evaluate import score_text

LINES = ["anna", "bob", "carolina" * 5, "di", "eve" * 40]


def _nll(model, ids):
    """Summed -log p(ids[1:] | ids[:-1]) from one forward over the whole sequence."""
    logits, _ = model(np.asarray(ids[:-1], np.int64)[:, None])
    z = logits[:, 0, :].astype(np.float64)
    logp = z - z.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    return -float(logp[np.arange(len(ids) - 1), ids[1:]].sum())


def _model(vocab, cell="gru"):
    cfg = nn.CharLMConfig(vocab_size=len(vocab), cell=cell, hidden_size=6, num_layers=2,
                          embedding_size=3, dtype="float64")
    return nn.CharLM(cfg, seed=1).eval()


@pytest.mark.parametrize("long_line", [1024, 7])      # 7: the long lines go one by one, chunked
def test_lines_mode_sums_every_line_like_one_forward_each(monkeypatch, long_line):
    monkeypatch.setattr(evaluate, "LONG_LINE", long_line)
    monkeypatch.setattr(evaluate, "CHUNK_STEPS", 5)
    vocab = Vocab.build(LINES, specials=(BOUNDARY,))
    model = _model(vocab, "lstm")
    got = score_text(model, vocab, "\n".join(LINES) + "\n\n")
    b = vocab.bos_id
    want = sum(_nll(model, [b, *vocab.encode(line), b]) for line in LINES)
    assert got.characters == sum(len(line) + 1 for line in LINES)
    assert got.total == pytest.approx(want, rel=1e-10)
    assert got.bits_per_char == pytest.approx(want / got.characters / math.log(2), rel=1e-10)


def test_stream_mode_carries_the_state_across_chunks(monkeypatch):
    monkeypatch.setattr(evaluate, "CHUNK_STEPS", 4)
    text = "the quick brown fox jumps over the lazy dog. " * 3
    vocab = Vocab.build([text])
    model = _model(vocab)
    got = score_text(model, vocab, text)
    assert got.characters == len(text) - 1
    assert got.total == pytest.approx(_nll(model, vocab.encode(text)), rel=1e-10)


def test_unknown_characters_and_empty_texts_are_one_error_naming_the_source():
    vocab = Vocab.build(["abc"], specials=(BOUNDARY,))
    model = _model(vocab)
    with pytest.raises(DataError, match=r"notes.txt: 2 character\(s\) the model never saw: 'x', 'y'"):
        score_text(model, vocab, "abx\nyy", source="notes.txt")
    with pytest.raises(DataError, match="no non-empty lines"):
        score_text(model, vocab, "\n\n", source="empty.txt")
    stream = Vocab.build(["abc"])
    with pytest.raises(DataError, match="at least 2 characters"):
        score_text(_model(stream), stream, "a")
