"""Training engines: what :class:`rnnkit.train.Trainer` runs a step on.

The trainer owns the training loop and everything that must not depend on the hardware
(validation schedule, best weights, early stopping, the divergence guard and its rollback,
Ctrl-C / SIGTERM saves, checkpoints, metrics, exact resume). An *engine* owns what does:

* ``forward(source, step, carry)``: draw batch ``step`` from the source, reset or keep the
  carried state, and compute the loss (the mean over the *global* batch's target tokens);
* ``update(lr)``: backward, clipping (rnnkit's semantics), the optimizer step;
  ``discard()`` drops a forward whose loss was refused;
* ``evaluate(source)``: the mean loss over every batch of a source;
* the state, always in rnnkit's own formats so a checkpoint does not depend on the engine:
  ``state_dict()`` (NumPy arrays under PyTorch's names), ``optimizer_state()`` (the
  ``(arrays, meta)`` of :meth:`rnnkit.optim.Optimizer.state_dict`), ``rng_state()`` (the
  dropout generators), the carried recurrent state as NumPy arrays of the whole batch;
* ``snapshot()`` / ``restore()`` for the rollback of the divergence guard;
* the process group (:class:`LocalGroup` for one process): which process writes files
  (``is_main``), and agreement between processes (``allreduce``, ``agreed()``) so that every
  decision (stop, diverge, early-stop) is taken identically everywhere and an error in one
  process stops them all with one message.

Engines (``make_engine(name, model, config)``):

* ``"numpy"`` (:class:`rnnkit.engines.numpy.NumpyEngine`, the default and the reference):
  rnnkit's own layers and optimizers, one process.
* ``"torch"`` (:mod:`rnnkit.engines.torch`, needs PyTorch: ``pip install -e ".[torch]"``):
  the model converted to its PyTorch twin, ``torch.optim``, CPU or CUDA, one process or many
  under ``torchrun`` (DistributedDataParallel). Only this module imports torch, and only
  when that engine is asked for.
"""

from __future__ import annotations

import contextlib
import os

from ..errors import ConfigError, DistributedError

__all__ = ["ENGINES", "Engine", "LocalGroup", "make_engine", "start_group", "torch_engine_module",
           "TORCH_INSTALL"]

#: The engine names ``Trainer(engine=...)`` and ``rnnkit train --engine`` take.
ENGINES = ("numpy", "torch")
#: The command that installs the torch engine's dependency.
TORCH_INSTALL = 'pip install -e ".[torch]"'


class LocalGroup:
    """The process group of a single process: rank 0 of 1, agreement is trivial."""

    rank = 0
    local_rank = 0
    world_size = 1
    backend = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def allreduce(self, values, error: BaseException | None = None) -> list:
        """The sums of ``values`` over the processes (here: ``values``). An ``error`` raised
        in any process is raised in every process (here: ``error`` itself)."""
        if error is not None:
            raise error
        return list(values)

    def agree(self, error: BaseException | None = None) -> None:
        """Raise ``error`` (of this process) or the first failing process's error everywhere."""
        self.allreduce((), error)

    @contextlib.contextmanager
    def agreed(self):
        """``with group.agreed(): ...``: run the block here; if it fails in any process, it
        fails in every process (with the error of the first failing one)."""
        try:
            yield
        except Exception as e:
            if getattr(e, "_rnnkit_agreed", False):
                raise
            self.agree(e)
        else:
            self.agree(None)

    def main_first(self, fn):
        """``fn()`` on the main process first, then (once it succeeded) on the others; for
        work that fills a cache the others then reuse (the encoded corpus)."""
        return fn()

    def broadcast(self, obj):
        """The main process's ``obj`` in every process."""
        return obj

    def close(self, in_sync: bool = True) -> None:
        """Leave the group; ``in_sync``: every process got here the same way."""

    def describe(self) -> str:
        return "1 process"


def torch_engine_module():
    """``rnnkit.engines.torch``, or one clear error (ConfigError) when PyTorch is missing."""
    try:
        from . import torch as torch_engine
    except ImportError as e:
        raise ConfigError(f"--engine torch needs PyTorch, which is not installed here ({e}). "
                          f"Install it with: {TORCH_INSTALL} (or train with --engine numpy)") from None
    return torch_engine


def start_group(engine: str = "numpy", device: str | None = None):
    """The process group for ``engine``: a :class:`LocalGroup`, or for the torch engine the
    group of this ``torchrun`` job (started here: gloo on CPU, nccl on CUDA) and the device
    of this process. Under ``torchrun`` the numpy engine is refused."""
    if engine not in ENGINES:
        raise ConfigError(f"engine: expected one of {', '.join(ENGINES)}, got {engine!r}.")
    if engine == "torch":
        return torch_engine_module().TorchGroup(device)
    if device is not None:
        raise ConfigError(f"device {device!r}: only the torch engine takes a device; the numpy "
                          f"engine runs on the CPU.")
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        raise DistributedError("this is one of several processes started by torchrun "
                               f"(WORLD_SIZE={os.environ['WORLD_SIZE']}); the numpy engine runs in "
                               "one process. Add --engine torch, or run without torchrun.")
    return LocalGroup()


