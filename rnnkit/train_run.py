"""``rnnkit train`` after its command line is parsed: the run directory and its lock, the data,
the trainer, the training and what the run prints.

The command line (``rnnkit.cli``) parses the options and calls :func:`prepare` (the
options checked and resolved: :mod:`rnnkit.train_setup`) and :func:`train_command`. What the
run decides is here, each decision a function tested on its own
(tests/test_train_setup.py): :func:`open_run` (a new run directory, locked; an occupied one
refused or, with --overwrite, cleared), :func:`run_data` (FILE, --dataset or the built-in
names), :func:`fit_options_to_data` (what pairs mode changes), :func:`recorded_options`
(what trainer.json keeps for --resume).

``args`` is the parsed command line of ``rnnkit train`` (an :class:`argparse.Namespace` with
one attribute per option, None where the option was not given). Lines go to stderr, samples
and translations to stdout, as the command documents.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from ._validate import short_list
from .cells import CELLS
from .errors import ConfigError
from .ops import LN2
from .train_setup import (
    DEFAULT_STEPS,
    REGULARISERS_OFF,
    TRAIN_DEFAULTS,
    build_model,
    check_option_ranges,
    check_paths,
    default_out,
    occupied,
    resolve_options,
    total_steps,
    train_config,
)

__all__ = ["given_options", "prepare", "train_command", "open_run", "run_data",
           "fit_options_to_data", "recorded_options"]

def _say(line: str) -> None:
    print(line, file=sys.stderr)


def given_options(args: argparse.Namespace) -> dict:
    """The options of ``args`` the user gave (not None), option -> value."""
    return {k: v for k, v in vars(args).items() if k in TRAIN_DEFAULTS and v is not None}


def prepare(args: argparse.Namespace) -> dict:
    """The run's options ``o`` from the command line, after every check that needs no work:
    ranges (:func:`~rnnkit.train_setup.check_option_ranges`), directories
    (:func:`~rnnkit.train_setup.check_paths`), a resumed run's saved options
    (:func:`~rnnkit.train_setup.resolve_options`); warns when --dropout cannot act."""
    check_option_ranges(given_options(args))
    check_paths(args.out, args.resume, args.overwrite, args.tensorboard)
    o = resolve_options(given_options(args), args.resume, args.allow_other_text)
    if getattr(args, "dropout", None) and o["num_layers"] == 1:       # given, and it cannot act
        warnings.warn(f"--dropout {args.dropout:g} has no effect with --num-layers 1: dropout acts "
                      f"between stacked layers (as in PyTorch, which warns the same). Use "
                      f"--num-layers 2 or more, or drop --dropout.", UserWarning, stacklevel=2)
    return o


def train_command(args: argparse.Namespace, o: dict) -> int:
    """Train with the options ``o`` (:func:`prepare`) and return the exit code: under torchrun
    every process joins the job, and an error every process agreed on is reported once, by
    rank 0."""
    from .engines import start_group
    from .train import sigterm_deferred
    group = start_group(o["engine"], args.device)     # under torchrun: joins the job
    in_sync = False
    try:
        with ExitStack() as stack:                    # holds the run directory's lock to the end
            stack.enter_context(sigterm_deferred())   # a SIGTERM during set-up: kept for the loop
            code = _train(args, o, group, stack)
        in_sync = True
    except Exception as e:
        in_sync = getattr(e, "_rnnkit_agreed", False)    # every process stops with it
        if in_sync and not group.is_main:
            return 1        # rank 0 reports it; every node's torchrun fails
        raise
    finally:
        group.close(in_sync)
    return code if group.is_main else 0


def _command(args: argparse.Namespace) -> str:
    """This command line, for the run lock's record (`rnnkit train ...`)."""
    import shlex
    return "rnnkit " + shlex.join(getattr(args, "argv", None) or sys.argv[1:])


def open_run(out: Path, overwrite: bool, stack: ExitStack, command: str) -> None:
    """Create the run directory ``out``, take its lock (held until ``stack`` closes; ``command``
    is the lock's record of who holds it) and, with ``overwrite``, delete the previous run
    there; without it a directory that holds a run is refused
    (:func:`~rnnkit.train_setup.occupied`), now under the lock."""
    from .checkpoint import clear_run, has_checkpoint
    from .io import check_output_dir
    from .runlock import RunLock
    check_output_dir(out, "--out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot create the directory: {e.strerror or e}.") from None
    stack.enter_context(RunLock(out, command))
    if has_checkpoint(out):
        if not overwrite:
            raise occupied(out)
        removed = clear_run(out)
        _say(f"rnnkit train: --overwrite: deleted the previous run in {out} "
             f"({short_list(removed, 6)})")


