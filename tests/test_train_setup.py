"""rnnkit.train_setup: what `rnnkit train` builds from its options (the steps, the model, the
TrainConfig), checked against configs and models written out here."""

import types

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
    check_saved_options,
    option_ranges,
    total_steps,
    train_config,
)


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
