"""One trainer for every rnnkit model: minibatches, truncated BPTT, validation, early
stopping, best weights, checkpoints, exact resume, and a guard against divergence.

A model only needs ``loss(batch, carry) -> LossResult`` and ``backward_loss()`` (see
:mod:`rnnkit.nn.models`) plus ``parameters()/gradients()/zero_grad()/state_dict()``.
Batches come from a *source* whose batch at step ``k`` is a pure function of ``k`` and the
seed, so resuming at step ``k`` replays exactly the same data::

    >>> import numpy as np
    >>> from rnnkit import datasets, nn
    >>> from rnnkit.data import Vocab, LinesDataset, BOUNDARY
    >>> from rnnkit.train import Trainer, TrainConfig, LinesSource
    >>> names = datasets.names()[:500]
    >>> vocab = Vocab.build(names, specials=(BOUNDARY,))
    >>> model = nn.CharLM(nn.CharLMConfig(vocab_size=len(vocab), hidden_size=32, num_layers=1), seed=0)
    >>> src = LinesSource(LinesDataset(names, vocab), batch_size=32, seed=0)
    >>> result = Trainer(model, src, config=TrainConfig(steps=20, progress=False)).fit()
    >>> result.steps
    20

Truncated BPTT (stream mode): :class:`StreamSource` yields consecutive chunks of ``batch_size``
parallel tracks; the final state of one chunk is the initial state of the next (detached:
gradients stop at chunk boundaries), reset at the start of every pass over the text.
"""

from __future__ import annotations

import math
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from . import checkpoint as ckpt
from ._mode import no_grad
from ._validate import check_choice, check_float, check_int
from .errors import CheckpointError, ConfigError, RnnkitError, TrainingDivergedError
from .optim import (ConstantLR, CosineAnnealingLR, ExponentialLR, LinearWarmup, StepLR,
                    clip_grad_norm, clip_grad_value, get_optimizer, global_norm)

LN2 = math.log(2.0)


# ============================================================================== sources
class LinesSource:
    """Lines mode (makemore): shuffled epochs of independent lines, state reset per example.

    The batch at step ``k`` is slice ``k % nb`` of the permutation of epoch ``k // nb``,
    drawn from ``default_rng([seed, epoch])`` - a pure function of ``(seed, k)``.
    """

    carries_state = False

    def __init__(self, dataset, batch_size: int, seed: int = 0):
        self.dataset = dataset
        self.batch_size = check_int("LinesSource", "batch_size", batch_size, 1)
        self.seed = int(seed)
        n = len(dataset)
        self.batch_size = min(self.batch_size, n)
        self.per_epoch = max(1, n // self.batch_size)
        self._perm_epoch, self._perm = None, None

    def batch(self, step: int):
        epoch, k = divmod(step, self.per_epoch)
        if self._perm_epoch != epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset))
            self._perm_epoch = epoch
        idx = self._perm[k * self.batch_size:(k + 1) * self.batch_size]
        return self.dataset.get_batch(idx), True

    def eval_batches(self, batch_size: int = 256):
        n = len(self.dataset)
        for i in range(0, n, batch_size):
            yield self.dataset.get_batch(np.arange(i, min(n, i + batch_size)))

    def tokens_in(self, batch) -> int:
        return int(np.sum(batch.lengths))


class StreamSource:
    """Stream mode (char-rnn): chunk ``k % num_chunks`` of ``batch_size`` tracks; the state
    is carried between consecutive chunks and reset when a pass over the text restarts."""

    carries_state = True

    def __init__(self, dataset):
        self.dataset = dataset

    def batch(self, step: int):
        k = step % self.dataset.num_chunks
        return self.dataset.chunk(k), k == 0

    def eval_batches(self, batch_size: int = 0):
        for k in range(self.dataset.num_chunks):
            yield self.dataset.chunk(k)

    def tokens_in(self, batch) -> int:
        return int(batch.x.size)


@dataclass
class ArrayBatch:
    x: np.ndarray
    y: np.ndarray
    lengths: Optional[np.ndarray] = None