def _run_directory(args: argparse.Namespace, o: dict, group: object, stack: ExitStack) -> Path:
    """The run directory (--out, --resume or :func:`~rnnkit.train_setup.default_out`, rank 0's
    choice for every process), locked by the main process before anything is written."""
    from .data.corpus import text_name
    from .runlock import RunLock
    with group.agreed():
        out = Path(o["out"]) if o["out"] is not None else default_out(text_name(o["file"], o["dataset"]))
    out = Path(group.broadcast(str(out)))             # rank 0's choice of runs/<name>-N
    with group.agreed():                              # a refusal stops every process
        if group.is_main:                             # the lock, before anything is written
            if args.resume:
                stack.enter_context(RunLock(args.resume, _command(args)))
            else:
                open_run(out, args.overwrite, stack, _command(args))
    return out


def run_data(o: dict, out: Path) -> object:
    """The data of a run: FILE when one is given, else the built-in corpus --dataset names
    (``names`` by default), cut as ``o`` says (:func:`rnnkit.data.load_text_data`; a large
    stream-mode file's ids are cached in ``out/data``)."""
    from .data import load_text_data
    from .datasets import corpus
    return load_text_data(o["file"], None if o["file"] else corpus(o["dataset"] or "names"),
                          mode=o["mode"], encoding=o["encoding"], val_frac=o["val_frac"],
                          seq_len=o["seq_len"], batch_size=o["batch_size"], seed=o["seed"],
                          cache_dir=out / "data")


def fit_options_to_data(o: dict, data: object, given: dict, resumed: bool) -> None:
    """Complete ``o`` once the data is known (``given``: the options the user gave): the
    data's name and mode; in pairs mode the seq2seq defaults
    (:func:`rnnkit.pairs_run.apply_defaults`, a new run only) and no regularisers (given
    ones are refused); no forget-gate bias by default for a cell without a forget gate."""
    from . import pairs_run
    if not o["file"]:
        o["dataset"] = data.name
    if data.mode == "pairs" and not resumed:
        pairs_run.apply_defaults(o, set(given))
    if data.mode == "pairs":                  # the regularisers are the character models'
        named = [k for k in REGULARISERS_OFF if k in given]
        if named:
            raise ConfigError(f"--{named[0].replace('_', '-')} applies to the character models of "
                              f"lines and stream mode; the seq2seq model of pairs mode has no such "
                              f"option. Drop it.")
        o.update(REGULARISERS_OFF)
    elif not resumed and "forget_bias" not in given and not CELLS[o["cell"]].forget_gate:
        o["forget_bias"] = None               # the default is for the cells with a forget gate
    o["mode"] = data.mode


def recorded_options(o: dict) -> dict:
    """The options trainer.json records for --resume (the keys of :data:`TRAIN_DEFAULTS`); an
    option JSON cannot hold (e.g. a file name that is not valid UTF-8) is refused."""
    from .io import find_json_problem
    saved = {k: v for k, v in o.items() if k in TRAIN_DEFAULTS}
    for key, value in saved.items():
        problem = find_json_problem(value, key)
        if problem:
            opt = "FILE" if key == "file" else f"--{key.replace('_', '-')}"
            raise ConfigError(f"{opt} {value!r:.200} cannot be recorded in trainer.json (needed by "
                              f"--resume): it is {problem[1]}. Rename the file or directory.")
    return saved


def _sample_on_eval(o: dict, data: object, quiet: bool):
    """The trainer's ``on_eval``: bits per character, and (unless ``quiet``) a few samples of
    today's weights on stderr (pairs mode: :func:`rnnkit.pairs_run.on_eval`)."""
    from . import pairs_run
    from .sample import sample_lines, sample_stream
    vocab = data.vocab

    def on_eval(trainer, record):
        if data.mode == "pairs":
            return pairs_run.on_eval(trainer, record, data, quiet)
        extra = {}
        if "val_loss" in record:
            extra["val_bpc"] = record["val_loss"] / LN2
        if quiet:
            return extra
        rng = np.random.default_rng([o["seed"], trainer.step])      # never the training RNGs
        step = trainer.model.stepper().step                         # today's weights
        if data.mode == "lines":
            text = "  samples: " + json.dumps(sample_lines(step, vocab, 5, rng, max_len=40),
                                              ensure_ascii=False)      # a list: commas are text
        else:
            text = "  sample: " + repr(sample_stream(step, vocab, 120, rng))
        _say(text)
        return extra
    return on_eval


