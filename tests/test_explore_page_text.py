"""What the explorer page shows as text and what it ranks: control and format characters
get visible labels (never raw, so U+202E cannot turn the rest of the page right to left),
every character's span is bidi-isolated, saturation is ranked over bounded states only, and
the page opens on a hidden-state unit."""

import unicodedata

import numpy as np

import rnnkit.nn as nn
from rnnkit.data import Vocab
from rnnkit.explore import page_data, rank_units, render_page, unit_measurements
from rnnkit.plot import char_labels

# U+202E RIGHT-TO-LEFT OVERRIDE, U+2067 RIGHT-TO-LEFT ISOLATE, U+200F RIGHT-TO-LEFT MARK,
# NUL, ESC, DEL, a C1 control, a zero-width space, a soft hyphen
HOSTILE = "\u202e\u2067\u200f\x00\x1b\x7f\x85\u200b\u00ad"


def _invisible(label: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in label)


def test_labels_of_control_and_format_characters_are_visible():
    for labels in (char_labels(HOSTILE), char_labels(list(HOSTILE))):
        assert len(labels) == len(HOSTILE)
        assert not any(_invisible(lab) for lab in labels), [ascii(x) for x in labels]
        assert len(set(labels)) == len(labels)            # each still tells its character apart
    assert char_labels("a\n \t")[0] == "a"                # the familiar ones are unchanged
    assert char_labels(["\n", " ", "\t", "<eos>"]) == ["\u21b5", "\u2423", "\u21e5", "\u21b5"]


def test_page_labels_hold_no_raw_control_or_bidi_characters():
    text = "abc" + HOSTILE + "def (x) \"y\"\n" * 3
    vocab = Vocab.build(text)
    cfg = nn.CharLMConfig(vocab_size=len(vocab), cell="lstm", hidden_size=4, num_layers=1,
                          embedding_size=3, dtype="float64")
    data = page_data(nn.CharLM(cfg, seed=0), vocab, vocab.encode(text), title="t\u202eitle",
                     source="s\u202eource")
    for lab in data["labels"] + data["vocab_labels"]:
        assert not _invisible(lab), ascii(lab)
    html = render_page(data)
    assert "unicode-bidi: isolate" in html.split(".ch {")[1].split("}")[0]     # every span
    assert "\u202e" not in html.split('id="rnnkit-data"')[0]                    # the page text
    assert 'dir="ltr"' in html


def test_saturation_ranks_bounded_states_only_and_the_page_opens_on_a_hidden_unit():
    """LSTM cell states are unbounded: |c| > 0.9 says nothing, so they used to fill the
    saturation list at 100%."""
    rng = np.random.default_rng(0)
    tokens = list('"a (b) c" d\n' * 10)
    T, H = len(tokens), 5
    layer = {"hidden": 0.3 * rng.standard_normal((T, H)),
             "cell": 16 + rng.standard_normal((T, H))}            # always |c| > 0.9
    layer["hidden"][:, 2] = 0.95                                  # one truly saturated unit
    inside = np.array([1.0 if ch in '"(' else 0.0 for ch in tokens])
    layer["cell"][:, 1] += 30 * inside                            # the best correlation: a cell
    ranked = rank_units([unit_measurements(layer, tokens)])
    assert {r["quantity"] for r in ranked["saturation"]} == {"hidden"}
    assert ranked["saturation"][0]["unit"] == 2


def test_page_default_view_is_a_hidden_state():
    text = 'He said "stop (now)" and left.\n' * 6
    vocab = Vocab.build(text)
    cfg = nn.CharLMConfig(vocab_size=len(vocab), cell="lstm", hidden_size=6, num_layers=2,
                          embedding_size=3, dtype="float64")
    data = page_data(nn.CharLM(cfg, seed=1), vocab, vocab.encode(text))
    view = data["default_view"]
    assert view["quantity"] == "hidden"
    candidates = [r for name in ("inside", "position", "saturation") for r in data["ranked"][name]
                  if r["quantity"] == "hidden"]
    assert candidates and (view["layer"], view["unit"]) == (candidates[0]["layer"], candidates[0]["unit"])
    assert "D.default_view" in render_page(data)
