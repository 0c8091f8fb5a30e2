"""What ``rnnkit train`` builds from its options: the options themselves (their defaults,
ranges and choices), the number of steps, the model and the :class:`~rnnkit.train.TrainConfig`.

``o`` is the dict of the command's options (the keys of :data:`TRAIN_DEFAULTS`), after the
command line has parsed them and resolved them against a resumed run. The command line
parses, prints and holds the run directory; the decisions of the set-up are these functions
(tested in tests/test_train_setup.py).

Each option's range is defined once, by the setting it becomes (:func:`option_ranges`):
``--hidden-size`` is ``CharLMConfig.RANGES["hidden_size"]``, ``--lr`` is
``TrainConfig.RANGES["lr"]``, ``--batch-size`` is :data:`rnnkit.data.stream.BATCH_SIZE`; only
the options that become no setting of the library (``--epochs``, ``--num-samples``) have
their range here.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._validate import Range
from .cells import CELLS
from .data.corpus import MODES
from .data.splits import VAL_FRAC
from .data.stream import BATCH_SIZE, SEQ_LEN
from .datasets import CORPORA
from .engines import ENGINES
from .errors import CheckpointError, ConfigError
from .nn.models import DTYPES, REGULARISER_KEYS, CharLM, CharLMConfig
from .nn.module import Module
from .nn.regularise import INITS
from .nn.seq2seq import ATTENTIONS
from .optim import OPTIMIZERS, SCHEDULE_NAMES
from .train import TrainConfig

#: Defaults of `rnnkit train` (kept here, not in argparse, so --resume can tell which options
#: the user actually gave).
TRAIN_DEFAULTS = dict(
    file=None, dataset=None, out=None, cell="lstm", hidden_size=128, num_layers=2,
    embedding_size=32, dropout=0.2, seq_len=100, batch_size=64, optimizer="adam", lr=3e-3,
    clip=5.0, steps=None, epochs=None, val_frac=0.1, eval_every=100, mode="auto", seed=0,
    dtype="float32", encoding="utf-8", schedule="constant", warmup=0, patience=0,
    weight_decay=0.0, num_samples=10, engine="numpy", attention="additive", decoder_cell="",
    proj_size=0, learn_initial_state=False,
    input_dropout=0.0, output_dropout=0.0, recurrent_dropout=0.0, weight_drop=0.0,
    embedding_dropout=0.0, init="orthogonal", forget_bias=1.0, layer_norm=False,
)
#: The regularisers' values in runs saved before they existed (resumed with these, whatever
#: today's defaults are).
REGULARISERS_OFF = dict(input_dropout=0.0, output_dropout=0.0, recurrent_dropout=0.0,
                        weight_drop=0.0, embedding_dropout=0.0, init="uniform", forget_bias=None,
                        layer_norm=False)
#: Steps of a run given neither --steps nor --epochs (pairs runs: ``pairs_run.PAIRS_STEPS``).
DEFAULT_STEPS = 1000
#: Options that may change when resuming; all others must match the checkpoint.
RESUMABLE = {"steps", "epochs", "eval_every", "patience", "num_samples", "out", "engine"}

#: The ranges of the options that become no setting of the library.
RUN_RANGES = {"num_samples": Range("int", 0), "epochs": Range("number", 0.0, lo_open=True)}

#: The choices of every option of `rnnkit train` that has a fixed set of values (the parser's
#: ``choices``, and what a saved option may hold).
OPTION_CHOICES = {
    "dataset": tuple(CORPORA), "cell": tuple(c for c, s in CELLS.items() if not s.layer_norm),
    "init": INITS, "optimizer": tuple(OPTIMIZERS), "schedule": SCHEDULE_NAMES, "mode": MODES,
    "attention": ATTENTIONS, "decoder_cell": tuple(CELLS), "engine": ENGINES, "dtype": DTYPES,
}


def option_ranges() -> dict[str, Range]:
    """The range of every numeric option of `rnnkit train`, option -> :class:`Range`: the range
    of the setting each becomes (the model's, the trainer's, the data sources'), read from
    there at each call, and :data:`RUN_RANGES`."""
    data = {"seq_len": SEQ_LEN, "batch_size": BATCH_SIZE, "val_frac": VAL_FRAC}
    out: dict[str, Range] = {}
    for table in (CharLMConfig.RANGES, TrainConfig.RANGES, data, RUN_RANGES):
        for key, r in table.items():
            if key in TRAIN_DEFAULTS:
                out.setdefault(key, r)
    return out


def range_problem(key: str, value: object) -> str | None:
    """Why ``value`` is not a valid value of option ``key`` (see :func:`option_ranges`), or
    None (also for an option without a range, and for None)."""
    r = option_ranges().get(key)
    return None if r is None or value is None else r.problem(value)


def check_option_ranges(given: dict) -> None:
    """Refuse the first option of ``given`` (option -> value) out of its range, named as the
    command line spells it (``--hidden-size: expected ...``)."""
    for k, v in given.items():
        problem = range_problem(k, v)
        if problem:
            raise ConfigError(f"--{k.replace('_', '-')}: {problem}.")


__all__ = ["Range", "TRAIN_DEFAULTS", "REGULARISERS_OFF", "DEFAULT_STEPS", "RESUMABLE", "OPTION_CHOICES",
           "RUN_RANGES", "option_ranges", "range_problem", "check_option_ranges",
           "check_saved_options", "resolve_options", "default_out", "check_paths", "occupied",
           "total_steps",
           "build_model", "train_config"]


def check_saved_options(saved: dict, path: object) -> None:
    """The options saved by `rnnkit train` in trainer.json (``path``) have the types of
    :data:`TRAIN_DEFAULTS` (an option whose default is None may be null, a string or a
    number), the ranges of :func:`option_ranges` and the choices of :data:`OPTION_CHOICES`;
    anything else means the file is damaged or hostile (:class:`CheckpointError`)."""
    for k, v in saved.items():
        if k not in TRAIN_DEFAULTS:
            raise CheckpointError(f"{path}: unknown saved option {k!r:.60}; the file is damaged or "
                                  f"was written by another program.")
        d = TRAIN_DEFAULTS[k]
        if d is None:
            ok = v is None or (isinstance(v, (str, int, float)) and not isinstance(v, bool))
            if k in ("file", "dataset", "out"):
                ok = v is None or isinstance(v, str)
        elif isinstance(d, float):
            ok = (isinstance(v, (int, float)) and not isinstance(v, bool)) or (
                v is None and REGULARISERS_OFF.get(k, 0.0) is None)    # e.g. no forget bias
        else:
            ok = type(v) is type(d)
        if not ok:
            raise CheckpointError(f"{path}: saved option {k} = {v!r:.60} has the wrong type; the "
                                  f"file is damaged.")
        problem = range_problem(k, v)
        if problem:
            raise CheckpointError(f"{path}: saved option {k}: {problem}; the file is damaged.")
        choices = OPTION_CHOICES.get(k)
        if choices is not None and v not in (None, d) and v not in choices:
            raise CheckpointError(f"{path}: saved option {k} = {v!r:.60} is not one of "
                                  f"{', '.join(map(str, choices))}; the file is damaged.")


def resolve_options(given: dict, resume: str | None = None, allow_other_text: bool = False) -> dict:
    """The options of a run (``o``, every key of :data:`TRAIN_DEFAULTS`): the defaults updated
    with ``given`` (option -> value, the options the user gave) for a new run; for ``resume``
    (a run directory), the options saved in its trainer.json (checked:
    :func:`check_saved_options`), of which only :data:`RESUMABLE` ones may change. A run with
    no saved options, or with no checkpoint version left, is refused
    (:class:`CheckpointError`); a changed option is a :class:`ConfigError`. The run's own text
    is found again by path and SHA-256 (``allow_other_text`` accepts another one)."""
    given = dict(given)
    if resume:
        from .checkpoint import list_versions, load_checkpoint
        ck = load_checkpoint(resume, load_optimizer=False)
        saved = ((ck.trainer_state or {}).get("extra") or {}).get("cli")
        if not isinstance(saved, dict) and not list_versions(resume) and \
                Path(ck.path) == Path(resume) and (Path(resume) / "LATEST").exists():
            raise CheckpointError(f"{resume}: no checkpoint version is left (the ckpt-* "
                                  f"directories were deleted; only the copies of the newest model "
                                  f"remain, which hold no training state), so there is nothing to "
                                  f"resume. Sample or export it as it is, or start over with "
                                  f"`rnnkit train --out {resume} --overwrite`.")
        if not isinstance(saved, dict):
            raise CheckpointError(f"{resume}: trainer.json has no saved command-line options; "
                                  f"it was not written by `rnnkit train` and cannot be resumed from the CLI.")
        check_saved_options(saved, Path(ck.path) / "trainer.json")
        opts = {**TRAIN_DEFAULTS, **REGULARISERS_OFF}
        opts.update(saved)
        if saved.get("file"):             # the run's own text, by absolute path and SHA-256
            from .data.corpus import resumed_text
            opts["file"] = resumed_text(saved["file"], ck.trainer_state["extra"].get("text"),
                                        given.pop("file", None), run=resume,
                                        allow_other=allow_other_text)
        for k, v in given.items():
            if k in RESUMABLE:
                opts[k] = v
            elif v != saved.get(k):
                opt = "FILE" if k == "file" else f"--{k.replace('_', '-')}"
                raise ConfigError(f"{opt} {v} differs from the run being resumed "
                                  f"({saved.get(k)}); resuming continues the same run. Drop the option, "
                                  f"or start a new run with --out.")
        if "steps" in given:
            opts["epochs"] = None
        elif "epochs" in given:
            opts["steps"] = None
        opts["out"] = resume
        return opts
    opts = dict(TRAIN_DEFAULTS)
    opts.update(given)
    if opts["file"]:
        opts["file"] = os.path.abspath(opts["file"])       # --resume from anywhere reads it
    return opts


def default_out(name: str) -> Path:
    """The run directory of a run given no --out: ``runs/<name>``, or the first free
    ``runs/<name>-N`` when that one holds a run."""
    from .checkpoint import has_checkpoint
    base = Path("runs") / name
    if not (base.exists() and has_checkpoint(base)):
        return base
    k = 2
    while (Path("runs") / f"{name}-{k}").exists():
        k += 1
    return Path("runs") / f"{name}-{k}"


def check_paths(out: str | None, resume: str | None, overwrite: bool = False,
                tensorboard: str | None = None) -> None:
    """Refuse unusable or contradictory directories (--out, --resume, --overwrite,
    --tensorboard) before any work starts: an --out that holds a run without ``overwrite``
    (:func:`occupied`), a --resume that is no directory or goes with another --out or with
    --overwrite."""
    from .checkpoint import check_not_inside_run, has_checkpoint
    from .io import check_output_dir
    if tensorboard is not None:
        from .tblog import check_logdir
        check_logdir(tensorboard, "--tensorboard")
    if resume is not None:
        if not resume.strip():
            raise ConfigError("--resume: expected a run directory, got an empty string.")
        if overwrite:
            raise ConfigError("--overwrite starts a run over and --resume continues one; pass only "
                              "one of them.")
        if out is not None and Path(out) != Path(resume):
            raise ConfigError(f"--out {out} differs from --resume {resume}: a resumed run "
                              f"continues in its own directory. Drop --out (or copy the directory "
                              f"and resume the copy).")
        if not Path(resume).is_dir():
            what = "a file, not a directory" if Path(resume).exists() else "nothing there"
            raise CheckpointError(f"--resume: no checkpoint at {resume} ({what}); pass the "
                                  f"directory `rnnkit train --out DIR` wrote.")
    elif out is not None:
        out_dir = check_output_dir(out, "--out")
        check_not_inside_run(out_dir, "--out")
        if out_dir.is_dir() and has_checkpoint(out_dir) and not overwrite:
            raise occupied(out_dir)


def occupied(out: str | os.PathLike) -> ConfigError:
    """The refusal of an --out directory that holds a run (checked before any work by
    :func:`check_paths`, and again under the run lock by :func:`rnnkit.train_run.open_run`)."""
    return ConfigError(f"--out {out} already holds a checkpoint. Continue it with "
                       f"`rnnkit train --resume {out}`, choose another --out, or pass "
                       f"--overwrite to start over there.")


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
