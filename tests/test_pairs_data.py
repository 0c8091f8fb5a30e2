"""Pairs files (source<TAB>target), their batches, and the generated pair tasks (dates, numbers)."""

import datetime
import re

import numpy as np
import pytest

from rnnkit import datasets
from rnnkit.data import IGNORE_INDEX, PairsDataset, is_pairs_text, load_pairs_data, pair_vocabs, parse_pairs
from rnnkit.errors import DataError

MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september",
          "october", "november", "december"]


def test_parse_pairs_skips_empty_lines_and_strips_sides():
    assert parse_pairs("a b\tx\n\n  c\t y \n") == [("a b", "x"), ("c", "y")]


@pytest.mark.parametrize("text, line, what", [("a\tb\nno tab here\n", 2, "no tab"),
                                              ("a\tb\nc\td\te\n", 2, "2 tabs"),
                                              ("a\tb\n\n\tx\n", 3, "empty source"),
                                              ("a\t \n", 1, "empty target")])
def test_bad_pairs_line_is_named(text, line, what):
    with pytest.raises(DataError, match=f"f.tsv: line {line} has (an )?{what}"):
        parse_pairs(text, "f.tsv")


def test_pairs_text_detection_needs_exactly_one_tab_on_every_line():
    assert is_pairs_text("a\tb\n\nc\td\n")
    assert not is_pairs_text("a\tb\nc d\n")
    assert not is_pairs_text("a\tb\tc\n")
    assert not is_pairs_text("\n\n")


def test_batch_layout_teacher_forcing_and_padding():
    pairs = [("abc", "xy"), ("b", "yyx")]
    sv, tv = pair_vocabs(pairs)
    assert sv.itos == ["<eos>", "a", "b", "c"] and tv.itos == ["<eos>", "x", "y"]
    b = PairsDataset(pairs, sv, tv).get_batch([0, 1])
    assert b.src[:, 0].tolist() == [1, 2, 3] and b.src[:, 1].tolist() == [2, 0, 0]
    assert b.src_lengths.tolist() == [3, 1] and b.lengths.tolist() == [3, 4]
    assert b.x[:, 0].tolist() == [0, 1, 2, 0] and b.y[:, 0].tolist() == [1, 2, 0, IGNORE_INDEX]
    assert b.x[:, 1].tolist() == [0, 2, 2, 1] and b.y[:, 1].tolist() == [2, 2, 1, 0]
    np.testing.assert_array_equal(b.x[1:4, 1], b.y[:3, 1])           # inputs are shifted targets


def test_unseen_character_is_a_data_error():
    sv, tv = pair_vocabs([("ab", "x")])
    with pytest.raises(DataError):
        PairsDataset([("az", "x")], sv, tv)


def test_eval_batches_cover_every_pair_once(tmp_path):
    f = tmp_path / "p.tsv"
    f.write_text("".join(f"{i}\t{i * 2}\n" for i in range(300)))
    data = load_pairs_data(f, val_frac=0.1, batch_size=16)
    assert data.summary == "270 train / 30 val pairs"
    seen = sum(int(b.src.shape[1]) for b in data.train.eval_batches())
    assert seen == 270
    assert {s for s, _ in data.train_pairs}.isdisjoint(s for s, _ in data.val_pairs)


def _parse_human_date(s):
    """An independent reading of the human formats (regular expressions, not the generator)."""
    t = s.lower().replace(",", " ").replace(".", " ").replace("-", " ").replace("/", " ")
    t = re.sub(r"\b(\d+)(st|nd|rd|th)\b", r"\1", t)
    words = [w for w in t.split() if w not in ("the", "of")]
    words = [w for w in words if not any(w.startswith(d[:3]) for d in
                                         ("monday", "tuesday", "wednesday", "thursday", "friday",
                                          "saturday", "sunday"))]
    month = [i + 1 for w in words for i, m in enumerate(MONTHS) if w.isalpha() and m.startswith(w)]
    nums = [int(w) for w in words if w.isdigit()]
    if month:
        (m,) = month
        if len(words[0]) == 4 and words[0].isdigit():       # 1979 may 3
            y, d = nums
        elif words[0].isalpha():                            # May 3 1979
            d, y = nums
        else:                                               # 3 May 1979
            d, y = nums
    elif "/" in s and len(s.split("/")[0]) == 4:            # 1979/05/03
        y, m, d = nums
    elif "/" in s:                                          # US month/day/year
        m, d, y = nums
    else:                                                   # 03.05.1979
        d, m, y = nums
    if y < 100:
        y += 1900 if y >= 50 else 2000
    return datetime.date(y, m, d)


def test_dates_are_deterministic_distinct_and_correct():
    pairs = datasets.dates(n=3000, seed=3)
    assert pairs == datasets.dates(n=3000, seed=3)
    assert pairs != datasets.dates(n=3000, seed=4)
    assert len({s for s, _ in pairs}) == 3000
    for src, tgt in pairs:
        assert _parse_human_date(src).isoformat() == tgt, src
        wd = src.split(",")[0].split()[0].lower()
        if wd.isalpha() and wd[:3] in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
            assert datetime.date.fromisoformat(tgt).strftime("%a").lower() == wd[:3], src


def test_dates_cover_many_formats():
    pairs = datasets.dates(n=2000, seed=0)
    shapes = {re.sub(r"[a-z]+", "a", re.sub(r"[A-Z]", "A", re.sub(r"\d", "9", s))) for s, _ in pairs}
    assert len(shapes) >= 20


def _words_to_int(s):
    """An independent reading of number words."""
    small = {w: i for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen".split())}
    tens = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty "
                                              "ninety".split()) if i >= 2}
    total, cur = 0, 0
    for w in s.replace("-", " ").split():
        if w in small:
            cur += small[w]
        elif w in tens:
            cur += tens[w]
        elif w == "hundred":
            cur *= 100
        elif w == "thousand":
            total, cur = cur * 1000, 0
    return total + cur


def test_number_words_match_an_independent_reading():
    pairs = datasets.number_words(n=2000, seed=1)
    assert len({s for s, _ in pairs}) == 2000
    for src, tgt in pairs:
        assert _words_to_int(src) == int(tgt), src
