"""One trainer for every rnnkit model: minibatches, truncated BPTT, validation, early
stopping, best weights, checkpoints, exact resume, and a guard against divergence.

A model only needs ``loss(batch, carry) -> LossResult`` and ``backward_loss()`` (see
:mod:`rnnkit.nn.models`) plus ``parameters()/gradients()/zero_grad()/state_dict()``.
Batches come from a *source* (:mod:`rnnkit.data.sources`) whose batch at step ``k`` is a pure
function of ``k`` and the seed, so resuming at step ``k`` replays exactly the same data::

    >>> import numpy as np
    >>> from rnnkit import datasets, nn
    >>> from rnnkit.data import Vocab, LinesDataset, LinesSource, BOUNDARY
    >>> from rnnkit.train import Trainer, TrainConfig
    >>> names = datasets.names()[:500]
    >>> vocab = Vocab.build(names, specials=(BOUNDARY,))
    >>> model = nn.CharLM(nn.CharLMConfig(vocab_size=len(vocab), hidden_size=32, num_layers=1), seed=0)
    >>> src = LinesSource(LinesDataset(names, vocab), batch_size=32, seed=0)
    >>> result = Trainer(model, src, config=TrainConfig(steps=20, progress=False)).fit()
    >>> result.steps
    20

Truncated BPTT (stream mode): a :class:`~rnnkit.data.StreamSource` yields consecutive chunks
of ``batch_size`` parallel tracks; the final state of one chunk is the initial state of the
next (detached: gradients stop at chunk boundaries), reset at the start of every pass over
the text.

Engines: the loop is the same for every engine; what runs a step (NumPy in this process, or
PyTorch on a CPU or GPU, one process or many under ``torchrun``) is an engine
(:mod:`rnnkit.engines`): ``Trainer(..., engine="torch", device="cuda")``. Checkpoints do not
depend on the engine, so a run resumes on the other one.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import checkpoint as ckpt
from ._threads import ThreadChoice, check_threads
from ._validate import Range, check_choice
from .cells import state_arrays, state_from_arrays
from .engines import make_engine
from .engines.numpy import _rng_owners  # noqa: F401  (the dropout generators; tests use it)
from .errors import CheckpointError, ConfigError, RnnkitError, TrainingDivergedError
from .optim import OPTIMIZERS, SCHEDULE_NAMES, ConstantLR, CosineAnnealingLR, ExponentialLR, LinearWarmup, StepLR, get_optimizer
from .sequence import training_run

if TYPE_CHECKING:
    from .engines import Engine
    from .nn.module import Module
    from .optim import Optimizer, Schedule


# ============================================================================== config
@dataclass
class TrainConfig:
    """Hyper-parameters of :class:`Trainer` (all JSON-serialisable).

    ``schedule``: 'constant', 'cosine' (to ``lr * min_lr_frac`` at the last step), 'step'
    (x0.1 every third of the run) or 'exponential'; ``warmup`` linear warm-up steps.
    ``clip``: global-norm clipping (0 = off); ``clip_value``: element clipping (0 = off).
    ``eval_every``: validate (and checkpoint) every that many steps; ``patience``: stop after
    that many evaluations without improvement (0 = never). ``explode_factor``: stop when the
    training loss exceeds that multiple of the first step's loss.
    ``progress``: tqdm bar (None = only on a terminal).

    >>> cfg = TrainConfig(steps=100, lr=0.01, schedule="cosine", warmup=10, min_lr_frac=0.1)
    >>> lr = cfg.make_schedule()
    >>> [round(lr(s), 6) for s in (0, 10, 100)]     # warm-up from lr / 10, cosine to lr / 10
    [0.001, 0.01, 0.001]
    >>> TrainConfig(lr=0).validate()
    Traceback (most recent call last):
    ...
    rnnkit.errors.ConfigError: ...
    """

    steps: int = 1000
    lr: float = 2e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    clip: float = 5.0
    clip_value: float = 0.0
    schedule: str = "constant"
    warmup: int = 0
    min_lr_frac: float = 0.1
    eval_every: int = 100
    patience: int = 0
    explode_factor: float = 3.0
    restore_best: bool = True
    seed: int = 0
    progress: bool | None = None
    #: The one definition of each numeric setting's range (``rnnkit train`` checks its
    #: options with these too, see :mod:`rnnkit.train_setup`).
    RANGES = {"steps": Range("int", 1), "lr": Range("number", 0.0, lo_open=True),
              "weight_decay": Range("number", 0.0), "clip": Range("number", 0.0),
              "clip_value": Range("number", 0.0), "warmup": Range("int", 0),
              "eval_every": Range("int", 1), "patience": Range("int", 0),
              "explode_factor": Range("number", 1.0, lo_open=True), "seed": Range("int", 0)}

    def validate(self) -> TrainConfig:
        """``self`` after checking every setting (:attr:`RANGES`, the optimizer and schedule
        names); :class:`~rnnkit.errors.ConfigError` otherwise."""
        who = "TrainConfig"
        r = self.RANGES
        for name in ("steps", "lr"):
            r[name].check(who, name, getattr(self, name))
        check_choice(who, "optimizer", self.optimizer, tuple(OPTIMIZERS))
        for name in ("weight_decay", "clip", "clip_value"):
            r[name].check(who, name, getattr(self, name))
        check_choice(who, "schedule", self.schedule, SCHEDULE_NAMES)
        for name in ("warmup", "eval_every", "patience", "explode_factor", "seed"):
            r[name].check(who, name, getattr(self, name))
        return self

    def make_schedule(self) -> Schedule:
        """The learning-rate schedule of these settings (``schedule``, ``warmup``)."""
        base = self.lr
        if self.schedule == "cosine":
            s = CosineAnnealingLR(base, max(1, self.steps - self.warmup), eta_min=base * self.min_lr_frac)
        elif self.schedule == "step":
            s = StepLR(base, max(1, self.steps // 3), 0.1)
        elif self.schedule == "exponential":
            s = ExponentialLR(base, self.min_lr_frac ** (1.0 / max(1, self.steps)))
        else:
            s = ConstantLR(base)
        return LinearWarmup(s, self.warmup, start_factor=0.1) if self.warmup else s

    def make_optimizer(self, params: Mapping[str, np.ndarray]) -> Optimizer:
        """The optimizer of these settings over ``params`` (name -> array, updated in place)."""
        kw = {}
        if self.optimizer in ("sgd", "rmsprop"):
            kw["momentum"] = self.momentum
        if self.weight_decay:
            kw["weight_decay"] = self.weight_decay
        return get_optimizer(self.optimizer, params, lr=self.lr, **kw)


@dataclass
class TrainResult:
    steps: int
    history: list = field(default_factory=list)
    best_val_loss: float | None = None
    best_step: int | None = None
    stopped: str = "completed"        # completed | early_stopping | interrupted | diverged
    message: str = ""


# ============================================================================== helpers
#: Names of the carried TBPTT state in the checkpoint's trainer.safetensors: h, then c.
_CARRY_NAMES = ("carry.h", "carry.c")


@dataclass
class Checkpointing:
    """Where and what :class:`Trainer` saves.

    ``out_dir``: the checkpoint directory (see :mod:`rnnkit.checkpoint`), written at every
    evaluation, at the end, and on Ctrl-C / SIGTERM; ``best/`` inside it holds the best
    validation weights. ``vocab``: a JSON dict stored beside the weights (``vocab.json``).
    ``extra``: JSON kept in ``trainer.json`` (``rnnkit train`` stores its options there).
    ``tensorboard``: a directory for TensorBoard event files holding the same numbers as
    ``metrics.jsonl`` (:mod:`rnnkit.tblog`; needs the ``tensorboard`` extra); a resumed run
    continues its curves there.
    """

    out_dir: Any
    vocab: dict | None = None
    extra: dict = field(default_factory=dict)
    tensorboard: Any = None

    def __post_init__(self):
        self.out_dir = Path(self.out_dir)
        if self.tensorboard is not None:
            self.tensorboard = Path(self.tensorboard)


#: A SIGTERM that arrived while :func:`sigterm_deferred` was active and no training loop was
#: running yet (``{"signal": SIGTERM}``): the next :meth:`Trainer.fit` stops at its first step
#: boundary with it (saving the checkpoint), as if it had arrived during the loop.
_DEFERRED: dict = {}


@contextlib.contextmanager
def sigterm_deferred() -> Iterator[None]:
    """Keep a SIGTERM that arrives before the training loop starts (data loading, model set-up,
    resume) for the loop, instead of dying of it: the loop then stops at once in the orderly
    way (checkpoint saved, exit 0 in ``rnnkit train``) that a SIGTERM during training gets.
    Ctrl-C keeps its usual meaning (KeyboardInterrupt) before the loop. In the main thread
    only; elsewhere this does nothing."""
    import threading
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, lambda signum, frame: _DEFERRED.setdefault("signal", signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
        _DEFERRED.clear()


class _StopFlag:
    """SIGINT/SIGTERM handler: ask the loop to stop at the next step boundary. A second
    Ctrl-C interrupts at once, unless it comes within ``echo`` seconds of the first (under
    torchrun a Ctrl-C reaches a process twice: from the terminal, and forwarded by torchrun)."""

    def __init__(self, echo: float = 0.0):
        self.signal = None
        self._old = {}
        self._echo = echo
        self._first = None

    def __enter__(self):
        import threading
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except (ValueError, OSError):
                pass
        if "signal" in _DEFERRED:                  # arrived before the loop (sigterm_deferred)
            self.signal, self._first = _DEFERRED.pop("signal"), time.monotonic()
        return self

    def _handle(self, signum, frame):
        now = time.monotonic()
        if self.signal is not None and signum == signal.SIGINT and now - self._first >= self._echo:
            raise KeyboardInterrupt
        if self.signal is None:
            self.signal, self._first = signum, now

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


# ============================================================================== trainer
class Trainer:
    """Train ``model`` on ``train`` (a batch source), validating on ``val`` every
    ``config.eval_every`` steps.

    ``checkpoint``: a :class:`Checkpointing` (or just the output directory) to save to; without
    one nothing is written. :meth:`resume` continues from that directory exactly (same data
    order and random draws: N + M resumed steps equal N + M straight steps).
    ``on_eval(trainer, record)`` is called after each validation (the CLI prints samples
    there) and may return extra entries for the record. ``log`` prints one-line messages.
    ``engine``: ``"numpy"`` (default), ``"torch"`` or an engine object
    (:mod:`rnnkit.engines`); ``device``: the torch engine's device (``"cpu"``, ``"cuda"``,
    ``"cuda:N"``). Under ``torchrun`` every process runs the same trainer; only the main one
    (rank 0) writes files, logs and calls ``on_eval``. ``threads``: CPU threads for the
    products (:func:`rnnkit.set_num_threads`), or ``"auto"`` (default): time steps on one
    thread and on all, keep the faster (a busy machine), and say which.

    A run of 10 steps, resumed to 20 from its checkpoint, is the run of 20 steps:

    >>> import tempfile
    >>> from rnnkit import datasets, nn
    >>> from rnnkit.data import BOUNDARY, LinesDataset, LinesSource, Vocab
    >>> names = datasets.names()[:200]
    >>> vocab = Vocab.build(names, specials=(BOUNDARY,))
    >>> def trainer(steps, out):
    ...     model = nn.CharLM(nn.CharLMConfig(vocab_size=len(vocab), hidden_size=16,
    ...                                       num_layers=1), seed=0)
    ...     train = LinesSource(LinesDataset(names[:150], vocab), batch_size=16, seed=0)
    ...     val = LinesSource(LinesDataset(names[150:], vocab), batch_size=50, seed=0)
    ...     return Trainer(model, train, val, TrainConfig(steps=steps, eval_every=5, progress=False),
    ...                    checkpoint=out, log=lambda msg: None)
    >>> a, b = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> straight = trainer(20, a).fit()
    >>> trainer(10, b).fit().steps
    10
    >>> resumed = trainer(20, b).resume()
    >>> resumed.step
    10
    >>> result = resumed.fit()
    >>> [r["step"] for r in result.history]
    [5, 10, 15, 20]
    >>> [r["val_loss"] for r in result.history] == [r["val_loss"] for r in straight.history]
    True
    """

    def __init__(self, model: Module, train: object, val: object | None = None,
                 config: TrainConfig | None = None,
                 checkpoint: Checkpointing | str | Path | None = None,
                 on_eval: Callable | None = None, log: Callable = print,
                 engine: str | Engine | None = None, device: str | None = None,
                 threads: int | str = "auto"):
        self.model = model
        self.threads = check_threads("Trainer", threads)
        self.train_source = train
        self.val_source = val
        self.config = (config or TrainConfig()).validate()
        if checkpoint is not None and not isinstance(checkpoint, Checkpointing):
            checkpoint = Checkpointing(checkpoint)
        self.checkpoint = checkpoint
        self.out_dir = checkpoint.out_dir if checkpoint is not None else None
        self.on_eval = on_eval
        self.log = log
        self.engine = make_engine(engine, model, self.config, device=device)
        self.schedule = self.config.make_schedule()
        self.step = 0
        self.carry = None
        self.history: list = []
        self.best_val: float | None = None
        self.best_step: int | None = None
        self.best_state: dict | None = None     # weights of the best validation so far
        self.evals_since_best = 0
        self.initial_loss: float | None = None
        self._good = None           # (step, engine snapshot, carry) of the last good point
        self.tokens_seen = 0
        self.loss_ema: float | None = None   # smoothed training loss (0.9 decay), checkpointed
        self._saved_step: int | None = None  # step of the last checkpoint written to out_dir
        self._tb = None                          # the TensorBoard log while fit() runs
        self._rate_mark = (time.perf_counter(), 0)   # (time, tokens_seen) for tokens_per_s

    @property
    def is_main(self) -> bool:
        """True in the process that writes files and logs (always, without torchrun)."""
        return self.engine.is_main

    def _log(self, msg: str) -> None:
        if self.is_main:
            self.log(msg)

    # -- checkpoint ------------------------------------------------------------------------
    def _model_config(self) -> dict:
        return self.model.config.to_dict()

    def trainer_state(self) -> dict:
        rng_json, _ = self.engine.rng_state()
        return self._trainer_state(rng_json)

    def _trainer_state(self, rng_json: dict) -> dict:
        return {
            "step": self.step,
            "train_config": asdict(self.config),
            "schedule": self.schedule.to_config(),
            "history": self.history,
            "best_val_loss": self.best_val,
            "best_step": self.best_step,
            "evals_since_best": self.evals_since_best,
            "initial_loss": self.initial_loss,
            "tokens_seen": self.tokens_seen,
            "loss_ema": self.loss_ema,
            **rng_json,
            "engine": self.engine.info(),
            "has_carry": self.carry is not None,
            "extra": self.checkpoint.extra if self.checkpoint is not None else {},
        }

    def _gather(self):
        """What every process must contribute to a checkpoint (the carried state of its
        columns, its dropout generators): ``(rng json, trainer arrays)``. Collective."""
        rng_json, rng_arrays = self.engine.rng_state()
        arrays = dict(zip(_CARRY_NAMES, state_arrays(self.engine.carry_to_numpy(self.carry))))
        arrays.update(rng_arrays)
        return rng_json, arrays

    def save(self, directory: str | os.PathLike | None = None) -> Path:
        """Write a checkpoint version to ``directory`` (default: the output directory).
        Under torchrun every process calls it; the main one writes."""
        directory = Path(directory) if directory is not None else self.out_dir
        if directory is None:
            raise ConfigError("Trainer.save: no directory given and the trainer has no checkpoint "
                              "directory; pass one.")
        if directory == self.out_dir:
            self._saved_step = self.step
        gathered = self._gather()
        written = None
        with self.engine.agreed():
            if self.is_main:
                written = self._write(directory, *gathered)
        return written

    def _write(self, directory, rng_json, arrays) -> Path:
        opt_arrays, meta = self.engine.optimizer_state()
        return ckpt.save_checkpoint(directory, model_state=self.engine.state_dict(),
                                    config=self._model_config(),
                                    vocab=self.checkpoint.vocab if self.checkpoint else None,
                                    optimizer_state=opt_arrays, optimizer_meta=meta,
                                    trainer_state=self._trainer_state(rng_json),
                                    trainer_arrays=arrays)

    def resume(self) -> Trainer:
        """Continue from the checkpoint directory exactly where its last save left off."""
        if self.out_dir is None:
            raise ConfigError("Trainer.resume: the trainer has no checkpoint directory to resume from; "
                              "pass checkpoint=DIR.")
        ck = ckpt.load_checkpoint(self.out_dir)
        src = str(self.out_dir)
        vocab = self.checkpoint.vocab
        if vocab is not None and ck.vocab is None:
            raise CheckpointError(f"Trainer: {src}/vocab.json is missing; the checkpoint cannot be "
                                  f"checked against the training data's vocabulary.")
        if vocab is not None and ck.vocab is not None and ck.vocab != vocab:
            raise CheckpointError(f"Trainer: the vocabulary in {src}/vocab.json differs from the one "
                                  f"built from the training data; resume on the same data.")
        try:
            saved = type(self.model.config).from_dict(ck.config)
        except RnnkitError as e:
            raise CheckpointError(f"Trainer: {src}/config.json: {e}") from None
        if saved != self.model.config:
            raise CheckpointError(f"Trainer: the checkpoint in {src} was made with model config "
                                  f"{ck.config}, but this model has {self._model_config()}. Resume with "
                                  f"the same model options (or start a new --out directory).")
        try:
            self.engine.load_state_dict(ck.model_state)
        except RnnkitError as e:
            raise CheckpointError(f"Trainer: {src}/model.safetensors does not match config.json: "
                                  f"{e}") from None
        ts = ck.trainer_state or {}
        opt_arrays = dict(ck.optimizer_state or {})
        if ck.optimizer_meta is None:
            raise CheckpointError(f"Trainer: {src} has no optimizer state; it cannot be resumed exactly.")
        try:
            self.engine.load_optimizer_state(opt_arrays, ck.optimizer_meta)
        except RnnkitError as e:
            raise CheckpointError(f"Trainer: {src}/optimizer.safetensors does not fit this model "
                                  f"and optimizer: {e}") from None
        try:
            self.step = int(ts["step"])
            self.history = list(ts.get("history", []))
            self.best_val = ts.get("best_val_loss")
            self.best_step = ts.get("best_step")
            self.evals_since_best = int(ts.get("evals_since_best", 0))
            self.initial_loss = ts.get("initial_loss")
            self.tokens_seen = int(ts.get("tokens_seen", 0))
            self.loss_ema = ts.get("loss_ema")
            saved_engine = ts.get("engine") if isinstance(ts.get("engine"), dict) else {"name": "numpy"}
            same_stream = self.engine.load_rng_state(ts, ck.trainer_arrays or {}, saved_engine, self.step)
            self.checkpoint.extra.update(ts.get("extra", {}))
        except (KeyError, TypeError, ValueError, OverflowError) as e:   # e.g. RNG state out of range
            raise CheckpointError(f"Trainer: {src}/trainer.json is damaged ({e}).") from None
        saved = [ck.trainer_arrays[k] for k in _CARRY_NAMES if k in (ck.trainer_arrays or {})]
        if saved:
            self.carry = self.engine.carry_from_numpy(self._checked_carry(tuple(saved), src))
        best_dir = self.out_dir / "best"
        if self.best_val is not None and best_dir.is_dir():   # so restore_best also works after a resume
            self.best_state = ckpt.load_checkpoint(best_dir, load_optimizer=False).model_state
        if self.is_main:
            ckpt.truncate_metrics(self.out_dir, self.step)
        self._saved_step = self.step
        self._log(f"resumed from {src} at step {self.step}")
        if not same_stream and self.engine.uses_dropout:
            self._log(f"note: the run was trained with {_engine_words(saved_engine)} and continues "
                      f"with {_engine_words(self.engine.info())}: dropout masks are drawn by each "
                      f"engine's own generator, so the dropout random stream restarts here (the run "
                      f"stays reproducible, but differs from one that never changed engines).")
        return self

    def _checked_carry(self, arrays: tuple, src: str):
        """The recurrent state saved with a stream-mode run, checked against the model's own
        initial state of that batch size: same structure, shapes and float kind, finite."""
        where = f"Trainer: {src}/trainer.safetensors"
        like = getattr(self.model, "initial_state", None)
        if like is None:
            raise CheckpointError(f"{where}: holds a carried recurrent state, but "
                                  f"{type(self.model).__name__} carries none; the file does not "
                                  f"belong to this model.")
        n = arrays[0].shape[1] if arrays[0].ndim == 3 else 1
        batch = getattr(getattr(self.train_source, "dataset", None), "batch_size", None)
        if batch is not None and n != batch:
            raise CheckpointError(f"{where}: the carried state is for a batch of {n} sequences, "
                                  f"but the run trains batches of {batch}; the file is damaged "
                                  f"(or belongs to another run).")
        want = state_arrays(like(n))
        ok = len(arrays) == len(want) and all(
            a.dtype.kind == "f" and a.shape == w.shape and np.isfinite(a).all()
            for a, w in zip(arrays, want))
        if not ok:
            got = ", ".join(f"{a.dtype}{list(a.shape)}" for a in arrays)
            exp = ", ".join(f"{list(w.shape)}" for w in want)
            raise CheckpointError(f"{where}: the carried state ({got}) does not fit the model "
                                  f"(expected {len(want)} finite float array(s) of shape {exp}); "
                                  f"the file is damaged.")
        return state_from_arrays(tuple(a.astype(w.dtype) for a, w in zip(arrays, want)))

    # -- evaluation ------------------------------------------------------------------------
    def evaluate(self, source: object | None = None) -> float | None:
        """Mean loss over all batches of ``source`` (default: the validation source), weighted
        by item counts, in eval mode without caches. Stream sources carry the state."""
        source = source if source is not None else self.val_source
        if source is None:
            return None
        return self.engine.evaluate(source)

    def _snapshot(self):
        self._good = (self.step, self.engine.snapshot(), self.engine.detach(self.carry))

    def _restore_good(self):
        step, snapshot, carry = self._good
        self.engine.restore(snapshot)
        self.step, self.carry = step, carry

    # -- the loop --------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        cfg = self.config
        eng = self.engine
        self.model.train()
        self._snapshot()
        self._open_tensorboard()
        bar = None
        if cfg.progress is not False and self.step < cfg.steps and self.is_main:
            from tqdm.auto import tqdm
            bar = tqdm(total=cfg.steps, initial=self.step, disable=None if cfg.progress is None else False,
                       unit="step", dynamic_ncols=True, file=sys.stderr)
        result = TrainResult(steps=self.step)
        threads = ThreadChoice(self.threads, self._log, eng.group.world_size)
        t0 = time.perf_counter()
        tok0 = self.tokens_seen
        self._rate_mark = (t0, tok0)
        loss_ema = self.loss_ema
        try:
            with _StopFlag(echo=2.0 if eng.group.world_size > 1 else 0.0) as stop, \
                    training_run():                 # one path for every step: resumed == straight
                while self.step < cfg.steps:
                    sigint, sigterm = eng.any([stop.signal == signal.SIGINT, stop.signal == signal.SIGTERM])
                    if sigint or sigterm:
                        result.stopped = "interrupted"
                        name = "Ctrl-C" if sigint else "SIGTERM"
                        result.message = f"{name} received at step {self.step}"
                        break
                    threads.before()
                    res, tokens = eng.forward(self.train_source, self.step, self.carry)
                    if self.initial_loss is None:
                        self.initial_loss = float(res.loss)
                    diverged = self._divergence(res.loss, "loss")
                    if diverged:
                        eng.discard()
                        raise diverged
                    norm, finite = eng.update(self.schedule(self.step))
                    if not math.isfinite(norm):
                        raise self._divergence(norm, "gradient norm")
                    if not finite:
                        raise self._divergence(math.inf, "update of the weights")
                    threads.after(tokens)
                    self.carry = eng.detach(res.carry) if self.train_source.carries_state else None
                    self.step += 1
                    self.tokens_seen += tokens
                    loss_ema = res.loss if loss_ema is None else 0.9 * loss_ema + 0.1 * res.loss
                    self.loss_ema = loss_ema
                    if bar is not None:
                        dt = max(time.perf_counter() - t0, 1e-9)
                        bar.update(1)
                        bar.set_postfix(loss=f"{loss_ema:.4f}", tok_s=f"{(self.tokens_seen - tok0) / dt:,.0f}",
                                        refresh=False)
                    if self.step % cfg.eval_every == 0 or self.step == cfg.steps:
                        if self._evaluate_and_save(res.loss, norm, loss_ema, bar):
                            result.stopped = "early_stopping"
                            result.message = (f"no validation improvement in {cfg.patience} evaluations; "
                                              f"best {self.best_val:.4f} at step {self.best_step}")
                            break
        except TrainingDivergedError as e:
            result.stopped = "diverged"
            result.message = str(e)
            self._restore_good()
        finally:
            threads.close()
            if bar is not None:
                bar.close()
            if self._tb is not None:
                self._tb.close()
                self._tb = None
        if result.stopped == "interrupted" and self.out_dir is not None:
            self.save()
            result.message += f"; checkpoint saved to {self.out_dir} (continue with --resume)"
        if result.stopped == "diverged" and self.out_dir is not None:
            if self._saved_step != self.step:      # no checkpoint of the good state yet: write it
                self.save()
            result.message += (f" The last good checkpoint (step {self.step}) is kept in {self.out_dir}.")
        result.steps = self.step
        result.history = self.history
        result.best_val_loss = self.best_val
        result.best_step = self.best_step
        eng.sync_model()
        if cfg.restore_best and self.val_source is not None and self.best_state is not None:
            eng.load_state_dict(self.best_state)
        return result


    def _divergence(self, value, what) -> TrainingDivergedError | None:
        """The error to stop with when ``value`` (a loss or norm) shows divergence, else None."""
        cfg = self.config
        bad = not math.isfinite(value)
        if not bad and what in ("loss", "validation loss") and self.initial_loss is not None and self.step > 0:
            bad = value > cfg.explode_factor * max(self.initial_loss, 1e-12)
        if not bad:
            return None
        kind = "is not finite" if not math.isfinite(value) else (
            f"exploded to {value:.4g} (> {cfg.explode_factor:g} x the first step's {self.initial_loss:.4g})")
        advice = [f"lower the learning rate (now {cfg.lr:g}, try {cfg.lr / 3:.2g})"]
        advice.append(f"clip gradients harder (now {'--clip ' + format(cfg.clip, 'g') if cfg.clip else 'off'}, "
                      f"try --clip 1)")
        if cfg.warmup == 0:
            advice.append("add a warm-up (--warmup 100)")
        return TrainingDivergedError(f"training stopped at step {self.step}: the {what} {kind}. "
                                     f"Weights were rolled back to the last good state (step "
                                     f"{self._good[0] if self._good else 0}). To fix: " + "; ".join(advice) + ".")

    def _evaluate_and_save(self, last_loss, norm, loss_ema, bar) -> bool:
        cfg = self.config
        t_mark, tok_mark = self._rate_mark
        record = {"step": self.step, "train_loss": float(loss_ema), "grad_norm": float(norm),
                  "lr": float(self.schedule(max(self.step - 1, 0))), "tokens": self.tokens_seen,
                  # training throughput since the previous evaluation (wall clock, this process)
                  "tokens_per_s": (self.tokens_seen - tok_mark) / max(time.perf_counter() - t_mark, 1e-9)}
        val = self.evaluate()
        improved = False
        if val is not None:
            record["val_loss"] = float(val)
            diverged = self._divergence(val, "validation loss")
            if diverged:
                raise diverged
            if self.best_val is None or val < self.best_val:
                self.best_val, self.best_step = float(val), self.step
                self.evals_since_best = 0
                improved = True
                self.best_state = self.engine.state_dict()
            else:
                self.evals_since_best += 1
        gathered = self._gather() if self.out_dir is not None else None
        with self.engine.agreed():      # what only the main process does; it may fail there
            if self.is_main:
                # what on_eval prints goes above the bar (as bar.write does), not after it: a
                # print in the bar's line would leave a copy of the bar behind on the terminal
                with bar.external_write_mode(file=sys.stderr) if bar is not None else contextlib.nullcontext():
                    self._report(record, improved, gathered)
        if not self.is_main:
            self.history.append(record)
        if self.out_dir is not None:
            self._saved_step = self.step
        self._snapshot()
        self._rate_mark = (time.perf_counter(), self.tokens_seen)   # evaluation time not counted
        msg = f"step {self.step}: train {record['train_loss']:.4f}"
        if val is not None:
            msg += f", val {val:.4f}" + (" (best)" if improved else "")
        if "val_bpc" in record:
            msg += f", val bpc {record['val_bpc']:.3f}"
        if bar is not None:
            bar.write(msg, file=sys.stderr)
        elif cfg.progress is not False:
            self._log(msg)
        return bool(cfg.patience and self.evals_since_best >= cfg.patience)

    def _report(self, record, improved, gathered) -> None:
        """The main process's part of an evaluation: ``on_eval``, the record, ``best/``,
        ``metrics.jsonl`` and the checkpoint."""
        if self.on_eval is not None:
            self.engine.sync_model()
            extra = self.on_eval(self, record)
            if isinstance(extra, dict):
                record.update(extra)
        self.history.append(record)
        if self.out_dir is not None:
            if improved:
                ckpt.save_checkpoint(self.out_dir / "best", model_state=self.best_state,
                                     config=self._model_config(), vocab=self.checkpoint.vocab,
                                     trainer_state={"step": self.step, "val_loss": self.best_val})
            ckpt.append_metrics(self.out_dir, record)
            if self._tb is not None:       # after metrics.jsonl, before the checkpoint (rnnkit.tblog)
                self._tb.write(record)
            self._write(self.out_dir, *gathered)

    def _open_tensorboard(self) -> None:
        """Open ``checkpoint.tensorboard`` (main process only) at the current step, with the
        records of ``metrics.jsonl`` it lacks (:class:`rnnkit.tblog.TensorBoardLog`)."""
        logdir = self.checkpoint.tensorboard if self.checkpoint is not None else None
        if logdir is None:
            return
        from .tblog import TensorBoardLog
        with self.engine.agreed():      # a failure on the main process stops every process
            if self.is_main:
                self._tb = TensorBoardLog(logdir, ckpt.read_metrics(self.out_dir), self.step,
                                          log=self._log)


def _engine_words(info: dict) -> str:
    n = int(info.get("world_size", 1) or 1)
    device = info.get("device") or "cpu"
    return (f"the {info.get('name', 'numpy')} engine on {device}"
            + (f" in {n} processes" if n > 1 else ""))
