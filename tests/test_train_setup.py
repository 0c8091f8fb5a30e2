"""rnnkit.train_setup: what `rnnkit train` builds from its options (the steps, the model, the
TrainConfig), checked against configs and models written out here."""

import types
from pathlib import Path

import numpy as np
import pytest

from rnnkit import nn, train_setup
from rnnkit._validate import Range
from rnnkit.cli import main
from rnnkit.data import BOUNDARY, Vocab, splits, stream
from rnnkit.errors import CheckpointError, ConfigError
from rnnkit.nn import CharLMConfig
from rnnkit.train import TrainConfig
from rnnkit.train_setup import (
    DEFAULT_STEPS,
    TRAIN_DEFAULTS,
    build_model,
    check_option_ranges,
    check_paths,
    check_saved_options,
    default_out,
    option_ranges,
    resolve_options,
    total_steps,
    train_config,
)

pytestmark = pytest.mark.usefixtures("fast_io")


def options(**kw):
    return {**TRAIN_DEFAULTS, **kw}


def test_total_steps_is_steps_or_rounded_epochs_or_the_default():
    assert total_steps(options(steps=7, epochs=3.0), per_epoch=10, default=DEFAULT_STEPS) == 7
    assert total_steps(options(epochs=2.5), per_epoch=9, default=DEFAULT_STEPS) == 22     # round(22.5) = 22
    assert total_steps(options(epochs=0.01), per_epoch=9, default=DEFAULT_STEPS) == 1
    assert total_steps(options(), per_epoch=9, default=DEFAULT_STEPS) == DEFAULT_STEPS


def test_the_character_model_is_the_options_charlm_seeded_by_the_run():
    vocab = Vocab.build(["abc", "cab"], specials=(BOUNDARY,))
    data = types.SimpleNamespace(mode="lines", vocab=vocab)
    o = options(cell="gru", hidden_size=12, num_layers=3, embedding_size=5, dropout=0.1,
                dtype="float64", seed=4, input_dropout=0.2)
    model = build_model(o, data)
    want = nn.CharLMConfig(vocab_size=len(vocab), cell="gru", hidden_size=12, num_layers=3,
                           embedding_size=5, dropout=0.1, dtype="float64", input_dropout=0.2,
                           init=TRAIN_DEFAULTS["init"], forget_bias=TRAIN_DEFAULTS["forget_bias"])
    assert model.config == want
    same = nn.CharLM(want, seed=4).state_dict()
    assert all(np.array_equal(v, same[k]) for k, v in model.state_dict().items())


def test_pairs_runs_refuse_the_character_models_lstm_options():
    data = types.SimpleNamespace(mode="pairs")
    for kw in ({"proj_size": 4}, {"learn_initial_state": True}):
        with pytest.raises(ConfigError, match="pairs"):
            build_model(options(**kw), data)


def test_the_train_config_carries_the_options_and_keeps_the_last_weights():
    o = options(lr=0.02, optimizer="sgd", clip=1.5, schedule="cosine", warmup=3, eval_every=7,
                patience=2, weight_decay=0.01, seed=9)
    cfg = train_config(o, steps=40, quiet=True)
    assert (cfg.steps, cfg.lr, cfg.optimizer, cfg.clip, cfg.schedule, cfg.warmup, cfg.eval_every,
            cfg.patience, cfg.weight_decay, cfg.seed) == (40, 0.02, "sgd", 1.5, "cosine", 3, 7, 2, 0.01, 9)
    assert cfg.restore_best is False and cfg.progress is False
    assert train_config(o, steps=40).progress is None           # a bar on a terminal only


def test_layer_norm_picks_the_cells_layer_normalised_variant_or_is_refused():
    vocab = Vocab.build(["abc"], specials=(BOUNDARY,))
    data = types.SimpleNamespace(mode="lines", vocab=vocab)
    assert build_model(options(cell="lstm", layer_norm=True, hidden_size=8), data).config.cell == "lstm_ln"
    with pytest.raises(ConfigError, match="--layer-norm"):
        build_model(options(cell="rnn", layer_norm=True), data)


