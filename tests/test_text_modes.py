"""Which mode a text is read in, and what each mode keeps: code and other text whose
indentation or blank lines carry meaning is a stream (every character kept); lines mode says
how many characters it drops; `rnnkit eval` scores a lines model on the very file it was
trained on."""

import re

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.data import detect_mode, load_text_data, split_lines

pytestmark = pytest.mark.usefixtures("fast_io")

# Python source: short lines (median under 40 characters), many of them indented, blank lines
# between the functions - the shape of the stdlib.txt.
CODE = "".join(f"def f{i}(x):\n    if x > {i}:\n        return x - {i}\n    return x\n\n"
               for i in range(40))
NAMES = "".join(f"{a}{b}\n" for a in ("ann", "bob", "cid", "dee", "eve", "fay", "gus", "hal",
                                       "ida", "jon") for b in ("a", "ie", "o", "y", "elle", "ric"))


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_indented_code_is_read_as_a_stream_keeping_every_character(tmp_path):
    assert detect_mode(CODE) == "stream"
    f = tmp_path / "code.py.txt"
    f.write_text(CODE)
    data = load_text_data(f, seq_len=8, batch_size=4, val_frac=0.0)
    assert data.mode == "stream"
    assert data.vocab.decode(np.asarray(data.train.dataset.ids)) == CODE   # indentation kept


def test_blank_lines_that_separate_paragraphs_make_a_stream():
    poem = "".join(f"line {i} of the verse\n" + ("\n" if i % 4 == 3 else "") for i in range(80))
    assert detect_mode(poem) == "stream"


def test_a_list_of_names_is_still_lines():
    assert detect_mode(NAMES) == "lines"
    assert detect_mode(NAMES + "\n\n") == "lines"           # trailing blank lines: no meaning
    assert detect_mode(" " + NAMES) == "lines"              # one stray space among 60 lines


def test_lines_mode_says_how_many_characters_it_drops(tmp_path):
    f = tmp_path / "code.txt"
    f.write_text(CODE)
    data = load_text_data(f, mode="lines", val_frac=0.0)
    kept = split_lines(CODE)
    dropped = len(CODE) - sum(map(len, kept)) - len(kept)   # one line break kept per line
    assert dropped > 0
    assert re.search(rf"\b{dropped:,} characters dropped", data.summary), data.summary
    clean = tmp_path / "names.txt"
    clean.write_text(NAMES)
    assert "dropped" not in load_text_data(clean, mode="lines").summary


def test_train_prints_the_dropped_count(tmp_path, capsys):
    f = tmp_path / "code.txt"
    f.write_text(CODE)
    code, _, err = cli(capsys, "train", f, "--mode", "lines", "--out", tmp_path / "run",
                       "--steps", 1, "--hidden-size", 8, "--num-layers", 1, "--quiet",
                       "--num-samples", 0)
    assert code == 0 and "characters dropped" in err, err


def test_eval_scores_a_lines_model_on_its_own_training_file(tmp_path, capsys):
    """Leading/trailing blanks and tabs around names: training strips them, and eval used to
    refuse the same file for "characters the model never saw: '\\t', ' '"."""
    text = "".join(f"  {n}\t\n" for n in NAMES.split()) + "\n\n"
    f = tmp_path / "padded.txt"
    f.write_text(text)
    run = tmp_path / "run"
    code, _, err = cli(capsys, "train", f, "--mode", "lines", "--out", run, "--steps", 2,
                       "--hidden-size", 8, "--num-layers", 1, "--quiet", "--num-samples", 0)
    assert code == 0, err
    code, out, err = cli(capsys, "eval", run, f)
    assert code == 0, err
    lines = split_lines(text)
    assert f"characters: {sum(map(len, lines)) + len(lines)}" in out
    dropped = len(text) - sum(map(len, lines)) - len(lines)
    assert f"dropped_characters: {dropped}" in out, out
