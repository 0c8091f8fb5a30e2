"""What `rnnkit train` says: --steps is the total (a resumed run already there says so and
does nothing), samples during training are printed unambiguously, dropout that cannot act
(one layer) is warned about as PyTorch does, and no note about a dropout stream is printed
for it."""

import json
import warnings

import pytest

import rnnkit.nn as nn
from rnnkit.checkpoint import load_checkpoint
from rnnkit.cli import build_parser, main

pytestmark = pytest.mark.usefixtures("fast_io")

NAMES = "".join(f"{a}{b}\n" for a in ("ann", "bob", "cid", "dee", "eve", "fay", "gus", "hal",
                                       "ida", "jon") for b in ("a", "ie", "o", "y", "elle", "ric"))
TINY = ["--hidden-size", "8", "--num-layers", "1", "--batch-size", "8", "--embedding-size", "4"]


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_steps_help_says_it_is_the_total():
    t = build_parser()._subparsers._group_actions[0].choices["train"]
    steps = next(a for a in t._actions if "--steps" in a.option_strings)
    assert "total" in steps.help and "--resume" in steps.help, steps.help
    assert "a few minutes" not in t.description


def test_resume_already_at_steps_says_so_and_does_not_sample_again(tmp_path, capsys):
    f = tmp_path / "names.txt"
    f.write_text(NAMES)
    run = tmp_path / "run"
    code, _, _ = _cli(capsys, "train", f, "--out", run, "--steps", 4, "--eval-every", 2, *TINY)
    assert code == 0
    code, out, err = _cli(capsys, "train", "--resume", run, "--steps", 4)
    assert code == 0, err
    assert "total" in err and "already at step 4" in err, err
    assert "completed" not in err and out == "", (out, err)
    assert load_checkpoint(run).trainer_state["step"] == 4


def test_samples_during_training_are_an_unambiguous_list(tmp_path, capsys):
    f = tmp_path / "names.txt"
    f.write_text(NAMES.replace("anna\n", "an, na\n"))
    code, _, err = _cli(capsys, "train", f, "--out", tmp_path / "run", "--steps", 2, "--eval-every", 1,
                        "--num-samples", 0, *TINY)
    assert code == 0
    lines = [ln for ln in err.splitlines() if ln.strip().startswith("samples:")]
    assert lines, err
    for ln in lines:
        samples = json.loads(ln.split("samples:", 1)[1])
        assert isinstance(samples, list) and len(samples) == 5


def test_dropout_with_one_layer_is_warned_like_pytorch():
    with pytest.warns(UserWarning, match="num_layers"):
        nn.LSTM(3, 4, num_layers=1, dropout=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nn.LSTM(3, 4, num_layers=2, dropout=0.3)
        nn.LSTM(3, 4, num_layers=1, dropout=0.0)


def test_train_dropout_one_layer_warns_once_and_resume_prints_no_dropout_note(tmp_path, capsys):
    f = tmp_path / "names.txt"
    f.write_text(NAMES)
    run = tmp_path / "run"
    code, _, err = _cli(capsys, "train", f, "--out", run, "--steps", 2, "--dropout", 0.3,
                        "--num-samples", 0, "--quiet", *TINY)
    assert code == 0
    assert err.count("rnnkit: warning:") == 1 and "dropout" in err, err
    from rnnkit.engines.numpy import NumpyEngine  # noqa: F401  (the engine the run used)
    from rnnkit.load import load_model
    model = load_model(run).model
    from rnnkit.engines import make_engine
    from rnnkit.train import TrainConfig
    assert not make_engine("numpy", model, TrainConfig(steps=1)).uses_dropout