def _train(args: argparse.Namespace, o: dict, group: object, stack: ExitStack) -> int:
    """`rnnkit train` in this process: every step agreed with the other processes under
    torchrun (``group``); only the main process takes the run directory's lock, writes and
    prints."""
    from . import pairs_run
    from .engines import make_engine
    from .train import Checkpointing, Trainer

    out = _run_directory(args, o, group, stack)
    data = group.main_first(lambda: run_data(o, out))
    fit_options_to_data(o, data, {k for k, v in vars(args).items() if v is not None},
                        bool(args.resume))
    o["out"] = str(out)
    saved_opts = recorded_options(o)
    vocab = data.vocab
    text_fp = None
    if o["file"]:
        from .data.corpus import text_fingerprint
        text_fp = text_fingerprint(o["file"])     # saved: --resume checks it is the same text
    group.check_same({**{k: v for k, v in saved_opts.items() if k not in ("file", "out")},
                      "text": text_fp["sha256"] if text_fp else o["dataset"],
                      "vocab": json.dumps(vocab.to_json(), sort_keys=True)})   # before DDP is built
    steps = total_steps(o, data.train.per_epoch, DEFAULT_STEPS)

    setup_log = []                                    # printed after the engine line
    with group.agreed():
        model = build_model(o, data)
        tcfg = train_config(o, steps, args.quiet)
        trainer = Trainer(model, data.train, data.val, tcfg,
                          checkpoint=Checkpointing(out, vocab=vocab.to_json(),
                                                   extra={"cli": saved_opts, "text": text_fp},
                                                   tensorboard=args.tensorboard),
                          on_eval=_sample_on_eval(o, data, args.quiet), log=setup_log.append,
                          engine=make_engine(o["engine"], model, tcfg, group=group),
                          threads=args.threads)
        if args.resume:
            trainer.resume()
            trainer.checkpoint.extra["cli"]["engine"] = o["engine"]    # the next resume's default
            trainer.checkpoint.extra["cli"]["file"] = o["file"]        # (--allow-other-text)
            trainer.checkpoint.extra["text"] = text_fp
    trainer.log = _say
    if group.is_main:
        cfg = model.config
        _say(f"rnnkit train: engine {trainer.engine.describe()}")
        for line in setup_log:
            _say(line)
        _say(pairs_run.describe(model, data, steps, out) if data.mode == "pairs" else
             f"rnnkit train: {cfg.cell.upper()} {cfg.num_layers}x{cfg.hidden_size}, "
             f"{model.num_parameters():,} parameters, vocab {len(vocab)}, {data.mode} mode; "
             f"{data.origin}: {data.summary}; {steps:,} steps -> {out}")
    if args.resume and trainer.step >= steps:
        if group.is_main:
            _say(f"rnnkit train: {out} is already at step {trainer.step:,}, and --steps {steps:,} is "
                 f"the total (counting the steps already done): nothing to train. Pass a larger "
                 f"--steps (e.g. --steps {trainer.step + steps:,}) to train more.")
        return 0
    t0 = time.perf_counter()
    start_step = trainer.step
    result = trainer.fit()
    dt = time.perf_counter() - t0
    if result.stopped == "diverged":
        if group.is_main:
            _say(f"rnnkit: error: {result.message}")
        return 1
    if result.stopped == "interrupted":          # saved; Ctrl-C exits 130 like any interrupted
        if group.is_main:                        # command, SIGTERM (an orderly stop) 0
            _say(f"rnnkit train: stopped: {result.message}")
        return 130 if result.message.startswith("Ctrl-C") else 0
    if trainer.out_dir is not None and trainer.step > start_step and not result.history:
        trainer.save()
    if not group.is_main:
        return 0
    _say(f"rnnkit train: {result.stopped} at step {result.steps} in {dt:.0f} s"
         + (f"; best val loss {result.best_val_loss:.4f} nats = {result.best_val_loss / LN2:.3f} "
            f"bits/char at step {result.best_step}" if result.best_val_loss is not None else ""))
    _report_end(out, o, data)
    return 0


def _report_end(out: Path, o: dict, data: object) -> None:
    """The end of a finished run: where the checkpoint is, the loss picture, and
    ``--num-samples`` samples of the best weights (pairs: translations of validation pairs)."""
    from . import pairs_run
    from .load import load_model
    from .plot_hook import maybe_plot
    from .sample import iter_sample_lines, print_stream
    best = f" (best weights in {out / 'best'})" if (out / "best").is_dir() else ""
    try_ = f"rnnkit translate {out} TEXT" if data.mode == "pairs" else f"rnnkit sample {out}"
    _say(f"rnnkit train: checkpoint in {out}{best}; try `{try_}`")
    maybe_plot(out)
    n = o["num_samples"]
    if data.mode == "pairs":
        best_model = load_model(out, need_charlm=False).model
        _say(f"rnnkit train: {pairs_run.final_report(best_model, data)}")
        for line in pairs_run.translation_lines(best_model, data, n):
            print(line)
        return
    if n > 0:
        step = load_model(out).model.stepper().step            # the best weights, as `sample`
        rng = np.random.default_rng(o["seed"])
        if data.mode == "lines":
            seen = set(data.train_lines or [])
            new = 0
            for s_ in iter_sample_lines(step, data.vocab, n, rng, max_len=64):
                new += s_ not in seen
                print(s_ + ("" if s_ in seen else "   (new)"))
            print(f"new (not in the training set): {new}/{n}")
        else:
            print_stream(step, data.vocab, 400, rng)

