"""Decoding a Seq2Seq: greedy and beam search against references computed with the
teacher-forced forward pass (a different code path from the decoder's step)."""

import itertools

import numpy as np
import pytest

from rnnkit.data import pair_vocabs
from rnnkit.errors import DataError
from rnnkit.nn import Seq2Seq, Seq2SeqConfig
from rnnkit.ops import log_softmax
from rnnkit.translate import Translator, evaluate_pairs

PAIRS = [("abc", "xy"), ("ca", "y"), ("bbb", "yxx")]


def _translator(attention="additive", seed=0, scale=2.0):
    sv, tv = pair_vocabs(PAIRS)
    m = Seq2Seq(Seq2SeqConfig(src_vocab_size=len(sv), tgt_vocab_size=len(tv), hidden_size=4,
                              embedding_size=3, attention=attention, dtype="float64"), seed=seed)
    for p in m.parameters().values():
        p *= scale                                   # sharper distributions than at init
    return Translator(m, sv, tv)


def _logprob(tr, src, out_ids):
    """log p(out_ids + <eos> | src) and the alignments, from the teacher-forced forward."""
    m = tr.model
    s = tr.src_vocab.encode(src)[:, None]
    x = np.array([0] + out_ids)[:, None]
    logits, align = m(s, x)
    lp = log_softmax(logits[:, 0], axis=-1)
    return float(sum(lp[t, y] for t, y in enumerate(out_ids + [0]))), align, lp


@pytest.mark.parametrize("attention", ["additive", "dot", "none"])
def test_greedy_follows_the_most_probable_character_of_the_teacher_forced_model(attention):
    tr = _translator(attention)
    for src in ["abc", "cab", "b"]:
        (res,) = tr.translate([src])
        ids = []
        while True:                                  # re-run the whole forward at every step
            _, _, lp = _logprob(tr, src, ids)
            nxt = int(lp[len(ids)].argmax())
            if nxt == 0 or len(ids) == 2 * len(src) + 10:
                break
            ids.append(nxt)
        assert res.ids == ids
        total, align, lp = _logprob(tr, src, ids)
        assert res.finished == (len(ids) < 2 * len(src) + 10)
        if not res.finished:                         # cut by the guard: no <eos> term
            total -= lp[len(ids), 0]
            align = None if align is None else align[:-1]
        assert res.logprob == pytest.approx(total, abs=1e-10)
        if attention == "none":
            assert res.alignment is None
        else:
            np.testing.assert_allclose(res.alignment, align[:, 0], atol=1e-12)


@pytest.mark.parametrize("attention", ["general", "none"])
def test_wide_beam_finds_the_best_length_normalised_output(attention):
    tr = _translator(attention, seed=1, scale=1.0)
    V = len(tr.tgt_vocab)                            # <eos> + 2 characters
    for src in ["abc", "ca"]:
        best = max((_logprob(tr, src, list(ids))[0] / (len(ids) + 1), list(ids))
                   for L in range(4) for ids in itertools.product(range(1, V), repeat=L))
        (res,) = tr.translate([src], beam=40, max_length=4)
        assert res.ids == best[1]
        assert res.logprob / (len(res.ids) + 1) == pytest.approx(best[0], abs=1e-10)


def test_batched_beam_equals_one_source_at_a_time():
    tr = _translator("additive", seed=2)
    texts = ["abc", "c", "bbab", "ca"]
    together = tr.translate(texts, beam=3)
    alone = [tr.translate([t], beam=3)[0] for t in texts]
    for a, b in zip(together, alone):
        assert a.ids == b.ids
        assert a.logprob == pytest.approx(b.logprob, abs=1e-10)


def test_length_guard_cuts_and_says_so():
    tr = _translator("additive")
    for beam in (1, 3):
        (res,) = tr.translate(["abc"], beam=beam, max_length=1)
        assert len(res.ids) <= 1


def test_unseen_and_empty_sources_are_clear_errors():
    tr = _translator()
    with pytest.raises(DataError, match=r"input 2 .*'z'.* never seen in training"):
        tr.translate(["abc", "azz"])
    with pytest.raises(DataError, match="input 1 is empty"):
        tr.translate([""])


def test_evaluate_pairs_reports_exact_match_and_bits_per_char():
    tr = _translator()
    outputs = [o.text for o in tr.translate([s for s, _ in PAIRS])]
    res = evaluate_pairs(tr.model, PAIRS, tr.src_vocab, tr.tgt_vocab)
    assert res["exact_match"] == sum(o == t for o, (_, t) in zip(outputs, PAIRS)) / 3
    nats = [-_logprob(tr, s, list(tr.tgt_vocab.encode(t)))[0] for s, t in PAIRS]
    assert res["bits_per_char"] == pytest.approx(sum(nats) / sum(len(t) + 1 for _, t in PAIRS) / np.log(2))
