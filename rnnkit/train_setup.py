"""What ``rnnkit train`` builds from its resolved options: the number of steps, the model and
the :class:`~rnnkit.train.TrainConfig`.

``o`` is the dict of the command's options (the keys of ``rnnkit.cli.TRAIN_DEFAULTS``), after
the command line has parsed them and resolved them against a resumed run. The command line
parses, prints and holds the run directory; the decisions of the set-up are these functions
(tested in tests/test_train_setup.py).
"""

from __future__ import annotations

from .cells import CELLS
from .errors import ConfigError
from .nn.models import REGULARISER_KEYS, CharLM, CharLMConfig
from .nn.module import Module
from .train import TrainConfig

__all__ = ["total_steps", "build_model", "train_config"]


def total_steps(o: dict, per_epoch: int, default: int) -> int:
    """``--steps``, or ``--epochs`` passes over the training data (at least one step), or
    ``default``."""
    if o["steps"] is not None:
        return o["steps"]
    if o["epochs"] is not None:
        return max(1, int(round(o["epochs"] * per_epoch)))
    return default


def build_model(o: dict, data: object) -> Module:
    """The freshly initialised model of a run (seeded by ``o["seed"]``): a
    :class:`~rnnkit.nn.CharLM` over ``data.vocab`` in lines and stream mode (the cell's
    layer-normalised variant with ``layer_norm``), the
    :class:`~rnnkit.nn.Seq2Seq` of :mod:`rnnkit.pairs_run` in pairs mode (which refuses the
    character model's ``proj_size`` and ``learn_initial_state``)."""
    if data.mode == "pairs":
        from . import pairs_run
        if o["proj_size"] or o["learn_initial_state"]:
            raise ConfigError("--proj-size and --learn-initial-state shape a character model's "
                              "LSTM; a pairs (sequence-to-sequence) run has neither. Drop them.")
        return pairs_run.build_model(o, data)
    cell = CELLS[o["cell"]].name + ("_ln" if o.get("layer_norm") else "")
    if cell not in CELLS:
        raise ConfigError(f"--layer-norm: expected --cell lstm or gru (the cells with a "
                          f"layer-normalised variant), got --cell {o['cell']}.")
    cfg = CharLMConfig(vocab_size=len(data.vocab), cell=cell, hidden_size=o["hidden_size"],
                       num_layers=o["num_layers"], embedding_size=o["embedding_size"],
                       dropout=o["dropout"], dtype=o["dtype"], proj_size=o["proj_size"],
                       learn_initial_state=o["learn_initial_state"],
                       **{k: o[k] for k in REGULARISER_KEYS})
    return CharLM(cfg, seed=o["seed"])


def train_config(o: dict, steps: int, quiet: bool = False) -> TrainConfig:
    """The :class:`~rnnkit.train.TrainConfig` of a run: the optimizer, schedule, clipping,
    evaluation and early-stopping options; the last weights are kept (``best/`` holds the best
    ones), and a progress bar is shown on a terminal unless ``quiet``."""
    return TrainConfig(steps=steps, lr=o["lr"], optimizer=o["optimizer"], clip=o["clip"],
                       schedule=o["schedule"], warmup=o["warmup"], eval_every=o["eval_every"],
                       patience=o["patience"], weight_decay=o["weight_decay"], seed=o["seed"],
                       restore_best=False, progress=False if quiet else None)
