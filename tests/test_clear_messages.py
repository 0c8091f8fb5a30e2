"""Errors that used to be the catch-all or to name the wrong thing: each is now one line
naming what is at fault (the option, the file and its key), and tensors are taken wherever
arrays are, as docs/reliability.md says."""

import json
import shutil

import numpy as np
import pytest

import rnnkit.nn as nn
from rnnkit.checkpoint import list_versions
from rnnkit.cli import main
from rnnkit.data import Vocab
from rnnkit.errors import ConfigError
from rnnkit.sample import sample_lines
from tests.needs import require
from tests.run_edits import rehash_manifest

pytestmark = pytest.mark.usefixtures("fast_io")

TEXT = "the quick brown fox jumps over the lazy dog. " * 40
TINY = ["--hidden-size", "8", "--num-layers", "1", "--seq-len", "8", "--batch-size", "4",
        "--quiet", "--num-samples", "0"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("messages")
    f = root / "text.txt"
    f.write_text(TEXT)
    out = root / "run"
    assert main(["train", str(f), "--out", str(out), "--steps", "4", "--eval-every", "2",
                 "--mode", "stream", *TINY]) == 0
    return out


def _one_line(capsys, *argv):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code in (1, 2) and len(err.strip().splitlines()) == 1, err
    assert "unexpected" not in err, err
    return err


def test_explore_negative_seed_names_the_option(run, tmp_path, capsys):
    err = _one_line(capsys, "explore", run, "--seed", -1, "--out", tmp_path / "p.html")
    assert "--seed" in err or "seed" in err


@pytest.mark.parametrize("key,value", [("mode", "poem"), ("cell", "transformer"), ("optimizer", "lbfgs"),
                                       ("dtype", "float16")])
def test_a_damaged_saved_choice_names_trainer_json(run, tmp_path, capsys, key, value):
    d = tmp_path / "run"
    shutil.copytree(run, d)
    for v in list_versions(d):
        tj = json.loads((v / "trainer.json").read_text())
        tj["extra"]["cli"][key] = value
        (v / "trainer.json").write_text(json.dumps(tj))
        rehash_manifest(v)
    err = _one_line(capsys, "train", "--resume", d, "--steps", 6)
    assert "trainer.json" in err and key in err and f"--{key}" not in err, err


def test_a_run_whose_versions_were_deleted_says_so(run, tmp_path, capsys):
    d = tmp_path / "run"
    shutil.copytree(run, d)
    for v in list_versions(d):
        shutil.rmtree(v)
    shutil.rmtree(d / "best", ignore_errors=True)
    err = _one_line(capsys, "train", "--resume", d, "--steps", 6)
    assert "not written by" not in err and "version" in err, err


@pytest.mark.parametrize("engine", ["numpy", pytest.param("torch", marks=pytest.mark.slow)])
def test_a_carried_state_of_another_batch_size_names_the_file(run, tmp_path, capsys, engine):
    if engine == "torch":
        require("torch")
    from rnnkit.io import load_safetensors, save_safetensors
    d = tmp_path / "run"
    shutil.copytree(run, d)
    for v in list_versions(d):
        arrays = load_safetensors(v / "trainer.safetensors")
        save_safetensors(v / "trainer.safetensors",
                         {k: np.concatenate([a, a], axis=1) for k, a in arrays.items()})
        rehash_manifest(v)
    err = _one_line(capsys, "train", "--resume", d, "--steps", 6, "--engine", engine)
    assert "trainer.safetensors" in err and "batch" in err, err


def test_sample_lines_needs_max_len_of_at_least_one():
    vocab = Vocab.build(["ab", "ba"], specials=("<eos>",))
    cfg = nn.CharLMConfig(vocab_size=len(vocab), hidden_size=4, num_layers=1, embedding_size=2)
    step = nn.CharLM(cfg, seed=0).stepper().step
    with pytest.raises(ConfigError, match="max_len"):
        sample_lines(step, vocab, 2, np.random.default_rng(0), max_len=0)


def test_layers_take_tensors_that_require_grad_and_bfloat16():
    require("torch")
    import torch
    layer = nn.LSTM(3, 4, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    ref, _ = layer(x)
    out, _ = layer(torch.tensor(x, requires_grad=True))
    np.testing.assert_array_equal(out, ref)
    xb = torch.tensor(x).to(torch.bfloat16)
    out_b, _ = layer(xb)
    ref_b, _ = layer(xb.float().numpy())                # bfloat16 widened exactly
    np.testing.assert_array_equal(out_b, ref_b)