class ArraySource:
    """Supervised examples stored as arrays with the batch on axis ``batch_axis`` of ``x``
    (1 for time-major sequences (T, N, ...)) and axis 0 of ``y`` unless ``y_batch_axis``.
    Shuffled epochs as in :class:`LinesSource`. With ``lengths``, each batch is cut to its
    longest sequence."""

    carries_state = False

    def __init__(self, x, y, batch_size: int, lengths=None, seed: int = 0, batch_axis: int = 1,
                 y_batch_axis: int = 0):
        self.x, self.y, self.lengths = x, y, lengths
        self.n = x.shape[batch_axis]
        self.batch_axis, self.y_batch_axis = batch_axis, y_batch_axis
        self.batch_size = min(check_int("ArraySource", "batch_size", batch_size, 1), self.n)
        self.seed = int(seed)
        self.per_epoch = max(1, self.n // self.batch_size)
        self._perm_epoch, self._perm = None, None

    def _take(self, idx):
        x = np.take(self.x, idx, axis=self.batch_axis)
        y = np.take(self.y, idx, axis=self.y_batch_axis)
        lengths = None
        if self.lengths is not None:
            lengths = self.lengths[idx]
            T = int(lengths.max())
            x = x[:T]
            if self.y_batch_axis == 1:
                y = y[:T]
        return ArrayBatch(x, y, lengths)

    def batch(self, step: int):
        epoch, k = divmod(step, self.per_epoch)
        if self._perm_epoch != epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            self._perm_epoch = epoch
        return self._take(self._perm[k * self.batch_size:(k + 1) * self.batch_size]), True

    def eval_batches(self, batch_size: int = 512):
        for i in range(0, self.n, batch_size):
            yield self._take(np.arange(i, min(self.n, i + batch_size)))

    def tokens_in(self, batch) -> int:
        return int(np.asarray(batch.y).shape[self.y_batch_axis])


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
    progress: Optional[bool] = None

    def validate(self):
        who = "TrainConfig"
        check_int(who, "steps", self.steps, 1)
        check_float(who, "lr", self.lr, 0.0, min_inclusive=False)
        check_choice(who, "optimizer", self.optimizer, ("sgd", "adam", "adamw", "rmsprop", "adagrad"))
        check_float(who, "weight_decay", self.weight_decay, 0.0)
        check_float(who, "clip", self.clip, 0.0)
        check_float(who, "clip_value", self.clip_value, 0.0)
        check_choice(who, "schedule", self.schedule, ("constant", "cosine", "step", "exponential"))
        check_int(who, "warmup", self.warmup, 0)
        check_int(who, "eval_every", self.eval_every, 1)
        check_int(who, "patience", self.patience, 0)
        check_float(who, "explode_factor", self.explode_factor, 1.0, min_inclusive=False)
        return self

    def make_schedule(self):
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

    def make_optimizer(self, params):
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
    best_val_loss: Optional[float] = None
    best_step: Optional[int] = None
    stopped: str = "completed"        # completed | early_stopping | interrupted | diverged
    message: str = ""


# ============================================================================== helpers
def _rng_owners(module, prefix=""):
    """(path, module) for every sub-module holding a random generator (dropout)."""
    if getattr(module, "rng", None) is not None:
        yield prefix or "<root>", module
    for name, child in getattr(module, "_children", {}).items():
        yield from _rng_owners(child, f"{prefix}.{name}" if prefix else name)


def _jsonable_rng_state(state):
    return {k: _jsonable_rng_state(v) if isinstance(v, dict) else (int(v) if isinstance(v, (int, np.integer)) else v)
            for k, v in state.items()}


def _carry_arrays(carry) -> dict:
    if carry is None:
        return {}
    if isinstance(carry, tuple):
        return {"trainer.carry/h": carry[0], "trainer.carry/c": carry[1]}
    return {"trainer.carry/h": carry}


def _detach(carry):
    if carry is None:
        return None
    if isinstance(carry, tuple):
        return tuple(np.array(c, copy=True) for c in carry)
    return np.array(carry, copy=True)


class _StopFlag:
    """SIGINT/SIGTERM handler: ask the loop to stop at the next step boundary. A second
    Ctrl-C interrupts at once."""

    def __init__(self):
        self.signal = None
        self._old = {}

    def __enter__(self):
        import threading
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except (ValueError, OSError):
                pass
        return self

    def _handle(self, signum, frame):
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


# ============================================================================== trainer
class Trainer:
    """Train ``model`` on ``train`` (a source), validating on ``val`` every
    ``config.eval_every`` steps.

    ``out_dir``: checkpoint directory (see :mod:`rnnkit.checkpoint`) written at every
    evaluation, at the end, and on Ctrl-C / SIGTERM; ``best/`` holds the best validation
    weights. ``resume=True`` continues from ``out_dir`` exactly (same data order and random
    draws: N + M resumed steps equal N + M straight steps). ``extra_config`` / ``vocab`` are
    stored with the checkpoint. ``on_eval(trainer, record)`` is called after each validation
    (the CLI prints samples there). ``log`` prints one-line messages.
    """

    def __init__(self, model, train, val=None, config: TrainConfig | None = None, out_dir=None,
                 vocab: dict | None = None, resume: bool = False,
                 on_eval: Callable | None = None, log: Callable = print, extra_state: dict | None = None):
        self.model = model
        self.train_source = train
        self.val_source = val
        self.config = (config or TrainConfig()).validate()
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.vocab = vocab
        self.on_eval = on_eval
        self.log = log
        self.extra_state = dict(extra_state or {})
        self.params = model.parameters()
        self.optimizer = self.config.make_optimizer(self.params)
        self.schedule = self.config.make_schedule()
        self.step = 0
        self.carry = None
        self.history: list = []
        self.best_val: Optional[float] = None
        self.best_step: Optional[int] = None
        self.best_state: Optional[dict] = None     # weights of the best validation so far
        self.evals_since_best = 0
        self.initial_loss: Optional[float] = None
        self._good = None           # (step, params copy, optimizer state) of the last good point
        self.tokens_seen = 0
        self.loss_ema: Optional[float] = None   # smoothed training loss (0.9 decay), checkpointed
        self._saved_step: Optional[int] = None  # step of the last checkpoint written to out_dir
        if resume:
            self._resume()

    # -- checkpoint ------------------------------------------------------------------------
    def _model_config(self) -> dict:
        return self.model.config.to_dict()

    def trainer_state(self) -> dict:
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
            "rng_states": {path: _jsonable_rng_state(m.rng.bit_generator.state)
                           for path, m in _rng_owners(self.model)},
            "has_carry": self.carry is not None,
            "extra": self.extra_state,
        }

    def save(self, directory=None) -> Path:
        directory = Path(directory) if directory is not None else self.out_dir
        if directory == self.out_dir:
            self._saved_step = self.step
        arrays, meta = self.optimizer.state_dict()
        arrays = dict(arrays)
        arrays.update(_carry_arrays(self.carry))
        return ckpt.save_checkpoint(directory, model_state=self.model.state_dict(),
                                    config=self._model_config(), vocab=self.vocab,
                                    optimizer_state=arrays, optimizer_meta=meta,
                                    trainer_state=self.trainer_state())

    def _resume(self):
        if self.out_dir is None:
            raise ConfigError("Trainer: resume=True needs out_dir (the checkpoint directory).")
        ck = ckpt.load_checkpoint(self.out_dir)
        src = str(self.out_dir)
        if self.vocab is not None and ck.vocab is None:
            raise CheckpointError(f"Trainer: {src}/vocab.json is missing; the checkpoint cannot be "
                                  f"checked against the training data's vocabulary.")
        if self.vocab is not None and ck.vocab is not None and ck.vocab != self.vocab:
            raise CheckpointError(f"Trainer: the vocabulary in {src}/vocab.json differs from the one "
                                  f"built from the training data; resume on the same data.")
        if ck.config != self._model_config():
            raise CheckpointError(f"Trainer: the checkpoint in {src} was made with model config "
                                  f"{ck.config}, but this model has {self._model_config()}. Resume with "
                                  f"the same model options (or start a new --out directory).")
        try:
            self.model.load_state_dict(ck.model_state)
        except RnnkitError as e:
            raise CheckpointError(f"Trainer: {src}/model.safetensors does not match config.json: "
                                  f"{e}") from None
        ts = ck.trainer_state or {}
        opt_arrays = dict(ck.optimizer_state or {})
        carry = {k: opt_arrays.pop(k) for k in list(opt_arrays) if k.startswith("trainer.carry/")}
        if ck.optimizer_meta is None:
            raise CheckpointError(f"Trainer: {src} has no optimizer state; it cannot be resumed exactly.")
        try:
            self.optimizer.load_state_dict(opt_arrays, ck.optimizer_meta)
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
            states = ts.get("rng_states", {})
            for path, m in _rng_owners(self.model):
                if path in states:
                    m.rng.bit_generator.state = states[path]
            self.extra_state.update(ts.get("extra", {}))
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"Trainer: {src}/trainer.json is damaged ({e}).") from None
        if "trainer.carry/h" in carry:
            self.carry = self._checked_carry(carry, src)
        best_dir = self.out_dir / "best"
        if self.best_val is not None and best_dir.is_dir():   # so restore_best also works after a resume
            self.best_state = ckpt.load_checkpoint(best_dir, load_optimizer=False).model_state
        ckpt.truncate_metrics(self.out_dir, self.step)
        self._saved_step = self.step
        self.log(f"resumed from {src} at step {self.step}")

    def _checked_carry(self, carry: dict, src: str):
        """The recurrent state saved with a stream-mode run, checked against the model:
        (num_layers*num_directions, N, hidden_size) float arrays, finite, (h, c) for LSTM."""
        where = f"Trainer: {src}/optimizer.safetensors"
        h, c = carry.get("trainer.carry/h"), carry.get("trainer.carry/c")
        rnn = getattr(self.model, "rnn", None)
        lstm = getattr(getattr(rnn, "cell", None), "has_cell_state", c is not None)
        if lstm != (c is not None):
            raise CheckpointError(f"{where}: expected the carried state as "
                                  f"{'(h, c)' if lstm else 'h alone'}, got "
                                  f"{'(h, c)' if c is not None else 'h alone'}.")
        for name, a in (("h", h), ("c", c)):
            if a is None:
                continue
            ok = a.dtype.kind == "f" and a.ndim == 3 and np.isfinite(a).all()
            if ok and rnn is not None:
                ok = (a.shape[0] == rnn.num_layers * rnn.num_directions
                      and a.shape[2] == rnn.hidden_size and a.shape == h.shape)
            if not ok:
                raise CheckpointError(f"{where}: the carried state {name} (shape {a.shape}, dtype "
                                      f"{a.dtype}) does not fit the model; the file is damaged.")
        return (h, c) if c is not None else h

    # -- evaluation ------------------------------------------------------------------------
    def evaluate(self, source=None) -> Optional[float]:
        """Mean loss over all batches of ``source`` (default: the validation source), weighted
        by item counts, in eval mode without caches. Stream sources carry the state."""
        source = source if source is not None else self.val_source
        if source is None:
            return None
        was_training = self.model.training
        self.model.eval()
        total, count, carry = 0.0, 0, None
        try:
            with no_grad():
                for b in source.eval_batches():
                    res = self.model.loss(b, carry)
                    total += res.loss * res.count
                    count += res.count
                    carry = res.carry if source.carries_state else None
        finally:
            self.model.train(was_training)
        return total / max(count, 1)

    def _snapshot(self):
        arrays, meta = self.optimizer.state_dict()
        self._good = (self.step, {k: v.copy() for k, v in self.params.items()},
                      {k: v.copy() for k, v in arrays.items()}, meta, _detach(self.carry))

    def _restore_good(self):
        step, params, arrays, meta, carry = self._good
        for k, v in params.items():
            self.params[k][...] = v
        self.optimizer.load_state_dict(arrays, meta)
        self.step, self.carry = step, carry

    # -- the loop --------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        cfg = self.config
        self.model.train()
        self._snapshot()
        bar = None
        if cfg.progress is not False and self.step < cfg.steps:
            from tqdm.auto import tqdm
            bar = tqdm(total=cfg.steps, initial=self.step, disable=None if cfg.progress is None else False,
                       unit="step", dynamic_ncols=True, file=sys.stderr)
        result = TrainResult(steps=self.step)
        t0 = time.perf_counter()
        tok0 = self.tokens_seen
        loss_ema = self.loss_ema
        try:
            with _StopFlag() as stop:
                while self.step < cfg.steps:
                    if stop.signal is not None:
                        result.stopped = "interrupted"
                        name = "Ctrl-C" if stop.signal == signal.SIGINT else "SIGTERM"
                        result.message = f"{name} received at step {self.step}"
                        break
                    batch, reset = self.train_source.batch(self.step)
                    if reset or not self.train_source.carries_state:
                        self.carry = None
                    res = self.model.loss(batch, self.carry)
                    if self.initial_loss is None:
                        self.initial_loss = float(res.loss)
                    diverged = self._diverged(res.loss, "loss")
                    if diverged:
                        self.model.zero_grad()
                        raise diverged
                    self.model.backward_loss()
                    grads = self.model.gradients()
                    if cfg.clip:
                        norm = clip_grad_norm(grads, cfg.clip)
                    else:
                        norm = global_norm(grads)
                    if cfg.clip_value:
                        clip_grad_value(grads, cfg.clip_value)
                    if not math.isfinite(norm):
                        self.model.zero_grad()
                        raise self._diverged(norm, "gradient norm")
                    self.optimizer.step(grads, lr=self.schedule(self.step))
                    self.model.zero_grad()
                    self.carry = _detach(res.carry) if self.train_source.carries_state else None
                    self.step += 1
                    self.tokens_seen += self.train_source.tokens_in(batch)
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
            if bar is not None:
                bar.close()
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
        if cfg.restore_best and self.val_source is not None and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return result


    def _diverged(self, value, what):
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
        record = {"step": self.step, "train_loss": float(loss_ema), "grad_norm": float(norm),
                  "lr": float(self.schedule(max(self.step - 1, 0))), "tokens": self.tokens_seen}
        val = self.evaluate()
        improved = False
        if val is not None:
            record["val_loss"] = float(val)
            diverged = self._diverged(val, "validation loss")
            if diverged:
                raise diverged
            if self.best_val is None or val < self.best_val:
                self.best_val, self.best_step = float(val), self.step
                self.evals_since_best = 0
                improved = True
                self.best_state = self.model.state_dict()
            else:
                self.evals_since_best += 1
        if self.on_eval is not None:
            extra = self.on_eval(self, record)
            if isinstance(extra, dict):
                record.update(extra)
        self.history.append(record)
        if self.out_dir is not None:
            if improved:
                ckpt.save_checkpoint(self.out_dir / "best", model_state=self.best_state,
                                     config=self._model_config(), vocab=self.vocab,
                                     trainer_state={"step": self.step, "val_loss": self.best_val})
            ckpt.append_metrics(self.out_dir, record)
            self.save()
        self._snapshot()
        msg = f"step {self.step}: train {record['train_loss']:.4f}"
        if val is not None:
            msg += f", val {val:.4f}" + (" (best)" if improved else "")
        if "val_bpc" in record:
            msg += f", val bpc {record['val_bpc']:.3f}"
        if bar is not None:
            bar.write(msg, file=sys.stderr)
        elif cfg.progress is not False:
            self.log(msg)
        return bool(cfg.patience and self.evals_since_best >= cfg.patience)
