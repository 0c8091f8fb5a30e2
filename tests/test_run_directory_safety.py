"""What a run directory tolerates: directories named like versions that rnnkit did not write
(numbering and the keep-N rule count only its own versions; a version number of any length
loads), output paths inside a run refused for every command, and saved numbers checked finite
and in range when trainer.json is read."""

import json
import shutil

import numpy as np
import pytest

from rnnkit.checkpoint import list_versions, load_checkpoint, save_checkpoint
from rnnkit.cli import main
from rnnkit.errors import CheckpointError, ConfigError
from tests.run_edits import rehash_manifest

pytestmark = pytest.mark.usefixtures("fast_io")

TEXT = "the quick brown fox jumps over the lazy dog. " * 40


def _save(d, step):
    return save_checkpoint(d, model_state={"w": np.full(3, step, np.float32)},
                           config={"model": "Toy"}, trainer_state={"step": step})


def test_a_stray_directory_numbered_past_12_digits_does_not_hide_later_saves(tmp_path):
    d = tmp_path / "run"
    _save(d, 1)
    (d / "ckpt-999999999999").mkdir()                     # a stray, not written by rnnkit
    _save(d, 2)
    _save(d, 3)                                           # used to crash (13 digits unseen)
    assert load_checkpoint(d).trainer_state["step"] == 3
    assert (d / "ckpt-999999999999").is_dir()             # not ours: left alone


def test_a_real_version_numbered_at_12_digits_is_followed_by_a_loadable_one(tmp_path):
    d = tmp_path / "run"
    _save(d, 1)
    v = list_versions(d)[0]
    m = json.loads((v / "checkpoint.json").read_text())
    big = v.parent / "ckpt-999999999999"
    shutil.copytree(v, big)
    m["version"] = 999999999999
    (big / "checkpoint.json").write_text(json.dumps(m))
    _save(d, 2)
    assert load_checkpoint(d).trainer_state["step"] == 2


def test_keep_counts_only_rnnkits_own_versions(tmp_path):
    """A fake ckpt-000003 (e.g. made by an output path) used to count as one of the two kept
    versions, so the real fallback was deleted."""
    d = tmp_path / "run"
    _save(d, 1)
    _save(d, 2)
    (d / "ckpt-000003").mkdir()
    (d / "ckpt-000003" / "page.html").write_text("<html>")
    final = _save(d, 4)
    ours = [p.name for p in list_versions(d) if (p / "checkpoint.json").exists()]
    assert final.name == "ckpt-000004"
    assert ours == ["ckpt-000004", "ckpt-000002"]           # the fallback survives
    assert (d / "ckpt-000003" / "page.html").exists()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    f = root / "text.txt"
    f.write_text(TEXT)
    out = root / "run"
    assert main(["train", str(f), "--out", str(out), "--steps", "4", "--eval-every", "2",
                 "--hidden-size", "8", "--num-layers", "1", "--seq-len", "8", "--batch-size", "4",
                 "--mode", "stream", "--quiet", "--num-samples", "0"]) == 0
    return out


def _one_line_error(capsys, argv):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code in (1, 2) and len(err.strip().splitlines()) == 1, err
    assert "unexpected" not in err, err
    return err


@pytest.mark.parametrize("where", ["ckpt-000003/page.html", "ckpt-000002/page.html", "best/x/page.html"])
def test_explore_out_inside_a_run_is_refused_and_creates_nothing(run, capsys, where):
    before = sorted(p.name for p in run.iterdir())
    err = _one_line_error(capsys, ["explore", run, "--out", run / where])
    assert "--out" in err
    assert sorted(p.name for p in run.iterdir()) == before


def test_train_out_inside_a_run_is_refused(run, capsys):
    err = _one_line_error(capsys, ["train", "--out", run / "ckpt-000009", "--steps", "1"])
    assert "--out" in err and not (run / "ckpt-000009").exists()


def _damaged_copy(run, tmp_path, edit):
    d = tmp_path / "damaged"
    shutil.copytree(run, d)
    for v in list_versions(d) + [d / "best"]:
        if (v / "trainer.json").exists():
            text = (v / "trainer.json").read_text()
            (v / "trainer.json").write_text(edit(text))
            rehash_manifest(v)
    return d


def _set(key, literal):
    def edit(text):
        obj = json.loads(text)
        obj[key] = "__X__"
        return json.dumps(obj).replace('"__X__"', literal)
    return edit


@pytest.mark.parametrize("key,literal", [("loss_ema", "1e400"), ("best_val_loss", "1e400"),
                                         ("initial_loss", "-1e400"), ("loss_ema", "-3.5")])
def test_saved_numbers_out_of_range_are_refused_naming_file_and_key(run, tmp_path, capsys, key, literal):
    d = _damaged_copy(run, tmp_path, _set(key, literal))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(d)
    assert "trainer.json" in str(e.value) and key in str(e.value), str(e.value)
    err = _one_line_error(capsys, ["train", "--resume", d, "--steps", "6"])
    assert key in err and "trainer.json" in err
    code = main(["info", str(d), "--json"])
    out, err = capsys.readouterr()
    assert "Infinity" not in out
    if code == 0:
        json.loads(out)                                    # strict JSON
    else:
        assert key in err


def test_a_history_value_out_of_range_is_refused(run, tmp_path):
    def edit(text):
        obj = json.loads(text)
        obj["history"][0]["val_loss"] = "__X__"
        return json.dumps(obj).replace('"__X__"', "1e999")
    d = _damaged_copy(run, tmp_path, edit)
    with pytest.raises(CheckpointError, match=r"trainer.json.*history\[0\]\['val_loss'\]"):
        load_checkpoint(d)


def test_export_and_plot_still_refuse_inside_a_run(run, capsys):
    _one_line_error(capsys, ["export", run, "--onnx", run / "ckpt-000004" / "m.onnx"])
    assert isinstance(ConfigError("x"), ValueError)
