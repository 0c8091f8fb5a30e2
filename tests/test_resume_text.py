"""`rnnkit train --resume` continues on the text the run was trained on: the absolute path
and a SHA-256 of the text are saved; another text (another directory's input.txt, an edited
file) is refused naming both, unless --allow-other-text says it is meant."""

import json
import os

import pytest

from rnnkit.checkpoint import load_checkpoint
from rnnkit.cli import main

pytestmark = pytest.mark.usefixtures("fast_io")

A_TEXT = "the quick brown fox jumps over the lazy dog. " * 30
B_TEXT = "the lazy dog jumps over the quick brown fox. " * 30       # the same characters
OPTS = ["--hidden-size", "8", "--num-layers", "1", "--seq-len", "8", "--batch-size", "4",
        "--mode", "stream", "--quiet", "--num-samples", "0", "--eval-every", "2"]


@pytest.fixture
def layout(tmp_path, monkeypatch, capsys):
    """char-rnn's layout: data/a/input.txt and data/b/input.txt; a run trained from data/a
    with the relative path input.txt."""
    a, b = tmp_path / "data" / "a", tmp_path / "data" / "b"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    (a / "input.txt").write_text(A_TEXT)
    (b / "input.txt").write_text(B_TEXT)
    run = tmp_path / "run"
    monkeypatch.chdir(a)
    assert main(["train", "input.txt", "--out", str(run), "--steps", "2", *OPTS]) == 0
    capsys.readouterr()
    return a, b, run


def _resume(capsys, *argv):
    code = main(["train", "--resume", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, err


def test_the_absolute_path_and_the_texts_hash_are_saved(layout):
    a, _, run = layout
    extra = load_checkpoint(run).trainer_state["extra"]
    assert extra["cli"]["file"] == str(a / "input.txt")
    import hashlib
    assert extra["text"]["sha256"] == hashlib.sha256(A_TEXT.encode()).hexdigest()


def test_resume_from_another_directory_trains_on_the_runs_own_text(layout, monkeypatch, capsys):
    a, b, run = layout
    monkeypatch.chdir(b)                                     # B/input.txt exists too
    code, err = _resume(capsys, run, "--steps", "4")
    assert code == 0, err
    assert load_checkpoint(run).trainer_state["step"] == 4
    assert str(a / "input.txt") in err and str(b / "input.txt") not in err, err


def test_another_text_given_on_resume_is_refused_naming_both(layout, monkeypatch, capsys):
    a, b, run = layout
    monkeypatch.chdir(b)
    code, err = _resume(capsys, run, "input.txt", "--steps", "4")
    assert code in (1, 2) and len(err.strip().splitlines()) == 1, err
    assert str(a / "input.txt") in err and str(b / "input.txt") in err and "--allow-other-text" in err
    assert load_checkpoint(run).trainer_state["step"] == 2
    code, err = _resume(capsys, run, "input.txt", "--steps", "4", "--allow-other-text")
    assert code == 0, err
    extra = load_checkpoint(run).trainer_state["extra"]
    assert extra["cli"]["file"] == str(b / "input.txt")       # the run now continues on B


def test_an_edited_text_is_refused_and_a_moved_copy_accepted(layout, monkeypatch, capsys):
    a, b, run = layout
    (a / "input.txt").write_text(A_TEXT + "more of the lazy dog. ")
    code, err = _resume(capsys, run, "--steps", "4")
    assert code in (1, 2) and "SHA-256" in err and str(a / "input.txt") in err, err
    (a / "input.txt").write_text(A_TEXT)
    os.rename(a / "input.txt", b / "moved.txt")
    code, err = _resume(capsys, run, b / "moved.txt", "--steps", "4")     # same text, new place
    assert code == 0, err


def test_a_run_saved_with_a_relative_path_still_resumes_from_its_directory(layout, monkeypatch, capsys):
    """Runs written before the path was saved absolute: FILE is read relative to the current
    directory, as before, and a warning says so."""
    a, b, run = layout
    for v in [p for p in run.iterdir() if p.name.startswith("ckpt-")]:
        tj = json.loads((v / "trainer.json").read_text())
        tj["extra"]["cli"]["file"] = "input.txt"
        tj["extra"].pop("text", None)
        (v / "trainer.json").write_text(json.dumps(tj))
        import hashlib
        m = json.loads((v / "checkpoint.json").read_text())
        data = (v / "trainer.json").read_bytes()
        m["files"]["trainer.json"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        (v / "checkpoint.json").write_text(json.dumps(m))
    monkeypatch.chdir(a)
    code, err = _resume(capsys, run, "--steps", "4")
    assert code == 0 and "relative" in err, err