# ----------------------------------------------------------------------------- option ranges
def test_every_numeric_option_has_the_range_of_the_setting_it_becomes():
    """One definition per range: each option's Range is the very object of the model config,
    the trainer's config or the data sources (only --epochs and --num-samples are the run's)."""
    numeric = {k for k, v in TRAIN_DEFAULTS.items()
               if (isinstance(v, (int, float)) and not isinstance(v, bool))} | {"steps", "epochs"}
    ranges = option_ranges()
    assert set(ranges) == numeric
    owners = {**{k: CharLMConfig.RANGES[k] for k in ranges if k in CharLMConfig.RANGES},
              **{k: TrainConfig.RANGES[k] for k in ranges if k in TrainConfig.RANGES
                 and k not in CharLMConfig.RANGES},
              "seq_len": stream.SEQ_LEN, "batch_size": stream.BATCH_SIZE,
              "val_frac": splits.VAL_FRAC, **train_setup.RUN_RANGES}
    assert set(owners) == set(ranges)
    assert all(ranges[k] is owners[k] for k in ranges)


def test_narrowing_a_configs_range_narrows_the_command_lines_range(monkeypatch, tmp_path, capsys):
    """Were --dropout's range written a second time in the command line, narrowing the
    config's would leave --dropout 0.6 accepted there (and in a resumed run's saved options)."""
    monkeypatch.setitem(CharLMConfig.RANGES, "dropout", Range("number", 0.0, 0.5, hi_open=True))
    with pytest.raises(ConfigError, match=r"CharLMConfig: expected dropout < 0.5, got 0.6"):
        CharLMConfig(vocab_size=5, dropout=0.6).validate()
    with pytest.raises(ConfigError, match=r"^--dropout: expected a finite number in \[0, 0.5\), got 0.6\.$"):
        check_option_ranges({"dropout": 0.6})
    with pytest.raises(CheckpointError, match=r"saved option dropout: expected a finite number in \[0, 0.5\)"):
        check_saved_options({"dropout": 0.6}, "run/trainer.json")
    text = tmp_path / "names.txt"
    text.write_text("anna\nbob\ncid\n" * 20)
    assert main(["train", str(text), "--dropout", "0.6", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err == "rnnkit: error: --dropout: expected a finite number in [0, 0.5), got 0.6.\n"
    assert not (tmp_path / "run").exists()
    monkeypatch.setitem(TrainConfig.RANGES, "lr", Range("number", 0.0, 1.0, lo_open=True))
    with pytest.raises(ConfigError, match=r"^--lr: expected a finite number in \(0, 1\], got 2\.$"):
        check_option_ranges({"lr": 2.0})


def test_saved_options_out_of_their_choices_or_types_are_damage():
    check_saved_options({"cell": "gru", "optimizer": "sgd", "decoder_cell": ""}, "t.json")
    for saved, needle in (({"cell": "lstm_ln"}, "is not one of"), ({"optimizer": "lbfgs"}, "is not one of"),
                          ({"hidden_size": 1.5}, "wrong type"), ({"seed": -1}, "saved option seed"),
                          ({"colour": 1}, "unknown saved option")):
        with pytest.raises(CheckpointError, match=needle):
            check_saved_options(saved, "t.json")


# ----------------------------------------------------------------------------- the run's decisions
TINY = ["--hidden-size", "8", "--num-layers", "1", "--embedding-size", "4", "--batch-size", "8",
        "--quiet", "--num-samples", "0", "--eval-every", "2", "--threads", "1"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory `rnnkit train` wrote (2 steps on a small names file)."""
    root = tmp_path_factory.mktemp("setup")
    text = root / "names.txt"
    text.write_text("".join(f"{a}{b}\n" for a in ("ann", "bob", "cid", "dee") for b in ("a", "ie", "o", "y")))
    assert main(["train", str(text), "--mode", "lines", "--steps", "2", "--out", str(root / "run"), *TINY]) == 0
    return root / "run"


def test_resuming_continues_the_saved_options_and_refuses_a_changed_one(run_dir):
    o = resolve_options({"steps": 9}, resume=str(run_dir))
    assert (o["steps"], o["epochs"], o["out"], o["hidden_size"], o["mode"]) == (9, None, str(run_dir), 8, "lines")
    with pytest.raises(ConfigError, match=r"--hidden-size 9 differs from the run being resumed \(8\)"):
        resolve_options({"hidden_size": 9}, resume=str(run_dir))


def test_a_run_without_saved_options_is_not_resumed(tmp_path):
    from rnnkit.train import Checkpointing, Trainer
    data = Vocab.build(["abc", "cab"], specials=(BOUNDARY,))
    from rnnkit.data import LinesDataset, LinesSource
    model = nn.CharLM(nn.CharLMConfig(vocab_size=len(data), hidden_size=4, num_layers=1), seed=0)
    src = LinesSource(LinesDataset(["abc", "cab", "bca"], data), batch_size=2, seed=0)
    Trainer(model, src, config=TrainConfig(steps=1, progress=False),
            checkpoint=Checkpointing(tmp_path / "lib-run")).fit()
    with pytest.raises(CheckpointError, match="no saved command-line options"):
        resolve_options({}, resume=str(tmp_path / "lib-run"))


def test_an_occupied_run_directory_is_refused_unless_overwritten(run_dir, tmp_path, capsys):
    import shutil
    from contextlib import ExitStack

    from rnnkit.checkpoint import has_checkpoint
    from rnnkit.train_run import open_run
    with pytest.raises(ConfigError, match=r"already holds a checkpoint.*--resume .*--overwrite"):
        check_paths(str(run_dir), None)
    check_paths(str(run_dir), None, overwrite=True)
    with pytest.raises(ConfigError, match="differs from --resume"):
        check_paths(str(tmp_path / "other"), str(run_dir))
    with pytest.raises(ConfigError, match="pass only one of them"):
        check_paths(None, str(run_dir), overwrite=True)
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    with ExitStack() as stack, pytest.raises(ConfigError, match="already holds a checkpoint"):
        open_run(copy, False, stack, "rnnkit train (test)")
    (copy / "notes.txt").write_text("mine")
    with ExitStack() as stack:
        open_run(copy, True, stack, "rnnkit train (test)")
    assert not has_checkpoint(copy) and (copy / "notes.txt").read_text() == "mine"
    assert "--overwrite: deleted the previous run in" in capsys.readouterr().err
    assert default_out("nothing-here-yet") == Path("runs") / "nothing-here-yet"


def test_the_data_is_the_file_or_the_named_corpus_or_the_names(tmp_path):
    from rnnkit import datasets
    from rnnkit.train_run import fit_options_to_data, run_data
    names = run_data(options(), tmp_path)
    assert names.name == "names" and names.mode == "lines"
    assert names.train_lines is not None and set(names.train_lines) <= set(datasets.names())
    assert run_data(options(dataset="names"), tmp_path).train_lines == names.train_lines
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{n} {m}\t{m} {n}\n" for n in "abcdefgh" for m in "xyz"))
    pairs_data = run_data(options(file=str(pairs)), tmp_path)
    assert pairs_data.mode == "pairs"
    text = tmp_path / "prose.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 400)
    prose = run_data(options(file=str(text), seq_len=20, batch_size=4), tmp_path)
    assert prose.mode == "stream" and len(prose.vocab) == len(set(text.read_text()))
    o = options()
    fit_options_to_data(o, pairs_data, given={}, resumed=False)          # the seq2seq recipe
    assert (o["mode"], o["hidden_size"], o["num_layers"]) == ("pairs", 64, 1)
    o = options(hidden_size=20)
    fit_options_to_data(o, pairs_data, given={"hidden_size": 20}, resumed=False)
    assert o["hidden_size"] == 20
    with pytest.raises(ConfigError, match="--weight-drop applies to the character models"):
        fit_options_to_data(options(), pairs_data, given={"weight_drop": 0.1}, resumed=False)
    o = options(cell="rnn")
    fit_options_to_data(o, names, given={"cell": "rnn"}, resumed=False)
    assert o["forget_bias"] is None                      # no forget gate, no default bias


def test_an_option_trainer_json_cannot_hold_is_refused_before_training():
    from rnnkit.train_run import recorded_options
    assert recorded_options(options(file="/data/names.txt"))["file"] == "/data/names.txt"
    with pytest.raises(ConfigError, match="cannot be recorded in trainer.json"):
        recorded_options(options(file="/data/na\udcffmes.txt"))
