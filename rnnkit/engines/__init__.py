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

import os
import types
from typing import TYPE_CHECKING

from ..errors import ConfigError, DistributedError
from .base import Engine, LocalGroup

if TYPE_CHECKING:
    from ..nn.module import Module
    from ..train import TrainConfig

__all__ = ["ENGINES", "Engine", "LocalGroup", "make_engine", "start_group", "torch_engine_module",
           "TORCH_INSTALL"]

#: The engine names ``Trainer(engine=...)`` and ``rnnkit train --engine`` take.
ENGINES = ("numpy", "torch")
#: The command that installs the torch engine's dependency.
TORCH_INSTALL = 'pip install -e ".[torch]"'


def torch_engine_module() -> types.ModuleType:
    """``rnnkit.engines.torch``, or one clear error (ConfigError) when PyTorch is missing."""
    try:
        from . import torch as torch_engine
    except ImportError as e:
        raise ConfigError(f"--engine torch needs PyTorch, which is not installed here ({e}). "
                          f"Install it with: {TORCH_INSTALL} (or train with --engine numpy)") from None
    return torch_engine


def start_group(engine: str = "numpy", device: str | None = None) -> LocalGroup:
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


def make_engine(engine: str | Engine | None, model: Module, config: TrainConfig, *,
                device: str | None = None, group: LocalGroup | None = None) -> Engine:
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
