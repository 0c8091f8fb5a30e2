"""rnnkit.train_setup: what `rnnkit train` builds from its options (the steps, the model, the
TrainConfig), checked against configs and models written out here."""

import types

import numpy as np
import pytest

from rnnkit import nn
from rnnkit.cli import DEFAULT_STEPS, TRAIN_DEFAULTS
from rnnkit.data import BOUNDARY, Vocab
from rnnkit.errors import ConfigError
from rnnkit.train_setup import build_model, total_steps, train_config


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