def make_engine(engine, model, config, *, device: str | None = None, group=None):
    """The engine named ``engine`` ("numpy" or "torch") for ``model`` trained with ``config``
    (a :class:`rnnkit.train.TrainConfig`); an engine object is returned unchanged.
    ``device`` (torch only): ``"cpu"``, ``"cuda"``, ``"cuda:N"`` (default: CUDA when
    available). ``group``: a process group from :func:`start_group` (default: started here)."""
    if isinstance(engine, Engine):
        return engine
    if engine is None:
        engine = "numpy"
    if group is None:
        group = start_group(engine, device)
    if engine == "torch":
        return torch_engine_module().TorchEngine(model, config, group=group)
    from .numpy import NumpyEngine
    return NumpyEngine(model, config, group=group)


class Engine:
    """The interface :class:`rnnkit.train.Trainer` drives (see the module docstring).

    Attributes: ``name`` ("numpy" / "torch"), ``model`` (the rnnkit model; it holds the
    engine's weights after :meth:`sync_model`), ``group`` (the process group).
    """

    name = "engine"

    def __init__(self, model, config, group=None):
        self.model = model
        self.config = config
        self.group = group if group is not None else LocalGroup()

    # -- processes -----------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        return self.group.is_main

    def any(self, flags) -> list:
        """Per flag: True when it is set in any process."""
        return [v > 0 for v in self.group.allreduce([1.0 if f else 0.0 for f in flags])]

    def agreed(self):
        return self.group.agreed()

    def info(self) -> dict:
        """JSON kept in trainer.json: which engine, device and number of processes ran."""
        return {"name": self.name, "device": self.device_name(), "world_size": self.group.world_size}

    def device_name(self) -> str:
        return "cpu"

    def describe(self) -> str:
        """One line for people: ``numpy (CPU), 1 process``."""
        raise NotImplementedError

    @property
    def uses_dropout(self) -> bool:
        """True when training draws dropout masks (then the random stream matters)."""
        raise NotImplementedError

    # -- one step ------------------------------------------------------------------------
    def forward(self, source, step: int, carry):
        """``(LossResult, tokens)`` of the batch ``step`` of ``source``: the loss (mean over
        the global batch, the same number in every process), the number of items it averages
        over, the new carried state (engine-native), and ``source.tokens_in(batch)``. A batch
        that starts a pass over the text (``reset``) or a source that carries no state starts
        from the zero state."""
        raise NotImplementedError

    def discard(self) -> None:
        """Forget the last forward (its loss was refused)."""
        raise NotImplementedError

    def update(self, lr: float) -> tuple:
        """Backward of the last forward, clipping, optimizer step at rate ``lr``; returns
        ``(norm, finite)``: the global gradient norm before clipping (no step is taken when it
        is NaN/inf) and whether every weight is finite after the step."""
        raise NotImplementedError

    def detach(self, carry):
        """The carried state, cut from the graph of the step that produced it."""
        raise NotImplementedError

    def evaluate(self, source):
        """Mean loss over every batch of ``source`` (eval mode, no gradients)."""
        raise NotImplementedError

    # -- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError

    def sync_model(self) -> None:
        """Make ``model`` hold the engine's current weights."""

    def optimizer_state(self) -> tuple:
        raise NotImplementedError

    def load_optimizer_state(self, arrays: dict, meta: dict) -> None:
        raise NotImplementedError

    def rng_state(self) -> tuple:
        """``(json, arrays)``: the dropout generators, merged into trainer.json and
        trainer.safetensors. Collective (every process calls it); arrays only on the main one."""
        raise NotImplementedError

    def load_rng_state(self, json: dict, arrays: dict, saved_engine: dict, step: int) -> bool:
        """Restore the generators saved by :meth:`rng_state` when the checkpoint was written
        by this kind of engine (same device type and number of processes); otherwise start a
        fresh stream (a function of the seed and ``step``). Returns True when restored."""
        raise NotImplementedError

    def carry_to_numpy(self, carry):
        """The carried state of the whole batch as rnnkit's NumPy state (``h`` or ``(h, c)``,
        each (num_layers, N, H)) or None. Collective under torchrun."""
        raise NotImplementedError

    def carry_from_numpy(self, arrays):
        """The engine's carried state from rnnkit's NumPy state of the whole batch (or None)."""
        raise NotImplementedError

    def snapshot(self):
        raise NotImplementedError

    def restore(self, snapshot) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.group.close()
